use rg_core::Tensor;

use crate::communicator::host_f32;
use crate::{Communicator, DistError, Result};

/// FNV-1a over the tensors' shapes and f32 bit patterns: equal exactly when every
/// element is bitwise equal (up to hash collisions).
pub fn hash_tensors(tensors: &[Tensor]) -> Result<u64> {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut feed = |word: u64| {
        for b in word.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(PRIME);
        }
    };
    for t in tensors {
        for &d in t.dims() {
            feed(d as u64);
        }
        for x in host_f32("hash", t)? {
            feed(x.to_bits() as u64);
        }
    }
    Ok(h)
}

/// Errors, on every rank, unless all ranks hold the same `hash` of `what`; the message
/// names the ranks that differ from rank 0.
pub fn check_same_everywhere(comm: &dyn Communicator, hash: u64, what: &str) -> Result<()> {
    let mut all = vec![0u64; comm.world_size()];
    comm.all_gather_u64(&[hash], &mut all)?;
    let differing: Vec<usize> = (1..all.len()).filter(|&r| all[r] != all[0]).collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(DistError::Mismatch(format!(
        "{what} of rank(s) {differing:?} differ from rank 0's (hashes {:016x} vs {:016x})",
        all[differing[0]], all[0]
    )))
}
