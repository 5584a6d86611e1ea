//! Averaging gradients across data-parallel ranks, overlapped with the backward pass.
//!
//! Backward hands over each parameter's gradient the moment it is complete (the last
//! layers' first); a thread of the step sends them through the bucketed all-reduce
//! while the main thread goes on with the earlier layers, as PyTorch DDP's reducer
//! does. Which calls are made, and in what order, depends only on the parameters'
//! sizes, so the result is bit for bit that of exchanging after the backward pass.

use std::collections::HashMap;
use std::sync::mpsc;

use rg_autograd::{Gradients, Var, VarId};
use rg_core::Tensor;
use rg_dist::{BucketedAllReduce, Communicator, ExchangeReport, ReduceOp, SingleProcess};
use serde::Serialize;
use web_time::Instant;

use crate::{GptError, Result};

/// How long one step's exchange took, and how much of that the backward pass did not
/// hide.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExchangeTimes {
    /// Time inside the collectives.
    pub exchange_s: f64,
    /// Of that, the time the step waited for the exchange after its backward pass.
    pub exchange_exposed_s: f64,
    pub buckets: usize,
}

pub(crate) struct GradExchange {
    bucketer: BucketedAllReduce,
    /// Each parameter's position in the exchange: reverse parameter order, the order
    /// backward completes them in.
    positions: HashMap<VarId, usize>,
    sizes: Vec<usize>,
    overlap: bool,
}

impl GradExchange {
    pub(crate) fn new(params: &[Var]) -> Self {
        let positions = params
            .iter()
            .rev()
            .enumerate()
            .map(|(position, p)| (p.id(), position))
            .collect();
        GradExchange {
            bucketer: BucketedAllReduce::default(),
            positions,
            sizes: params.iter().rev().map(Var::elem_count).collect(),
            overlap: true,
        }
    }

    /// ZeRO: `owners[i]` updates parameter `i`, so its gradient need only reach that
    /// rank.
    pub(crate) fn set_owners(&mut self, owners: &[usize]) {
        self.bucketer
            .set_owners(Some(owners.iter().rev().copied().collect()));
    }

    /// Off: exchange only after the whole backward pass (to measure what overlapping
    /// hides).
    pub(crate) fn set_overlap(&mut self, overlap: bool) {
        self.overlap = overlap;
    }

    /// Runs backward from `loss`, adds its gradients to `grads` (earlier micro-batches'
    /// sums) and sums the totals over the ranks of `comm`. The average is the caller's
    /// to take: dividing by the world size inside the exchange is one more pass over
    /// every gradient, where the optimizer's gradient scale does it for free.
    pub(crate) fn backward_and_sum(
        &mut self,
        comm: &mut Box<dyn Communicator>,
        loss: &Var,
        grads: &mut Gradients,
        params: &[Var],
    ) -> Result<ExchangeTimes> {
        if !self.overlap {
            grads.accumulate_all(loss.backward()?)?;
            let tensors = self.in_exchange_order(grads, params)?;
            let report =
                self.bucketer
                    .all_reduce_all_ready(comm.as_ref(), &tensors, ReduceOp::Sum)?;
            return Ok(times(report, report.busy.as_secs_f64()));
        }
        let seed = Tensor::ones(loss.shape().clone(), loss.dtype(), &loss.device())?;
        // The communicator moves to the exchange thread and back: MPI is initialised
        // for one thread at a time, and the main thread makes no calls meanwhile.
        let owned = std::mem::replace(comm, Box::new(SingleProcess));
        let (bucketer, positions, sizes) = (&mut self.bucketer, &self.positions, &self.sizes);
        let (returned, exchanged, backward, exposed) = std::thread::scope(|scope| {
            let (send, ready) = mpsc::channel();
            let worker = scope.spawn(move || {
                let report =
                    bucketer.all_reduce_as_ready(owned.as_ref(), sizes, ready, ReduceOp::Sum);
                (owned, report)
            });
            let backward = loss.backward_streaming(seed, &mut |leaf, grad| {
                let total = match grads.remove(leaf) {
                    Some(earlier) => earlier.add_into(&grad)?,
                    None => grad,
                };
                // Reduced in place while the walk goes on: it must not share storage
                // with a gradient the walk still reads.
                let total = if total.is_sole_handle() {
                    total
                } else {
                    total.copy()?
                };
                grads.insert(leaf, total.clone());
                if let Some(&position) = positions.get(&leaf.id()) {
                    // A closed channel means the exchange failed; its error is the one
                    // reported below.
                    let _ = send.send((position, total));
                }
                Ok(())
            });
            drop(send);
            let waiting = Instant::now();
            let (returned, exchanged) = match worker.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (
                returned,
                exchanged,
                backward,
                waiting.elapsed().as_secs_f64(),
            )
        });
        *comm = returned;
        backward?;
        let report = exchanged?;
        Ok(times(report, exposed))
    }

    fn in_exchange_order(&self, grads: &Gradients, params: &[Var]) -> Result<Vec<Tensor>> {
        params
            .iter()
            .enumerate()
            .rev()
            .map(|(i, p)| {
                grads.get(p).cloned().ok_or_else(|| {
                    GptError::setting(
                        "training",
                        format!("parameter {i} received no gradient; every rank must send one"),
                    )
                })
            })
            .collect()
    }
}

fn times(report: ExchangeReport, exposed_s: f64) -> ExchangeTimes {
    ExchangeTimes {
        exchange_s: report.busy.as_secs_f64(),
        exchange_exposed_s: exposed_s,
        buckets: report.buckets,
    }
}
