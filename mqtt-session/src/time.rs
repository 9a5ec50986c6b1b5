//! Time as the session sees it: a point on the caller's monotonic clock, passed in with every
//! input. The session never reads a clock, so it needs only ordering and "this instant plus a
//! duration" from it.

use core::fmt;
use core::time::Duration;

/// A point in time on the caller's monotonic clock: what every `now` argument of
/// [`Session`](crate::Session) is, and what [`poll_timeout`](crate::Session::poll_timeout)
/// returns.
///
/// Implemented for `std::time::Instant` (with the `std` feature; the session's default, so
/// Tokio, smol and blocking users pass `Instant::now()` and sleep until the deadline they get
/// back, unchanged) and for [`Duration`], read as the time elapsed since an origin the caller
/// picks (boot, for a microcontroller's tick counter: `Duration::from_micros(ticks_us)`).
/// Implement it for a clock type of your own (a newtype around your platform's instant) when
/// you want the deadlines back in that type.
///
/// The clock must be monotonic: an earlier `now` after a later one makes timers fire late,
/// never early and never twice.
pub trait Instant: Copy + Ord + fmt::Debug {
    /// The instant `duration` after `self`, or `None` when the type cannot represent it; a
    /// deadline that cannot be represented is never reached, so its timer stays unarmed.
    fn checked_add(self, duration: Duration) -> Option<Self>;
}

#[cfg(feature = "std")]
impl Instant for std::time::Instant {
    #[inline]
    fn checked_add(self, duration: Duration) -> Option<Self> {
        // The inherent method: the same one `Instant + Duration` uses.
        Self::checked_add(&self, duration)
    }
}

impl Instant for Duration {
    #[inline]
    fn checked_add(self, duration: Duration) -> Option<Self> {
        Self::checked_add(self, duration)
    }
}

/// The session's default instant type: `std::time::Instant` with the `std` feature.
///
/// Without `std` there is no default: a `#![no_std]` user names the instant type
/// (`Session<MemoryStore, Duration>`), so that the code still compiles, and still means the
/// same, when another crate in the build turns `std` on (cargo features are additive).
#[cfg(feature = "std")]
pub type DefaultInstant = std::time::Instant;

/// The session's default instant type: without the `std` feature, a type that is not an
/// [`Instant`], so relying on a default fails to compile and the instant type must be named.
#[cfg(not(feature = "std"))]
pub type DefaultInstant = NoDefaultInstant;

/// Stands in for the default instant type without the `std` feature; it has no values and is
/// not an [`Instant`]. Name an instant type instead (e.g. `Session<MemoryStore, Duration>`).
#[cfg(not(feature = "std"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDefaultInstant {}
