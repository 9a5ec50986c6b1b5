//! [`Secret`]: a password or authentication token that is never printed, and URIs shown with
//! their password replaced.

use bytes::Bytes;
use url::Url;

/// A password (or other credential) kept so that it never reaches a log, an event or an
/// error: its `Debug` and `Display` print `***`, and it has no `Serialize`. The value is
/// read with [`expose`](Self::expose) only where it goes on the wire.
///
/// Built from `&str`, `String`, `&[u8]`, `Vec<u8>` or `Bytes`, so
/// `ClientConfig::default().password("hunter2")` reads as before. The memory is not wiped
/// on drop: the aim is to keep secrets out of output, not out of a core dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Bytes);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self(value.into())
    }

    /// The secret's bytes, for the one place that sends them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, when it is UTF-8 (a password given as a string always is), for
    /// an authenticator that needs a string (SCRAM).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The secret as a cheap `Bytes` clone (the CONNECT packet takes one).
    pub(crate) fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(Bytes::from(value))
    }
}

impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Self::from(value.as_str())
    }
}

impl From<&[u8]> for Secret {
    fn from(value: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(value))
    }
}

impl From<Vec<u8>> for Secret {
    fn from(value: Vec<u8>) -> Self {
        Self(Bytes::from(value))
    }
}

impl From<Bytes> for Secret {
    fn from(value: Bytes) -> Self {
        Self(value)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// `url` for showing: its password (if any) replaced by `***`, so
/// `mqtt://user:pw@host:1883` shows as `mqtt://user:***@host:1883`.
pub(crate) fn redacted_url(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only fails for URLs that cannot have credentials, which this one has.
    if shown.set_password(Some("***")).is_err() {
        return format!("{}://***", url.scheme());
    }
    shown.to_string()
}

/// A URI string for showing: [`redacted_url`] when it parses; when it does not, everything
/// up to its last `@` (where credentials would be) is replaced.
pub(crate) fn redacted_uri(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(url) => redacted_url(&url),
        Err(_) => match uri.rfind('@') {
            Some(at) => format!("***{}", &uri[at..]),
            None => uri.to_owned(),
        },
    }
}

/// Shows a list of URI strings with their passwords replaced, for `Debug` impls.
pub(crate) struct RedactedUris<'a>(pub(crate) &'a [String]);

impl std::fmt::Debug for RedactedUris<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|uri| redacted_uri(uri)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_stars() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret} {secret:?} {secret:#?}"), "*** *** ***");
        assert_eq!(secret.expose(), b"hunter2");
        assert_eq!(secret.expose_str(), Some("hunter2"));
        assert_eq!(Secret::from(&[0xff][..]).expose_str(), None);
        assert_eq!(Secret::from(b"hunter2".to_vec()), secret);
    }

    #[test]
    fn uris_lose_only_their_password() {
        for (uri, shown) in [
            ("mqtt://u:pw@h:1883/", "mqtt://u:***@h:1883/"),
            ("wss://u:p%40w@h/mqtt?x=1", "wss://u:***@h/mqtt?x=1"),
            ("mqtt://u@h:1883", "mqtt://u@h:1883"),
            ("mqtt://h:1883", "mqtt://h:1883"),
            ("not a uri :pw@h", "***@h"),
        ] {
            assert_eq!(redacted_uri(uri), shown, "{uri}");
        }
    }
}
