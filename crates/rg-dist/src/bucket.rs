use rg_core::Tensor;

use crate::communicator::{host_f32, write_back};
use crate::{Communicator, ReduceOp, Result};

/// About 25 MB per bucket, as PyTorch DDP: large enough that the per-call latency of
/// a collective is amortised, small enough that a step issues several (so the first
/// can overlap with the backward pass where a backend allows).
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// All-reduces a list of tensors (gradients) in buckets: tensors are packed in the
/// order given into flat buffers of about `bucket_bytes`, each reduced with one call.
/// Callers pass gradients in reverse-layer order, the order backward produces them.
/// The buffers are kept between calls, so a training step allocates nothing here.
pub struct BucketedAllReduce {
    bucket_elems: usize,
    send: Vec<f32>,
    recv: Vec<f32>,
}

impl BucketedAllReduce {
    pub fn new(bucket_bytes: usize) -> Self {
        BucketedAllReduce {
            bucket_elems: (bucket_bytes / std::mem::size_of::<f32>()).max(1),
            send: Vec::new(),
            recv: Vec::new(),
        }
    }

    /// Reduces every tensor in place; returns how many buckets (collective calls) it
    /// took. A tensor larger than a bucket travels alone.
    pub fn all_reduce(
        &mut self,
        comm: &dyn Communicator,
        tensors: &[Tensor],
        op: ReduceOp,
    ) -> Result<usize> {
        let mut buckets = 0;
        let mut start = 0;
        while start < tensors.len() {
            let mut end = start;
            let mut elems = 0;
            while end < tensors.len()
                && (end == start || elems + tensors[end].elem_count() <= self.bucket_elems)
            {
                elems += tensors[end].elem_count();
                end += 1;
            }
            self.reduce_bucket(comm, &tensors[start..end], elems, op)?;
            buckets += 1;
            start = end;
        }
        Ok(buckets)
    }

    fn reduce_bucket(
        &mut self,
        comm: &dyn Communicator,
        tensors: &[Tensor],
        elems: usize,
        op: ReduceOp,
    ) -> Result<()> {
        self.send.clear();
        for t in tensors {
            self.send.extend_from_slice(&host_f32("all_reduce", t)?);
        }
        self.recv.resize(elems, 0.0);
        comm.all_reduce_f32(&self.send, &mut self.recv, op)?;
        let mut offset = 0;
        for t in tensors {
            let n = t.elem_count();
            write_back(t, &self.recv[offset..offset + n])?;
            offset += n;
        }
        Ok(())
    }
}

impl Default for BucketedAllReduce {
    fn default() -> Self {
        BucketedAllReduce::new(DEFAULT_BUCKET_BYTES)
    }
}
