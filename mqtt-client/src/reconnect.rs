//! The reconnect policy: which broker to try next and how long to wait before trying it.
//!
//! Pure logic, no I/O and no clock reads: the driver passes the times it measured, and the
//! randomness comes from an injected [`Entropy`], so the schedule is unit-tested on a virtual
//! clock with a scripted random source.
//!
//! The rules:
//! - The broker list is walked in **rounds**. Within a round the next URI is tried at once;
//!   before each round after the first (and before the first round after a lost connection)
//!   the client waits the round's backoff delay. Backoff is per round, not per URI: a cluster
//!   of three nodes that all refuse costs three quick attempts, then one wait.
//! - The delay before round `k` is `initial * 2^(k-1)`, capped at `max`, with [`Jitter`]
//!   applied (and the result capped at `max` again).
//! - A lost connection fails over: the round after it starts with the URI after the one that
//!   was lost, so that one is tried last.
//! - The schedule starts over (round 1, attempt 1) only after a connection that **stayed up**
//!   for the grace period. A connection that reached CONNACK but died sooner counts as a failed
//!   attempt: a broker that accepts and then drops every client cannot make a hot loop.
//! - `reconnect_retries` (N) bounds the rounds as amqtt counts its attempts: a reconnect is
//!   one round plus N retry rounds, so after a lost connection (or a failed first connect)
//!   N + 1 rounds are tried; `connect` makes its own first attempt before that sequence
//!   (N + 2 rounds in all), and a `reconnect()` asked for by the application starts the
//!   sequence with its immediate attempt (N + 1 rounds in all). One URI: one attempt per
//!   round.
//! - A Server Reference the application allows us to follow is tried next: at once when a
//!   listed broker sent it, in the next slot of the round when a referenced one did.

use std::time::{Duration, Instant};

use sansmqtt_proto::ReasonCode;

use super::error::ClientError;
use super::uri::Target;

/// Randomness added to each reconnect delay, so that clients that lost the same broker at the
/// same moment do not all come back at the same moment.
///
/// The default is [`Jitter::Spread`] of 25%: every delay lies within ±25% of the exponential
/// schedule (and never above `reconnect_max_interval`). It keeps a guaranteed minimum
/// spacing between rounds (at least 75% of the nominal delay), so the attempt rate against a
/// broker that refuses everyone has a hard upper bound. [`Jitter::Full`] spreads a herd of
/// clients further (a uniform delay between zero and the nominal one) at the price of that
/// bound: single delays can be arbitrarily short.
///
/// With the `serde` feature a configuration spells it `"none"`, `"full"` or a percentage
/// (`25`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the exponential schedule.
    None,
    /// "Full jitter": uniform in `[0, nominal)`.
    Full,
    /// Uniform in `nominal ± percent%`, capped at `reconnect_max_interval`. At most 100: more
    /// fails `connect` with [`ConfigError::TooLarge`](crate::ConfigError::TooLarge).
    Spread {
        /// Half-width of the interval in percent of the nominal delay.
        percent: u8,
    },
}

impl Default for Jitter {
    fn default() -> Self {
        Self::Spread { percent: 25 }
    }
}

/// A source of random 64-bit words. The driver uses [`SplitMix64`] seeded per client; tests
/// script the words.
pub(crate) trait Entropy: Send {
    fn next_u64(&mut self) -> u64;

    /// A uniform number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// SplitMix64: small, fast, and good enough to decorrelate reconnect delays (not for
/// anything secret).
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded from the standard library's per-process random hasher keys, so two clients in
    /// one process (and two processes) get different sequences.
    pub(crate) fn from_random_state() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        Self(hasher.finish())
    }
}

impl Entropy for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The exponential backoff schedule with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: Jitter,
}

impl Backoff {
    /// The delay before round `round` (1-based) without jitter: `initial * 2^(round-1)`,
    /// capped at `max`.
    pub(crate) fn nominal(&self, round: u32) -> Duration {
        let doublings = round.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(Duration::MAX)
            .min(self.max)
    }

    /// The delay before round `round`, jittered with `entropy`.
    pub(crate) fn delay(&self, round: u32, entropy: &mut dyn Entropy) -> Duration {
        let nominal = self.nominal(round);
        let jittered = match self.jitter {
            Jitter::None => nominal,
            Jitter::Full => nominal.mul_f64(entropy.unit()),
            Jitter::Spread { percent } => {
                // `ClientConfig::validate` refused a spread above 100% before any
                // connection; the bound only keeps the factor non-negative.
                let spread = f64::from(percent.min(100)) / 100.0;
                // 1 ± spread, uniform.
                nominal.mul_f64(1.0 + spread * (2.0 * entropy.unit() - 1.0))
            }
        };
        jittered.min(self.max)
    }
}

/// Whether a connection error can heal by trying again (possibly elsewhere). Final, whatever
/// `reconnect_retries` says:
/// - a CONNACK refusal for credentials, authorization or protocol reasons (one saying the
///   server is unavailable, busy, over quota or elsewhere is not: another node, or the same
///   one a little later, may accept);
/// - an invalid URI;
/// - a proxy that refuses for its own reasons: a bad proxy URL, credentials it wants or
///   rejects, its policy (see [`ProxyRefusal::is_final`](crate::ProxyRefusal::is_final));
/// - a TLS configuration that cannot work (unreadable or malformed certificate files, no
///   roots, no crypto provider) or a certificate the handshake rejected (unknown CA,
///   expired, wrong host, or the server rejecting ours).
///
/// Transient failures (refused TCP connection, timeouts, resets, a broken stream) are not.
pub(crate) fn is_final(err: &ClientError) -> bool {
    match err {
        ClientError::Connect(reason) => !matches!(
            reason.code,
            ReasonCode::ServerUnavailable
                | ReasonCode::ServerBusy
                | ReasonCode::QuotaExceeded
                | ReasonCode::ConnectionRateExceeded
                | ReasonCode::UseAnotherServer
                | ReasonCode::ServerMoved
        ),
        ClientError::InvalidUri(_) | ClientError::InvalidConfig(_) | ClientError::Auth(_) => true,
        ClientError::Proxy(proxy) => proxy.is_final(),
        #[cfg(feature = "tls")]
        ClientError::Tls(tls) => tls_is_final(tls),
        _ => false,
    }
}

#[cfg(feature = "tls")]
fn tls_is_final(err: &crate::TlsError) -> bool {
    use rustls::AlertDescription as Alert;
    match err {
        crate::TlsError::Rustls(err) => matches!(
            err,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::AlertReceived(
                    Alert::BadCertificate
                        | Alert::UnsupportedCertificate
                        | Alert::CertificateRevoked
                        | Alert::CertificateExpired
                        | Alert::CertificateUnknown
                        | Alert::UnknownCA
                        | Alert::CertificateRequired
                        | Alert::AccessDenied
                        | Alert::HandshakeFailure
                        | Alert::ProtocolVersion
                )
        ),
        // Reading files, parsing PEM, building the verifier, the server name, the provider,
        // the roots: configuration that fails the same way on every attempt.
        _ => true,
    }
}

/// Settings of a [`Reconnector`], from the client configuration.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) backoff: Backoff,
    /// amqtt's `reconnect_retries`: retry rounds after the first round of a reconnect;
    /// `None`: forever.
    pub(crate) retries: Option<u32>,
    /// How long a connection must stay up to reset the schedule.
    pub(crate) grace: Duration,
    /// Try the URIs in a random order (drawn once per client).
    pub(crate) shuffle: bool,
}

/// How long a connection must have lasted (from the start of its attempt) to count as one that
/// stayed up.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The next attempt: where, after how long, and its number since the last stable connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attempt {
    /// 1 for the first attempt after a failure or loss.
    pub(crate) number: u32,
    pub(crate) delay: Duration,
    pub(crate) target: Target,
}

/// How a connection attempt or connection ended, as far as the schedule cares.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// When the attempt started and when it ended, if it got as far as CONNACK.
    pub(crate) connected: Option<(Instant, Instant)>,
    /// A Server Reference the application allows to follow, with whether the server said it
    /// moved for good (0x9D) rather than for now (0x9C).
    pub(crate) reference: Option<(Target, bool)>,
}

/// Walks the broker list in rounds with backoff between rounds. See the module docs.
pub(crate) struct Reconnector {
    targets: Vec<Target>,
    policy: Policy,
    entropy: Box<dyn Entropy>,
    /// Index of the URI the last attempt used (`None` for a followed reference).
    current: Option<usize>,
    /// Index of the URI the next slot of a round tries.
    next: usize,
    /// Slots used in the current round.
    in_round: usize,
    /// Rounds started since the last stable connection; round 0 is the first connect's,
    /// which starts without a delay.
    round: u32,
    /// Attempts since the last stable connection (not counting the first connect's).
    attempts: u32,
    redirect: Option<Target>,
}

impl Reconnector {
    /// A schedule over `targets` (at least one).
    pub(crate) fn new(
        mut targets: Vec<Target>,
        policy: Policy,
        mut entropy: Box<dyn Entropy>,
    ) -> Self {
        assert!(!targets.is_empty(), "a reconnect schedule needs a broker");
        if policy.shuffle {
            // Fisher-Yates: each client picks its own order, so a fleet spreads over a cluster.
            for i in (1..targets.len()).rev() {
                let j = (entropy.next_u64() % (i as u64 + 1)) as usize;
                targets.swap(i, j);
            }
        }
        Self {
            targets,
            policy,
            entropy,
            current: None,
            next: 0,
            in_round: 0,
            round: 0,
            attempts: 0,
            redirect: None,
        }
    }

    /// The broker list in the order it is walked.
    #[cfg(test)]
    pub(crate) fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The first attempt of a `connect` (or of a `reconnect()` asked for by the application):
    /// the current URI (the first one initially), at once, with the schedule started over.
    pub(crate) fn start(&mut self) -> Target {
        self.start_at(0)
    }

    /// The first attempt of a `reconnect()` asked for by the application: like
    /// [`start`](Self::start), but the attempt is the first round of the reconnect sequence
    /// (amqtt's `reconnect()` makes `reconnect_retries + 1` attempts, `connect()` one more).
    pub(crate) fn start_reconnect(&mut self) -> Target {
        self.start_at(1)
    }

    fn start_at(&mut self, round: u32) -> Target {
        self.round = round;
        self.attempts = 0;
        self.in_round = 1;
        self.redirect = None;
        let index = self.current.unwrap_or(0);
        self.current = Some(index);
        self.next = (index + 1) % self.targets.len();
        self.targets[index].clone()
    }

    /// The attempt or connection ended: the next attempt, or `None` when `retries` rounds
    /// have failed.
    pub(crate) fn next(&mut self, outcome: Outcome) -> Option<Attempt> {
        let stayed_up = outcome
            .connected
            .is_some_and(|(start, end)| end.saturating_duration_since(start) >= self.policy.grace);
        if stayed_up {
            // Start over, and let the next round begin after the URI that was lost.
            self.round = 0;
            self.attempts = 0;
            self.in_round = self.targets.len();
        }
        if let Some((target, moved)) = outcome.reference {
            if moved && let Some(index) = self.current {
                self.targets[index] = target.clone();
            }
            if self.current.is_some() {
                // A reference from a listed broker is followed at once, in an extra slot: the
                // server said where to go, that is no failure. At most one per listed attempt.
                self.current = None;
                self.attempts += 1;
                return Some(Attempt {
                    number: self.attempts,
                    delay: Duration::ZERO,
                    target,
                });
            }
            // A reference from a referenced server takes a normal slot, so references
            // pointing at each other cannot loop without backoff.
            self.redirect = Some(target);
        }
        let mut delay = Duration::ZERO;
        if self.in_round >= self.targets.len() {
            self.round += 1;
            // Round 1 is the reconnect's first attempt, rounds 2..=max+1 its retries.
            if self
                .policy
                .retries
                .is_some_and(|max| self.round > max.saturating_add(1))
            {
                return None;
            }
            self.in_round = 0;
            delay = self.policy.backoff.delay(self.round, self.entropy.as_mut());
        }
        self.in_round += 1;
        self.attempts += 1;
        let target = match self.redirect.take() {
            Some(target) => {
                self.current = None;
                target
            }
            None => {
                let index = self.next;
                self.current = Some(index);
                self.next = (index + 1) % self.targets.len();
                self.targets[index].clone()
            }
        };
        Some(Attempt {
            number: self.attempts,
            delay,
            target,
        })
    }
}

/// Parses a Server Reference into a broker address relative to `current`: each
/// space-separated entry is a full URI (`mqtts://host:port`) or `host[:port]`, which keeps
/// `current`'s scheme, credentials and path, and its port when none is given. The first
/// entry that parses wins.
pub(crate) fn parse_reference(reference: &str, current: &Target) -> Option<Target> {
    reference.split_whitespace().find_map(|entry| {
        if entry.contains("://") {
            return Target::parse(entry).ok();
        }
        let probe = url::Url::parse(&format!("mqtt://{entry}")).ok()?;
        let mut url = current.url.clone();
        url.set_host(probe.host_str()).ok()?;
        url.set_port(Some(probe.port().unwrap_or(current.port)))
            .ok()?;
        Target::parse(url.as_str()).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_cannot_heal_are_final_and_transient_ones_are_not() {
        use std::sync::Arc;

        let io = |kind| ClientError::Io(Arc::new(std::io::Error::from(kind)));
        assert!(!is_final(&io(std::io::ErrorKind::ConnectionRefused)));
        assert!(!is_final(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(!is_final(&ClientError::Timeout));
        assert!(is_final(&ClientError::InvalidUri(
            crate::UriError::MissingHost
        )));
        let refused = |code| ClientError::Connect(sansmqtt_session::ServerReason::new(code));
        assert!(is_final(&refused(ReasonCode::NotAuthorized)));
        assert!(is_final(&refused(ReasonCode::UnsupportedProtocolVersion)));
        assert!(!is_final(&refused(ReasonCode::ServerBusy)));
        #[cfg(feature = "tls")]
        {
            let tls = |err| ClientError::Tls(crate::TlsError::Rustls(err));
            for cert in [
                rustls::CertificateError::UnknownIssuer,
                rustls::CertificateError::Expired,
                rustls::CertificateError::NotValidForName,
            ] {
                assert!(is_final(&tls(rustls::Error::InvalidCertificate(cert))));
            }
            assert!(is_final(&tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::BadCertificate
            ))));
            assert!(!is_final(&tls(rustls::Error::DecryptError)));
            assert!(is_final(&ClientError::Tls(crate::TlsError::NoRoots)));
        }
    }

    /// Scripted randomness: returns `words` in a loop.
    struct Script(Vec<u64>, usize);

    impl Entropy for Script {
        fn next_u64(&mut self) -> u64 {
            let word = self.0[self.1 % self.0.len()];
            self.1 += 1;
            word
        }
    }

    /// A word whose `unit()` is `fraction`.
    fn word(fraction: f64) -> u64 {
        ((fraction * (1u64 << 53) as f64) as u64) << 11
    }

    /// The virtual clock's zero: `Instant` has no constructor, so one reading anchors it;
    /// the tests only ever add durations to it.
    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target::parse(&format!("mqtt://node{i}:1883")).expect("uri"))
            .collect()
    }

    fn policy(jitter: Jitter, retries: Option<u32>) -> Policy {
        Policy {
            backoff: Backoff {
                initial: ms(100),
                max: ms(1000),
                jitter,
            },
            retries,
            grace: Duration::from_secs(10),
            shuffle: false,
        }
    }

    fn hosts(attempts: &[Attempt]) -> Vec<&str> {
        attempts.iter().map(|a| a.target.host.as_str()).collect()
    }

    #[test]
    fn nominal_schedule_doubles_from_initial_up_to_the_cap() {
        let backoff = policy(Jitter::None, None).backoff;
        let delays: Vec<u64> = (1..=7)
            .map(|round| backoff.nominal(round).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
        // No overflow for absurd rounds.
        assert_eq!(backoff.nominal(u32::MAX), ms(1000));
    }

    #[test]
    fn spread_jitter_stays_within_a_quarter_and_below_the_cap() {
        let backoff = policy(Jitter::default(), None).backoff;
        let mut low = Script(vec![word(0.0)], 0);
        let mut high = Script(vec![word(0.999_999)], 0);
        let mut mid = Script(vec![word(0.5)], 0);
        assert_eq!(backoff.delay(1, &mut low), ms(75));
        assert_eq!(backoff.delay(1, &mut mid), ms(100));
        assert!(backoff.delay(1, &mut high) > ms(124));
        assert!(backoff.delay(1, &mut high) < ms(125));
        // At the cap the upper half is cut off: never above max.
        assert_eq!(backoff.delay(9, &mut low), ms(750));
        assert_eq!(backoff.delay(9, &mut high), ms(1000));
        let mut rng = SplitMix64(7);
        for round in 1..20 {
            let nominal = backoff.nominal(round);
            let delay = backoff.delay(round, &mut rng);
            assert!(
                delay >= nominal.mul_f64(0.75) && delay <= nominal.mul_f64(1.25),
                "{round}: {delay:?}"
            );
            assert!(delay <= ms(1000));
        }
    }

    #[test]
    fn full_jitter_is_uniform_below_the_nominal_delay() {
        let backoff = policy(Jitter::Full, None).backoff;
        assert_eq!(backoff.delay(3, &mut Script(vec![word(0.0)], 0)), ms(0));
        assert_eq!(backoff.delay(3, &mut Script(vec![word(0.5)], 0)), ms(200));
        let mut rng = SplitMix64(42);
        let delays: Vec<Duration> = (0..1000).map(|_| backoff.delay(3, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d < ms(400)));
        let mean = delays.iter().sum::<Duration>() / 1000;
        assert!(mean > ms(170) && mean < ms(230), "mean {mean:?}");
    }

    /// The whole schedule on a virtual clock: three URIs that all fail. Within a round the
    /// next URI is tried at once; rounds are separated by the doubling backoff.
    #[test]
    fn backoff_applies_per_round_over_the_list_on_a_virtual_clock() {
        let mut plan = Reconnector::new(
            targets(3),
            policy(Jitter::None, None),
            Box::new(Script(vec![0], 0)),
        );
        let t0 = origin();
        let mut now = t0;
        assert_eq!(plan.start().host, "node0");
        // Each failed attempt takes 5 ms of connect time, the first connect's too.
        now += ms(5);
        let mut attempts = Vec::new();
        let mut times = Vec::new();
        for _ in 0..9 {
            let attempt = plan.next(Outcome::default()).expect("retries forever");
            now += attempt.delay + ms(5);
            times.push((now - t0).as_millis());
            attempts.push(attempt);
        }
        assert_eq!(
            hosts(&attempts),
            [
                "node1", "node2", "node0", "node1", "node2", "node0", "node1", "node2", "node0"
            ]
        );
        let delays: Vec<u128> = attempts.iter().map(|a| a.delay.as_millis()).collect();
        assert_eq!(delays, [0, 0, 100, 0, 0, 200, 0, 0, 400]);
        assert_eq!(times, [10, 15, 120, 125, 130, 335, 340, 345, 750]);
        let numbers: Vec<u32> = attempts.iter().map(|a| a.number).collect();
        assert_eq!(numbers, (1..=9).collect::<Vec<_>>());
    }

    #[test]
    fn retries_bound_the_rounds_not_the_attempts() {
        let mut plan = Reconnector::new(
            targets(2),
            policy(Jitter::None, Some(2)),
            Box::new(Script(vec![0], 0)),
        );
        plan.start();
        let mut attempts = Vec::new();
        while let Some(attempt) = plan.next(Outcome::default()) {
            attempts.push(attempt);
            assert!(attempts.len() < 10, "never gave up");
        }
        // The first connect's round (node0, node1), then the reconnect: one round and two
        // retry rounds (amqtt: `reconnect_retries + 1` reconnect attempts).
        assert_eq!(
            hosts(&attempts),
            [
                "node1", "node0", "node1", "node0", "node1", "node0", "node1"
            ]
        );
    }

    #[test]
    fn an_application_reconnect_counts_its_first_attempt_as_the_first_round() {
        let mut plan = Reconnector::new(
            targets(1),
            policy(Jitter::None, Some(2)),
            Box::new(Script(vec![0], 0)),
        );
        plan.start_reconnect();
        let mut delays = Vec::new();
        while let Some(attempt) = plan.next(Outcome::default()) {
            delays.push(attempt.delay.as_millis());
            assert!(delays.len() < 10, "never gave up");
        }
        // amqtt's reconnect(): 1 + reconnect_retries attempts, the backoff doubling.
        assert_eq!(delays, [200, 400]);
    }

    #[test]
    fn a_connection_that_stayed_up_resets_the_schedule_and_fails_over_to_the_next_uri() {
        let mut plan = Reconnector::new(
            targets(3),
            policy(Jitter::None, Some(5)),
            Box::new(Script(vec![0], 0)),
        );
        let t0 = origin();
        plan.start();
        for _ in 0..4 {
            plan.next(Outcome::default());
        }
        // Attempt 4 (on node1) connected and stayed up for a minute.
        let lost = plan
            .next(Outcome {
                connected: Some((t0, t0 + Duration::from_secs(60))),
                reference: None,
            })
            .expect("retry");
        assert_eq!(lost.number, 1, "attempts count again from 1");
        assert_eq!(
            lost.delay,
            ms(100),
            "the backoff starts over at the initial delay"
        );
        assert_eq!(
            lost.target.host, "node2",
            "fails over to the URI after the lost one"
        );
    }

    #[test]
    fn a_connection_that_died_within_the_grace_period_counts_as_a_failed_attempt() {
        let mut plan = Reconnector::new(
            targets(1),
            policy(Jitter::None, None),
            Box::new(Script(vec![0], 0)),
        );
        let t0 = origin();
        plan.start();
        let mut delays = Vec::new();
        for i in 0..5u32 {
            // Each connection got a CONNACK and was dropped 1 s later.
            let start = t0 + Duration::from_secs(u64::from(i) * 2);
            let attempt = plan
                .next(Outcome {
                    connected: Some((start, start + Duration::from_secs(1))),
                    reference: None,
                })
                .expect("retry");
            delays.push(attempt.delay.as_millis());
        }
        assert_eq!(delays, [100, 200, 400, 800, 1000]);
    }

    #[test]
    fn shuffle_draws_one_order_per_client() {
        let mut shuffled = policy(Jitter::None, None);
        shuffled.shuffle = true;
        let orders: std::collections::HashSet<Vec<String>> = (0..50)
            .map(|seed| {
                let plan =
                    Reconnector::new(targets(4), shuffled.clone(), Box::new(SplitMix64(seed)));
                plan.targets().iter().map(|t| t.host.clone()).collect()
            })
            .collect();
        assert!(orders.len() > 5, "orders: {orders:?}");
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, ["node0", "node1", "node2", "node3"]);
        }
    }

    #[test]
    fn a_followed_reference_goes_first_and_a_move_replaces_the_uri() {
        let mut plan = Reconnector::new(
            targets(2),
            policy(Jitter::None, None),
            Box::new(Script(vec![0], 0)),
        );
        let elsewhere = Target::parse("mqtt://elsewhere:1999").expect("uri");
        let reference = |moved| Outcome {
            connected: None,
            reference: Some((elsewhere.clone(), moved)),
        };
        assert_eq!(plan.start().host, "node0");
        // node0 refers to elsewhere: tried at once, in an extra slot.
        let next = plan.next(reference(false)).expect("retry");
        assert_eq!(
            (next.target.host.as_str(), next.delay),
            ("elsewhere", ms(0))
        );
        // elsewhere fails: the round goes on with node1.
        let next = plan.next(Outcome::default()).expect("retry");
        assert_eq!((next.target.host.as_str(), next.delay), ("node1", ms(0)));
        // node1 moved for good to elsewhere: replaced in the list, followed at once.
        let next = plan.next(reference(true)).expect("retry");
        assert_eq!(
            (next.target.host.as_str(), next.delay),
            ("elsewhere", ms(0))
        );
        assert_eq!(hosts_of(plan.targets()), ["node0", "elsewhere"]);
        // elsewhere refers to itself: that takes a slot, so the round's backoff comes first.
        let next = plan.next(reference(false)).expect("retry");
        assert_eq!(
            (next.target.host.as_str(), next.delay),
            ("elsewhere", ms(100))
        );
        let next = plan.next(reference(false)).expect("retry");
        assert_eq!(
            (next.target.host.as_str(), next.delay),
            ("elsewhere", ms(0))
        );
        let next = plan.next(reference(false)).expect("retry");
        assert_eq!(
            (next.target.host.as_str(), next.delay),
            ("elsewhere", ms(200))
        );
    }

    fn hosts_of(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.host.as_str()).collect()
    }

    // `ws://` and `mqtts://` parse only in builds that can open them.
    #[cfg(all(feature = "tls", feature = "ws"))]
    #[test]
    fn server_references_parse_relative_to_the_current_uri() {
        let current = Target::parse("ws://user:pw@node0:8080/mqtt").expect("uri");
        let other = parse_reference("node7", &current).expect("host only");
        assert_eq!(
            (other.host.as_str(), other.port, other.url.path()),
            ("node7", 8080, "/mqtt")
        );
        assert_eq!(other.username.as_deref(), Some("user"));
        let other = parse_reference("node8:9001", &current).expect("host and port");
        assert_eq!((other.host.as_str(), other.port), ("node8", 9001));
        let other = parse_reference("mqtts://secure:8883 node9", &current).expect("full URI");
        assert_eq!((other.host.as_str(), other.port), ("secure", 8883));
        assert!(other.scheme.is_tls());
        assert!(parse_reference("  ", &current).is_none());
    }

    #[test]
    fn only_refusals_that_cannot_heal_are_final() {
        assert!(is_final(&ClientError::Connect(
            ReasonCode::NotAuthorized.into()
        )));
        assert!(is_final(&ClientError::Connect(
            ReasonCode::BadUserNameOrPassword.into()
        )));
        assert!(!is_final(&ClientError::Connect(
            ReasonCode::ServerUnavailable.into()
        )));
        assert!(!is_final(&ClientError::Connect(
            ReasonCode::UseAnotherServer.into()
        )));
        assert!(!is_final(&ClientError::Timeout));
    }
}
