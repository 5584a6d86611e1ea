//! Run under `mpirun -n N`: every collective with rank-dependent data, checked against
//! the values each rank can compute alone. Exits non-zero on the first wrong value.
//! `tests/mpi.rs` launches it.

use rg_core::{Device, Tensor};
use rg_cpu as _;
use rg_dist::{check_same_everywhere, BucketedAllReduce, ReduceOp};

fn main() {
    let comm = rg_dist::from_env().expect("joining the MPI world");
    let (rank, world) = (comm.rank(), comm.world_size());
    let dev = Device::Cpu;
    let fail = |what: &str, got: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug| -> ! {
        eprintln!("rank {rank}: {what}: got {got:?}, want {want:?}");
        std::process::exit(1);
    };
    assert!(comm.local_rank() < comm.local_size());

    // all-reduce: rank r contributes r + i at element i.
    let x = Tensor::from_vec((0..5).map(|i| (rank + i) as f32).collect(), [5], &dev).unwrap();
    comm.all_reduce(&x, ReduceOp::Sum).unwrap();
    let ranks_sum: usize = (0..world).sum();
    let want: Vec<f32> = (0..5).map(|i| (ranks_sum + world * i) as f32).collect();
    let got = x.to_vec::<f32>().unwrap();
    if got != want {
        fail("all_reduce sum", &got, &want);
    }
    let avg = comm.all_reduce_scalar(rank as f64, ReduceOp::Avg).unwrap();
    if avg != ranks_sum as f64 / world as f64 {
        fail("all_reduce avg", &avg, &(ranks_sum as f64 / world as f64));
    }
    let max = comm.all_reduce_scalar(rank as f64, ReduceOp::Max).unwrap();
    if max != (world - 1) as f64 {
        fail("all_reduce max", &max, &(world - 1));
    }

    // broadcast from the last rank.
    let root = world - 1;
    let b = Tensor::from_vec(vec![rank as f32; 3], [3], &dev).unwrap();
    comm.broadcast(&b, root).unwrap();
    if b.to_vec::<f32>().unwrap() != vec![root as f32; 3] {
        fail(
            "broadcast",
            &b.to_vec::<f32>().unwrap(),
            &vec![root as f32; 3],
        );
    }

    // reduce-scatter then all-gather of 2 elements per rank.
    let n = 2 * world;
    let full =
        Tensor::from_vec((0..n).map(|i| (i * (rank + 1)) as f32).collect(), [n], &dev).unwrap();
    let part = comm.reduce_scatter(&full, ReduceOp::Sum).unwrap();
    let factor: usize = (1..=world).sum();
    let want: Vec<f32> = (2 * rank..2 * rank + 2)
        .map(|i| (i * factor) as f32)
        .collect();
    if part.to_vec::<f32>().unwrap() != want {
        fail("reduce_scatter", &part.to_vec::<f32>().unwrap(), &want);
    }
    let gathered = comm.all_gather(&part).unwrap().to_vec::<f32>().unwrap();
    let want: Vec<f32> = (0..n).map(|i| (i * factor) as f32).collect();
    if gathered != want {
        fail("all_gather", &gathered, &want);
    }

    // bucketed average of tensors of unequal sizes, 3 floats per bucket.
    let grads: Vec<Tensor> = [4usize, 1, 2]
        .iter()
        .map(|&len| Tensor::from_vec(vec![(rank * 2) as f32; len], [len], &dev).unwrap())
        .collect();
    let buckets = BucketedAllReduce::new(12)
        .all_reduce(comm.as_ref(), &grads, ReduceOp::Avg)
        .unwrap();
    let mean = (ranks_sum * 2) as f32 / world as f32;
    for g in &grads {
        for v in g.to_vec::<f32>().unwrap() {
            if v != mean {
                fail("bucketed average", &v, &mean);
            }
        }
    }
    if buckets != 2 {
        fail("bucket count", &buckets, &2);
    }

    // ZeRO's exchange: tensors that travel alone reach their owner only (a rooted
    // reduce), packed ones every rank. 3 floats per bucket: [4] and [5] alone, owned
    // by the last rank and by rank 0; [1] + [2] packed.
    let grads: Vec<Tensor> = [4usize, 5, 1, 2]
        .iter()
        .map(|&len| Tensor::from_vec(vec![(rank + 1) as f32; len], [len], &dev).unwrap())
        .collect();
    let mut to_owners = BucketedAllReduce::new(12);
    to_owners.set_owners(Some(vec![world - 1, 0, 0, 0]));
    let buckets = to_owners
        .all_reduce(comm.as_ref(), &grads, ReduceOp::Sum)
        .unwrap();
    let sum = (ranks_sum + world) as f32;
    let mine = (rank + 1) as f32;
    for (i, g) in grads.iter().enumerate() {
        let reaches_me = match i {
            0 => rank == world - 1,
            1 => rank == 0,
            _ => true,
        };
        // A rank that is not the owner keeps its own contribution.
        let want = if reaches_me || world == 1 { sum } else { mine };
        for v in g.to_vec::<f32>().unwrap() {
            if v != want {
                fail(&format!("reduce to owner, tensor {i}"), &v, &want);
            }
        }
    }
    if buckets != 3 {
        fail("bucket count with owners", &buckets, &3);
    }

    check_same_everywhere(comm.as_ref(), 42, "a constant").unwrap();
    let err = check_same_everywhere(comm.as_ref(), rank as u64, "the rank");
    if world > 1 && err.is_ok() {
        fail("hash mismatch detection", &"ok", &"an error");
    }
    comm.barrier().unwrap();
    if rank == 0 {
        println!(
            "mpi collectives ok: world {world}, backend {}",
            comm.backend_name()
        );
    }
}
