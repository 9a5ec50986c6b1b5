//! The client side of a SOCKS5 CONNECT (RFC 1928), with username/password authentication
//! (RFC 1929), as a sans-IO state machine: it says how many bytes it needs next and what to
//! send; [`super::tunnel`] does the reading and writing.
//!
//! The destination always goes to the proxy as given: a host name as a domain name
//! (`ATYP` 3), so the proxy resolves it (what curl calls `socks5h`); an IP literal as itself.

use std::net::IpAddr;

use super::{Credentials, Handshake, Next, ProxyError, ProxyRefusal};

const VERSION: u8 = 0x05;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;
/// RFC 1929's sub-negotiation version.
const USER_PASS_VERSION: u8 = 0x01;
const CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent the greeting; awaiting the method the proxy chose (VER, METHOD).
    Method,
    /// Sent username and password; awaiting their verdict (VER, STATUS).
    Auth,
    /// Sent CONNECT; awaiting the reply's first five bytes (VER, REP, RSV, ATYP and the first
    /// byte of the bound address, which for a domain name is its length).
    ReplyHead,
    /// Awaiting the rest of the bound address and port (this many bytes), which are not used.
    ReplyTail(usize),
    Done,
}

/// One SOCKS5 CONNECT handshake.
pub(crate) struct Socks5<'a> {
    credentials: Option<&'a Credentials>,
    host: &'a str,
    port: u16,
    state: State,
}

impl<'a> Socks5<'a> {
    /// A handshake asking the proxy to connect to `host:port`, offering username/password
    /// authentication when there are `credentials` (and only then: a proxy that wants them
    /// and gets none answers "no acceptable method").
    pub(crate) fn new(credentials: Option<&'a Credentials>, host: &'a str, port: u16) -> Self {
        Self {
            credentials,
            host,
            port,
            state: State::Method,
        }
    }
}

impl Handshake for Socks5<'_> {
    /// The greeting: the methods offered.
    fn start(&self) -> Vec<u8> {
        match self.credentials {
            Some(_) => vec![VERSION, 2, NO_AUTH, USER_PASS],
            None => vec![VERSION, 1, NO_AUTH],
        }
    }

    /// How many bytes to read before calling [`receive`](Self::receive); 0 once done.
    fn needs(&self) -> usize {
        match self.state {
            State::Method | State::Auth => 2,
            State::ReplyHead => 5,
            State::ReplyTail(rest) => rest,
            State::Done => 0,
        }
    }

    /// Takes exactly [`needs`](Self::needs) bytes the proxy sent.
    fn receive(&mut self, input: &[u8]) -> Result<Next, ProxyError> {
        debug_assert_eq!(input.len(), self.needs());
        match self.state {
            State::Method => self.on_method(input),
            State::Auth => self.on_auth(input),
            State::ReplyHead => self.on_reply_head(input),
            State::ReplyTail(_) => {
                self.state = State::Done;
                Ok(Next::Done)
            }
            State::Done => Err(ProxyError::Protocol("data after the SOCKS5 handshake")),
        }
    }
}

impl Socks5<'_> {
    fn on_method(&mut self, input: &[u8]) -> Result<Next, ProxyError> {
        if input[0] != VERSION {
            return Err(ProxyError::Protocol("not a SOCKS5 proxy"));
        }
        match (input[1], self.credentials) {
            (NO_AUTH, _) => self.connect(),
            (USER_PASS, Some(credentials)) => {
                self.state = State::Auth;
                Ok(Next::Send(auth_request(credentials)?))
            }
            (NO_ACCEPTABLE, _) => Err(ProxyError::AuthRequired),
            _ => Err(ProxyError::Protocol(
                "the SOCKS5 proxy chose a method that was not offered",
            )),
        }
    }

    fn on_auth(&mut self, input: &[u8]) -> Result<Next, ProxyError> {
        if input[0] != USER_PASS_VERSION {
            return Err(ProxyError::Protocol(
                "malformed SOCKS5 username/password reply",
            ));
        }
        if input[1] != 0 {
            return Err(ProxyError::AuthFailed);
        }
        self.connect()
    }

    fn connect(&mut self) -> Result<Next, ProxyError> {
        self.state = State::ReplyHead;
        Ok(Next::Send(connect_request(self.host, self.port)?))
    }

    fn on_reply_head(&mut self, input: &[u8]) -> Result<Next, ProxyError> {
        if input[0] != VERSION {
            return Err(ProxyError::Protocol("malformed SOCKS5 reply"));
        }
        if input[1] != 0 {
            return Err(ProxyError::Refused(ProxyRefusal::Socks5(input[1])));
        }
        // The bound address after its first byte, then the port.
        let rest = match input[3] {
            ATYP_IPV4 => 4 - 1 + 2,
            ATYP_IPV6 => 16 - 1 + 2,
            ATYP_DOMAIN => usize::from(input[4]) + 2,
            _ => return Err(ProxyError::Protocol("malformed SOCKS5 reply")),
        };
        self.state = State::ReplyTail(rest);
        Ok(Next::Continue)
    }
}

/// RFC 1929: VER 1, ULEN, UNAME, PLEN, PASSWD.
fn auth_request(credentials: &Credentials) -> Result<Vec<u8>, ProxyError> {
    let user = credentials.username.expose();
    let password = credentials.password.expose();
    let (Ok(user_len), Ok(password_len)) = (u8::try_from(user.len()), u8::try_from(password.len()))
    else {
        return Err(ProxyError::CredentialsTooLong);
    };
    let mut request = Vec::with_capacity(3 + user.len() + password.len());
    request.extend_from_slice(&[USER_PASS_VERSION, user_len]);
    request.extend_from_slice(user);
    request.push(password_len);
    request.extend_from_slice(password);
    Ok(request)
}

/// RFC 1928 CONNECT: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, ProxyError> {
    let mut request = vec![VERSION, CONNECT, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(ATYP_IPV4);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(ATYP_IPV6);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let name = host.as_bytes();
            let len = u8::try_from(name.len()).ok().filter(|&len| len > 0).ok_or(
                ProxyError::Protocol("a SOCKS5 destination name is 1 to 255 bytes long"),
            )?;
            request.extend_from_slice(&[ATYP_DOMAIN, len]);
            request.extend_from_slice(name);
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            username: "alice".into(),
            password: "pw".into(),
        }
    }

    /// Runs a handshake against scripted proxy answers; returns what the client sent and
    /// how it ended.
    fn run(
        handshake: &mut Socks5<'_>,
        answers: &[&[u8]],
    ) -> (Vec<Vec<u8>>, Result<(), ProxyError>) {
        let mut sent = vec![handshake.start()];
        for answer in answers {
            assert_eq!(answer.len(), handshake.needs(), "scripted answer length");
            match handshake.receive(answer) {
                Ok(Next::Send(bytes)) => sent.push(bytes),
                Ok(Next::Continue) => {}
                Ok(Next::Done) => return (sent, Ok(())),
                Err(err) => return (sent, Err(err)),
            }
        }
        (sent, Err(ProxyError::Protocol("script ended early")))
    }

    #[test]
    fn no_auth_connect_to_a_domain_name_lets_the_proxy_resolve_it() {
        let mut handshake = Socks5::new(None, "broker.example", 8883);
        let tail = [0u8; 5];
        let (sent, end) = run(&mut handshake, &[&[5, 0], &[5, 0, 0, 1, 127], &tail]);
        assert!(end.is_ok(), "{end:?}");
        assert_eq!(sent[0], [5, 1, 0]);
        let mut connect = vec![5, 1, 0, 3, 14];
        connect.extend_from_slice(b"broker.example");
        connect.extend_from_slice(&8883u16.to_be_bytes());
        assert_eq!(sent[1], connect);
    }

    #[test]
    fn ip_literals_go_as_addresses() {
        assert_eq!(
            connect_request("127.0.0.1", 1883).expect("v4"),
            [5, 1, 0, 1, 127, 0, 0, 1, 0x07, 0x5B]
        );
        let v6 = connect_request("::1", 1883).expect("v6");
        assert_eq!(&v6[..4], [5, 1, 0, 4]);
        assert_eq!(v6.len(), 4 + 16 + 2);
        assert_eq!(v6[4 + 15], 1);
    }

    #[test]
    fn username_and_password_per_rfc_1929() {
        let credentials = creds();
        let mut handshake = Socks5::new(Some(&credentials), "127.0.0.1", 1883);
        let (sent, end) = run(
            &mut handshake,
            &[&[5, 2], &[1, 0], &[5, 0, 0, 1, 127], &[0; 5]],
        );
        assert!(end.is_ok(), "{end:?}");
        assert_eq!(sent[0], [5, 2, 0, 2]);
        assert_eq!(sent[1], b"\x01\x05alice\x02pw");
        assert_eq!(sent[2][..4], [5, 1, 0, 1]);
    }

    #[test]
    fn a_domain_bound_address_is_skipped_by_its_length() {
        let mut handshake = Socks5::new(None, "h", 1);
        handshake.receive(&[5, 0]).expect("method");
        assert!(matches!(
            handshake.receive(&[5, 0, 0, 3, 9]),
            Ok(Next::Continue)
        ));
        assert_eq!(handshake.needs(), 9 + 2, "the 9-byte name and the port");
    }

    #[test]
    fn refusals_are_typed() {
        let credentials = creds();
        let mut handshake = Socks5::new(Some(&credentials), "h", 1);
        let (_, end) = run(&mut handshake, &[&[5, 2], &[1, 1]]);
        assert!(matches!(end, Err(ProxyError::AuthFailed)), "{end:?}");

        let mut handshake = Socks5::new(None, "h", 1);
        let (_, end) = run(&mut handshake, &[&[5, 0xFF]]);
        assert!(matches!(end, Err(ProxyError::AuthRequired)), "{end:?}");

        let mut handshake = Socks5::new(None, "h", 1);
        let (_, end) = run(&mut handshake, &[&[5, 0], &[5, 2, 0, 1, 0]]);
        assert!(
            matches!(end, Err(ProxyError::Refused(ProxyRefusal::Socks5(2)))),
            "{end:?}"
        );

        // A method nobody offered, and a server that is no SOCKS5 proxy at all.
        let mut handshake = Socks5::new(None, "h", 1);
        assert!(matches!(
            handshake.receive(&[5, 2]),
            Err(ProxyError::Protocol(_))
        ));
        let mut handshake = Socks5::new(None, "h", 1);
        assert!(matches!(
            handshake.receive(b"HT"),
            Err(ProxyError::Protocol(_))
        ));
    }

    #[test]
    fn over_long_fields_are_refused_before_sending() {
        let long = Credentials {
            username: "u".repeat(256).into(),
            password: "p".into(),
        };
        assert!(matches!(
            auth_request(&long),
            Err(ProxyError::CredentialsTooLong)
        ));
        assert!(connect_request(&"h".repeat(256), 1).is_err());
    }
}
