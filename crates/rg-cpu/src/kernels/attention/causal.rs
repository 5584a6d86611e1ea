//! What the causal mask leaves of one tile of keys against queries. Tiles kept
//! transposed (keys as rows, queries along the vectors) see a prefix of each key row
//! hidden; tiles crossing the diagonal are computed in row groups that skip the
//! columns (or, for products over keys, the depth) no row of the group can see, which
//! saves about half the work of a diagonal tile (for short sequences, most tiles).

use crate::math::Real;

/// Rows per group: two of the tile kernel's 6-row tiles (d = 64), one 12-row tile.
const GROUP: usize = 12;

/// Keys `k0..k0 + nk` against queries `q0..q0 + nq`, query `i` seeing keys `..= i + off`.
#[derive(Clone, Copy)]
pub struct Block {
    pub k0: usize,
    pub nk: usize,
    pub q0: usize,
    pub nq: usize,
    pub off: usize,
}

impl Block {
    /// The tile's queries hidden from its key row `jj`: a prefix of the row.
    fn hidden(&self, jj: usize) -> usize {
        (self.k0 + jj)
            .saturating_sub(self.off + self.q0)
            .min(self.nq)
    }

    /// The tile's keys visible to its query `i`: a prefix of the keys.
    fn visible(&self, i: usize) -> usize {
        (self.q0 + i + self.off + 1)
            .saturating_sub(self.k0)
            .min(self.nk)
    }

    /// Whether every query sees every key (no masking, a single group).
    fn is_full(&self) -> bool {
        self.nk == 0 || self.hidden(self.nk - 1) == 0
    }

    /// Sets the hidden scores of the `[nk, nq]` tile `st` to `-inf`, which the softmax
    /// turns into zero probabilities. Covers the columns the groups skip, too.
    pub fn mask<T: Real>(&self, st: &mut [T]) {
        if self.is_full() {
            return;
        }
        for (jj, row) in st.chunks_exact_mut(self.nq).take(self.nk).enumerate() {
            row[..self.hidden(jj)].fill(T::neg_infinity());
        }
    }

    /// Key rows in groups, as `(first row, rows, first query any of them sees)`; groups
    /// that see no query are left out.
    pub fn key_groups(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let group = if self.is_full() {
            self.nk.max(1)
        } else {
            GROUP
        };
        (0..self.nk)
            .step_by(group)
            .map(move |j0| (j0, group.min(self.nk - j0), self.hidden(j0)))
            .filter(|g| g.2 < self.nq)
    }

    /// Query rows in groups, as `(first row, rows, keys the last of them sees)`;
    /// groups that see no key are left out.
    pub fn query_groups(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let group = if self.is_full() {
            self.nq.max(1)
        } else {
            GROUP
        };
        (0..self.nq)
            .step_by(group)
            .map(move |i0| {
                let rows = group.min(self.nq - i0);
                (i0, rows, self.visible(i0 + rows - 1))
            })
            .filter(|g| g.2 > 0)
    }
}
