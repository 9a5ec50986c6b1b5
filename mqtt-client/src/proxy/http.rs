//! The client side of an HTTP CONNECT tunnel (RFC 9110 §9.3.6) with Basic
//! `Proxy-Authorization` (RFC 7617), as a sans-IO state machine.
//!
//! The response head is taken one byte at a time up to its blank line, so not one byte of
//! what follows (the broker's, once the tunnel is up) is consumed here: the tunnel needs no
//! buffer handed on to the layers above.

use super::{Credentials, Handshake, Next, ProxyError, ProxyRefusal};
use crate::base64;

/// The longest response head accepted: a proxy's status line and a few headers.
const MAX_HEAD: usize = 16 * 1024;

/// One HTTP CONNECT handshake.
pub(crate) struct HttpConnect<'a> {
    credentials: Option<&'a Credentials>,
    host: &'a str,
    port: u16,
    head: Vec<u8>,
    done: bool,
}

impl<'a> HttpConnect<'a> {
    /// A handshake asking the proxy for a tunnel to `host:port`, with Basic credentials
    /// when there are any.
    pub(crate) fn new(credentials: Option<&'a Credentials>, host: &'a str, port: u16) -> Self {
        Self {
            credentials,
            host,
            port,
            head: Vec::new(),
            done: false,
        }
    }
}

impl Handshake for HttpConnect<'_> {
    /// The CONNECT request.
    fn start(&self) -> Vec<u8> {
        // An IPv6 literal is bracketed in the authority.
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut request =
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
        if let Some(credentials) = self.credentials {
            let (user, password) = (credentials.username.expose(), credentials.password.expose());
            let mut pair = Vec::with_capacity(user.len() + 1 + password.len());
            pair.extend_from_slice(user);
            pair.push(b':');
            pair.extend_from_slice(password);
            request.extend_from_slice(b"Proxy-Authorization: Basic ");
            request.extend_from_slice(base64::encode(&pair).as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request
    }

    /// How many bytes to read before calling [`receive`](Self::receive); 0 once done.
    fn needs(&self) -> usize {
        usize::from(!self.done)
    }

    /// Takes the byte(s) the proxy sent.
    fn receive(&mut self, input: &[u8]) -> Result<Next, ProxyError> {
        self.head.extend_from_slice(input);
        if !self.head.ends_with(b"\r\n\r\n") {
            if self.head.len() > MAX_HEAD {
                return Err(ProxyError::Protocol("HTTP proxy response head too long"));
            }
            return Ok(Next::Continue);
        }
        self.done = true;
        let status = status_code(&self.head)?;
        match status {
            200..=299 => Ok(Next::Done),
            // 407 is the standard answer. tinyproxy (1.11) answers a CONNECT with 401: no
            // tunnel is up, so it can only be the proxy asking for its own credentials too.
            401 | 407 if self.credentials.is_some() => Err(ProxyError::AuthFailed),
            401 | 407 => Err(ProxyError::AuthRequired),
            _ => Err(ProxyError::Refused(ProxyRefusal::Http(status))),
        }
    }
}

/// The status code of an HTTP/1.x status line.
fn status_code(head: &[u8]) -> Result<u16, ProxyError> {
    const MALFORMED: ProxyError = ProxyError::Protocol("not an HTTP proxy response");
    let line = head.split(|&b| b == b'\n').next().ok_or(MALFORMED)?;
    let mut parts = line.split(|&b| b == b' ');
    let version = parts.next().ok_or(MALFORMED)?;
    if !version.starts_with(b"HTTP/1.") {
        return Err(MALFORMED);
    }
    let code = parts.next().ok_or(MALFORMED)?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(MALFORMED);
    }
    Ok(code
        .iter()
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(handshake: &mut HttpConnect<'_>, response: &[u8]) -> Result<(), ProxyError> {
        for byte in response {
            assert_eq!(handshake.needs(), 1);
            match handshake.receive(std::slice::from_ref(byte))? {
                Next::Done => {
                    assert_eq!(handshake.needs(), 0);
                    return Ok(());
                }
                Next::Continue => {}
                Next::Send(_) => panic!("HTTP CONNECT sends once"),
            }
        }
        panic!("the response head never ended")
    }

    #[test]
    fn the_request_names_the_destination_and_carries_basic_credentials() {
        let credentials = Credentials {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        let handshake = HttpConnect::new(Some(&credentials), "broker", 8883);
        assert_eq!(
            String::from_utf8(handshake.start()).expect("ASCII"),
            "CONNECT broker:8883 HTTP/1.1\r\nHost: broker:8883\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        let handshake = HttpConnect::new(None, "::1", 1883);
        assert_eq!(
            String::from_utf8(handshake.start()).expect("ASCII"),
            "CONNECT [::1]:1883 HTTP/1.1\r\nHost: [::1]:1883\r\n\r\n"
        );
    }

    #[test]
    fn any_2xx_opens_the_tunnel() {
        let mut handshake = HttpConnect::new(None, "h", 1);
        answer(
            &mut handshake,
            b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n",
        )
        .expect("tunnel");
    }

    #[test]
    fn refusals_are_typed() {
        let credentials = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let response = b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n";
        let mut handshake = HttpConnect::new(Some(&credentials), "h", 1);
        assert!(matches!(
            answer(&mut handshake, response),
            Err(ProxyError::AuthFailed)
        ));
        let mut handshake = HttpConnect::new(None, "h", 1);
        assert!(matches!(
            answer(&mut handshake, response),
            Err(ProxyError::AuthRequired)
        ));
        let mut handshake = HttpConnect::new(None, "h", 1);
        assert!(matches!(
            answer(&mut handshake, b"HTTP/1.0 401 Unauthorized\r\n\r\n"),
            Err(ProxyError::AuthRequired)
        ));
        let mut handshake = HttpConnect::new(None, "h", 1);
        assert!(matches!(
            answer(&mut handshake, b"HTTP/1.1 403 Access violation\r\n\r\n"),
            Err(ProxyError::Refused(ProxyRefusal::Http(403)))
        ));
        let mut handshake = HttpConnect::new(None, "h", 1);
        assert!(matches!(
            answer(&mut handshake, b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ProxyError::Protocol(_))
        ));
    }

    #[test]
    fn an_endless_head_is_cut_off() {
        let mut handshake = HttpConnect::new(None, "h", 1);
        let mut result = Ok(Next::Continue);
        for _ in 0..=MAX_HEAD {
            result = handshake.receive(b"x");
        }
        assert!(matches!(result, Err(ProxyError::Protocol(_))));
    }
}
