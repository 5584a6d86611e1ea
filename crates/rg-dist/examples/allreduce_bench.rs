//! Under `mpirun -n N`: the bucketed all-reduce of GPT-2 124M's gradients (its 148
//! tensors, 124.4M floats) against one raw `MPI_Allreduce` of a buffer of the same
//! size, in the same run, best of `RG_BENCH_REPS` (default 5). Rank 0 prints one JSON
//! line. Bandwidth is the ring algorithm's: 2(N-1)/N of the bytes per rank.

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::CommunicatorCollectives;
use rg_core::{Device, Tensor};
use rg_cpu as _;
use rg_dist::{BucketedAllReduce, ReduceOp};

/// GPT-2 124M parameter sizes (embeddings, 12 blocks, final norm).
fn gpt2_sizes() -> Vec<usize> {
    let c = 768;
    let mut sizes = vec![50257 * c, 1024 * c];
    for _ in 0..12 {
        sizes.extend([
            c,
            c,
            c * 3 * c,
            3 * c,
            c * c,
            c,
            c,
            c,
            c * 4 * c,
            4 * c,
            4 * c * c,
            c,
        ]);
    }
    sizes.extend([c, c]);
    sizes
}

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let comm = rg_dist::MpiCommunicator::init().expect("joining the MPI world");
    let reps: usize = std::env::var("RG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let sizes = gpt2_sizes();
    let total: usize = sizes.iter().sum();
    let world = rg_dist::Communicator::world_size(&comm);
    let rank = rg_dist::Communicator::rank(&comm);

    let send = vec![1.0f32; total];
    let mut recv = vec![0f32; total];
    let raw_world = mpi::topology::SimpleCommunicator::world();
    let raw = best_of(reps, || {
        raw_world.barrier();
        raw_world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
    });
    drop((send, recv));

    let grads: Vec<Tensor> = sizes
        .iter()
        .rev()
        .map(|&n| Tensor::from_vec(vec![1.0f32; n], [n], &Device::Cpu).unwrap())
        .collect();
    let mut bucketed = BucketedAllReduce::default();
    let mut buckets = 0;
    let ours = best_of(reps, || {
        raw_world.barrier();
        buckets = bucketed
            .all_reduce(&comm, &grads, ReduceOp::Avg)
            .expect("bucketed all-reduce");
    });
    if rank == 0 {
        let bytes = (total * 4) as f64;
        let ring = 2.0 * (world - 1) as f64 / world as f64 * bytes;
        println!(
            "{{\"world\":{world},\"floats\":{total},\"buckets\":{buckets},\"raw_s\":{raw:.4},\"bucketed_s\":{ours:.4},\"ratio_raw_over_bucketed\":{:.3},\"raw_bus_gb_s\":{:.2},\"bucketed_bus_gb_s\":{:.2}}}",
            raw / ours,
            ring / raw / 1e9,
            ring / ours / 1e9
        );
    }
}
