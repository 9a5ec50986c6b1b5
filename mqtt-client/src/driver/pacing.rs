//! How fast the driver takes what the broker sends: whether it reads the socket on this
//! pass, given the inbox's bounds (`crate::intake`), and what a connection's bound on QoS 1/2
//! messages makes it do.
//!
//! - The bounded read pause of a QoS 0 burst, and, for a clean MQTT 3.1.1 session, the pause
//!   with no time bound while QoS 1/2 messages wait for room: during that one the session's
//!   ping deadline is suspended (`Session::set_reading_paused`), since no PINGRESP can be read.
//!   That pause gives way while the application waits for an answer to its own request (a
//!   PUBACK, a SUBACK, a PINGRESP): the answer may be behind the unread messages, and an
//!   application that awaits it before taking a message would otherwise wait forever (a
//!   request/response loop whose replies arrive on its own subscription does exactly that).
//! - A persistent MQTT 3.1.1 session refuses QoS 1/2 beyond the bound instead, and reconnects
//!   once the application has taken what it held, for the broker to send them again.

use std::task::Context;
use std::time::Instant;

use sansmqtt_proto::Disconnect;
use sansmqtt_session::ConnectionState;
use tracing::info;

use super::{Driver, Ended, Waiter};
use crate::intake::ReliableBound;
use crate::transport::Runtime;

impl<R: Runtime> Driver<R> {
    /// A connection starts: its bound on QoS 1/2 follows from its protocol version and
    /// session (see `crate::intake`).
    pub(super) fn start_pacing(&mut self) {
        let bound = ReliableBound::of(
            self.session.protocol_version(),
            self.params.options.clean_start,
        );
        self.intake.start_connection(bound);
    }

    /// Whether to read the socket on this pass. Registers the wake-ups a pause needs, and
    /// starts the reconnect that fetches refused messages; returns whether that made progress
    /// too.
    pub(super) fn pace_reading(&mut self, cx: &mut Context<'_>, now: Instant) -> (bool, bool) {
        // Always read: flow control, not a stalled socket, holds back a slow consumer
        // ... except for the pauses of `intake`.
        let mut reading = matches!(
            self.session.state(),
            ConnectionState::Connecting | ConnectionState::Connected
        );
        let paused = reading
            && !self
                .intake
                .may_read(cx, &self.shared.inbox, &mut self.dropped_unreported);
        // Withholding on a clean 3.1.1 session, except while the application waits for an
        // answer of the broker's to its own request: that answer may sit behind the unread
        // messages, and an application that takes no message before it comes would wait
        // forever. What is read meanwhile is held, in order, and the bound gives way.
        let withholding = self.intake.withholding() && !self.awaits_an_answer();
        if paused && (withholding || !self.intake.withholding()) {
            reading = false;
            // A read signal taken below is not acted on: read once more on resuming.
            self.read_armed = false;
        }
        // No PINGRESP can come while QoS 1/2 messages wait for room with reading stopped.
        self.session.set_reading_paused(now, withholding);
        let mut progress = false;
        // With manual acknowledgements the application may hold messages it took but has not
        // acknowledged: reconnecting before it does would have the broker send them again
        // (processed twice). Its acknowledgements come as commands, which wake the driver.
        if self.session.is_connected()
            && self.session.acknowledged_all_but_refused()
            && self.intake.refusal_over(cx, &self.shared.inbox)
        {
            info!("the application took what it held: reconnecting for the refused messages");
            self.end = Some(Ended::Reconnect);
            let _ = self.session.disconnect(now, Disconnect::default());
            progress = true;
        }
        (reading, progress)
    }

    /// Whether the application waits for the broker's answer to one of its own requests: a
    /// QoS 1/2 publish, a subscribe or unsubscribe (each holds a packet identifier until
    /// answered), or a `ping`.
    fn awaits_an_answer(&self) -> bool {
        self.session.packet_ids_in_use() > 0
            || self
                .waiters
                .values()
                .any(|waiter| matches!(waiter, Waiter::Ping(_)))
    }
}
