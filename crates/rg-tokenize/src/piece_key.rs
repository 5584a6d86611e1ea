//! Packing short pieces into one integer, so the per-piece hash lookups of encoding
//! compare integers instead of calling `memcmp` on byte slices.
//!
//! Up to 15 bytes fit in a `u128` with the length in the top byte (so `"a"` and
//! `"a\0"` differ). Longer pieces (rare in text) use byte-slice keys.

use crate::hash::FxHashMap;

/// Longest piece that packs.
pub(crate) const MAX_PACKED: usize = 15;

/// The packed key of `s[start..end]`, if it is short enough.
#[inline(always)]
pub(crate) fn pack(s: &[u8], start: usize, end: usize) -> Option<u128> {
    let len = end - start;
    if len > MAX_PACKED {
        return None;
    }
    let raw = match s.get(start..start + 16) {
        // One unaligned 16-byte load, then mask off the bytes past the piece.
        Some(window) => u128::from_le_bytes(window.try_into().ok()?),
        None => {
            let mut buf = [0u8; 16];
            buf[..len].copy_from_slice(&s[start..end]);
            u128::from_le_bytes(buf)
        }
    };
    let mask = (1u128 << (8 * len)) - 1;
    Some((raw & mask) | ((len as u128) << 120))
}

/// Token bytes -> token id.
#[derive(Clone, Debug, Default)]
pub(crate) struct PieceMap {
    short: FxHashMap<u128, u32>,
    long: FxHashMap<Box<[u8]>, u32>,
}

impl PieceMap {
    /// Inserts or replaces; returns the id the piece had before.
    pub(crate) fn insert(&mut self, piece: &[u8], id: u32) -> Option<u32> {
        match pack(piece, 0, piece.len()) {
            Some(key) => self.short.insert(key, id),
            None => self.long.insert(piece.into(), id),
        }
    }

    pub(crate) fn get_bytes(&self, piece: &[u8]) -> Option<u32> {
        self.get(pack(piece, 0, piece.len()), piece)
    }

    /// Looks up `s[start..end]`; `key` is its packed form when it has one.
    #[inline(always)]
    pub(crate) fn get(&self, key: Option<u128>, piece: &[u8]) -> Option<u32> {
        match key {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(piece).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_position_independent() {
        let text = b"a\0abcdefghijklmnopq";
        assert_ne!(pack(text, 0, 1), pack(text, 0, 2));
        assert_eq!(pack(text, 2, 5), pack(b"abc", 0, 3));
        assert_eq!(pack(text, 2, 17), pack(b"abcdefghijklmno", 0, 15));
        assert_eq!(pack(text, 2, 18), None);
        let mut m = PieceMap::default();
        m.insert(b"abc", 7);
        m.insert(b"abcdefghijklmnopq", 8);
        assert_eq!(m.get(pack(text, 2, 5), &text[2..5]), Some(7));
        assert_eq!(m.get(None, b"abcdefghijklmnopq"), Some(8));
    }
}
