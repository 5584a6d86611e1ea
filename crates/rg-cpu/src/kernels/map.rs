//! The elementwise engine: applies a function to one, two or three views of one shape
//! and writes a new row-major vector. Runs along the innermost axis get specialised
//! loops (unit stride, broadcast stride 0, general stride) so the common cases
//! auto-vectorise; large outputs are split across the rayon pool.

use rayon::prelude::*;

use crate::parallel::chunk_len;
use crate::storage::CpuElement;
use crate::strided::Walk;
use crate::view::Typed;

/// Fills `out` (row-major over `walk`'s shape) run by run, in parallel chunks when large.
/// `body(run_out, bases)` writes one run whose first element sits at `bases[v]` in view `v`.
pub fn drive<U: Send, const N: usize>(
    walk: &Walk<N>,
    out: &mut [U],
    body: impl Fn(&mut [U], [usize; N]) + Sync,
) {
    drive_weighted(walk, out, 1, body)
}

/// [`drive`] for outputs that each cost about `cost` element reads (a reduction), so
/// that the decision to go parallel, and the chunk size, follow the real work.
pub fn drive_weighted<U: Send, const N: usize>(
    walk: &Walk<N>,
    out: &mut [U],
    cost: usize,
    body: impl Fn(&mut [U], [usize; N]) + Sync,
) {
    let n = out.len();
    let cost = cost.max(1);
    let chunk = (chunk_len(n.saturating_mul(cost)) / cost).max(1);
    let fill = |start: usize, part: &mut [U]| {
        walk.for_runs(start, start + part.len(), |pos, bases, run| {
            body(&mut part[pos - start..pos - start + run], bases)
        })
    };
    if chunk >= n {
        fill(0, out);
    } else {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, part)| fill(i * chunk, part));
    }
}

/// `f(x)` for every element of `src`.
pub fn map1<T, U, F>(src: Typed<'_, T>, f: F) -> Vec<U>
where
    T: CpuElement,
    U: CpuElement,
    F: Fn(T) -> U + Sync,
{
    let walk = Walk::new([src.layout]);
    let [s] = walk.inner_strides();
    let data = src.data;
    let mut out = vec![U::zeroed(); walk.len()];
    drive(&walk, &mut out, |o, [b]| match s {
        1 => {
            let n = o.len();
            for (o, &x) in o.iter_mut().zip(&data[b..b + n]) {
                *o = f(x);
            }
        }
        0 => o.fill(f(data[b])),
        s => {
            for (k, o) in o.iter_mut().enumerate() {
                *o = f(data[b + k * s]);
            }
        }
    });
    out
}

/// `f(a, b)` for every pair of elements of two views of one shape.
pub fn map2<A, B, U, F>(a: Typed<'_, A>, b: Typed<'_, B>, f: F) -> Vec<U>
where
    A: CpuElement,
    B: CpuElement,
    U: CpuElement,
    F: Fn(A, B) -> U + Sync,
{
    let walk = Walk::new([a.layout, b.layout]);
    let (da, db) = (a.data, b.data);
    let mut out = vec![U::zeroed(); walk.len()];
    drive(&walk, &mut out, |o, [ba, bb]| {
        let n = o.len();
        match walk.inner_strides() {
            [1, 1] => {
                for ((o, &x), &y) in o.iter_mut().zip(&da[ba..ba + n]).zip(&db[bb..bb + n]) {
                    *o = f(x, y);
                }
            }
            [1, 0] => {
                let y = db[bb];
                for (o, &x) in o.iter_mut().zip(&da[ba..ba + n]) {
                    *o = f(x, y);
                }
            }
            [0, 1] => {
                let x = da[ba];
                for (o, &y) in o.iter_mut().zip(&db[bb..bb + n]) {
                    *o = f(x, y);
                }
            }
            [sa, sb] => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = f(da[ba + k * sa], db[bb + k * sb]);
                }
            }
        }
    });
    out
}

/// `f(a, b, c)` for every triple of elements of three views of one shape.
pub fn map3<A, B, C, U, F>(a: Typed<'_, A>, b: Typed<'_, B>, c: Typed<'_, C>, f: F) -> Vec<U>
where
    A: CpuElement,
    B: CpuElement,
    C: CpuElement,
    U: CpuElement,
    F: Fn(A, B, C) -> U + Sync,
{
    let walk = Walk::new([a.layout, b.layout, c.layout]);
    let (da, db, dc) = (a.data, b.data, c.data);
    let mut out = vec![U::zeroed(); walk.len()];
    drive(&walk, &mut out, |o, [ba, bb, bc]| {
        let n = o.len();
        match walk.inner_strides() {
            [1, 1, 1] => {
                let xs = da[ba..ba + n]
                    .iter()
                    .zip(&db[bb..bb + n])
                    .zip(&dc[bc..bc + n]);
                for (o, ((&x, &y), &z)) in o.iter_mut().zip(xs) {
                    *o = f(x, y, z);
                }
            }
            [sa, sb, sc] => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = f(da[ba + k * sa], db[bb + k * sb], dc[bc + k * sc]);
                }
            }
        }
    });
    out
}
