//! MQTT over an established WebSocket as a byte stream ([MQTT-6.0.0-2]: packets may span or
//! share frames), framed by [`ws_frame`](super::ws_frame) rather than tungstenite, which
//! would log every frame (CONNECT and its password included) at TRACE.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};

use super::ws_frame::{self, BINARY, CLOSE, Decoder, Event, PONG};

/// Bytes queued for the socket beyond which `poll_write` first drains them, so a writer
/// that never flushes cannot grow the buffer without bound.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// How many bytes are read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Frame masks from the OS's CSPRNG, fetched 64 masks at a time: RFC 6455 §5.3 wants each
/// mask unpredictable, and one system call per frame would tax small publishes.
struct Masks {
    pool: [u8; 256],
    used: usize,
}

impl Masks {
    fn new() -> Self {
        Self {
            pool: [0; 256],
            used: 256,
        }
    }

    fn next(&mut self) -> io::Result<[u8; 4]> {
        if self.used == self.pool.len() {
            getrandom::fill(&mut self.pool)
                .map_err(|_| io::Error::other("no randomness for WebSocket masks"))?;
            self.used = 0;
        }
        let mask = [
            self.pool[self.used],
            self.pool[self.used + 1],
            self.pool[self.used + 2],
            self.pool[self.used + 3],
        ];
        self.used += 4;
        Ok(mask)
    }
}

/// The client end of an MQTT WebSocket over the stream `S` the handshake ran on: each
/// `poll_write` becomes one masked binary frame, queued and sent by the next flush (one
/// socket write per batch); reads hand out binary payload bytes, answer pings, and end at
/// the server's close.
pub(crate) struct WsBytes<S> {
    stream: S,
    decoder: Decoder,
    /// Bytes read from the socket, not yet decoded.
    read_buf: BytesMut,
    /// Decoded MQTT bytes not yet handed to the reader.
    pending: Bytes,
    /// Frames queued for the socket (data, pongs, our close).
    write_buf: BytesMut,
    masks: Masks,
    /// The server sent a close frame (our answer is queued) or the socket ended.
    closed: bool,
    /// Our close frame is queued.
    close_sent: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            decoder: Decoder::new(),
            read_buf: BytesMut::new(),
            pending: Bytes::new(),
            write_buf: BytesMut::new(),
            masks: Masks::new(),
            closed: false,
            close_sent: false,
        }
    }

    /// Writes queued frames to the socket until none is left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_buf.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.write_buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Queues a control frame answering the server, and tries to send it now.
    fn answer(&mut self, cx: &mut Context<'_>, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mask = self.masks.next()?;
        ws_frame::encode(opcode, payload, mask, &mut self.write_buf);
        if let Poll::Ready(result) = self.poll_drain(cx) {
            result?;
            if let Poll::Ready(result) = Pin::new(&mut self.stream).poll_flush(cx) {
                result?;
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = buf.len().min(this.pending.len());
                buf[..n].copy_from_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(n));
            }
            if this.closed {
                return Poll::Ready(Ok(0));
            }
            let event = this
                .decoder
                .decode(&mut this.read_buf)
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
            match event {
                Some(Event::Data(data)) => this.pending = data,
                Some(Event::Ping(payload)) => this.answer(cx, PONG, &payload)?,
                Some(Event::Pong) => {}
                Some(Event::Close) => {
                    // RFC 6455 §5.5.1: answer with a close, then the stream ends.
                    this.closed = true;
                    if !this.close_sent {
                        this.close_sent = true;
                        this.answer(cx, CLOSE, &[])?;
                    }
                }
                None => {
                    let mut chunk = [0u8; READ_CHUNK];
                    let n = ready!(Pin::new(&mut this.stream).poll_read(cx, &mut chunk))?;
                    if n == 0 {
                        this.closed = true;
                    }
                    this.read_buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write_buf.len() >= WRITE_HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        let mask = this.masks.next()?;
        ws_frame::encode(BINARY, buf, mask, &mut this.write_buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.close_sent {
            self.close_sent = true;
            let mask = self.masks.next()?;
            // Status 1000, normal closure.
            ws_frame::encode(CLOSE, &1000u16.to_be_bytes(), mask, &mut self.write_buf);
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A socket whose peer has already sent `input`; what we write lands in `output`.
    struct Scripted {
        input: Vec<u8>,
        output: Vec<u8>,
        writes: usize,
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.output.extend_from_slice(buf);
            self.writes += 1;
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn ws(input: &[u8]) -> WsBytes<Scripted> {
        WsBytes::new(Scripted {
            input: input.to_vec(),
            output: Vec::new(),
            writes: 0,
        })
    }

    /// Reads to the end (everything is ready, so one poll per call suffices).
    fn read_all(ws: &mut WsBytes<Scripted>) -> io::Result<Vec<u8>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            let mut buf = [0u8; 3];
            match Pin::new(&mut *ws).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(0)) => return Ok(out),
                Poll::Ready(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Poll::Ready(Err(err)) => return Err(err),
                Poll::Pending => unreachable!("a scripted socket is always ready"),
            }
        }
    }

    /// The payloads of the client frames in `bytes`, unmasked, with their opcodes.
    fn client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[1] & 0x80, 0x80, "client frames are masked");
            let len = usize::from(bytes[1] & 0x7F);
            assert!(len < 126, "short frames only here");
            let mask = &bytes[2..6];
            let payload = bytes[6..6 + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            frames.push((bytes[0] & 0x0F, payload));
            bytes = &bytes[6 + len..];
        }
        frames
    }

    #[test]
    fn pings_are_answered_and_a_close_is_returned_and_ends_the_stream() {
        let mut ws = ws(&[
            0x02, 2, b'a', b'b', 0x89, 3, b'p', b'i', b'n', 0x80, 1, b'c', 0x88, 0, 0x82, 1, b'x',
        ]);
        assert_eq!(read_all(&mut ws).unwrap(), b"abc");
        let frames = client_frames(&ws.stream.output);
        assert_eq!(frames, [(PONG, b"pin".to_vec()), (CLOSE, Vec::new())]);
    }

    #[test]
    fn a_text_frame_is_an_error() {
        let mut ws = ws(&[0x81, 1, b'x']);
        let err = read_all(&mut ws).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn writes_are_frames_sent_in_one_socket_write_per_flush_with_fresh_masks() {
        let mut ws = ws(&[]);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for part in [&b"one"[..], b"two", b"three"] {
            let written = Pin::new(&mut ws).poll_write(&mut cx, part);
            assert!(matches!(written, Poll::Ready(Ok(n)) if n == part.len()));
        }
        assert_eq!(ws.stream.writes, 0, "nothing written before the flush");
        assert!(Pin::new(&mut ws).poll_flush(&mut cx).is_ready());
        assert_eq!(ws.stream.writes, 1);
        let output = ws.stream.output.clone();
        let frames = client_frames(&output);
        assert_eq!(
            frames,
            [
                (BINARY, b"one".to_vec()),
                (BINARY, b"two".to_vec()),
                (BINARY, b"three".to_vec())
            ]
        );
        assert_ne!(output[2..6], output[11..15], "each frame has its own mask");
    }
}
