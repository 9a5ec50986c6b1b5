//! The connection lifecycle: connect, fall back, reconnect plan, and the waits between
//! attempts.

use super::*;

impl<R: Runtime> Driver<R> {
    /// The driver task: runs connections until the client closes or reconnecting gives up,
    /// then stops.
    ///
    /// An `async` block holding the driver, not an `async fn` taking it by value: such a
    /// function's future keeps its argument twice (as passed, and moved into the body's
    /// local), which made every idle client's task 3.3 KiB larger.
    // Deliberately not `async fn` (see above): clippy's rewrite would undo the saving.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let final_error = self.connections().await;
            self.shutdown(final_error);
        }
    }

    /// Runs connections until the client closes or reconnecting gives up; returns why it
    /// ended. Which broker comes next and how long to wait before it is the
    /// [`Reconnector`]'s business.
    pub(super) async fn connections(&mut self) -> ClientError {
        let policy = Policy {
            backoff: Backoff {
                initial: self.params.failover.initial_interval,
                max: self.reconnect_max_interval,
                jitter: self.params.failover.jitter,
            },
            retries: self.reconnect_retries,
            grace: reconnect::STABLE_AFTER,
            shuffle: self.params.failover.shuffle,
        };
        let mut plan = Reconnector::new(
            self.params.targets.clone(),
            policy,
            Box::new(SplitMix64::from_random_state()),
        );
        let mut target = if self.retry_connect {
            plan.start_reconnect()
        } else {
            plan.start()
        };
        // What was declared before `connect` is applied before the first transport opens.
        if self.apply_declared().await {
            return ClientError::Closed;
        }
        loop {
            let started = self.runtime.now();
            let ended = self.connection(&target).await;
            match ended {
                Ended::Closed => break ClientError::Closed,
                Ended::Reconnect => {
                    // `reconnect()`: the current broker again, at once, schedule reset.
                    self.retry_connect = true;
                    target = plan.start_reconnect();
                    continue;
                }
                Ended::Lost(err) if self.falls_back(&err) => {
                    info!(%err, "the broker refused MQTT 5; connecting again with MQTT 3.1.1");
                    let window = self.params.fallback_window.unwrap_or(1);
                    if let Err(err) = self
                        .session
                        .set_protocol_version(ProtocolVersion::V311, window)
                    {
                        warn!(%err, "cannot fall back to MQTT 3.1.1");
                        break ClientError::from(err);
                    }
                    // The same broker at once: this was no failed attempt.
                    continue;
                }
                Ended::Lost(err) => {
                    if self.session.is_connected() {
                        // Cannot happen: a lost connection leaves the session disconnected.
                        warn!("session still connected after the connection ended");
                    }
                    self.shared
                        .status(ConnectionEvent::ConnectionLost(err.clone()));
                    if self.gives_up(&err) {
                        break err;
                    }
                    let outcome = Outcome {
                        connected: self.reached_connack.then(|| (started, self.runtime.now())),
                        reference: self.server_reference(&err, &target),
                    };
                    let Some(attempt) = plan.next(outcome) else {
                        warn!("giving up reconnecting");
                        break err;
                    };
                    // Shown without its password: this goes to the log and to every listener.
                    let uri = attempt.target.to_string();
                    info!(attempt = attempt.number, delay = ?attempt.delay, %uri, "reconnecting");
                    self.shared.status(ConnectionEvent::Reconnecting {
                        attempt: attempt.number,
                        delay: attempt.delay,
                        uri,
                    });
                    target = attempt.target;
                    if self.wait(attempt.delay).await {
                        break ClientError::Closed;
                    }
                }
            }
        }
    }

    /// The MQTT 5 Server Reference the connection ended with, when the application follows
    /// them, with whether the server moved for good.
    pub(super) fn server_reference(
        &self,
        err: &ClientError,
        current: &Target,
    ) -> Option<(Target, bool)> {
        if !self.params.failover.follow_server_reference {
            return None;
        }
        let reference = self.session.server_reference()?;
        let Some(target) = reconnect::parse_reference(reference, current) else {
            warn!(%reference, "ignoring a Server Reference that is no broker address");
            return None;
        };
        let moved = matches!(
            err,
            ClientError::Connect(reason)
                | ClientError::ConnectionLost(ConnectionError::ServerDisconnected(reason))
                if reason.code == ReasonCode::ServerMoved
        );
        info!(%reference, moved, "following the server's reference");
        Some((target, moved))
    }

    /// One connection to `target`: open the transport, CONNECT, serve until it ends.
    pub(super) async fn connection(&mut self, target: &Target) -> Ended {
        self.reached_connack = false;
        let deadline = self.runtime.now() + self.params.connect_timeout;
        let opened = {
            // On the heap, and only while opening: a TLS / WebSocket handshake future is
            // several KiB, and held inline it would size every idle client's task. Built
            // inside the `Box::pin` call: a local binding of it, even moved from, kept its
            // size reserved in this future's state for the whole connection.
            let mut open = Box::pin(timeout(
                &self.runtime,
                deadline,
                transport::open(
                    &self.runtime,
                    target,
                    self.params.tls.as_ref(),
                    &self.params.headers,
                    self.params.proxy.for_target(target),
                    self.params.options.keep_alive,
                ),
            ));
            let connect_waiter = &mut self.connect_waiter;
            poll_fn(|cx| {
                // The caller of `connect` gave up (dropped its future): so does the attempt.
                if connect_waiter
                    .as_mut()
                    .is_some_and(|waiter| waiter.poll_canceled(cx).is_ready())
                {
                    return Poll::Ready(None);
                }
                open.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let transport = match opened {
            None => {
                debug!("connect cancelled by its caller");
                self.connect_waiter = None;
                return Ended::Closed;
            }
            Some(Some(Ok(transport))) => transport,
            Some(Some(Err(err))) => return self.connect_failed(err),
            Some(None) => return self.connect_failed(ClientError::Timeout),
        };
        if let Err(err) = self.send_connect(target, deadline) {
            return self.connect_failed(err);
        }
        self.serve(transport).await
    }

    /// Hands the session its CONNECT for `target`. Not inline in `connection`: the options
    /// (several hundred bytes) would be kept in the driver task's state for the whole
    /// connection.
    pub(super) fn send_connect(
        &mut self,
        target: &Target,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        // One budget for TCP, TLS, WebSocket and CONNACK together.
        let now = self.runtime.now();
        self.session
            .set_connect_timeout(deadline.saturating_duration_since(now));
        let mut options = self.params.options.clone();
        if let Some(username) = &target.username {
            options.username = Some(ByteString::from(username.as_str()));
        }
        if let Some(password) = &target.password {
            options.password = Some(password.to_bytes());
        }
        self.auth = None;
        if let Some(authenticator) = &self.params.authenticator
            && self.session.protocol_version().is_v5()
        {
            let method = ByteString::from(authenticator.method());
            let mut exchange = authenticator.start();
            options.properties.authentication_method = Some(method.clone());
            options.properties.authentication_data = exchange.initial_data();
            self.auth = Some((method, exchange));
        }
        self.session
            .connect(now, options)
            .map_err(ClientError::from)
    }

    pub(super) fn connect_failed(&mut self, err: ClientError) -> Ended {
        warn!(%err, "connecting failed");
        if self.gives_up(&err)
            && let Some(waiter) = self.connect_waiter.take()
        {
            let _ = waiter.send(Err(err.clone()));
        }
        Ended::Lost(err)
    }

    /// Whether a failed or lost connection is tried again: `auto_reconnect`, or an
    /// application's `reconnect()` still waiting for its CONNACK.
    pub(super) fn retries(&self) -> bool {
        self.auto_reconnect || self.retry_connect
    }

    /// Whether the connection ending with `err` ends the driver (and answers the caller of
    /// `connect` with it).
    pub(super) fn gives_up(&self, err: &ClientError) -> bool {
        !self.falls_back(err) && (!self.retries() || reconnect::is_final(err))
    }

    /// Whether `err` is a broker refusing MQTT 5 and the client falls back to 3.1.1: an
    /// "unsupported protocol version" refusal, or the connection closed before any CONNACK.
    pub(super) fn falls_back(&self, err: &ClientError) -> bool {
        if self.params.fallback_window.is_none()
            || self.reached_connack
            || !self.session.protocol_version().is_v5()
        {
            return false;
        }
        match err {
            ClientError::Connect(reason) => reason.code == ReasonCode::UnsupportedProtocolVersion,
            // A hang-up before CONNACK says "not MQTT 5" only while no broker has accepted
            // MQTT 5 on this client.
            ClientError::ConnectionLost(ConnectionError::TransportClosed) => !self.v5_accepted,
            ClientError::Io(err) => {
                !self.v5_accepted
                    && matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    )
            }
            _ => false,
        }
    }

    /// Serves commands while waiting `delay` before a reconnect. Returns true if the client
    /// closed meanwhile.
    ///
    /// Publishes accepted here are queued; with a durable store they are recorded, and a
    /// sync off the executor makes them durable (`Publishing::stored` resolves) without a
    /// connection. While it runs no command is applied, as in `poll_serve`.
    pub(super) async fn wait(&mut self, delay: Duration) -> bool {
        let mut sleep = Box::pin(self.runtime.sleep_until(self.runtime.now() + delay));
        let closed = poll_fn(|cx| {
            let polled = self.poll_wait(cx, &mut sleep);
            self.settle();
            polled
        })
        .await;
        // A sync still running holds records taken from the store; queued publishes recorded
        // after the last one are synced here (inline: the wait is over).
        self.syncing.finish(&mut self.session).await;
        self.session.sync_queued();
        while let Some(event) = self.session.poll_event() {
            self.dispatch(event);
        }
        self.settle();
        closed
    }

    /// One wake of [`wait`](Self::wait): `Ready(true)` if the client closed.
    pub(super) fn poll_wait(
        &mut self,
        cx: &mut Context<'_>,
        sleep: &mut Pin<Box<R::Sleep>>,
    ) -> Poll<bool> {
        loop {
            match self.syncing.poll(cx, &mut self.session) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => self.session.sync_queued(),
                Poll::Ready(false) => {}
            }
            while let Some(event) = self.session.poll_event() {
                self.dispatch(event);
            }
            let handles_gone = self.shared.commands.take(cx, &mut self.inbox);
            while let Some(command) = self.inbox.pop_front() {
                self.apply(self.runtime.now(), command);
                match self.end.take() {
                    Some(Ended::Closed) => return Poll::Ready(true),
                    // `reconnect()` while waiting: try right away.
                    Some(Ended::Reconnect) => return Poll::Ready(false),
                    other => self.end = other,
                }
            }
            if handles_gone || self.connect_cancelled(cx) {
                return Poll::Ready(true);
            }
            if self.syncing.start(&self.runtime, &mut self.session) {
                continue;
            }
            return sleep.as_mut().poll(cx).map(|()| false);
        }
    }
}
