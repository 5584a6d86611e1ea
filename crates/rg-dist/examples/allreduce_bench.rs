//! Under `mpirun -n N`: the bucketed all-reduce of GPT-2 124M's gradients (its 148
//! tensors, 124.4M floats, averaged in place) against one raw `MPI_Allreduce` of a
//! buffer of the same size (separate send and receive buffers), in the same run:
//! `RG_BENCH_REPS` (default 5) repetitions of each after one untimed, alternating so that both see the
//! same load. Rank 0 prints one JSON line with every time and the best of each
//! (`cargo xtask bench` reads it). Bandwidth is the ring algorithm's: 2(N-1)/N of the
//! bytes per rank.

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

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let comm = match rg_dist::MpiCommunicator::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: joining the MPI world: {e}");
            std::process::exit(1);
        }
    };
    let reps: usize = std::env::var("RG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let sizes = gpt2_sizes();
    let total: usize = sizes.iter().sum();
    let world = rg_dist::Communicator::world_size(&comm);
    let rank = rg_dist::Communicator::rank(&comm);

    let send = vec![1.0f32; total];
    let mut recv = vec![0f32; total];
    let raw_world = mpi::topology::SimpleCommunicator::world();
    let grads: Vec<Tensor> = sizes
        .iter()
        .rev()
        .map(|&n| Tensor::from_vec(vec![1.0f32; n], [n], &Device::Cpu).unwrap())
        .collect();
    let mut bucketed = BucketedAllReduce::default();
    let mut buckets = 0;
    let (mut raw_s, mut ours_s) = (Vec::new(), Vec::new());
    // One untimed round first: the first raw call faults in the receive buffer's pages
    // (about 10x the time of the later ones).
    for rep in 0..=reps {
        raw_world.barrier();
        raw_s.push(timed(|| {
            raw_world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum())
        }));
        raw_world.barrier();
        ours_s.push(timed(|| {
            buckets = bucketed
                .all_reduce(&comm, &grads, ReduceOp::Avg)
                .expect("bucketed all-reduce");
        }));
        if rep == 0 {
            raw_s.clear();
            ours_s.clear();
        }
    }
    // Every rank holds ones, so sum = world and average = 1 (checked on a sample).
    assert!(recv.iter().step_by(4099).all(|&v| v == world as f32));
    for g in grads.iter().step_by(7) {
        assert!(g.to_vec::<f32>().unwrap().iter().all(|&v| v == 1.0));
    }
    if rank == 0 {
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (raw, ours) = (best(&raw_s), best(&ours_s));
        let bytes = (total * 4) as f64;
        let ring = 2.0 * (world - 1) as f64 / world as f64 * bytes;
        let list = |v: &[f64]| {
            v.iter()
                .map(|t| format!("{t:.4}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{{\"world\":{world},\"floats\":{total},\"buckets\":{buckets},\"ring_bytes\":{ring},\"raw_times_s\":[{}],\"bucketed_times_s\":[{}],\"raw_s\":{raw:.4},\"bucketed_s\":{ours:.4},\"ratio_raw_over_bucketed\":{:.3},\"raw_bus_gb_s\":{:.2},\"bucketed_bus_gb_s\":{:.2}}}",
            list(&raw_s),
            list(&ours_s),
            raw / ours,
            ring / raw / 1e9,
            ring / ours / 1e9
        );
    }
}
