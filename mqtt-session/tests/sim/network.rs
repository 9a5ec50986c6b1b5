//! The byte streams between the client and the broker on the virtual clock: seeded delays,
//! chunking at random byte boundaries, and cuts at arbitrary byte offsets.
//!
//! There is at most one link (TCP connection) at a time. Each direction is an ordered queue
//! of chunks with delivery times; a chunk never overtakes the one before it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    ToBroker,
    ToClient,
}

#[derive(Debug, Clone)]
pub(crate) struct NetConfig {
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    /// Largest chunk a write is split into (chunk sizes are uniform in `1..=max_chunk`).
    pub(crate) max_chunk: usize,
}

#[derive(Debug, Default)]
struct Pipe {
    segments: VecDeque<(Instant, Vec<u8>)>,
    delivered: u64,
    last_at: Option<Instant>,
    /// The link is cut once this many bytes of this direction have been delivered.
    cut_at: Option<u64>,
}

impl Pipe {
    fn next_at(&self) -> Option<Instant> {
        self.segments.front().map(|(at, _)| *at)
    }

    fn pending(&self) -> usize {
        self.segments.iter().map(|(_, bytes)| bytes.len()).sum()
    }
}

#[derive(Debug)]
struct Link {
    id: u64,
    to_broker: Pipe,
    to_client: Pipe,
    /// The client closed its end: what it wrote still reaches the broker, then the broker
    /// sees the close. Nothing reaches the client any more.
    client_closed: bool,
    /// An armed cut fired; the next `pop` reports it.
    cut_pending: bool,
}

impl Link {
    fn pipe(&mut self, dir: Dir) -> &mut Pipe {
        match dir {
            Dir::ToBroker => &mut self.to_broker,
            Dir::ToClient => &mut self.to_client,
        }
    }
}

/// What the network does next.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Bytes arrive. `delivered` counts the bytes of that direction delivered on the link so
    /// far, these included.
    Bytes {
        link: u64,
        dir: Dir,
        bytes: Vec<u8>,
        delivered: u64,
    },
    /// An armed cut fired: the link is gone, with everything still on it.
    Cut { link: u64 },
    /// The client closed and everything it wrote has arrived: the broker sees the close.
    Closed { link: u64 },
}

#[derive(Debug)]
pub(crate) struct Network {
    cfg: NetConfig,
    rng: Rng,
    link: Option<Link>,
    next_id: u64,
}

impl Network {
    pub(crate) fn new(cfg: NetConfig, rng: Rng) -> Self {
        Self {
            cfg,
            rng,
            link: None,
            next_id: 0,
        }
    }

    /// Opens a new link; the previous one must be gone.
    pub(crate) fn open(&mut self) -> u64 {
        assert!(self.link.is_none(), "one link at a time");
        self.next_id += 1;
        self.link = Some(Link {
            id: self.next_id,
            to_broker: Pipe::default(),
            to_client: Pipe::default(),
            client_closed: false,
            cut_pending: false,
        });
        self.next_id
    }

    /// The open link, if any (it may be draining after the client closed it).
    pub(crate) fn link(&self) -> Option<u64> {
        self.link.as_ref().map(|link| link.id)
    }

    /// Bytes still travelling in either direction.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.link.as_ref().map_or(0, |link| {
            link.to_broker.pending() + link.to_client.pending()
        })
    }

    /// Writes `bytes` into `link` in direction `dir`, split into chunks with seeded delays.
    /// Bytes for a link that is gone, or towards a client that closed, are lost.
    pub(crate) fn send(&mut self, now: Instant, link_id: u64, dir: Dir, bytes: &[u8]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.id != link_id || link.cut_pending || (link.client_closed && dir == Dir::ToClient) {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = self.rng.range_usize(1, self.cfg.max_chunk).min(rest.len());
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let span = self.cfg.max_delay - self.cfg.min_delay;
            let delay = self.cfg.min_delay
                + Duration::from_micros(self.rng.below(span.as_micros() as u64 + 1));
            let pipe = link.pipe(dir);
            let at = pipe
                .last_at
                .map_or(now + delay, |last| last.max(now + delay));
            pipe.last_at = Some(at);
            pipe.segments.push_back((at, chunk.to_vec()));
        }
    }

    /// The client closed its end of `link`.
    pub(crate) fn client_close(&mut self, link_id: u64) {
        if let Some(link) = self.link.as_mut().filter(|link| link.id == link_id) {
            link.client_closed = true;
            link.to_client.segments.clear();
        }
    }

    /// Arms a cut after `bytes` more bytes delivered in direction `dir` (the earliest armed
    /// cut wins).
    pub(crate) fn arm_cut(&mut self, dir: Dir, bytes: u64) {
        if let Some(link) = self.link.as_mut() {
            let pipe = link.pipe(dir);
            let at = pipe.delivered + bytes;
            pipe.cut_at = Some(pipe.cut_at.map_or(at, |old| old.min(at)));
        }
    }

    /// When `pop` has something, at the earliest.
    pub(crate) fn next_time(&self, now: Instant) -> Option<Instant> {
        let link = self.link.as_ref()?;
        if link.cut_pending || (link.client_closed && link.to_broker.segments.is_empty()) {
            return Some(now);
        }
        [link.to_broker.next_at(), link.to_client.next_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing due at `now`, if any.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Delivery> {
        let link = self.link.as_mut()?;
        let id = link.id;
        if link.cut_pending {
            self.link = None;
            return Some(Delivery::Cut { link: id });
        }
        if link.client_closed && link.to_broker.segments.is_empty() {
            self.link = None;
            return Some(Delivery::Closed { link: id });
        }
        let dir = match (link.to_broker.next_at(), link.to_client.next_at()) {
            (Some(b), Some(c)) if b <= c => Dir::ToBroker,
            (Some(_), Some(_)) => Dir::ToClient,
            (Some(_), None) => Dir::ToBroker,
            (None, Some(_)) => Dir::ToClient,
            (None, None) => return None,
        };
        let pipe = link.pipe(dir);
        if pipe.next_at().is_some_and(|at| at > now) {
            return None;
        }
        let (_, mut bytes) = pipe.segments.pop_front()?;
        if let Some(cut) = pipe.cut_at
            && pipe.delivered + bytes.len() as u64 >= cut
        {
            bytes.truncate((cut - pipe.delivered) as usize);
            link.cut_pending = true;
        }
        let pipe = link.pipe(dir);
        pipe.delivered += bytes.len() as u64;
        Some(Delivery::Bytes {
            link: id,
            dir,
            bytes,
            delivered: pipe.delivered,
        })
    }

    /// Cuts the link now. With `partial`, a random prefix of what is still travelling in each
    /// direction arrives first (returned, to be delivered before the close); the rest is lost.
    pub(crate) fn cut(&mut self, partial: bool) -> Vec<Delivery> {
        let Some(mut link) = self.link.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let id = link.id;
        if partial && !link.cut_pending {
            for dir in [Dir::ToBroker, Dir::ToClient] {
                if dir == Dir::ToClient && link.client_closed {
                    continue;
                }
                let pipe = link.pipe(dir);
                let pending: Vec<u8> = pipe.segments.drain(..).flat_map(|(_, b)| b).collect();
                let keep = self.rng.range_usize(0, pending.len());
                let mut bytes = pending;
                bytes.truncate(keep);
                if let Some(cut) = pipe.cut_at {
                    let room = cut.saturating_sub(pipe.delivered) as usize;
                    bytes.truncate(room);
                }
                pipe.delivered += bytes.len() as u64;
                out.push(Delivery::Bytes {
                    link: id,
                    dir,
                    bytes,
                    delivered: pipe.delivered,
                });
            }
        }
        out
    }
}
