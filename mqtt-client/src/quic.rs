//! MQTT over QUIC (`quic://`, feature `quic`): one QUIC connection per MQTT connection, and on
//! it one bidirectional stream that carries MQTT exactly as TCP would (the single-stream mode
//! EMQX, NanoMQ and mqtt5's broker serve). TLS 1.3 with ALPN `mqtt`, from the same rustls
//! configuration `mqtts://` uses.
//!
//! quinn is runtime-neutral but needs a runtime for its UDP socket, timers and endpoint task:
//! the adapter supplies it ([`Runtime::quic_runtime`](crate::Runtime::quic_runtime)); everything
//! else (resolution, endpoint, handshake, stream, close) lives here once.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use quinn::crypto::rustls::QuicClientConfig;
use tracing::debug;

use super::error::ClientError;
use super::transport::{Runtime, TlsConfig, Transport};
use super::uri::Target;

/// The ALPN protocol id MQTT over QUIC brokers expect (EMQX, NanoMQ, mqtt5).
const ALPN_MQTT: &[u8] = b"mqtt";

/// How often the client sends a QUIC PING when nothing else is sent. QUIC closes a connection
/// that stays silent for its idle timeout (quinn's and most brokers' default: 30 s), which is
/// shorter than a typical MQTT keep-alive (60 s): without these pings an idle but healthy
/// connection would be torn down between two PINGREQs.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The shortest QUIC idle timeout the client offers: quinn's default. The connection's
/// timeout is the smaller of both sides' (EMQX and mqtt5: 30 s and 60 s).
const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a `quic://` connection could not be opened or was lost at the QUIC layer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The runtime adapter was built without its `quic` feature: it has no QUIC endpoint to
    /// offer (enable `quic` on `sansmqtt-tokio` / `sansmqtt-async-std`).
    #[error("this runtime adapter cannot open QUIC connections (enable its `quic` feature)")]
    Unsupported,
    /// QUIC cannot be carried through an HTTP or SOCKS proxy; one was configured explicitly.
    #[error("QUIC connections cannot go through the configured proxy")]
    Proxy,
    /// The host name resolved to no address.
    #[error("{0:?} resolved to no address")]
    Unresolved(String),
    /// The rustls configuration offers no TLS 1.3 cipher suite QUIC can use.
    #[error("the TLS configuration has no TLS 1.3 cipher suite usable by QUIC")]
    NoTls13(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    /// quinn refused to start the connection (bad server name, endpoint stopping, ...).
    #[error("cannot start the QUIC connection")]
    Connect(#[source] quinn::ConnectError),
    /// The QUIC handshake failed: the certificate was refused by either side, ALPN `mqtt` was
    /// not accepted, the broker did not answer, ...
    #[error("QUIC handshake failed")]
    Handshake(#[source] quinn::ConnectionError),
    /// The connection ended before the MQTT stream could be opened.
    #[error("QUIC connection lost")]
    Connection(#[source] quinn::ConnectionError),
}

impl From<QuicError> for ClientError {
    fn from(err: QuicError) -> Self {
        Self::Quic(err)
    }
}

/// The QUIC connection error inside an I/O error of the MQTT stream, if that is what it is.
pub(crate) fn connection_lost(err: &io::Error) -> Option<QuicError> {
    let inner = err.get_ref()?;
    let lost = match (
        inner.downcast_ref::<quinn::ReadError>(),
        inner.downcast_ref::<quinn::WriteError>(),
    ) {
        (Some(quinn::ReadError::ConnectionLost(lost)), _)
        | (_, Some(quinn::WriteError::ConnectionLost(lost))) => lost.clone(),
        _ => return None,
    };
    Some(QuicError::Connection(lost))
}

/// Opens `target` over QUIC: resolve, bind a UDP socket of the address's family, handshake
/// (TLS 1.3, ALPN `mqtt`), open the MQTT stream.
/// `keep_alive` is the MQTT keep-alive: the QUIC idle timeout the client offers follows it
/// (see [`idle_timeout`]).
pub(crate) async fn open<R: Runtime>(
    runtime: &R,
    target: &Target,
    tls: Option<&TlsConfig>,
    keep_alive: Duration,
) -> Result<Box<dyn Transport>, ClientError> {
    let quic_runtime = runtime.quic_runtime().ok_or(QuicError::Unsupported)?;
    let tls = tls.ok_or(ClientError::Tls(super::error::TlsError::Missing {
        what: "TLS configuration",
        source_name: "client".into(),
    }))?;
    let addr = resolve(&target.host, target.port).await?;
    let bind: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind)?;
    let endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, quic_runtime)?;
    let connecting = endpoint
        .connect_with(client_config(tls, keep_alive)?, addr, &target.host)
        .map_err(QuicError::Connect)?;
    let connection = connecting.await.map_err(QuicError::Handshake)?;
    let (send, recv) = connection.open_bi().await.map_err(QuicError::Connection)?;
    debug!(host = %target.host, %addr, rtt = ?connection.rtt(), "QUIC connected");
    Ok(Box::new(QuicStream {
        send,
        recv,
        connection,
        closing: None,
        _endpoint: endpoint,
    }))
}

/// quinn's client configuration from the rustls one: ALPN `mqtt` unless the application's
/// own configuration names protocols, QUIC keep-alive pings, and an idle timeout that
/// follows the MQTT keep-alive.
fn client_config(tls: &TlsConfig, keep_alive: Duration) -> Result<quinn::ClientConfig, QuicError> {
    let mut crypto = rustls::ClientConfig::clone(tls);
    if crypto.alpn_protocols.is_empty() {
        crypto.alpn_protocols = vec![ALPN_MQTT.to_vec()];
    }
    let crypto = QuicClientConfig::try_from(crypto).map_err(QuicError::NoTls13)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(QUIC_KEEP_ALIVE));
    transport.max_idle_timeout(Some(idle_timeout(keep_alive)));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The QUIC idle timeout the client offers: twice the MQTT keep-alive (about when the
/// client itself gives a silent link up: a PINGREQ one keep-alive after the last send, then
/// a keep-alive for its answer), and never less than quinn's 30 s. With quinn's fixed 30 s,
/// a link cut for longer than that closed the QUIC connection although the MQTT session
/// would have carried on (measured: docs/decisions.md, "MQTT over QUIC: link cuts"). The
/// broker's own idle timeout still bounds it.
fn idle_timeout(keep_alive: Duration) -> quinn::IdleTimeout {
    let idle = keep_alive.saturating_mul(2).max(MIN_IDLE_TIMEOUT);
    quinn::IdleTimeout::try_from(idle).unwrap_or_else(|_| quinn::VarInt::MAX.into())
}

/// The broker's address. An IP literal is used as is; a name is resolved by the system
/// resolver on a short-lived thread, so that neither runtime's executor blocks on DNS.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ClientError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok((ip, port).into());
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("sansmqtt-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|mut a| a.next()),
            );
        })?;
    let resolved = rx
        .await
        .map_err(|_| io::Error::other("the resolver thread ended without an answer"))??;
    resolved.ok_or_else(|| QuicError::Unresolved(host.to_owned()).into())
}

/// The MQTT stream of a QUIC connection as a byte stream. It owns the connection and the
/// endpoint, so both live exactly as long as the MQTT connection.
struct QuicStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    connection: quinn::Connection,
    /// While closing: completes when the broker has acknowledged everything sent (the
    /// DISCONNECT included), so that closing the connection cannot discard it.
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    _endpoint: quinn::Endpoint,
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn sends as soon as congestion control allows: nothing is held back to flush.
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closing.is_none() {
            // Already finished or reset: the stream has nothing more to deliver.
            let _ = self.send.finish();
            let stopped = self.send.stopped();
            self.closing = Some(Box::pin(async move {
                let _ = stopped.await;
            }));
        }
        if let Some(closing) = self.closing.as_mut() {
            std::task::ready!(closing.as_mut().poll(cx));
        }
        self.connection.close(0u32.into(), b"");
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> quinn::IdleTimeout {
        quinn::IdleTimeout::try_from(Duration::from_secs(s)).expect("in range")
    }

    #[test]
    fn the_idle_timeout_follows_the_keep_alive_from_30_s_up() {
        assert_eq!(idle_timeout(Duration::ZERO), secs(30));
        assert_eq!(idle_timeout(Duration::from_secs(10)), secs(30));
        assert_eq!(idle_timeout(Duration::from_secs(30)), secs(60));
        assert_eq!(idle_timeout(Duration::from_secs(65_535)), secs(131_070));
    }
}
