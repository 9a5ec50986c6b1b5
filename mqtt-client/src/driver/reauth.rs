//! MQTT 5 re-authentication on a live connection ([MQTT 5.0 4.12.1]): the client sends AUTH
//! "re-authenticate" (0x19) with a fresh exchange of the configured
//! [`Authenticator`](crate::Authenticator); the broker's AUTH "continue" (0x18) steps are
//! answered as during CONNECT; the broker's AUTH "success" (0x00) ends it, and its data is
//! checked by [`AuthExchange::on_success`](crate::AuthExchange::on_success). A broker that
//! refuses sends DISCONNECT, which ends the connection as any DISCONNECT does (a reconnect
//! then authenticates afresh).
//!
//! Re-authentications are started by [`MqttClient::reauthenticate`](crate::MqttClient) or,
//! when an accepted exchange says how long its credentials last
//! ([`AuthExchange::refresh_after`](crate::AuthExchange::refresh_after)), by a timer task
//! that queues the command when that time has come.

use std::sync::{Arc, Weak};
use std::time::Instant;

use sansmqtt_proto::properties::AuthProperties;
use sansmqtt_proto::{ByteString, ReasonCode};
use tracing::{debug, info, warn};

use super::{Command, Driver, Reply, Shared};
use crate::{AuthError, ClientError, ConnectionEvent, Runtime};

/// A re-authentication under way.
pub(super) struct Pending {
    /// The application's `reauthenticate` call; `None` for a scheduled refresh.
    reply: Option<Reply<()>>,
}

impl<R: Runtime> Driver<R> {
    /// Starts a re-authentication (`reply` is `None` for a scheduled refresh; `generation`
    /// names the schedule that queued it, stale ones are dropped).
    pub(super) fn start_reauth(
        &mut self,
        now: Instant,
        reply: Option<Reply<()>>,
        generation: Option<u64>,
    ) {
        if generation.is_some_and(|generation| generation != self.reauth_generation) {
            debug!("a stale re-authentication schedule fired");
            return;
        }
        let refuse = |reply: Option<Reply<()>>, err: ClientError| {
            if let Some(reply) = reply {
                let _ = reply.send(Err(err));
            }
        };
        if self.reauth.is_some() {
            return refuse(reply, ClientError::Auth(AuthError::InProgress));
        }
        let Some(authenticator) = self.params.authenticator.clone() else {
            return refuse(reply, ClientError::Auth(AuthError::NotConfigured));
        };
        if !self.session.is_connected() || !self.reached_connack {
            return refuse(reply, ClientError::NotConnected);
        }
        let method = ByteString::from(authenticator.method());
        let mut exchange = authenticator.start();
        let properties = AuthProperties {
            authentication_method: Some(method.clone()),
            authentication_data: exchange.initial_data(),
            ..AuthProperties::default()
        };
        match self
            .session
            .auth(now, ReasonCode::ReAuthenticate, properties)
        {
            Ok(()) => {
                debug!("re-authenticating");
                self.auth = Some((method, exchange));
                self.reauth = Some(Pending { reply });
            }
            Err(err) => refuse(reply, err.into()),
        }
    }

    /// AUTH "success" from the broker: the re-authentication is accepted if the exchange
    /// accepts the broker's final data.
    pub(super) fn reauth_succeeded(&mut self, data: Option<&[u8]>) {
        let Some(pending) = self.reauth.take() else {
            warn!("AUTH success without a re-authentication under way");
            return;
        };
        let checked = match self.auth.as_mut() {
            Some((_, exchange)) => exchange.on_success(data),
            None => Err(AuthError::UnexpectedStep),
        };
        match checked {
            Ok(()) => {
                info!("re-authenticated");
                self.schedule_refresh();
                self.shared.status(ConnectionEvent::Reauthenticated);
                if let Some(reply) = pending.reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                if let Some(reply) = pending.reply {
                    let _ = reply.send(Err(ClientError::Auth(err.clone())));
                }
                self.auth_failed(err);
            }
        }
    }

    /// The connection ended (or authentication failed) during a re-authentication: its
    /// caller learns why.
    pub(super) fn reauth_ended(&mut self, err: &ClientError) {
        if let Some(Pending { reply: Some(reply) }) = self.reauth.take() {
            let _ = reply.send(Err(err.clone()));
        }
    }

    /// After an accepted (re-)authentication: when the exchange says how long its
    /// credentials last, queues a re-authentication for then. Each call supersedes the
    /// schedules before it.
    pub(super) fn schedule_refresh(&mut self) {
        self.reauth_generation += 1;
        let Some(after) = self
            .auth
            .as_ref()
            .and_then(|(_, exchange)| exchange.refresh_after())
        else {
            return;
        };
        let generation = self.reauth_generation;
        let at = self.runtime.now() + after;
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        let runtime = self.runtime.clone();
        debug!(?after, "re-authentication scheduled");
        self.runtime.spawn(async move {
            runtime.sleep_until(at).await;
            // The client may be gone: then there is nothing to refresh.
            if let Some(shared) = shared.upgrade() {
                let _ = shared.commands.push(Command::Reauthenticate {
                    reply: None,
                    generation: Some(generation),
                });
            }
        });
    }
}
