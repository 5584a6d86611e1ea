//! NCCL in a world of one on GPU 0, opened as `rgrad train --collectives nccl` opens
//! it: every f32 collective goes through the GPU and must give back exactly what one
//! rank sent (sum, average and maximum over one rank are the identity), and the
//! bucketed gradient all-reduce must leave the gradients bit for bit as they were. The
//! trainer skips the exchange in a world of one, so this is where a GPU machine runs
//! NCCL's data path (`scripts/gpu-check.sh` bundles it: its name holds "cuda").
//!
//! Without the CUDA driver or NCCL it prints `skipped: no CUDA device` and passes; with
//! `RG_REQUIRE_CUDA=1` (the GPU check) it fails instead.

use std::sync::{Mutex, MutexGuard};

use rg_core::{Device, Tensor};
use rg_cpu as _;
use rg_dist::{find_libnccl, Backend, BucketedAllReduce, Communicator, ReduceOp};

/// One NCCL communicator at a time: libtest runs tests on parallel threads, and two
/// communicators on one GPU would each hold NCCL's buffers for nothing.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The communicator and the lock, dropped in that order (fields drop as declared).
struct Held {
    comm: Box<dyn Communicator>,
    _lock: MutexGuard<'static, ()>,
}

fn nccl_or_skip() -> Option<Held> {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nccl = Backend::Nccl { gpu: Some(0) };
    match nccl.open() {
        Ok(comm) => Some(Held { comm, _lock: guard }),
        Err(e) => {
            if std::env::var("RG_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!(
                    "RG_REQUIRE_CUDA=1 but NCCL on GPU 0 is unavailable: {e} (libnccl: {:?})",
                    find_libnccl().map_err(|e| e.to_string())
                );
            }
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

/// Values a gradient may hold, signed zero and the f32 extremes included (no
/// subnormals: a GPU may flush them, and gradients that small do not matter).
fn values(n: usize) -> Vec<f32> {
    let special = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-20,
    ];
    (0..n)
        .map(|i| {
            if i < special.len() {
                special[i]
            } else {
                // A fixed, irregular pattern of signs and magnitudes.
                let x = (i as f32 * 0.618_034).fract() - 0.5;
                x * 10f32.powi((i % 13) as i32 - 6)
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_world_of_one_on_the_gpu_gives_back_what_it_sent() {
    let Some(held) = nccl_or_skip() else {
        return;
    };
    let comm = &held.comm;
    assert_eq!(comm.backend_name(), "nccl");
    assert_eq!((comm.rank(), comm.world_size()), (0, 1));
    assert_eq!((comm.local_rank(), comm.local_size()), (0, 1));
    // Small, and large enough for NCCL to split it into several chunks.
    for n in [1, 1000, 3 << 20] {
        let send = values(n);
        for op in [ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max] {
            let mut recv = vec![f32::NAN; n];
            comm.all_reduce_f32(&send, &mut recv, op).unwrap();
            assert!(bits(&recv) == bits(&send), "all_reduce {op:?} of {n}");
            let mut buf = send.clone();
            comm.all_reduce_f32_in_place(&mut buf, op).unwrap();
            assert!(
                bits(&buf) == bits(&send),
                "in-place all_reduce {op:?} of {n}"
            );
            let mut part = vec![f32::NAN; n];
            comm.reduce_scatter_f32(&send, &mut part, op).unwrap();
            assert!(bits(&part) == bits(&send), "reduce_scatter {op:?} of {n}");
        }
        let mut whole = vec![f32::NAN; n];
        comm.all_gather_f32(&send, &mut whole).unwrap();
        assert!(bits(&whole) == bits(&send), "all_gather of {n}");
        let mut buf = send.clone();
        comm.broadcast_f32(&mut buf, 0).unwrap();
        assert!(bits(&buf) == bits(&send), "broadcast of {n}");
    }
    let err = comm.broadcast_f32(&mut [1.0], 1).unwrap_err().to_string();
    assert!(err.contains("root rank 1 does not exist"), "{err}");
    // The host-side collectives.
    assert_eq!(comm.all_reduce_scalar(2.5, ReduceOp::Avg).unwrap(), 2.5);
    let mut bytes = *b"nccl id";
    comm.broadcast_bytes(&mut bytes, 0).unwrap();
    assert_eq!(&bytes, b"nccl id");
    comm.barrier().unwrap();
}

#[test]
fn bucketed_gradient_average_over_one_gpu_rank_is_bitwise_the_identity() {
    let Some(held) = nccl_or_skip() else {
        return;
    };
    let comm = &held.comm;
    // One tensor reduced alone (2 MB), a run of small ones packed into a bucket.
    let sizes = [512 << 10, 96, 96, 4096, 7];
    let tensors: Vec<Tensor> = sizes
        .iter()
        .map(|&n| Tensor::from_vec(values(n), [n], &Device::Cpu).unwrap())
        .collect();
    let before: Vec<Vec<u32>> = tensors
        .iter()
        .map(|t| bits(&t.to_vec::<f32>().unwrap()))
        .collect();
    let calls = BucketedAllReduce::default()
        .all_reduce(comm.as_ref(), &tensors, ReduceOp::Avg)
        .unwrap();
    assert_eq!(
        calls, 2,
        "the large tensor alone, the small ones in one bucket"
    );
    for (i, t) in tensors.iter().enumerate() {
        assert!(
            bits(&t.to_vec::<f32>().unwrap()) == before[i],
            "tensor {i} of {} elements changed",
            sizes[i]
        );
    }
}
