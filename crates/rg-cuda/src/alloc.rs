//! The caching device allocator.
//!
//! `cuMemAlloc`/`cuMemFree` are slow and synchronise the device, so device memory is
//! never returned to the driver while the backend lives: a freed buffer goes onto a
//! free list for its size bucket and the next request of that bucket takes it back.
//! All work runs on one stream per device, in order, so a buffer freed on the host
//! while kernels that read it are still queued can be handed out again at once: the
//! next kernel writing it is queued behind them.
//!
//! Buckets: requests round up to a power of two below 1 MiB (at least 512 bytes, the
//! alignment every dtype and vector load needs), and to a multiple of 1/8 of the
//! enclosing power of two above (at most 12.5% slack). When the driver runs out of
//! memory the cached blocks are released and the request retried once.
//!
//! Poisoning: with `RG_CUDA_POISON=1` (or [`crate::CudaBackend::set_poison`]) every
//! buffer handed out is first filled with 0xFF bytes (NaN in every float dtype), so a
//! kernel that leaves elements unwritten shows in tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Raw device memory: the driver, or a fake in tests.
pub trait RawMemory: Send + Sync {
    /// A fresh block of `bytes`, or the driver's error text.
    fn alloc(&self, bytes: usize) -> Result<u64, String>;
    fn free(&self, ptr: u64);
}

/// The bucket (allocation size) a request of `bytes` uses; 0 for 0.
pub fn bucket(bytes: usize) -> usize {
    const MIN: usize = 512;
    const SMALL: usize = 1 << 20;
    if bytes == 0 {
        return 0;
    }
    if bytes <= SMALL {
        return bytes.next_power_of_two().max(MIN);
    }
    let pow = bytes.next_power_of_two();
    let step = pow / 16; // 1/8 of the previous power of two
    bytes.div_ceil(step) * step
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes in buffers handed out and not yet returned.
    pub in_use: usize,
    /// Bytes on the free lists.
    pub cached: usize,
    /// Blocks obtained from the driver so far.
    pub driver_allocs: usize,
}

#[derive(Default)]
struct State {
    free: HashMap<usize, Vec<u64>>,
    stats: PoolStats,
}

pub struct Pool {
    raw: Box<dyn RawMemory>,
    state: Mutex<State>,
    poison: AtomicBool,
}

impl Pool {
    pub fn new(raw: Box<dyn RawMemory>, poison: bool) -> Arc<Pool> {
        Arc::new(Pool {
            raw,
            state: Mutex::new(State::default()),
            poison: AtomicBool::new(poison),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn poison(&self) -> bool {
        self.poison.load(Ordering::Relaxed)
    }

    pub fn set_poison(&self, on: bool) {
        self.poison.store(on, Ordering::Relaxed);
    }

    /// A block of at least `bytes`: `(pointer, bucket size)`. A cached block of the
    /// bucket if there is one, else a new one from the driver (after releasing the
    /// cache once if the driver is out of memory).
    pub fn take(&self, bytes: usize) -> Result<(u64, usize), String> {
        let size = bucket(bytes);
        if size == 0 {
            return Ok((0, 0));
        }
        {
            let mut st = self.state();
            if let Some(ptr) = st.free.get_mut(&size).and_then(Vec::pop) {
                st.stats.cached -= size;
                st.stats.in_use += size;
                return Ok((ptr, size));
            }
        }
        let ptr = match self.raw.alloc(size) {
            Ok(p) => p,
            Err(_) => {
                self.release_cached();
                self.raw.alloc(size).map_err(|e| {
                    format!(
                        "allocating {size} bytes ({} in use): {e}",
                        self.stats().in_use
                    )
                })?
            }
        };
        let mut st = self.state();
        st.stats.in_use += size;
        st.stats.driver_allocs += 1;
        Ok((ptr, size))
    }

    /// Returns a block taken with [`Pool::take`] to its bucket's free list.
    pub fn give_back(&self, ptr: u64, size: usize) {
        if size == 0 {
            return;
        }
        let mut st = self.state();
        st.stats.in_use -= size;
        st.stats.cached += size;
        st.free.entry(size).or_default().push(ptr);
    }

    /// Frees every cached block back to the driver.
    pub fn release_cached(&self) {
        let blocks: Vec<u64> = {
            let mut st = self.state();
            st.stats.cached = 0;
            st.free.drain().flat_map(|(_, v)| v).collect()
        };
        for p in blocks {
            self.raw.free(p);
        }
    }

    pub fn stats(&self) -> PoolStats {
        self.state().stats
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.release_cached();
    }
}

/// Device memory owned by a tensor: returned to its pool on drop.
pub struct DeviceBuffer {
    ptr: u64,
    size: usize,
    pool: Arc<Pool>,
}

impl DeviceBuffer {
    pub fn new(pool: &Arc<Pool>, bytes: usize) -> Result<Self, String> {
        let (ptr, size) = pool.take(bytes)?;
        Ok(DeviceBuffer {
            ptr,
            size,
            pool: pool.clone(),
        })
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        self.pool.give_back(self.ptr, self.size);
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({:#x}, {} bytes)", self.ptr, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Hands out increasing fake addresses; fails beyond `limit` live bytes.
    struct Fake {
        next: AtomicU64,
        live: Mutex<HashMap<u64, usize>>,
        limit: usize,
        frees: AtomicU64,
    }

    impl Fake {
        fn new(limit: usize) -> Arc<Fake> {
            Arc::new(Fake {
                next: AtomicU64::new(0x1000),
                live: Mutex::default(),
                limit,
                frees: AtomicU64::new(0),
            })
        }
    }

    impl RawMemory for Arc<Fake> {
        fn alloc(&self, bytes: usize) -> Result<u64, String> {
            let mut live = self.live.lock().unwrap();
            if live.values().sum::<usize>() + bytes > self.limit {
                return Err("CUDA_ERROR_OUT_OF_MEMORY".into());
            }
            let p = self.next.fetch_add(bytes as u64, Ordering::Relaxed);
            live.insert(p, bytes);
            Ok(p)
        }
        fn free(&self, ptr: u64) {
            self.live
                .lock()
                .unwrap()
                .remove(&ptr)
                .expect("freed a pointer never allocated");
            self.frees.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn buckets_round_up_with_bounded_slack() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 512);
        assert_eq!(bucket(512), 512);
        assert_eq!(bucket(513), 1024);
        assert_eq!(bucket(1 << 20), 1 << 20);
        assert_eq!(bucket((1 << 20) + 1), (1 << 20) + (1 << 17));
        for bytes in [3_000_000usize, 50_257 * 768 * 4, 123_456_789] {
            let b = bucket(bytes);
            assert!(b >= bytes && (b - bytes) * 8 <= bytes, "{bytes} -> {b}");
            assert_eq!(bucket(b), b, "a bucket is its own bucket");
        }
    }

    #[test]
    fn freed_buffers_are_reused_without_the_driver() {
        let fake = Fake::new(1 << 30);
        let pool = Pool::new(Box::new(fake.clone()), false);
        let a = DeviceBuffer::new(&pool, 1000).unwrap();
        let pa = a.ptr();
        drop(a);
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 0,
                cached: 1024,
                driver_allocs: 1
            }
        );
        let b = DeviceBuffer::new(&pool, 700).unwrap();
        assert_eq!(b.ptr(), pa, "same bucket, same block");
        let c = DeviceBuffer::new(&pool, 700).unwrap();
        assert_ne!(c.ptr(), pa);
        assert_eq!(pool.stats().driver_allocs, 2);
        let empty = DeviceBuffer::new(&pool, 0).unwrap();
        assert_eq!(empty.ptr(), 0);
        drop((b, c, empty));
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 0,
                cached: 2048,
                driver_allocs: 2
            }
        );
        drop(pool);
        assert_eq!(
            fake.frees.load(Ordering::Relaxed),
            2,
            "the pool frees its cache when dropped"
        );
    }

    #[test]
    fn out_of_memory_releases_the_cache_and_retries() {
        let fake = Fake::new(4096);
        let pool = Pool::new(Box::new(fake.clone()), false);
        let a = DeviceBuffer::new(&pool, 2048).unwrap();
        drop(a); // 2048 cached
        let b = DeviceBuffer::new(&pool, 4000).unwrap(); // bucket 4096: needs the cache freed
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 4096,
                cached: 0,
                driver_allocs: 2
            }
        );
        let err = DeviceBuffer::new(&pool, 1).unwrap_err();
        assert!(
            err.contains("OUT_OF_MEMORY") && err.contains("512 bytes"),
            "{err}"
        );
        drop(b);
    }
}
