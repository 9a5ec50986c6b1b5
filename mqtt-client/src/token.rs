//! Bearer-token authentication that keeps itself fresh: a [`TokenProvider`] hands out the
//! current token, [`TokenAuth`] sends it as the MQTT 5 Authentication Data of every CONNECT
//! (so every reconnect fetches a fresh one) and re-authenticates on the live connection
//! (AUTH 0x19) before the token expires, as brokers that take JWTs (Azure Event Grid's)
//! require.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::auth::{AuthError, AuthExchange, Authenticator};
use crate::secret::Secret;

/// A token and how long it stays valid. `Debug` prints neither the token nor its length
/// (the token is a [`Secret`]).
#[derive(Debug, Clone)]
pub struct AuthToken {
    data: Secret,
    lifetime: Option<Duration>,
}

impl AuthToken {
    /// A token valid for `lifetime` from now (`None`: it does not expire).
    pub fn new(data: impl Into<Bytes>, lifetime: Option<Duration>) -> Self {
        Self {
            data: Secret::new(data),
            lifetime,
        }
    }
}

/// Where [`TokenAuth`] gets its tokens: called for every connection attempt and every
/// scheduled refresh, on the client's task, so it must not block: return a cached token
/// that the application's own task renews (or compute one, e.g. sign a JWT).
pub trait TokenProvider: Send + Sync + fmt::Debug + 'static {
    /// The token to present now.
    ///
    /// # Errors
    ///
    /// Any [`AuthError`] (typically [`AuthError::Failed`]): the connection attempt (or the
    /// refresh) fails with it.
    fn token(&self) -> Result<AuthToken, AuthError>;
}

/// An [`Authenticator`] presenting a [`TokenProvider`]'s token under an Authentication
/// Method of the broker's choosing, refreshed `margin` before each token expires.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    method: String,
    provider: Arc<dyn TokenProvider>,
    margin: Duration,
}

impl TokenAuth {
    /// Tokens from `provider` under Authentication Method `method` (the broker documents
    /// it, e.g. `CUSTOM-JWT`), refreshed 10% of their lifetime before they expire (at least
    /// one second before).
    pub fn new(method: impl Into<String>, provider: impl TokenProvider) -> Self {
        Self {
            method: method.into(),
            provider: Arc::new(provider),
            margin: Duration::ZERO,
        }
    }

    /// Refreshes this long before expiry instead of 10% of the lifetime; set it above the
    /// broker's clock skew and a round trip.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// When to refresh a token that lives `lifetime`.
    fn refresh_after(&self, lifetime: Duration) -> Duration {
        let margin = if self.margin.is_zero() {
            (lifetime / 10).max(Duration::from_secs(1))
        } else {
            self.margin
        };
        lifetime.saturating_sub(margin)
    }
}

impl Authenticator for TokenAuth {
    fn method(&self) -> &str {
        &self.method
    }

    fn start(&self) -> Box<dyn AuthExchange> {
        let token = self.provider.token();
        let refresh = token
            .as_ref()
            .ok()
            .and_then(|token| token.lifetime)
            .map(|lifetime| self.refresh_after(lifetime));
        Box::new(TokenExchange { token, refresh })
    }
}

/// One presentation of a token.
struct TokenExchange {
    token: Result<AuthToken, AuthError>,
    refresh: Option<Duration>,
}

impl AuthExchange for TokenExchange {
    fn initial_data(&mut self) -> Option<Bytes> {
        self.token.as_ref().ok().map(|token| token.data.to_bytes())
    }

    fn on_challenge(&mut self, _data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError> {
        // A token is presented once; the provider's failure surfaces at the first step.
        self.token.clone()?;
        Err(AuthError::UnexpectedStep)
    }

    fn on_success(&mut self, _data: Option<&[u8]>) -> Result<(), AuthError> {
        self.token.clone().map(|_| ())
    }

    fn refresh_after(&self) -> Option<Duration> {
        self.refresh
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug)]
    struct Fixed(Option<Duration>);

    impl TokenProvider for Fixed {
        fn token(&self) -> Result<AuthToken, AuthError> {
            Ok(AuthToken::new(&b"SECRET-TOKEN"[..], self.0))
        }
    }

    #[test]
    fn refreshes_before_expiry_and_never_prints_the_token() {
        let auth = TokenAuth::new("JWT", Fixed(Some(Duration::from_secs(100))));
        let mut exchange = auth.start();
        assert_eq!(&exchange.initial_data().unwrap()[..], b"SECRET-TOKEN");
        assert_eq!(exchange.refresh_after(), Some(Duration::from_secs(90)));
        assert!(exchange.on_success(None).is_ok());
        let auth = auth.refresh_margin(Duration::from_secs(30));
        assert_eq!(auth.start().refresh_after(), Some(Duration::from_secs(70)));
        let short = TokenAuth::new("JWT", Fixed(Some(Duration::from_secs(5))));
        assert_eq!(short.start().refresh_after(), Some(Duration::from_secs(4)));
        let forever = TokenAuth::new("JWT", Fixed(None));
        assert_eq!(forever.start().refresh_after(), None);
        let token = Fixed(None).token().unwrap();
        assert!(!format!("{token:?} {auth:?}").contains("SECRET"));
    }
}
