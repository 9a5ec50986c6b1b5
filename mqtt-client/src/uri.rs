//! Broker URIs: `mqtt://`, `mqtts://`, `ws://`, `wss://`, `quic://`, with optional
//! `user:password@`.

use percent_encoding::percent_decode_str;
use url::Url;

use super::error::UriError;
use super::secret::{Secret, redacted_url};

/// The transport a URI asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// MQTT over TCP (default port 1883).
    Mqtt,
    /// MQTT over TLS (default port 8883).
    Mqtts,
    /// MQTT over WebSocket (default port 80).
    Ws,
    /// MQTT over WebSocket over TLS (default port 443).
    Wss,
    /// MQTT over QUIC, one bidirectional stream, TLS 1.3 with ALPN `mqtt` (default port
    /// 14567, EMQX's; feature `quic`).
    Quic,
}

impl Scheme {
    /// Whether the transport runs TLS (QUIC's is TLS 1.3, configured the same way).
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss | Self::Quic)
    }

    /// Whether the transport is QUIC (UDP) rather than TCP.
    pub fn is_quic(self) -> bool {
        matches!(self, Self::Quic)
    }

    /// Whether the transport is a WebSocket.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// Fails with [`UriError::FeatureDisabled`] when this build cannot open the transport.
    pub(crate) fn check_enabled(self) -> Result<(), UriError> {
        let missing = if self.is_quic() && !cfg!(feature = "quic") {
            Some("quic")
        } else if self.is_tls() && !cfg!(feature = "tls") {
            Some("tls")
        } else if self.is_websocket() && !cfg!(feature = "ws") {
            Some("ws")
        } else {
            None
        };
        match missing {
            Some(feature) => Err(UriError::FeatureDisabled {
                scheme: self,
                feature,
            }),
            None => Ok(()),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => 1883,
            Self::Mqtts => 8883,
            Self::Ws => 80,
            Self::Wss => 443,
            Self::Quic => 14567,
        }
    }
}

/// A parsed broker address. Its `Debug` and `Display` show the URI with the password
/// replaced (`mqtt://user:***@host:1883`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port, defaulted per scheme.
    pub port: u16,
    /// The URI as given (WebSocket handshakes use its path and query). It still holds the
    /// password: show the `Target` itself, never this field.
    pub url: Url,
    /// User name from the URI, percent-decoded.
    pub username: Option<String>,
    /// Password from the URI, percent-decoded.
    pub password: Option<Secret>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redacted_url(&self.url))
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            scheme,
            host,
            port,
            url,
            username,
            password,
        } = self;
        f.debug_struct("Target")
            .field("scheme", scheme)
            .field("host", host)
            .field("port", port)
            .field("url", &redacted_url(url))
            .field("username", username)
            .field("password", password)
            .finish()
    }
}

impl Target {
    /// Parses a broker URI.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let url = Url::parse(uri)?;
        let scheme = match url.scheme() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "quic" => Scheme::Quic,
            other => return Err(UriError::UnsupportedScheme(other.to_owned())),
        };
        scheme.check_enabled()?;
        let host = match url.host() {
            Some(url::Host::Ipv6(addr)) => addr.to_string(),
            Some(host) => host.to_string(),
            None => return Err(UriError::MissingHost),
        };
        if host.is_empty() {
            return Err(UriError::MissingHost);
        }
        let port = url.port().unwrap_or(scheme.default_port());
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| UriError::InvalidCredentials)
        };
        let username = match url.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = url.password().map(decode).transpose()?.map(Secret::from);
        Ok(Self {
            scheme,
            host,
            port,
            url,
            username,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_per_scheme() {
        let tls = (!cfg!(feature = "tls")).then_some("tls");
        let ws = (!cfg!(feature = "ws")).then_some("ws");
        for (uri, port, missing) in [
            ("mqtt://h/", 1883, None),
            ("mqtts://h/", 8883, tls),
            ("ws://h/mqtt", 80, ws),
            ("wss://h/mqtt", 443, tls.or(ws)),
            (
                "quic://h",
                14567,
                (!cfg!(feature = "quic")).then_some("quic"),
            ),
        ] {
            let parsed = Target::parse(uri);
            match missing {
                None => assert_eq!(parsed.map(|t| t.port), Ok(port), "{uri}"),
                // A build without the transport's feature says which feature is off.
                Some(feature) => assert!(
                    matches!(parsed, Err(UriError::FeatureDisabled { feature: f, .. }) if f == feature),
                    "{uri}: {parsed:?}"
                ),
            }
        }
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let target = Target::parse("mqtt://us%40er:p%3Ass@broker:1884").expect("valid");
        assert_eq!(target.username.as_deref(), Some("us@er"));
        assert_eq!(
            target.password.as_ref().map(Secret::expose),
            Some(&b"p:ss"[..])
        );
        assert_eq!((target.host.as_str(), target.port), ("broker", 1884));
    }

    #[test]
    fn targets_show_no_password() {
        let target = Target::parse("mqtt://us%40er:p%3Ass@broker:1884").expect("valid");
        let shown = format!("{target} {target:?} {target:#?}");
        assert!(
            !shown.contains("p%3Ass") && !shown.contains("p:ss"),
            "{shown}"
        );
        assert!(
            shown.starts_with("mqtt://us%40er:***@broker:1884"),
            "{shown}"
        );
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        let target = Target::parse("mqtt://[::1]:1883").expect("valid");
        assert_eq!(target.host, "::1");
    }

    #[test]
    fn bad_uris_name_the_problem() {
        assert_eq!(
            Target::parse("http://h/"),
            Err(UriError::UnsupportedScheme("http".into()))
        );
        assert!(matches!(
            Target::parse("not a uri"),
            Err(UriError::Parse(_))
        ));
        assert!(Target::parse("mqtt://:1883").is_err());
    }
}
