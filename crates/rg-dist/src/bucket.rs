use rg_core::Tensor;

use crate::communicator::{host_f32, write_back};
use crate::{Communicator, ReduceOp, Result};

/// About 25 MB per bucket, as PyTorch DDP: large enough that the per-call latency of
/// a collective is amortised, small enough that a step issues several (so the first
/// can overlap with the backward pass where a backend allows).
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Tensors of at least this many bytes are reduced on their own: one call of 1 MB
/// already amortises the latency (tens of µs against hundreds), and reducing the
/// tensor's own memory in place avoids copying it into a bucket and back, two passes
/// over the gradient that cost more than a third of the all-reduce itself.
pub const ALONE_BYTES: usize = 1024 * 1024;

/// All-reduces a list of tensors (gradients) in buckets, in the order given (callers
/// pass gradients in reverse-layer order, the order backward produces them). A tensor
/// of at least `min(bucket, 1 MB)` is its own bucket and is reduced in place in its
/// storage (contiguous host f32; others go through the copy path). Runs of smaller
/// tensors are packed into one flat buffer of up to `bucket_bytes`, reduced in place
/// there and copied back. The buffer is kept between calls, so a training step
/// allocates nothing here.
pub struct BucketedAllReduce {
    bucket_elems: usize,
    alone_elems: usize,
    flat: Vec<f32>,
}

impl BucketedAllReduce {
    pub fn new(bucket_bytes: usize) -> Self {
        let bucket_elems = (bucket_bytes / std::mem::size_of::<f32>()).max(1);
        BucketedAllReduce {
            bucket_elems,
            alone_elems: bucket_elems.min(ALONE_BYTES / std::mem::size_of::<f32>()),
            flat: Vec::new(),
        }
    }

    /// Reduces every tensor in place; returns how many buckets (collective calls) it
    /// took.
    pub fn all_reduce(
        &mut self,
        comm: &dyn Communicator,
        tensors: &[Tensor],
        op: ReduceOp,
    ) -> Result<usize> {
        let mut buckets = 0;
        let mut start = 0;
        while start < tensors.len() {
            if tensors[start].elem_count() >= self.alone_elems {
                self.reduce_alone(comm, &tensors[start], op)?;
                start += 1;
            } else {
                let mut end = start;
                let mut elems = 0;
                while end < tensors.len()
                    && tensors[end].elem_count() < self.alone_elems
                    && (end == start || elems + tensors[end].elem_count() <= self.bucket_elems)
                {
                    elems += tensors[end].elem_count();
                    end += 1;
                }
                self.reduce_packed(comm, &tensors[start..end], elems, op)?;
                start = end;
            }
            buckets += 1;
        }
        Ok(buckets)
    }

    fn reduce_alone(
        &mut self,
        comm: &dyn Communicator,
        tensor: &Tensor,
        op: ReduceOp,
    ) -> Result<()> {
        match tensor.with_host_f32_mut(|buf| comm.all_reduce_f32_in_place(buf, op)) {
            Some(done) => done,
            None => self.reduce_packed(comm, std::slice::from_ref(tensor), tensor.elem_count(), op),
        }
    }

    fn reduce_packed(
        &mut self,
        comm: &dyn Communicator,
        tensors: &[Tensor],
        elems: usize,
        op: ReduceOp,
    ) -> Result<()> {
        self.flat.resize(elems, 0.0);
        let mut offset = 0;
        for t in tensors {
            let dst = &mut self.flat[offset..offset + t.elem_count()];
            if t.with_host_f32_mut(|src| dst.copy_from_slice(src))
                .is_none()
            {
                dst.copy_from_slice(&host_f32("all_reduce", t)?);
            }
            offset += t.elem_count();
        }
        comm.all_reduce_f32_in_place(&mut self.flat, op)?;
        let mut offset = 0;
        for t in tensors {
            let src = &self.flat[offset..offset + t.elem_count()];
            if t.with_host_f32_mut(|dst| dst.copy_from_slice(src))
                .is_none()
            {
                write_back(t, src)?;
            }
            offset += t.elem_count();
        }
        Ok(())
    }
}

impl Default for BucketedAllReduce {
    fn default() -> Self {
        BucketedAllReduce::new(DEFAULT_BUCKET_BYTES)
    }
}
