//! Owned element buffers whose first element starts a 64-byte cache line.
//!
//! Why: the allocator returns 16-byte aligned memory, so a `Vec<f32>` output starts
//! mid-line. Then every 64-byte vector store of the GEMM's micro-kernel straddles two
//! lines, and where two threads write neighbouring column ranges of the same rows (the
//! two tasks of a parallel product) the line at their border is written by both, on
//! every row. Measured on 2 cores (Intel Xeon with AMX, family 6 model 167): 256 x 256
//! products took 109-111 µs from a mid-line output and 102-103 µs from a line-aligned
//! one, each task's half 98 µs alone; the nanoGPT char training step 25.3-26.5 ms
//! against 24.7-25.1.
//!
//! Rust's `Vec` cannot ask for a larger alignment than its element's, so an
//! [`AlignedVec`] is a `Vec` with up to a line of spare elements in front: its elements
//! are `vec[start..]`, `start` chosen so that they begin on a line.

use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};

/// Bytes per cache line (x86-64 and the common aarch64 cores).
pub const LINE: usize = 64;

/// A vector of `T` whose elements begin on a cache line (unless it was made from a
/// `Vec` with [`AlignedVec::from_vec`], which keeps that vector's address).
pub struct AlignedVec<T> {
    /// Holds `start` padding elements, then the elements.
    vec: Vec<T>,
    start: usize,
}

/// Elements of padding that may be needed in front.
fn pad<T>() -> usize {
    LINE.div_ceil(std::mem::size_of::<T>().max(1))
}

/// Elements to skip from `ptr` (aligned for `T`) to the next line: fewer than
/// [`pad`], as element sizes are powers of two up to a line.
fn skip<T>(ptr: *const T) -> usize {
    ptr.align_offset(LINE).min(pad::<T>())
}

/// Asks for transparent huge pages over a large fresh buffer, before its pages are
/// touched, so that they are faulted in 2 MiB at a time. Why: many distributions set
/// `/sys/kernel/mm/transparent_hugepage/enabled` to `madvise`, where only memory that
/// asks gets huge pages, and the GEMM's packing and the optimizer stream through
/// hundreds of megabytes a step, one TLB entry per 4 KiB page otherwise. GPT-2 B4xT64
/// f32 step (Intel Xeon with AMX, family 6 model 167, `madvise` mode): 736-759 ms
/// against 761-776 without, the same peak RSS; setting the mode to `always` gave
/// 749-751.
fn huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        /// Buffers from this size on ask, for the whole 2 MiB pages they span.
        const HUGE_PAGES_FROM: usize = 4 << 20;
        const HUGE_PAGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < HUGE_PAGES_FROM {
            return;
        }
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let end = (v.as_ptr() as usize + bytes) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: the range lies inside this vector's allocation; MADV_HUGEPAGE only
            // changes how the kernel backs it, never its contents. An error (a kernel
            // without THP) leaves the small pages, which is fine.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

impl<T: Copy> AlignedVec<T> {
    /// `len` copies of `value` (zeros of a primitive type come from the allocator's
    /// zeroed memory, as `vec!` gets them: fresh pages are not written twice).
    pub fn filled(len: usize, value: T) -> Self {
        let mut vec = vec![value; len + pad::<T>()];
        huge_pages(&vec);
        let start = skip(vec.as_ptr());
        vec.truncate(start + len);
        AlignedVec { vec, start }
    }

    /// Room for `len` elements, none of them initialised yet: write them through
    /// [`AlignedVec::spare`], then call [`AlignedVec::assume_init`].
    pub fn uninit(len: usize, zero: T) -> Self {
        let mut vec = Vec::with_capacity(len + pad::<T>());
        huge_pages(&vec);
        let start = skip(vec.as_ptr());
        vec.resize(start, zero);
        AlignedVec { vec, start }
    }

    /// A copy of `src`, written once (no zeroing pass first).
    pub fn copied(src: &[T]) -> Self {
        let Some(&first) = src.first() else {
            return AlignedVec::default();
        };
        let mut out = AlignedVec::uninit(src.len(), first);
        // Within the room `uninit` made, so the elements do not move.
        out.vec.extend_from_slice(src);
        out
    }

    /// Drops the elements, keeping the room (and the alignment) for as many again.
    pub fn clear(&mut self) {
        self.vec.truncate(self.start);
    }

    /// Sets the length to `len`, keeping the elements already there and appending
    /// copies of `value`. `len` must fit the room the buffer was made with.
    pub fn resize(&mut self, len: usize, value: T) {
        debug_assert!(self.start + len <= self.vec.capacity(), "no room to grow");
        self.vec.resize(self.start + len, value);
    }

    /// The room after the elements, `len` of it.
    pub fn spare(&mut self, len: usize) -> &mut [MaybeUninit<T>] {
        &mut self.vec.spare_capacity_mut()[..len]
    }

    /// Marks the first `len` elements of [`AlignedVec::spare`] (of an empty buffer) as
    /// written.
    ///
    /// # Safety
    /// The buffer must be empty and all of `spare(len)` written.
    pub unsafe fn assume_init(&mut self, len: usize) {
        debug_assert!(self.vec.len() == self.start && len <= self.room());
        // SAFETY: the padding and the `len` elements after it are initialised.
        unsafe { self.vec.set_len(self.start + len) };
    }

    /// How many elements fit without moving.
    pub fn room(&self) -> usize {
        self.vec.capacity() - self.start
    }

    /// The length this buffer was made for (`filled`, `uninit`), whatever it holds
    /// now: [`AlignedVec::room`] is at least this, wherever the line fell.
    pub fn made_for(&self) -> usize {
        self.vec.capacity().saturating_sub(pad::<T>())
    }
}

impl<T> AlignedVec<T> {
    /// Wraps `vec` as it is (no copy, so its address and alignment stay).
    pub fn from_vec(vec: Vec<T>) -> Self {
        AlignedVec { vec, start: 0 }
    }

    /// Whether the first element starts a cache line.
    pub fn is_aligned(&self) -> bool {
        self.as_ptr().align_offset(LINE) == 0
    }

    /// The elements as a `Vec` (no copy when there is no padding).
    pub fn into_vec(mut self) -> Vec<T> {
        self.vec.drain(..self.start);
        self.vec
    }
}

impl<T> Default for AlignedVec<T> {
    fn default() -> Self {
        AlignedVec::from_vec(Vec::new())
    }
}

impl<T> From<Vec<T>> for AlignedVec<T> {
    fn from(vec: Vec<T>) -> Self {
        AlignedVec::from_vec(vec)
    }
}

impl<T> Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.vec[self.start..]
    }
}

impl<T> DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.vec[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_start_on_a_line_whatever_the_allocator_returns() {
        for len in [1, 15, 16, 1000, 70_000] {
            let z = AlignedVec::filled(len, 0.0f32);
            assert!(z.is_aligned() && z.len() == len && z.iter().all(|&x| x == 0.0));
            let h = AlignedVec::filled(len, half::bf16::ONE);
            assert!(h.is_aligned() && h.len() == len && h.iter().all(|&x| x == half::bf16::ONE));
            let mut u = AlignedVec::uninit(len, 0.0f64);
            assert!(u.is_empty() && u.room() >= len);
            u.spare(len).iter_mut().for_each(|x| {
                x.write(2.0);
            });
            // SAFETY: all `len` spare elements were written.
            unsafe { u.assume_init(len) };
            assert!(u.is_aligned() && u.len() == len && u.iter().all(|&x| x == 2.0));
            assert_eq!(u.into_vec(), vec![2.0; len]);
        }
    }

    #[test]
    fn a_copy_is_aligned_and_equal() {
        let src: Vec<u32> = (0..100_000).collect();
        let c = AlignedVec::copied(&src);
        assert!(c.is_aligned() && c[..] == src[..]);
        assert!(AlignedVec::<f32>::copied(&[]).is_empty());
    }

    #[test]
    fn clearing_and_resizing_keep_the_address() {
        let mut v = AlignedVec::filled(100, 1u32);
        let ptr = v.as_ptr();
        v.clear();
        assert!(v.is_empty());
        v.resize(100, 7);
        assert_eq!((v.as_ptr(), v.len(), v[99]), (ptr, 100, 7));
    }

    #[test]
    fn a_wrapped_vec_keeps_its_address() {
        let vec = vec![1.0f32, 2.0, 3.0];
        let ptr = vec.as_ptr();
        let v = AlignedVec::from_vec(vec);
        assert_eq!((v.as_ptr(), &v[..]), (ptr, &[1.0, 2.0, 3.0][..]));
        let back = v.into_vec();
        assert_eq!(back.as_ptr(), ptr);
    }
}
