//! Handing encoded packets to the transport: as one `Bytes` per batch, or copied into a
//! buffer the caller owns.

use bytes::Buf;

use super::*;

impl<S: SessionStore, I: Instant> Session<S, I> {
    /// Everything encoded since the last call, as one buffer for one write. `now` is when
    /// it is handed to the transport: keep-alive counts from it.
    ///
    /// Write-ahead: before handing anything out, the store's [`sync`](SessionStore::sync)
    /// makes every change recorded since the last batch durable (one sync per batch). If it
    /// fails, the batch is withheld, the publishes first recorded in it fail with
    /// [`PublishError::Store`], the connection closes with [`ConnectionError::Store`], and
    /// this returns `None` with those events queued: drain `poll_event` again.
    ///
    /// Each call hands out a new `Bytes` (an allocation per batch); a device with a fixed
    /// transmit buffer uses [`poll_transmit_into`](Self::poll_transmit_into) instead.
    #[must_use]
    pub fn poll_transmit(&mut self, now: I) -> Option<Bytes> {
        if !self.ready_to_transmit() {
            return None;
        }
        let bytes = self.write_buf.split().freeze();
        self.write_cut = 0;
        self.handed_out(now);
        Some(bytes)
    }

    /// Copies as many pending bytes as fit into `buf` and returns how many; 0 when nothing
    /// is pending (or `buf` is empty). `now` is when they are handed to the transport.
    ///
    /// The bytes are a stream: a packet larger than `buf` is handed out over several calls,
    /// and nothing is lost however small `buf` is, so call it until it returns 0 and write
    /// each chunk in order (an MQTT transport is a byte stream, WebSocket included:
    /// [MQTT-6.0.0-2] lets a frame carry part of a packet). The session keeps one buffer of
    /// its own and reuses it, so in a steady state this allocates nothing. The same
    /// write-ahead rule as [`poll_transmit`](Self::poll_transmit) applies: the store is
    /// synced before new bytes are handed out, and a failed sync returns 0 with events
    /// queued. A QoS 0 publish completes once all its bytes have been handed out.
    #[must_use]
    pub fn poll_transmit_into(&mut self, now: I, buf: &mut [u8]) -> usize {
        if buf.is_empty() || !self.ready_to_transmit() {
            return 0;
        }
        let n = buf.len().min(self.write_buf.len());
        buf[..n].copy_from_slice(&self.write_buf[..n]);
        self.write_cut = remainder_of_cut_packet(&self.write_buf, self.write_cut, n);
        self.write_buf.advance(n);
        self.handed_out(now);
        n
    }

    /// Whether there are bytes to hand out, with the store synced for them. Moves a closing
    /// connection to `Disconnected` once its last byte is out.
    fn ready_to_transmit(&mut self) -> bool {
        if self.write_buf.is_empty() {
            if self.state == ConnectionState::Closing {
                self.state = ConnectionState::Disconnected;
            }
            return false;
        }
        if let Err(err) = self.store.sync() {
            self.sync_failed(err);
            return false;
        }
        // Taken and put back rather than left empty: its capacity is reused by the next
        // batch instead of allocated again.
        let mut unsynced = core::mem::take(&mut self.unsynced);
        for (token, _) in unsynced.drain(..) {
            if self.config.report_stored {
                self.push_event(Event::Stored { token });
            }
        }
        self.unsynced = unsynced;
        self.queued_synced();
        true
    }

    /// Bytes went to the transport at `now`; once the buffer is empty, the QoS 0 publishes
    /// in it are complete and a closing connection is closed.
    fn handed_out(&mut self, now: I) {
        self.last_sent = Some(now);
        if self.state == ConnectionState::Connected {
            self.arm_keep_alive(now);
        }
        if !self.write_buf.is_empty() {
            return;
        }
        let mut qos0 = core::mem::take(&mut self.qos0_unsent);
        for token in qos0.drain(..) {
            self.push_event(Event::Published {
                token,
                result: Ok(ReasonCode::Success),
                properties: Default::default(),
            });
        }
        self.qos0_unsent = qos0;
        if self.state == ConnectionState::Closing {
            self.state = ConnectionState::Disconnected;
        }
    }
}

/// After handing out the first `n` bytes of `pending` (whose first `cut` bytes finish a packet
/// handed out in part before), how many bytes of the packet `n` ends in are left: 0 when `n`
/// ends on a packet boundary.
fn remainder_of_cut_packet(pending: &[u8], cut: usize, n: usize) -> usize {
    if n < cut {
        return cut - n;
    }
    let mut at = cut;
    while at < n {
        // The session encoded these packets itself, so every header is whole and valid.
        at += packet_len(&pending[at..]);
    }
    at - n
}

/// Length of the packet at the start of `bytes`: the fixed header (type byte and a remaining
/// length of 1-4 bytes) plus the remaining length.
fn packet_len(bytes: &[u8]) -> usize {
    let mut remaining = 0usize;
    for (i, byte) in bytes.iter().enumerate().skip(1).take(4) {
        remaining |= usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return 1 + i + remaining;
        }
    }
    // Not a header the encoder writes; treat the rest as one packet rather than loop.
    bytes.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_len_reads_the_fixed_header() {
        assert_eq!(packet_len(&[0xc0, 0x00]), 2);
        assert_eq!(packet_len(&[0x30, 0x05, 0, 0, 0, 0, 0]), 7);
        // Remaining length 200 = 0xc8 0x01.
        assert_eq!(packet_len(&[0x30, 0xc8, 0x01]), 203);
        // 2,097,152 = 0x80 0x80 0x80 0x01.
        assert_eq!(packet_len(&[0x30, 0x80, 0x80, 0x80, 0x01]), 5 + 2_097_152);
    }

    #[test]
    fn the_remainder_of_a_cut_packet_is_tracked_across_calls() {
        // PINGREQ (2 bytes), then a 7-byte packet, then PINGREQ.
        let pending = [0xc0, 0x00, 0x30, 0x05, 1, 2, 3, 4, 5, 0xc0, 0x00];
        assert_eq!(remainder_of_cut_packet(&pending, 0, 2), 0);
        assert_eq!(remainder_of_cut_packet(&pending, 0, 4), 5);
        assert_eq!(remainder_of_cut_packet(&pending, 0, 9), 0);
        assert_eq!(remainder_of_cut_packet(&pending, 0, 10), 1);
        // After 4 bytes went out, 5 finish the packet: 3 more leave 2 of them.
        assert_eq!(remainder_of_cut_packet(&pending[4..], 5, 3), 2);
        assert_eq!(remainder_of_cut_packet(&pending[4..], 5, 5), 0);
        assert_eq!(remainder_of_cut_packet(&pending[4..], 5, 6), 1);
    }
}
