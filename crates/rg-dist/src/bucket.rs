use std::ops::Range;
use std::sync::mpsc::Receiver;

use rg_core::Tensor;
use web_time::{Duration, Instant};

use crate::communicator::{check_len, host_f32, write_back};
use crate::{Communicator, DistError, ReduceOp, Result};

/// About 25 MB per bucket, as PyTorch DDP: large enough that the per-call latency of
/// a collective is amortised, small enough that a step issues several (so the first
/// can overlap with the backward pass).
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
///
/// The buckets depend only on the tensors' sizes, so every rank issues the same calls
/// in the same order whatever order its tensors become ready in.
pub struct BucketedAllReduce {
    bucket_elems: usize,
    alone_elems: usize,
    flat: Vec<f32>,
    /// ZeRO: the rank that updates each position's tensor. A tensor reduced alone then
    /// goes to that rank only (a rooted reduce, half an all-reduce's traffic); packed
    /// buckets, whose tensors have several owners, are still all-reduced.
    owners: Option<Vec<usize>>,
}

/// One collective call: a run of positions in the list.
struct Bucket {
    tensors: Range<usize>,
    elems: usize,
    alone: bool,
}

/// What an exchange did: calls issued and the time spent inside them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExchangeReport {
    pub buckets: usize,
    pub busy: Duration,
}

impl BucketedAllReduce {
    pub fn new(bucket_bytes: usize) -> Self {
        let bucket_elems = (bucket_bytes / std::mem::size_of::<f32>()).max(1);
        BucketedAllReduce {
            bucket_elems,
            alone_elems: bucket_elems.min(ALONE_BYTES / std::mem::size_of::<f32>()),
            flat: Vec::new(),
            owners: None,
        }
    }

    /// `Some`: each tensor that travels alone is reduced to `owners[position]` only, the
    /// other ranks' copies are left unspecified; `None`: every tensor is all-reduced.
    pub fn set_owners(&mut self, owners: Option<Vec<usize>>) {
        self.owners = owners;
    }

    /// Reduces every tensor in place; returns how many buckets (collective calls) it
    /// took.
    pub fn all_reduce(
        &mut self,
        comm: &dyn Communicator,
        tensors: &[Tensor],
        op: ReduceOp,
    ) -> Result<usize> {
        Ok(self.all_reduce_all_ready(comm, tensors, op)?.buckets)
    }

    /// [`BucketedAllReduce::all_reduce`] with the time spent inside the collectives.
    pub fn all_reduce_all_ready(
        &mut self,
        comm: &dyn Communicator,
        tensors: &[Tensor],
        op: ReduceOp,
    ) -> Result<ExchangeReport> {
        let sizes: Vec<usize> = tensors.iter().map(Tensor::elem_count).collect();
        let (send, ready) = std::sync::mpsc::channel();
        for (position, t) in tensors.iter().enumerate() {
            send.send((position, t.clone()))
                .expect("the receiver is alive");
        }
        drop(send);
        self.all_reduce_as_ready(comm, &sizes, ready, op)
    }

    /// Reduces, in place, tensors that arrive on `ready` as `(position, tensor)` in any
    /// order, `sizes[position]` elements each: a bucket goes out as soon as all of its
    /// tensors are in. A training step calls this on a thread of its own while the
    /// backward pass sends each gradient the moment it is complete, so the exchange of
    /// the last layers overlaps the backward pass of the first. The caller must not
    /// touch the tensors (nor other views of their storage) until this returns.
    pub fn all_reduce_as_ready(
        &mut self,
        comm: &dyn Communicator,
        sizes: &[usize],
        ready: Receiver<(usize, Tensor)>,
        op: ReduceOp,
    ) -> Result<ExchangeReport> {
        if let Some(owners) = &self.owners {
            check_len("all_reduce", "owners", owners.len(), sizes.len())?;
        }
        let mut slots: Vec<Option<Tensor>> = vec![None; sizes.len()];
        let mut arrived = vec![false; sizes.len()];
        let mut received = 0;
        let mut report = ExchangeReport::default();
        for bucket in self.plan(sizes) {
            while let Some(missing) = bucket.tensors.clone().find(|&i| !arrived[i]) {
                let Ok((position, tensor)) = ready.recv() else {
                    return Err(DistError::invalid(
                        "all_reduce",
                        format!(
                            "the gradients stopped after {received} of {} tensors; \
                             position {missing} never arrived",
                            sizes.len()
                        ),
                    ));
                };
                check_arrival(sizes, &arrived, position, &tensor)?;
                arrived[position] = true;
                slots[position] = Some(tensor);
                received += 1;
            }
            let tensors: Vec<Tensor> = bucket
                .tensors
                .clone()
                .map(|i| slots[i].take().expect("arrived above"))
                .collect();
            let start = Instant::now();
            if bucket.alone {
                let owner = self.owners.as_ref().map(|o| o[bucket.tensors.start]);
                self.reduce_alone(comm, &tensors[0], owner, op)?;
            } else {
                self.reduce_packed(comm, &tensors, bucket.elems, op)?;
            }
            report.busy += start.elapsed();
            report.buckets += 1;
        }
        Ok(report)
    }

    /// The calls for tensors of `sizes` in this order.
    fn plan(&self, sizes: &[usize]) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        let mut start = 0;
        while start < sizes.len() {
            if sizes[start] >= self.alone_elems {
                buckets.push(Bucket {
                    tensors: start..start + 1,
                    elems: sizes[start],
                    alone: true,
                });
                start += 1;
                continue;
            }
            let mut end = start;
            let mut elems = 0;
            while end < sizes.len()
                && sizes[end] < self.alone_elems
                && (end == start || elems + sizes[end] <= self.bucket_elems)
            {
                elems += sizes[end];
                end += 1;
            }
            buckets.push(Bucket {
                tensors: start..end,
                elems,
                alone: false,
            });
            start = end;
        }
        buckets
    }

    fn reduce_alone(
        &mut self,
        comm: &dyn Communicator,
        tensor: &Tensor,
        owner: Option<usize>,
        op: ReduceOp,
    ) -> Result<()> {
        let reduced = tensor.with_host_f32_mut(|buf| match owner {
            Some(root) => comm.reduce_f32_in_place(buf, root, op),
            None => comm.all_reduce_f32_in_place(buf, op),
        });
        match reduced {
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

/// A tensor that arrives must have a position in the list, come once, and have the
/// size announced for it: otherwise the ranks' calls would no longer match.
fn check_arrival(
    sizes: &[usize],
    arrived: &[bool],
    position: usize,
    tensor: &Tensor,
) -> Result<()> {
    let Some(&want) = sizes.get(position) else {
        return Err(DistError::invalid(
            "all_reduce",
            format!(
                "a tensor arrived for position {position}, but the list has {}",
                sizes.len()
            ),
        ));
    };
    if arrived[position] {
        return Err(DistError::invalid(
            "all_reduce",
            format!("the tensor at position {position} arrived twice"),
        ));
    }
    if tensor.elem_count() != want {
        return Err(DistError::invalid(
            "all_reduce",
            format!(
                "the tensor at position {position} has {} elements, {want} were announced",
                tensor.elem_count()
            ),
        ));
    }
    Ok(())
}

impl Default for BucketedAllReduce {
    fn default() -> Self {
        BucketedAllReduce::new(DEFAULT_BUCKET_BYTES)
    }
}
