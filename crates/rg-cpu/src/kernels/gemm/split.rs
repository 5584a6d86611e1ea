//! Cutting a parallel product into a grid of serial sub-products, one rayon task each.
//!
//! Each task is a whole GEMM on its rectangle of C (its rows of the lhs, its columns
//! of the rhs), packing its own operands into its own core's caches: one fork-join per
//! product. Splitting inside the blocked loop instead (packing each depth block in
//! parallel, then the block's tiles) costs two fork-joins per block, and at each the
//! faster thread waits: with 2 threads at 2048 that held the pair to 1.45-1.6x one
//! thread's rate (Intel Xeon Emerald Rapids: 240 GFLOP/s against 150 for one thread;
//! AMD EPYC Zen 3: 86 against 64), where a task grid reached 1.9-2x.
//!
//! The price is packing twice what one GEMM packs where tasks share an operand: each
//! row of tasks packs the whole rhs (its columns), each column of tasks the whole lhs
//! (unless the lhs is read in place, which costs nothing). [`Grid::choose`] picks the
//! shape that packs least.

use std::ops::Range;

use rayon::prelude::*;

use super::{Elem, Mat, Out};

/// `rows x cols` tasks over an `m x n` product of `mr x nr` tiles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Grid {
    rows: usize,
    cols: usize,
    m: usize,
    n: usize,
    mr: usize,
    nr: usize,
}

impl Grid {
    /// The grid for an `m x n` product with `mr x nr` tiles on `threads` threads, or
    /// `None` when there is not enough to split (fewer than two tiles, or one thread).
    ///
    /// One task per thread, or fewer when the tiles do not go round. Two per thread
    /// (so that a thread starting late leaves part of its share to the other) cut the
    /// small products into narrow tasks that each stream the lhs for fewer columns,
    /// and never paid back: alternating the two within one process on 2 cores (Intel
    /// Xeon Emerald Rapids, median of 2,000-3,000 products each), one per thread ran
    /// 256 and 512 squares 2-3% faster, 1024-4096 the same within noise, and the
    /// products of a training step 1.4% (GPT-2 124M, B4xT64) and 1.2-1.7% (nanoGPT
    /// char) faster in total. Among the grids of that many tasks, the one whose
    /// duplicated packing (`cols * m` lhs values if the lhs is packed, plus `rows * n`
    /// rhs values, per depth) is least; ties go to fewer row tasks (the rhs block each
    /// packs is the bigger copy in the products of a training step).
    pub(super) fn choose(
        (m, n): (usize, usize),
        (mr, nr): (usize, usize),
        lhs_packed: bool,
        threads: usize,
    ) -> Option<Grid> {
        let (panels_m, panels_n) = (m.div_ceil(mr), n.div_ceil(nr));
        if threads < 2 || panels_m * panels_n < 2 {
            return None;
        }
        let cost = |g: &Grid| {
            let lhs = if lhs_packed { g.cols * m } else { 0 };
            lhs + g.rows * n
        };
        (2..=threads.min(panels_m * panels_n))
            .rev()
            .find_map(|tasks| {
                (1..=tasks)
                    .filter(|rows| tasks % rows == 0)
                    .map(|rows| Grid {
                        rows,
                        cols: tasks / rows,
                        m,
                        n,
                        mr,
                        nr,
                    })
                    .filter(|g| g.rows <= panels_m && g.cols <= panels_n)
                    .min_by_key(cost)
            })
    }

    pub(super) fn tasks(&self) -> usize {
        self.rows * self.cols
    }

    /// The rows and columns of C that task `t` computes: whole tiles, except that the
    /// last row and column of tasks take the ragged edges up to `m` and `n`.
    pub(super) fn task(&self, t: usize) -> (Range<usize>, Range<usize>) {
        let rows = split(self.m.div_ceil(self.mr), self.rows, t / self.cols);
        let cols = split(self.n.div_ceil(self.nr), self.cols, t % self.cols);
        (
            rows.start * self.mr..(rows.end * self.mr).min(self.m),
            cols.start * self.nr..(cols.end * self.nr).min(self.n),
        )
    }

    /// Runs every task's sub-product on the rayon pool: `serial(dims, a, b, bias, c)`
    /// with the task's rows of `a`, columns of `b` and the bias, and its corner of `c`
    /// (row stride unchanged) — the GEMM itself with `parallel` off. Then keeps the
    /// pool's threads polling, so the next product of a chain (a training step's)
    /// finds them awake.
    ///
    /// # Safety
    /// `a`, `b`, `bias` and `c` (row stride `ldc`) as the GEMM's contract for the whole
    /// `m x n x k` product this grid was chosen for.
    pub(super) unsafe fn run<A: Elem, B: Elem>(
        &self,
        k: usize,
        (a, b): (Mat<A>, Mat<B>),
        bias: Option<&[f32]>,
        (c, ldc): (*mut f32, usize),
        serial: impl Fn((usize, usize, usize), Mat<A>, Mat<B>, Option<&[f32]>, *mut f32) + Sync,
    ) {
        let out = Out(c);
        (0..self.tasks()).into_par_iter().for_each(|t| {
            let (rows, cols) = self.task(t);
            // SAFETY: the task's rows and columns are inside `a`, `b`, `c` and the
            // bias; tasks write disjoint rectangles of `c`.
            unsafe {
                let a = a.rows_after(rows.start);
                let b = b.columns_after(cols.start);
                let c = out.ptr().add(rows.start * ldc + cols.start);
                let bias = bias.map(|bias| &bias[cols.clone()]);
                serial((rows.len(), cols.len(), k), a, b, bias, c);
            }
        });
        crate::parallel::keep_workers_warm();
    }
}

/// Part `i` of `0..len` cut into `parts` near-equal ranges.
pub(super) fn split(len: usize, parts: usize, i: usize) -> Range<usize> {
    (len * i / parts)..(len * (i + 1) / parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element of C belongs to exactly one task.
    fn assert_covers(g: &Grid, (m, n): (usize, usize)) {
        let mut seen = vec![0u8; m * n];
        for t in 0..g.tasks() {
            let (rows, cols) = g.task(t);
            assert!(
                !rows.is_empty() && !cols.is_empty(),
                "task {t} of {g:?} is empty"
            );
            for i in rows {
                for j in cols.clone() {
                    seen[i * n + j] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "{g:?} over {m}x{n}");
    }

    #[test]
    fn a_square_with_a_packed_lhs_is_cut_both_ways() {
        let g = Grid::choose((2048, 2048), (6, 64), true, 4).unwrap();
        assert_eq!((g.rows, g.cols), (2, 2));
        assert_covers(&g, (2048, 2048));
        // On two threads both cuts pack as much: the one with fewer row tasks.
        let g = Grid::choose((2048, 2048), (6, 64), true, 2).unwrap();
        assert_eq!((g.rows, g.cols), (1, 2));
    }

    #[test]
    fn an_lhs_read_in_place_is_cut_by_columns_only() {
        let g = Grid::choose((2048, 2048), (6, 64), false, 4).unwrap();
        assert_eq!((g.rows, g.cols), (1, 4));
    }

    #[test]
    fn a_wide_short_product_is_cut_by_columns() {
        // The MLP's input gradient in a GPT-2 step: 256 rows, 768 columns, a packed lhs.
        let g = Grid::choose((256, 768), (6, 64), true, 2).unwrap();
        assert_eq!((g.rows, g.cols), (1, 2));
        // The tied LM head's weight gradient: 50257 rows, 768 columns.
        let g = Grid::choose((50257, 768), (6, 64), true, 2).unwrap();
        assert_eq!((g.rows, g.cols), (2, 1));
        assert_covers(&g, (50257, 768));
    }

    #[test]
    fn few_tiles_give_fewer_tasks_or_none() {
        // One rhs panel and three lhs panels: three tasks on eight threads.
        let g = Grid::choose((18, 64), (6, 64), true, 8).unwrap();
        assert_eq!((g.rows, g.cols), (3, 1));
        assert_covers(&g, (18, 64));
        // Five tiles on four threads: a 2 x 2 grid has no room, so four tasks as 4 x 1.
        let g = Grid::choose((30, 64), (6, 64), true, 4).unwrap();
        assert_eq!((g.rows, g.cols), (4, 1));
        assert_covers(&g, (30, 64));
        assert_eq!(Grid::choose((6, 64), (6, 64), true, 2), None);
        assert_eq!(Grid::choose((600, 600), (6, 64), true, 1), None);
    }

    #[test]
    fn ragged_edges_go_to_the_last_tasks() {
        for (m, n) in [(7, 65), (97, 200), (1000, 129), (13, 1000)] {
            for threads in [2, 3, 8] {
                if let Some(g) = Grid::choose((m, n), (6, 64), true, threads) {
                    assert_covers(&g, (m, n));
                }
            }
        }
    }
}
