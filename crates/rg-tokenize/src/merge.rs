//! Applying BPE merges to one piece: lowest merge rank first, leftmost on ties.
//!
//! That is the rule of Hugging Face `tokenizers` (and of GPT-2's original encoder).
//! Short pieces, the vast majority, use a flat scan (quadratic in the piece length but
//! with a tiny constant). Long pieces (a megabyte of `a`, or of spaces) use a binary
//! heap over a linked list of symbols, which is `O(n log n)`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::hash::{pair_key, FxHashMap};

/// A symbol with no token (its byte is missing from the vocabulary): never merges and
/// is dropped from the output, as `tokenizers` does for a BPE without `unk_token`.
pub(crate) const NO_TOKEN: u32 = u32::MAX;

/// Pieces at least this long take the heap path.
const LONG_PIECE: usize = 128;

/// `(left, right)` -> `(rank, merged id)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct MergeTable {
    map: FxHashMap<u64, (u32, u32)>,
}

/// Reused buffers, so encoding does not allocate per piece.
#[derive(Default)]
pub(crate) struct Scratch {
    ids: Vec<u32>,
    ranks: Vec<(u32, u32)>,
    nodes: Vec<Node>,
    /// `rank << 32 | position`: one integer compare orders by rank, then leftmost.
    heap: BinaryHeap<Reverse<u64>>,
}

#[derive(Clone, Copy)]
struct Node {
    id: u32,
    prev: u32,
    next: u32,
}

const NONE: u32 = u32::MAX;
const NO_MERGE: (u32, u32) = (u32::MAX, u32::MAX);

impl MergeTable {
    pub(crate) fn with_capacity(n: usize) -> Self {
        let mut map = FxHashMap::default();
        map.reserve(n);
        MergeTable { map }
    }

    /// Adds a merge; a repeated pair keeps its last rank, as in `tokenizers`.
    pub(crate) fn insert(&mut self, left: u32, right: u32, rank: u32, merged: u32) {
        self.map.insert(pair_key(left, right), (rank, merged));
    }

    #[inline(always)]
    fn get(&self, left: u32, right: u32) -> (u32, u32) {
        match self.map.get(&pair_key(left, right)) {
            Some(&m) => m,
            None => NO_MERGE,
        }
    }

    /// Merges `symbols` (initial token ids, one per byte) and appends the result to `out`.
    pub(crate) fn apply(&self, symbols: &[u32], out: &mut Vec<u32>, scratch: &mut Scratch) {
        if symbols.len() < LONG_PIECE {
            self.apply_short(symbols, out, scratch);
        } else {
            self.apply_long(symbols, out, scratch);
        }
    }

    fn apply_short(&self, symbols: &[u32], out: &mut Vec<u32>, scratch: &mut Scratch) {
        let ids = &mut scratch.ids;
        let ranks = &mut scratch.ranks;
        ids.clear();
        ids.extend_from_slice(symbols);
        ranks.clear();
        ranks.extend(ids.windows(2).map(|w| self.get(w[0], w[1])));
        loop {
            // Leftmost minimum: `<` keeps the first of equal ranks.
            let mut best = 0;
            let mut best_rank = u32::MAX;
            for (i, &(rank, _)) in ranks.iter().enumerate() {
                if rank < best_rank {
                    best_rank = rank;
                    best = i;
                }
            }
            if best_rank == u32::MAX {
                break;
            }
            ids[best] = ranks[best].1;
            ids.remove(best + 1);
            ranks.remove(best);
            if best > 0 {
                ranks[best - 1] = self.get(ids[best - 1], ids[best]);
            }
            if best + 1 < ids.len() {
                ranks[best] = self.get(ids[best], ids[best + 1]);
            }
        }
        out.extend(ids.iter().copied().filter(|&id| id != NO_TOKEN));
    }

    fn apply_long(&self, symbols: &[u32], out: &mut Vec<u32>, scratch: &mut Scratch) {
        let n = symbols.len();
        let nodes = &mut scratch.nodes;
        let heap = &mut scratch.heap;
        nodes.clear();
        nodes.extend(symbols.iter().enumerate().map(|(i, &id)| Node {
            id,
            prev: if i == 0 { NONE } else { i as u32 - 1 },
            next: if i + 1 == n { NONE } else { i as u32 + 1 },
        }));
        heap.clear();
        for i in 0..n - 1 {
            let (rank, _) = self.get(symbols[i], symbols[i + 1]);
            if rank != u32::MAX {
                heap.push(Reverse(entry(rank, i as u32)));
            }
        }
        while let Some(Reverse(top)) = heap.pop() {
            let (rank, pos) = ((top >> 32) as u32, top as u32);
            let left = nodes[pos as usize];
            // Entries go stale when a neighbour merged: the left symbol may be gone
            // (id NO_TOKEN marks a consumed node) or the pair may have changed.
            if left.id == NO_TOKEN || left.next == NONE {
                continue;
            }
            let right = nodes[left.next as usize];
            let (cur_rank, merged) = self.get(left.id, right.id);
            if cur_rank != rank {
                continue;
            }
            // Merge right into left.
            let right_pos = left.next;
            nodes[pos as usize].id = merged;
            nodes[pos as usize].next = right.next;
            nodes[right_pos as usize].id = NO_TOKEN;
            if right.next != NONE {
                nodes[right.next as usize].prev = pos;
                let (r, _) = self.get(merged, nodes[right.next as usize].id);
                if r != u32::MAX {
                    heap.push(Reverse(entry(r, pos)));
                }
            }
            if left.prev != NONE {
                let (r, _) = self.get(nodes[left.prev as usize].id, merged);
                if r != u32::MAX {
                    heap.push(Reverse(entry(r, left.prev)));
                }
            }
        }
        // Walk the surviving list from the head (node 0 is never consumed: it is only
        // ever a left side).
        let mut i = 0u32;
        while i != NONE {
            let id = nodes[i as usize].id;
            if id != NO_TOKEN {
                out.push(id);
            }
            i = nodes[i as usize].next;
        }
    }
}

#[inline(always)]
fn entry(rank: u32, pos: u32) -> u64 {
    ((rank as u64) << 32) | pos as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes a=0, b=1; merges: (a,a)->2 rank 0, (2,a)->3 rank 1, (a,b)->4 rank 2.
    fn table() -> MergeTable {
        let mut t = MergeTable::default();
        t.insert(0, 0, 0, 2);
        t.insert(2, 0, 1, 3);
        t.insert(0, 1, 2, 4);
        t
    }

    #[test]
    fn short_and_long_agree() {
        let t = table();
        let mut s = Scratch::default();
        for len in [1usize, 2, 3, 5, 7, 127, 128, 129, 1000] {
            for pattern in [vec![0u32], vec![0, 1], vec![0, 0, 1], vec![1, 0, 0, 0]] {
                let symbols: Vec<u32> = pattern.iter().copied().cycle().take(len).collect();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                t.apply_short(&symbols, &mut a, &mut s);
                t.apply_long(&symbols, &mut b, &mut s);
                assert_eq!(a, b, "len {len} pattern {pattern:?}");
            }
        }
    }

    #[test]
    fn leftmost_lowest_rank() {
        let t = table();
        let mut s = Scratch::default();
        let mut out = Vec::new();
        t.apply(&[0, 0, 0], &mut out, &mut s);
        assert_eq!(out, [3]); // (a a) a -> 2 a -> 3
        out.clear();
        t.apply(&[0, 0, 0, 0, 1], &mut out, &mut s);
        assert_eq!(out, [2, 2, 1]); // aa aa b: rank 0 twice, then nothing applies
    }

    proptest::proptest! {
        /// Random merge tables over a 4-symbol alphabet: the heap path must pick the
        /// same (lowest rank, leftmost) merges as the flat scan.
        #[test]
        fn heap_path_equals_flat_scan(
            pairs in proptest::collection::vec((0u32..64, 0u32..64), 1..40),
            symbols in proptest::collection::vec(0u32..4, 0..300),
        ) {
            let mut t = MergeTable::default();
            for (rank, &(a, b)) in pairs.iter().enumerate() {
                // Only ids that exist by then: the 4 symbols and earlier merge results.
                let next = 4 + rank as u32;
                t.insert(a % next, b % next, rank as u32, next);
            }
            let mut s = Scratch::default();
            let (mut flat, mut heap) = (Vec::new(), Vec::new());
            t.apply_short(&symbols, &mut flat, &mut s);
            if !symbols.is_empty() {
                t.apply_long(&symbols, &mut heap, &mut s);
            }
            proptest::prop_assert_eq!(flat, heap);
        }
    }
}
