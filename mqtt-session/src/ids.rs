//! Packet identifier allocation: a bitmap of the identifiers in use.
//!
//! The lowest free identifier is handed out, so identifiers stay small and the id-indexed
//! tables of the store stay as small as the in-flight window. For the same reason the bitmap
//! grows only as far as the highest identifier used (8 bytes per 64 identifiers, at most
//! 8 KiB): an idle client, or one with a small window, pays a few bytes, not 8 KiB.

use alloc::vec;
use alloc::vec::Vec;

use sansmqtt_proto::PacketId;

pub(crate) struct PacketIds {
    /// Bit `n` set: identifier `n` is in use. Bit 0 (identifier 0) is permanently set, since 0
    /// is never a valid identifier. Words past the end are all free.
    words: Vec<u64>,
    in_use: usize,
}

/// Words for identifiers 0..=65,535.
const WORDS: usize = 1024;

impl PacketIds {
    pub(crate) fn new() -> Self {
        Self {
            words: vec![1],
            in_use: 0,
        }
    }

    /// The lowest free identifier, now marked in use.
    pub(crate) fn allocate(&mut self) -> Option<PacketId> {
        let index = match self.words.iter().position(|word| *word != u64::MAX) {
            Some(index) => index,
            None if self.words.len() < WORDS => {
                self.words.push(0);
                self.words.len() - 1
            }
            None => return None,
        };
        let word = &mut self.words[index];
        let bit = word.trailing_ones() as usize;
        *word |= 1 << bit;
        self.in_use += 1;
        // index < 1024 and bit < 64, so the value fits u16; bit 0 of word 0 is never free.
        PacketId::new((index * 64 + bit) as u16)
    }

    /// Marks `id` as in use (restoring persisted flows). Returns false if it already was.
    pub(crate) fn claim(&mut self, id: PacketId) -> bool {
        let (index, mask) = Self::locate(id);
        if self.words.len() <= index {
            self.words.resize(index + 1, 0);
        }
        let was_free = self.words[index] & mask == 0;
        self.words[index] |= mask;
        self.in_use += usize::from(was_free);
        was_free
    }

    pub(crate) fn release(&mut self, id: PacketId) {
        let (index, mask) = Self::locate(id);
        if let Some(word) = self.words.get_mut(index)
            && *word & mask != 0
        {
            *word &= !mask;
            self.in_use -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.in_use
    }

    fn locate(id: PacketId) -> (usize, u64) {
        let n = usize::from(id.get());
        (n / 64, 1 << (n % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_never_an_id_in_use() {
        let mut ids = PacketIds::new();
        let a = ids.allocate().map(PacketId::get);
        let b = ids.allocate().map(PacketId::get);
        assert_eq!((a, b), (Some(1), Some(2)));
        ids.release(PacketId::MIN);
        assert_eq!(ids.allocate().map(PacketId::get), Some(1));
        assert_eq!(ids.allocate().map(PacketId::get), Some(3));
    }

    #[test]
    fn exhaustion_after_65535_ids() {
        let mut ids = PacketIds::new();
        for expected in 1..=u16::MAX {
            assert_eq!(ids.allocate().map(PacketId::get), Some(expected));
        }
        assert_eq!(ids.allocate(), None);
        assert_eq!(ids.len(), 65_535);
    }

    #[test]
    fn the_bitmap_grows_only_with_the_highest_identifier() {
        let mut ids = PacketIds::new();
        for _ in 0..100 {
            ids.allocate();
        }
        assert_eq!(ids.words.len(), 2);
        assert!(ids.claim(PacketId::MAX));
        assert_eq!(ids.words.len(), WORDS);
        ids.release(PacketId::MAX);
        assert_eq!(ids.allocate().map(PacketId::get), Some(101));
    }
}
