//! MQTT 5 enhanced authentication: an [`Authenticator`] names the method and starts one
//! [`AuthExchange`] per connection attempt, which answers the broker's AUTH challenges and
//! may check the broker's final data (mutual authentication, as SCRAM does).
//!
//! The flow ([MQTT 5.0 4.12]): CONNECT carries the Authentication Method and the exchange's
//! initial data; each AUTH "continue authentication" (0x18) from the broker is answered with
//! the exchange's response; CONNACK success carries the broker's final data for
//! [`AuthExchange::on_success`]. An exchange that fails disconnects (reason "not
//! authorized") and ends `connect` with [`ClientError::Auth`](crate::ClientError::Auth),
//! whatever `reconnect_retries` says: credentials do not heal by retrying.
//!
//! Once connected, [`MqttClient::reauthenticate`](crate::MqttClient::reauthenticate) runs
//! a fresh exchange on the live connection (AUTH reason 0x19), and an exchange whose
//! credentials expire says when with [`AuthExchange::refresh_after`]: the client then
//! re-authenticates on its own before they do. [`TokenAuth`](crate::TokenAuth) does both for
//! a bearer token from a [`TokenProvider`](crate::TokenProvider).
//!
//! `mqtt-test-support`'s `auth` module holds a worked example (an HMAC-SHA256
//! challenge/response with mutual proof) and the scripted broker that tests it.

use std::sync::Arc;

use bytes::Bytes;

/// An MQTT 5 enhanced authentication method, set with
/// [`ClientConfig::authenticator`](crate::ClientConfig::authenticator).
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// The Authentication Method sent in CONNECT (e.g. `SCRAM-SHA-256`).
    fn method(&self) -> &str;

    /// Starts the exchange of one connection attempt (fresh nonces, per-attempt state).
    fn start(&self) -> Box<dyn AuthExchange>;
}

/// One connection attempt's authentication exchange.
pub trait AuthExchange: Send + 'static {
    /// The Authentication Data sent in CONNECT, if any.
    fn initial_data(&mut self) -> Option<Bytes>;

    /// Answers an AUTH "continue authentication" from the broker, whose Authentication Data
    /// is `data`: the Authentication Data of the client's AUTH reply. An error ends the
    /// connection attempt.
    fn on_challenge(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError>;

    /// Checks the Authentication Data of the broker's CONNACK (e.g. a server signature). An
    /// error ends the connection. Accepts anything by default.
    fn on_success(&mut self, data: Option<&[u8]>) -> Result<(), AuthError> {
        let _ = data;
        Ok(())
    }

    /// How long the credentials of this accepted exchange stay good: that long after the
    /// broker accepted them, the client re-authenticates on the live connection (AUTH 0x19)
    /// with a fresh exchange from [`Authenticator::start`], which fetches fresh
    /// credentials. Asked after every accepted CONNECT and re-authentication. `None` (the
    /// default): never on its own (the application may still call
    /// [`MqttClient::reauthenticate`](crate::MqttClient::reauthenticate)).
    fn refresh_after(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Why an enhanced authentication exchange failed on the client's side.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The broker's Authentication Data is not what the method expects.
    #[error("malformed authentication data from the broker")]
    Malformed,
    /// The broker could not prove it knows the credentials (mutual authentication failed).
    #[error("the broker failed to prove it knows the credentials")]
    ServerUnverified,
    /// The broker asked for a step the method does not have.
    #[error("unexpected authentication step")]
    UnexpectedStep,
    /// A re-authentication was asked for while one is under way.
    #[error("a re-authentication is already under way")]
    InProgress,
    /// A re-authentication was asked for, but no `Authenticator` is configured.
    #[error("no enhanced authentication method is configured")]
    NotConfigured,
    /// A method-specific failure.
    #[error("authentication failed")]
    Failed(#[source] Arc<dyn std::error::Error + Send + Sync>),
}
