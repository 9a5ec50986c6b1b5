//! Opening a transport for a [`Target`]: TCP from the runtime, then TLS (futures-rustls) and
//! WebSocket (async-tungstenite's handshake, then our own framing) layered on any
//! `futures-io` byte stream, so both runtimes share one TLS and one WebSocket
//! implementation.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "ws")]
use async_tungstenite::tungstenite::client::IntoClientRequest;
#[cfg(feature = "ws")]
use async_tungstenite::tungstenite::http::HeaderValue;
use futures_io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::error::ClientError;
use super::proxy::{self, Proxy, ProxyError};
use super::uri::Target;

#[cfg(feature = "ws")]
mod ws;
#[cfg(feature = "ws")]
mod ws_frame;

/// The rustls configuration a TLS connection uses.
#[cfg(feature = "tls")]
pub(crate) type TlsConfig = Arc<rustls::ClientConfig>;

/// Without the `tls` feature there is no configuration to hold: an empty type keeps the
/// connection parameters' shape.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub(crate) enum TlsConfig {}

/// A byte stream to the broker.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// What a runtime adapter provides: TCP connections, a timer and spawning. Everything else
/// (TLS, WebSocket, the driver, reconnects) is shared.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connected TCP stream.
    type Tcp: Transport;
    /// A timer future.
    type Sleep: Future<Output = ()> + Send + 'static;

    /// Connects to `host:port`.
    fn connect_tcp(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send;

    /// Sets TCP_NODELAY on a connected stream. The driver already writes whole batches of
    /// packets at once, so the kernel's coalescing would only add latency.
    fn set_nodelay(tcp: &Self::Tcp) -> io::Result<()>;

    /// Sends the TCP acknowledgement of what has been read now, rather than with the next
    /// write or when the kernel's delayed-ACK timer fires (on Linux: `TCP_QUICKACK`, see
    /// [`push_tcp_ack`]). The driver asks for it when a wake read data and wrote nothing
    /// back, as a publisher reading a PUBACK or a QoS 0 subscriber does: at once for a lone
    /// packet, and for a stream of reads once it pauses. A broker with Nagle's algorithm on
    /// (mosquitto's default, `set_tcp_nodelay false`) holds each small packet until its
    /// previous one is acknowledged: without this a steady publisher's every PUBACK waited
    /// for its next PUBLISH, and a burst's PUBACKs for the kernel's delayed-ACK timer (40 ms).
    /// The default does nothing.
    fn push_ack(tcp: &Self::Tcp) -> io::Result<()> {
        let _ = tcp;
        Ok(())
    }

    /// quinn's runtime glue for this runtime (UDP socket, timers, the endpoint's task), for
    /// `quic://` (feature `quic`). The default, `None`, makes `quic://` fail with
    /// [`QuicError::Unsupported`](crate::QuicError::Unsupported); the adapters return theirs
    /// when their own `quic` feature is on. Everything else about QUIC is shared.
    #[cfg(feature = "quic")]
    fn quic_runtime(&self) -> Option<Arc<dyn quinn::Runtime>> {
        None
    }

    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;

    /// Runs `future` in the background.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs `work`, which blocks (a file write and `fdatasync` of the durable store), where
    /// blocking does not stall the tasks of the executor: Tokio's `spawn_blocking`, the
    /// `blocking` crate's thread pool on smol and async-std. The driver awaits the result
    /// before it writes the packets the work made durable, so the write-ahead rule holds.
    ///
    /// The default runs `work` at once, on the calling thread: correct, and what a runtime
    /// without a blocking pool can do, but a sync then stalls every task of that thread for
    /// its duration (about 1.5 ms for an `fdatasync` on a disk). Override it when the
    /// runtime has somewhere better.
    fn spawn_blocking<T, F>(&self, work: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        std::future::ready(work())
    }

    /// The current time. The driver is the one place that reads the clock; it hands `now`
    /// to the session. A runtime with a virtual clock overrides this.
    fn now(&self) -> Instant {
        // The sans-IO session never reads the clock (clippy forbids it crate-wide); the
        // runtime at the I/O edge is where time comes from.
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }
}

/// Makes the kernel send the acknowledgement of received data now (Linux `TCP_QUICKACK`):
/// what a [`Runtime::push_ack`] for a socket-backed stream calls. Two `setsockopt` calls.
#[cfg(target_os = "linux")]
pub fn push_tcp_ack(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    // Setting the option sends an acknowledgement the kernel is holding and leaves delayed
    // acknowledgements off; clearing it turns them back on, so that the segments that follow
    // are acknowledged by our writes as usual rather than each by a segment of its own.
    // (Linux's value 2 does both in one call; socket2 passes only 0 and 1.)
    socket.set_tcp_quickack(true)?;
    socket.set_tcp_quickack(false)
}

/// The runtime's TCP stream at the bottom of every transport (under TLS and WebSocket). A
/// flush also pushes out the acknowledgement of data read since the last write
/// ([`Runtime::push_ack`]); a write carries that acknowledgement itself.
struct Tcp<R: Runtime> {
    stream: R::Tcp,
    read_since_write: bool,
}

impl<R: Runtime> AsyncRead for Tcp<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let read = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(read, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = true;
        }
        read
    }
}

impl<R: Runtime> AsyncWrite for Tcp<R> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = false;
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::ready!(std::pin::Pin::new(&mut self.stream).poll_flush(cx))?;
        if std::mem::take(&mut self.read_since_write) {
            // Best effort: a socket that refuses the option still works, only slower
            // against a broker that holds packets for acknowledgements.
            if let Err(err) = R::push_ack(&self.stream) {
                debug!(%err, "pushing the TCP acknowledgement failed");
            }
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// Opens the transport `target` names: TCP (to `proxy` and through its tunnel, if any),
/// then TLS for `mqtts`/`wss`, then the WebSocket handshake (subprotocol `mqtt`, the URI's
/// path, `headers`) for `ws`/`wss`. For `quic`, the QUIC idle timeout follows `keep_alive`.
pub(crate) async fn open<R: Runtime>(
    runtime: &R,
    target: &Target,
    tls: Option<&TlsConfig>,
    headers: &[(String, String)],
    proxy: Option<&Proxy>,
    keep_alive: Duration,
) -> Result<Box<dyn Transport>, ClientError> {
    // `Target` fields are public: a scheme set by hand is checked here too.
    target.scheme.check_enabled()?;
    if target.scheme.is_quic() {
        return open_quic(runtime, target, tls, proxy, keep_alive).await;
    }
    let tcp = match proxy {
        None => {
            runtime
                .connect_tcp(target.host.clone(), target.port)
                .await?
        }
        Some(proxy) => runtime
            .connect_tcp(proxy.host().to_owned(), proxy.port())
            .await
            .map_err(|err| ProxyError::Unreachable(Arc::new(err)))?,
    };
    R::set_nodelay(&tcp)?;
    debug!(host = %target.host, port = target.port, scheme = ?target.scheme, via_proxy = proxy.is_some(), "TCP connected");
    let mut tcp = Tcp::<R> {
        stream: tcp,
        read_since_write: false,
    };
    if let Some(proxy) = proxy {
        proxy::tunnel(&mut tcp, proxy, &target.host, target.port).await?;
    }
    let stream: Box<dyn Transport> = if target.scheme.is_tls() {
        open_tls(target, tls, tcp).await?
    } else {
        Box::new(tcp)
    };
    if !target.scheme.is_websocket() {
        return Ok(stream);
    }
    open_ws(target, headers, stream).await
}

/// `quic://`: UDP, so no proxy can carry it; one configured explicitly is an error rather
/// than a silent bypass (environment proxies never apply to `quic://`).
#[cfg(feature = "quic")]
async fn open_quic<R: Runtime>(
    runtime: &R,
    target: &Target,
    tls: Option<&TlsConfig>,
    proxy: Option<&Proxy>,
    keep_alive: Duration,
) -> Result<Box<dyn Transport>, ClientError> {
    if proxy.is_some() {
        return Err(super::quic::QuicError::Proxy.into());
    }
    super::quic::open(runtime, target, tls, keep_alive).await
}

#[cfg(not(feature = "quic"))]
async fn open_quic<R: Runtime>(
    _runtime: &R,
    target: &Target,
    _tls: Option<&TlsConfig>,
    _proxy: Option<&Proxy>,
    _keep_alive: Duration,
) -> Result<Box<dyn Transport>, ClientError> {
    // Unreachable after `check_enabled`; the same error keeps it honest.
    Err(super::error::UriError::FeatureDisabled {
        scheme: target.scheme,
        feature: "quic",
    }
    .into())
}

#[cfg(feature = "tls")]
async fn open_tls(
    target: &Target,
    tls: Option<&TlsConfig>,
    tcp: impl Transport,
) -> Result<Box<dyn Transport>, ClientError> {
    let config = tls.ok_or(ClientError::Tls(super::error::TlsError::Missing {
        what: "TLS configuration",
        source_name: "client".into(),
    }))?;
    let connector = futures_rustls::TlsConnector::from(config.clone());
    let name = super::tls::server_name(&target.host)?;
    let tls = connector.connect(name, tcp).await.map_err(tls_io_error)?;
    Ok(Box::new(tls))
}

#[cfg(not(feature = "tls"))]
async fn open_tls(
    target: &Target,
    tls: Option<&TlsConfig>,
    _tcp: impl Transport,
) -> Result<Box<dyn Transport>, ClientError> {
    match tls {
        Some(never) => match *never {},
        // Unreachable after `check_enabled`; the same error keeps it honest.
        None => Err(super::error::UriError::FeatureDisabled {
            scheme: target.scheme,
            feature: "tls",
        }
        .into()),
    }
}

#[cfg(feature = "ws")]
async fn open_ws(
    target: &Target,
    headers: &[(String, String)],
    stream: Box<dyn Transport>,
) -> Result<Box<dyn Transport>, ClientError> {
    // The handshake carries no credentials of the URI: MQTT sends them in CONNECT, and
    // tungstenite logs the whole request at trace level.
    let mut url = target.url.clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    let mut request = url.as_str().into_client_request()?;
    let headers_map = request.headers_mut();
    // [MQTT-6.0.0-3] the client offers the "mqtt" subprotocol.
    headers_map.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    for (name, value) in headers {
        let name = async_tungstenite::tungstenite::http::HeaderName::try_from(name.as_str())
            .map_err(|err| ClientError::WebSocket(Arc::new(http_error(err.into()))))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|err| ClientError::WebSocket(Arc::new(http_error(err.into()))))?;
        headers_map.insert(name, value);
    }
    // tungstenite does the HTTP upgrade (no secret in it); the frames are ours, as
    // tungstenite logs each one, payload in hex, at TRACE. Nothing tungstenite read past
    // the 101 response is lost by taking the stream back: a broker sends nothing before
    // our CONNECT.
    let (ws, _response) = async_tungstenite::client_async(request, stream).await?;
    debug!(uri = %target, "WebSocket connected");
    Ok(Box::new(ws::WsBytes::new(ws.into_inner())))
}

#[cfg(not(feature = "ws"))]
async fn open_ws(
    target: &Target,
    _headers: &[(String, String)],
    _stream: Box<dyn Transport>,
) -> Result<Box<dyn Transport>, ClientError> {
    // Unreachable after `check_enabled`; the same error keeps it honest.
    Err(super::error::UriError::FeatureDisabled {
        scheme: target.scheme,
        feature: "ws",
    }
    .into())
}

#[cfg(feature = "ws")]
fn http_error(
    err: async_tungstenite::tungstenite::http::Error,
) -> async_tungstenite::tungstenite::Error {
    async_tungstenite::tungstenite::Error::HttpFormat(err)
}

/// A TLS problem (during the handshake or later, e.g. a fatal alert) surfaces from
/// futures-rustls as an `io::Error` wrapping the rustls error; unwrap it so callers see
/// `ClientError::Tls`. Other I/O errors stay `ClientError::Io`.
/// A QUIC connection closed under the stream (e.g. a broker refusing the client certificate
/// after the TLS 1.3 handshake completed client-side) becomes `ClientError::Quic` too.
#[cfg(feature = "tls")]
pub(crate) fn tls_io_error(err: io::Error) -> ClientError {
    #[cfg(feature = "quic")]
    if let Some(lost) = super::quic::connection_lost(&err) {
        return lost.into();
    }
    let is_rustls = err
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if is_rustls {
        if let Some(inner) = err.into_inner()
            && let Ok(tls) = inner.downcast::<rustls::Error>()
        {
            return ClientError::Tls((*tls).into());
        }
        return ClientError::Io(Arc::new(io::Error::other("TLS handshake failed")));
    }
    err.into()
}

/// Without TLS an I/O error is only that.
#[cfg(not(feature = "tls"))]
pub(crate) fn tls_io_error(err: io::Error) -> ClientError {
    err.into()
}
