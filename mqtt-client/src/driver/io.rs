//! I/O pumping: the connection's serve loop (read, hand to the session, dispatch, write),
//! the shared read buffer, the read waker, and the push of the TCP acknowledgement.

use super::*;

/// Size of the socket read buffer: large, so that a busy connection is drained in few reads.
/// One buffer per thread, shared by every driver polled on it (a read is handed to the
/// session at once, which copies what it keeps), so an idle client holds none.
pub(super) const READ_BUF_SIZE: usize = 64 * 1024;

thread_local! {
    /// The read buffer of the drivers polled on this thread.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The waker the driver hands to the transport's `poll_read`: it records that the transport
/// signalled more to read, then wakes the driver task.
///
/// A pending read leaves this waker registered with the transport until it fires, so the
/// driver need not poll the read again before then. That matters on async-io (smol,
/// async-std), whose `poll_read` is a `recv` system call every time (failing with `EAGAIN`
/// when nothing came) plus, when pending, an `epoll_ctl` to re-arm the one-shot interest:
/// before this, every driver wake caused by the application (a publish, an acknowledgement)
/// paid both for nothing (measured: 0.3-0.7 fewer `recv` calls per message at QoS 1/2 on
/// smol). Tokio caches readiness, so there it saves only a little user time. It rests on the
/// `AsyncRead` contract (a pending read wakes the waker it was given once it can progress);
/// the TLS and WebSocket layers hand this waker down to the TCP stream's read.
#[derive(Default)]
pub(super) struct ReadWake {
    /// The transport woke the read side since the driver last looked.
    ready: AtomicBool,
    /// The driver task's own waker.
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The quiet spell that makes a read "lone" (see [`AckDebt`]): half the interval of a steady
/// 1,000 msg/s flow, so that each of its packets counts as one.
pub(super) const ACK_QUIET: Duration = Duration::from_micros(500);

/// The TCP acknowledgement of what the driver read. A write carries it. A wake that ends
/// without a write pushes it ([`Runtime::push_ack`]), because a broker with Nagle's
/// algorithm on (mosquitto's default) holds its next small packet until it comes: without
/// the push a steady publisher's every PUBACK waited for its next PUBLISH (one interval), a
/// burst's PUBACKs for the kernel's 40 ms delayed-ACK timer, and so did a QoS 0 subscriber's
/// next message.
///
/// When: at once if the data came after [`ACK_QUIET`] without a read (a lone packet, which
/// the broker may be waiting on); otherwise once reads have been quiet that long, on the
/// driver's timer. Reads in quick succession are a stream the kernel acknowledges by itself,
/// and pushing on every such wake cost 30-45% more CPU per message at full rate (and tripled
/// it for a QoS 0 subscriber). Rate limits measured from the last *push* were tried and
/// rebuilt the chain they were meant to break: the data a push releases arrives right after
/// it, inside the limit, so its own push waited again, and QoS 0 deliveries at
/// 1,000 msg/s took a millisecond each.
#[derive(Debug, Default)]
pub(super) struct AckDebt {
    /// Data read since the last write or push.
    owed: bool,
    /// Whether the first such read came after a quiet spell.
    lone: bool,
    last_read: Option<Instant>,
}

impl AckDebt {
    pub(super) fn read(&mut self, now: Instant) {
        if !self.owed {
            self.owed = true;
            self.lone = self
                .last_read
                .is_none_or(|at| now.saturating_duration_since(at) >= ACK_QUIET);
        }
        self.last_read = Some(now);
    }

    pub(super) fn written(&mut self) {
        self.owed = false;
    }

    /// For a wake ending without a write: when to push, if anything is owed.
    pub(super) fn due(&self, now: Instant) -> Option<Instant> {
        if !self.owed {
            return None;
        }
        match self.last_read {
            Some(at) if !self.lone => Some((at + ACK_QUIET).max(now)),
            _ => Some(now),
        }
    }

    pub(super) fn pushed(&mut self) {
        self.owed = false;
    }
}

impl<R: Runtime> Driver<R> {
    pub(super) async fn serve(&mut self, mut transport: Box<dyn Transport>) -> Ended {
        self.writing = Bytes::new();
        self.needs_flush = false;
        self.ack = AckDebt::default();
        self.read_armed = false;
        self.end = None;
        self.drain_timer = None;
        self.start_pacing();
        let ended = poll_fn(|cx| {
            let polled = self.poll_serve(cx, &mut transport);
            self.settle();
            polled
        })
        .await;
        self.syncing.finish(&mut self.session).await;
        self.intake
            .flush(&self.shared.inbox, &mut self.dropped_unreported);
        self.report_drops();
        // Closing (TLS close_notify, WebSocket close frame) is best effort and bounded: the
        // session has already moved on, and a dead peer must not hold up a reconnect.
        let deadline = self.runtime.now() + CLOSE_TIMEOUT;
        let close = poll_fn(|cx| Pin::new(&mut transport).poll_close(cx));
        let _ = timeout(&self.runtime, deadline, close).await;
        ended
    }

    pub(super) fn poll_serve(
        &mut self,
        cx: &mut Context<'_>,
        transport: &mut Box<dyn Transport>,
    ) -> Poll<Ended> {
        loop {
            let now = self.runtime.now();
            let mut progress = false;

            // While the store syncs a batch's records the session takes nothing new; once it
            // is done the batch is taken out at once, before anything else records.
            match self.syncing.poll(cx, &mut self.session) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => {
                    if self.writing.is_empty() {
                        self.writing = self.session.poll_transmit(now).unwrap_or_default();
                    }
                    // Publishes queued before CONNACK with nothing to send yet.
                    self.session.sync_queued();
                }
                Poll::Ready(false) => {}
            }

            let handles_gone = self.shared.commands.take(cx, &mut self.inbox);
            while let Some(command) = self.inbox.pop_front() {
                progress = true;
                if self.apply(now, command) {
                    break;
                }
            }
            if handles_gone && !matches!(self.end, Some(Ended::Closed)) {
                debug!("all client handles dropped, disconnecting");
                let _ = self.session.disconnect(now, Disconnect::default());
                self.end = Some(Ended::Closed);
                progress = true;
            }
            if !self.session.is_connected() && self.connect_cancelled(cx) {
                // The caller of `connect` / `reconnect` gave up before CONNACK: abandon the
                // attempt, so that the next `connect` finds the client idle.
                debug!("connect cancelled by its caller");
                self.connect_waiter = None;
                self.end = Some(Ended::Closed);
                self.session.handle_transport_closed(now);
                progress = true;
            }

            let (reading, paced) = self.pace_reading(cx, now);
            progress |= paced;
            // Read on the first pass and whenever the transport signalled more since its last
            // pending read; otherwise that read is still registered and will wake the task.
            self.read_wake.task.register(cx.waker());
            let read_signalled = self.read_wake.ready.swap(false, Ordering::AcqRel);
            if reading && (!self.read_armed || read_signalled) {
                // The thread's read buffer; a fresh one in the (never expected) case that a
                // transport polls another driver on this thread from inside its read.
                progress |= READ_BUF.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => self.read_into(transport, now, &mut buf),
                    Err(_) => self.read_into(transport, now, &mut Vec::new()),
                });
            }

            if let Some(deadline) = self.session.poll_timeout() {
                if deadline <= now {
                    self.session.handle_timeout(now);
                    progress = true;
                } else if self.poll_sleep(cx, deadline) {
                    progress = true;
                }
            }

            while let Some(event) = self.session.poll_event() {
                self.dispatch(event);
                progress = true;
            }

            let lost = matches!(self.end, Some(Ended::Lost(_)));
            if lost && self.session.state() != ConnectionState::Connected {
                // The connection is over: bytes still unsent (a peer that stopped reading,
                // a link that is cut) must not hold up the loss report and the reconnect.
                // A final DISCONNECT the session queued gets one try below.
                self.writing = Bytes::new();
            }
            loop {
                if self.writing.is_empty() {
                    if self.syncing.start(&self.runtime, &mut self.session) {
                        progress = true;
                        break;
                    }
                    match self.session.poll_transmit(now) {
                        Some(bytes) => self.writing = bytes,
                        None => break,
                    }
                }
                match Pin::new(&mut **transport).poll_write(cx, &self.writing) {
                    Poll::Ready(Ok(0)) => {
                        self.write_failed(now, std::io::ErrorKind::WriteZero.into());
                        break;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.shared.stats.sent(n);
                        if n < self.writing.len() {
                            self.writing.advance(n);
                        } else {
                            // Written out: let the batch's buffer go now rather than hold it
                            // (a burst's, possibly large) until the next write.
                            self.writing = Bytes::new();
                        }
                        self.needs_flush = true;
                        self.ack.written();
                        progress = true;
                    }
                    Poll::Ready(Err(err)) => {
                        self.write_failed(now, err);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            // A failed store sync in `poll_transmit` reports through events (the failed
            // publishes, the connection's end): dispatch them before the end is seen below.
            while let Some(event) = self.session.poll_event() {
                self.dispatch(event);
                progress = true;
            }
            if self.needs_flush && self.writing.is_empty() {
                match Pin::new(&mut **transport).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(err)) => self.write_failed(now, err),
                    Poll::Pending => {}
                }
            }

            if self.session.state() == ConnectionState::Disconnected {
                let lost = matches!(self.end, Some(Ended::Lost(_)) | None);
                let drained = self.writing.is_empty() && !self.needs_flush;
                // A local close (DISCONNECT) is written out, within a bound.
                let drain_expired = !lost && !drained && self.poll_drain_timer(cx);
                if lost || drained || drain_expired {
                    // A `disconnect` caller is answered by `shutdown`, once the session is
                    // parked, so that a `connect` right after it finds the client idle.
                    let ended =
                        self.end
                            .take()
                            .unwrap_or(Ended::Lost(ClientError::ConnectionLost(
                                ConnectionError::TransportClosed,
                            )));
                    self.report_drops();
                    self.shared.observe(&self.session);
                    return Poll::Ready(ended);
                }
            }
            if !progress {
                // The wake ends without a write: the acknowledgement of what it read is
                // pushed now or at the instant `AckDebt` names (the transport's flush does
                // it, below TLS and WebSocket).
                if let Some(at) = self.ack.due(now)
                    && self.writing.is_empty()
                {
                    if at <= now {
                        self.ack.pushed();
                        if let Poll::Ready(Err(err)) = Pin::new(&mut **transport).poll_flush(cx) {
                            self.write_failed(now, err);
                            continue;
                        }
                    } else if self.poll_sleep(cx, at) {
                        continue;
                    }
                }
                self.report_drops();
                self.shared.observe(&self.session);
                return Poll::Pending;
            }
        }
    }

    /// One read from the transport into `buf` (sized here on first use), handed to the
    /// session, which keeps only what it needs (an incomplete packet, received payloads).
    /// Returns whether anything happened.
    pub(super) fn read_into(
        &mut self,
        transport: &mut Box<dyn Transport>,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> bool {
        if buf.len() < READ_BUF_SIZE {
            buf.resize(READ_BUF_SIZE, 0);
        }
        let mut cx = Context::from_waker(&self.read_waker);
        let read = Pin::new(&mut **transport).poll_read(&mut cx, buf);
        self.read_armed = read.is_pending();
        match read {
            Poll::Ready(Ok(0)) => {
                debug!("transport closed by the broker");
                self.session.handle_transport_closed(now);
                true
            }
            Poll::Ready(Ok(n)) => {
                self.shared.stats.received(n);
                self.session.handle_read(now, &buf[..n]);
                self.ack.read(now);
                true
            }
            Poll::Ready(Err(err)) => {
                debug!(%err, "transport read failed");
                self.end
                    .get_or_insert(Ended::Lost(transport::tls_io_error(err)));
                self.session.handle_transport_closed(now);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Whether the caller of `connect` / `reconnect` dropped its future (registers for
    /// the notification otherwise).
    pub(super) fn connect_cancelled(&mut self, cx: &mut Context<'_>) -> bool {
        self.connect_waiter
            .as_mut()
            .is_some_and(|waiter| waiter.poll_canceled(cx).is_ready())
    }

    /// Polls the bound on writing out a local close, arming it on first use.
    pub(super) fn poll_drain_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let runtime = &self.runtime;
        let timer = self
            .drain_timer
            .get_or_insert_with(|| Box::pin(runtime.sleep_until(runtime.now() + CLOSE_TIMEOUT)));
        if timer.as_mut().poll(cx).is_ready() {
            debug!("DISCONNECT not written within the close timeout; closing anyway");
            return true;
        }
        false
    }

    /// Tells the application about QoS 0 messages the inbox dropped, once per batch.
    pub(super) fn report_drops(&mut self) {
        if self.dropped_unreported > 0 {
            let count = std::mem::take(&mut self.dropped_unreported);
            warn!(
                count,
                "received QoS 0 messages dropped: the application is not keeping up"
            );
            self.shared
                .status(ConnectionEvent::MessagesDropped { count });
        }
    }

    pub(super) fn write_failed(&mut self, now: Instant, err: std::io::Error) {
        debug!(%err, "transport write failed");
        self.writing = Bytes::new();
        self.needs_flush = false;
        self.end
            .get_or_insert(Ended::Lost(transport::tls_io_error(err)));
        self.session.handle_transport_closed(now);
    }

    /// Polls the timer for `deadline`, creating it only when the deadline moved earlier or
    /// the last one fired: keep-alive deadlines move on every write, and a timer per write
    /// would cost an allocation each. A timer that fires early just leads to a spurious (and
    /// harmless) `handle_timeout`.
    pub(super) fn poll_sleep(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let rearm = match &self.sleep {
            Some((at, _)) => deadline < *at,
            None => true,
        };
        if rearm {
            self.sleep = Some((deadline, Box::pin(self.runtime.sleep_until(deadline))));
        }
        let Some((_, sleep)) = &mut self.sleep else {
            return false;
        };
        if sleep.as_mut().poll(cx).is_ready() {
            self.sleep = None;
            self.session.handle_timeout(self.runtime.now());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_lone_read_is_acknowledged_at_once_and_a_stream_once_it_pauses() {
        #[allow(clippy::disallowed_methods)] // a fixed origin; time only moves by additions
        let t0 = Instant::now();
        let mut ack = AckDebt::default();
        assert_eq!(ack.due(t0), None, "nothing read, nothing owed");

        ack.read(t0);
        assert_eq!(ack.due(t0), Some(t0), "the first read: at once");
        ack.pushed();
        assert_eq!(ack.due(t0), None, "pushed: nothing owed");

        // Reads in quick succession: pushed once they pause for `ACK_QUIET`.
        let t1 = t0 + ACK_QUIET / 5;
        ack.read(t1);
        assert_eq!(
            ack.due(t1),
            Some(t1 + ACK_QUIET),
            "a stream: when it pauses"
        );
        let t2 = t1 + ACK_QUIET / 5;
        ack.read(t2);
        assert_eq!(
            ack.due(t2),
            Some(t2 + ACK_QUIET),
            "the pause counts from the last read"
        );
        let t3 = t2 + ACK_QUIET * 2;
        assert_eq!(ack.due(t3), Some(t3), "paused: now");
        ack.pushed();

        // What a push released arrives right after it, but after a quiet spell of reads.
        let t4 = t3 + Duration::from_micros(20);
        ack.read(t4);
        assert_eq!(
            ack.due(t4),
            Some(t4),
            "a lone read after the pause: at once"
        );
        ack.written();
        assert_eq!(ack.due(t4), None, "a write carried it");
    }
}
