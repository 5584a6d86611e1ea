//! A cache of large freed buffers, so that a training loop, which allocates the same
//! sizes every step, reuses memory instead of asking the OS for it again.
//!
//! Why: the allocator hands buffers above 32 MiB (glibc's largest mmap threshold)
//! straight to `mmap` and returns them with `munmap`, so each step of GPT-2 training
//! page-faulted about 2 GB of fresh zero pages — a third of the step's CPU time was the
//! kernel's. Owned storage of at least [`MIN_POOLED_BYTES`] goes back here when dropped
//! (see `CpuBuffer`'s `Drop`), keyed by element type and exact length, if a kernel has
//! asked for that key before; kernels take their outputs from here through [`zeroed`],
//! [`for_overwrite`] and [`with_capacity`].
//!
//! The cache holds at most `RG_CPU_POOL_MB` megabytes (default 2048; 0 turns it off),
//! freeing its oldest buffers to make room for new ones. A cache smaller than one
//! step's turnover evicts buffers before their size comes round again, and the step
//! page-faults them afresh. The GPT-2 124M B4xT64 training step turns over about 0.9 GB
//! of large buffers in f32, and between 1.5 and 2 GB with bf16 autocast (bf16 copies of
//! the weights and their gradients besides the f32 ones): on the AMD EPYC (Zen 4) a
//! 1024 MB cache left the bf16 step at 80K page faults (315 MB) and 0.95 s a step, 2048
//! MB at none and 0.76-0.85 s, with the same 3.36 GB peak. The peak comes at the end of
//! the backward pass, when the weights, gradients and AdamW moments are all live, so a
//! cache that only ever holds one step's turnover does not raise it.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, OnceLock};

use crate::aligned::AlignedVec;
use crate::storage::CpuElement;

/// Smaller buffers come from the allocator's own free lists, which already reuse them.
pub const MIN_POOLED_BYTES: usize = 256 * 1024;

type Key = (TypeId, usize);
/// A cached `Vec<T>` with the serial number of its caching.
type Cached = (u64, Box<dyn Any + Send>);

struct Pool {
    free: HashMap<Key, Vec<Cached>>,
    /// Keys a kernel has asked for. Only their buffers are kept: a buffer of any other
    /// size could only be reused by a request nothing has made yet, such as the f64
    /// draws that parameter initialisation casts to f32, which would otherwise sit in
    /// the cache through the first steps (a gigabyte for GPT-2).
    wanted: HashSet<Key>,
    /// Cached buffers oldest first, as (serial, key, bytes); entries whose buffer was
    /// taken are skipped when evicting.
    order: VecDeque<(u64, Key, usize)>,
    serial: u64,
    bytes: usize,
    limit: usize,
}

impl Pool {
    /// Frees the oldest cached buffers until `bytes` more fit under the limit.
    fn make_room(&mut self, bytes: usize) {
        while self.bytes + bytes > self.limit {
            let Some((serial, key, size)) = self.order.pop_front() else {
                return;
            };
            if let Some(list) = self.free.get_mut(&key) {
                if let Some(i) = list.iter().position(|(s, _)| *s == serial) {
                    list.swap_remove(i);
                    self.bytes -= size;
                }
            }
        }
    }
}

fn pool() -> &'static Mutex<Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mb = std::env::var("RG_CPU_POOL_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(2048);
        Mutex::new(Pool {
            free: HashMap::new(),
            wanted: HashSet::new(),
            order: VecDeque::new(),
            serial: 0,
            bytes: 0,
            limit: mb.saturating_mul(1 << 20),
        })
    })
}

fn bytes_of<T>(len: usize) -> usize {
    len.saturating_mul(std::mem::size_of::<T>())
}

/// A recycled buffer with room for `len` elements (holding old values, as many as it
/// held when it was cached), if one is cached.
fn take<T: CpuElement>(len: usize) -> Option<AlignedVec<T>> {
    if bytes_of::<T>(len) < MIN_POOLED_BYTES {
        return None;
    }
    let mut pool = pool().lock().unwrap_or_else(|p| p.into_inner());
    let key = (TypeId::of::<T>(), len);
    pool.wanted.insert(key);
    let (_, boxed) = pool.free.get_mut(&key)?.pop()?;
    pool.bytes -= bytes_of::<T>(len);
    boxed.downcast::<AlignedVec<T>>().ok().map(|v| *v)
}

/// `len` zeros.
pub fn zeroed<T: CpuElement>(len: usize) -> AlignedVec<T> {
    sized(len, false)
}

/// `len` elements of no particular value (a recycled buffer's old contents, or zeros),
/// for a kernel that writes every element: it skips the pass `zeroed` makes over a
/// recycled buffer, a full extra write of every op's output.
pub fn for_overwrite<T: CpuElement>(len: usize) -> AlignedVec<T> {
    sized(len, true)
}

/// `len` elements from the cache (keeping its old values when `keep_old`; any missing
/// tail becomes zeros), or `len` fresh zeros.
fn sized<T: CpuElement>(len: usize, keep_old: bool) -> AlignedVec<T> {
    let Some(mut v) = take::<T>(len) else {
        return AlignedVec::filled(len, T::zeroed());
    };
    if !keep_old {
        v.clear();
    }
    v.resize(len, T::zeroed());
    v
}

/// An empty buffer with room for `len` elements.
pub fn with_capacity<T: CpuElement>(len: usize) -> AlignedVec<T> {
    let mut v = take::<T>(len).unwrap_or_else(|| AlignedVec::uninit(len, T::zeroed()));
    v.clear();
    v
}

/// Keeps `v` for reuse (filed under the length it was made for, whatever it holds now)
/// if it is large, line-aligned (made here, not wrapped from a caller's `Vec`), of a
/// size that has been asked for, and the cache has room; frees it otherwise.
pub fn recycle<T: CpuElement>(v: AlignedVec<T>) {
    let len = v.made_for();
    let bytes = bytes_of::<T>(len);
    if bytes < MIN_POOLED_BYTES || !v.is_aligned() {
        return;
    }
    let key = (TypeId::of::<T>(), len);
    let mut pool = pool().lock().unwrap_or_else(|p| p.into_inner());
    if bytes > pool.limit || !pool.wanted.contains(&key) {
        return;
    }
    pool.make_room(bytes);
    pool.bytes += bytes;
    pool.serial += 1;
    let serial = pool.serial;
    pool.order.push_back((serial, key, bytes));
    pool.free
        .entry(key)
        .or_default()
        .push((serial, Box::new(v)));
}

/// Bytes currently cached.
pub fn cached_bytes() -> usize {
    pool().lock().unwrap_or_else(|p| p.into_inner()).bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_come_back_zeroed_and_sized() {
        let n = MIN_POOLED_BYTES; // f32: 4x the threshold
        let mut v = zeroed::<f32>(n);
        v.iter_mut().for_each(|x| *x = 7.0);
        let ptr = v.as_ptr();
        recycle(v);
        let w = zeroed::<f32>(n);
        assert_eq!(w.len(), n);
        assert!(w.iter().all(|&x| x == 0.0) && w.is_aligned());
        // Same allocation reused (no other test in this process uses this length).
        assert_eq!(w.as_ptr(), ptr);
        // Another element type of the same length is not handed this buffer.
        let u = zeroed::<u32>(n);
        assert_ne!(u.as_ptr() as usize, ptr as usize);
        // Small buffers are never cached.
        recycle(AlignedVec::filled(8, 1.0f32));
        assert_eq!(with_capacity::<f32>(8).made_for(), 8);
    }

    #[test]
    fn buffers_for_overwriting_skip_the_zeroing_but_keep_their_length() {
        let n = MIN_POOLED_BYTES + 5; // a length no other test uses
        let mut v = for_overwrite::<f32>(n);
        assert!(v.iter().all(|&x| x == 0.0), "fresh buffers are zeros");
        v.fill(3.0);
        let ptr = v.as_ptr();
        recycle(v);
        let w = for_overwrite::<f32>(n);
        assert_eq!((w.len(), w.as_ptr()), (n, ptr));
        // `zeroed` and `with_capacity` never see old contents.
        recycle(w);
        assert!(zeroed::<f32>(n).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn only_sizes_that_were_asked_for_are_kept() {
        let n = MIN_POOLED_BYTES + 3; // a length no other test uses
        recycle(AlignedVec::filled(n, 1.0f32));
        assert!(take::<f32>(n).is_none());
        // Now that `n` was asked for, its buffers are kept.
        recycle(AlignedVec::filled(n, 1.0f32));
        assert_eq!(take::<f32>(n).map(|v| v.made_for()), Some(n));
        // A caller's `Vec` wrapped as it is usually starts mid-line (the allocator
        // aligns to 16 bytes); kernels would then get a misaligned buffer, so it is
        // kept only if it happens to start on a line, filed under the length its
        // capacity leaves after a line of padding.
        let vec = vec![1.0f32; n + 16];
        let on_a_line = vec.as_ptr().align_offset(crate::aligned::LINE) == 0;
        recycle(AlignedVec::from_vec(vec));
        assert_eq!(take::<f32>(n).is_some(), on_a_line);
    }

    #[test]
    fn an_emptied_buffer_is_kept_and_comes_back_full_length() {
        // As the bf16 GEMM's f32 scratch: taken empty, never filled, then cached.
        let n = MIN_POOLED_BYTES + 7; // a length no other test uses
        let mut v = with_capacity::<f32>(n);
        assert!(v.is_empty() && v.room() >= n && v.is_aligned());
        v.resize(n, 5.0);
        v.clear();
        let ptr = v.as_ptr();
        recycle(v);
        let w = for_overwrite::<f32>(n);
        assert_eq!((w.len(), w.as_ptr()), (n, ptr));
        assert!(w.iter().all(|&x| x == 0.0), "a missing tail becomes zeros");
    }
}
