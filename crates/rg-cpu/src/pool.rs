//! A cache of large freed buffers, so that a training loop, which allocates the same
//! sizes every step, reuses memory instead of asking the OS for it again.
//!
//! Why: the allocator hands buffers above 32 MiB (glibc's largest mmap threshold)
//! straight to `mmap` and returns them with `munmap`, so each step of GPT-2 training
//! page-faulted about 2 GB of fresh zero pages — a third of the step's CPU time was the
//! kernel's. Owned storage of at least [`MIN_POOLED_BYTES`] goes back here when dropped
//! (see `CpuBuffer`'s `Drop`), keyed by element type and exact length; kernels take
//! their outputs from here through [`zeroed`] and [`with_capacity`].
//!
//! The cache holds at most `RG_CPU_POOL_MB` megabytes (default 1024; 0 turns it off),
//! freeing its oldest buffers to make room for new ones. The default trades memory for
//! speed: on the GPT-2 124M B4xT64 training step (quiet machine) 1024 MB gives 1.37 s
//! per step and a 2.85 GB peak with no page faults after the first step; 512 MB gives
//! 1.65 s and 2.58 GB, because a cache smaller than one step's turnover evicts every
//! large buffer before its size comes round again.

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use crate::storage::CpuElement;

/// Smaller buffers come from the allocator's own free lists, which already reuse them.
pub const MIN_POOLED_BYTES: usize = 256 * 1024;

type Key = (TypeId, usize);
/// A cached `Vec<T>` with the serial number of its caching.
type Cached = (u64, Box<dyn Any + Send>);

struct Pool {
    free: HashMap<Key, Vec<Cached>>,
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
            .unwrap_or(1024);
        Mutex::new(Pool {
            free: HashMap::new(),
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

/// A recycled vector with capacity exactly `len` and length 0, if one is cached.
fn take<T: CpuElement>(len: usize) -> Option<Vec<T>> {
    if bytes_of::<T>(len) < MIN_POOLED_BYTES {
        return None;
    }
    let mut pool = pool().lock().unwrap_or_else(|p| p.into_inner());
    let (_, boxed) = pool.free.get_mut(&(TypeId::of::<T>(), len))?.pop()?;
    pool.bytes -= bytes_of::<T>(len);
    let mut v = *boxed.downcast::<Vec<T>>().ok()?;
    v.clear();
    Some(v)
}

/// `len` zeros.
pub fn zeroed<T: CpuElement>(len: usize) -> Vec<T> {
    match take::<T>(len) {
        Some(mut v) => {
            v.resize(len, T::zeroed());
            v
        }
        None => vec![T::zeroed(); len],
    }
}

/// An empty vector with room for `len` elements.
pub fn with_capacity<T: CpuElement>(len: usize) -> Vec<T> {
    take::<T>(len).unwrap_or_else(|| Vec::with_capacity(len))
}

/// Keeps `v` for reuse if it is large and the cache has room; frees it otherwise.
pub fn recycle<T: CpuElement>(v: Vec<T>) {
    let bytes = bytes_of::<T>(v.capacity());
    if bytes < MIN_POOLED_BYTES {
        return;
    }
    let mut pool = pool().lock().unwrap_or_else(|p| p.into_inner());
    if bytes > pool.limit {
        return;
    }
    pool.make_room(bytes);
    pool.bytes += bytes;
    pool.serial += 1;
    let (serial, key) = (pool.serial, (TypeId::of::<T>(), v.capacity()));
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
        assert!(w.iter().all(|&x| x == 0.0));
        // Same allocation reused (no other test in this process uses this length).
        assert_eq!(w.as_ptr(), ptr);
        // Another element type of the same length is not handed this buffer.
        let u = zeroed::<u32>(n);
        assert_ne!(u.as_ptr() as usize, ptr as usize);
        // Small buffers are never cached.
        recycle(vec![1.0f32; 8]);
        assert_eq!(with_capacity::<f32>(8).capacity(), 8);
    }
}
