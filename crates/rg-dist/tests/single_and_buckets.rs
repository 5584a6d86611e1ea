//! The world-of-one backend and bucketing, checked against values computed by hand.

use std::sync::Mutex;

use rg_core::{DType, Device, Tensor};
use rg_cpu as _;
use rg_dist::{
    check_same_everywhere, hash_tensors, BucketedAllReduce, Communicator, ReduceOp, Result,
    SingleProcess,
};

fn t(values: &[f32]) -> Tensor {
    Tensor::from_slice(values, [values.len()], &Device::Cpu).unwrap()
}

#[test]
fn single_process_collectives_are_identities() {
    let comm = SingleProcess;
    assert_eq!((comm.rank(), comm.world_size()), (0, 1));
    assert_eq!((comm.local_rank(), comm.local_size()), (0, 1));
    let x = t(&[1.5, -2.0, 3.25]);
    comm.all_reduce(&x, ReduceOp::Avg).unwrap();
    comm.broadcast(&x, 0).unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 3.25]);
    let part = comm.reduce_scatter(&x, ReduceOp::Sum).unwrap();
    assert_eq!(part.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 3.25]);
    let whole = comm.all_gather(&x).unwrap();
    assert_eq!(whole.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 3.25]);
    assert_eq!(comm.all_reduce_scalar(4.0, ReduceOp::Max).unwrap(), 4.0);
    comm.barrier().unwrap();
}

#[test]
fn bad_arguments_are_errors_naming_the_problem() {
    let comm = SingleProcess;
    let err = comm.broadcast(&t(&[1.0]), 1).unwrap_err().to_string();
    assert!(err.contains("root rank 1 does not exist"), "{err}");
    let ints = Tensor::zeros([2], DType::I64, &Device::Cpu).unwrap();
    let err = comm
        .all_reduce(&ints, ReduceOp::Sum)
        .unwrap_err()
        .to_string();
    assert!(err.contains("f32") && err.contains("I64"), "{err}");
}

#[test]
fn in_place_all_reduce_writes_through_views() {
    // A gradient may be a view (a transposed weight); the result lands in its storage.
    let base = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6.], [2, 3], &Device::Cpu).unwrap();
    let view = base.t().unwrap();
    Doubling::default()
        .all_reduce(&view, ReduceOp::Sum)
        .unwrap();
    assert_eq!(
        base.to_vec::<f32>().unwrap(),
        vec![2., 4., 6., 8., 10., 12.]
    );
}

#[test]
fn tensor_collectives_work_in_a_contiguous_tensors_own_memory() {
    // A narrowed view of contiguous storage: reduced where it lies, its neighbours
    // untouched.
    let base = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6.], [6], &Device::Cpu).unwrap();
    let middle = base.narrow(0, 2, 3).unwrap();
    assert!(middle.is_contiguous());
    let comm = Doubling::default();
    comm.all_reduce(&middle, ReduceOp::Sum).unwrap();
    assert_eq!(*comm.calls.lock().unwrap(), vec![3]);
    assert_eq!(base.to_vec::<f32>().unwrap(), vec![1., 2., 6., 8., 10., 6.]);
    // A world of one: broadcast leaves the values, and a missing root is an error.
    SingleProcess.broadcast(&middle, 0).unwrap();
    assert_eq!(middle.to_vec::<f32>().unwrap(), vec![6., 8., 10.]);
    let err = SingleProcess.broadcast(&middle, 1).unwrap_err().to_string();
    assert!(err.contains("root rank 1"), "{err}");
}

/// A world where every rank holds the same data: a sum doubles it. Records the length
/// of each all-reduce call.
#[derive(Default)]
struct Doubling {
    calls: Mutex<Vec<usize>>,
}

impl Communicator for Doubling {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        2
    }
    fn backend_name(&self) -> &'static str {
        "doubling"
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32], op: ReduceOp) -> Result<()> {
        self.calls.lock().unwrap().push(send.len());
        let factor = if op == ReduceOp::Avg { 1.0 } else { 2.0 };
        for (r, s) in recv.iter_mut().zip(send) {
            *r = s * factor;
        }
        Ok(())
    }
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64], _op: ReduceOp) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn broadcast_bytes(&self, _buf: &mut [u8], _root: usize) -> Result<()> {
        Ok(())
    }
    fn broadcast_f32(&self, _buf: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }
    fn reduce_scatter_f32(&self, _s: &[f32], _r: &mut [f32], _op: ReduceOp) -> Result<()> {
        unimplemented!("not used by these tests")
    }
    fn all_gather_f32(&self, _s: &[f32], _r: &mut [f32]) -> Result<()> {
        unimplemented!("not used by these tests")
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        recv[..send.len()].copy_from_slice(send);
        recv[send.len()..].copy_from_slice(send);
        Ok(())
    }
}

#[test]
fn buckets_pack_tensors_in_order_up_to_the_size_and_write_results_back() {
    let comm = Doubling::default();
    // 16-byte buckets hold 4 floats: [3] + [1] fill one, [5] is alone, [2] + [2] share.
    let tensors = [
        t(&[1., 2., 3.]),
        t(&[4.]),
        t(&[5., 6., 7., 8., 9.]),
        t(&[10., 11.]),
        t(&[12., 13.]),
    ];
    let mut bucketed = BucketedAllReduce::new(16);
    let n = bucketed.all_reduce(&comm, &tensors, ReduceOp::Sum).unwrap();
    assert_eq!(n, 3);
    assert_eq!(*comm.calls.lock().unwrap(), vec![4, 5, 4]);
    let mut expected = 2.0;
    for tensor in &tensors {
        for v in tensor.to_vec::<f32>().unwrap() {
            assert_eq!(v, expected);
            expected += 2.0;
        }
    }
}

#[test]
fn parameter_hash_sees_every_bit_and_the_shape() {
    let a = hash_tensors(&[t(&[1.0, 2.0])]).unwrap();
    assert_eq!(a, hash_tensors(&[t(&[1.0, 2.0])]).unwrap());
    assert_ne!(
        a,
        hash_tensors(&[t(&[1.0, f32::from_bits(2f32.to_bits() + 1)])]).unwrap()
    );
    let square = Tensor::from_vec(vec![1f32, 2., 3., 4.], [2, 2], &Device::Cpu).unwrap();
    let flat = t(&[1., 2., 3., 4.]);
    assert_ne!(
        hash_tensors(&[square]).unwrap(),
        hash_tensors(&[flat]).unwrap()
    );
    check_same_everywhere(&SingleProcess, a, "parameters").unwrap();
}

#[test]
fn large_tensors_travel_alone_in_place_and_strided_ones_through_a_copy() {
    let comm = Doubling::default();
    // 64-byte buckets: 16 floats, so tensors of 16 or more go alone.
    let base = Tensor::from_vec((0..20).map(|i| i as f32).collect(), [4, 5], &Device::Cpu).unwrap();
    let strided = base.t().unwrap();
    assert!(!strided.is_contiguous());
    let big = t(&[1.0; 16]);
    let small = [t(&[2.0; 3]), t(&[3.0; 4])];
    let tensors = [
        big.clone(),
        small[0].clone(),
        small[1].clone(),
        strided.clone(),
    ];
    let mut bucketed = BucketedAllReduce::new(64);
    assert_eq!(
        bucketed.all_reduce(&comm, &tensors, ReduceOp::Sum).unwrap(),
        3
    );
    assert_eq!(*comm.calls.lock().unwrap(), vec![16, 7, 20]);
    assert_eq!(big.to_vec::<f32>().unwrap(), vec![2.0; 16]);
    assert_eq!(small[0].to_vec::<f32>().unwrap(), vec![4.0; 3]);
    assert_eq!(small[1].to_vec::<f32>().unwrap(), vec![6.0; 4]);
    // Written through the transposed view into the storage it shares with `base`.
    let doubled: Vec<f32> = (0..20).map(|i| 2.0 * i as f32).collect();
    assert_eq!(base.to_vec::<f32>().unwrap(), doubled);
}

#[test]
fn non_f32_tensors_are_refused_by_name() {
    let comm = Doubling::default();
    let ints = Tensor::from_vec(vec![1i64, 2, 3], [3], &Device::Cpu).unwrap();
    let err = BucketedAllReduce::new(64)
        .all_reduce(&comm, &[ints], ReduceOp::Sum)
        .unwrap_err()
        .to_string();
    assert!(err.contains("collectives move f32 tensors"), "{err}");
}

#[test]
fn tensors_arriving_out_of_order_are_reduced_in_the_planned_buckets() {
    // The same list as above, sent last first: the calls (and their order) must not
    // depend on the order of arrival, or two ranks would issue mismatched collectives.
    let comm = Doubling::default();
    let tensors = [
        t(&[1., 2., 3.]),
        t(&[4.]),
        t(&[5., 6., 7., 8., 9.]),
        t(&[10., 11.]),
        t(&[12., 13.]),
    ];
    let sizes: Vec<usize> = tensors.iter().map(Tensor::elem_count).collect();
    let (send, ready) = std::sync::mpsc::channel();
    for (position, tensor) in tensors.iter().enumerate().rev() {
        send.send((position, tensor.clone())).unwrap();
    }
    drop(send);
    let report = BucketedAllReduce::new(16)
        .all_reduce_as_ready(&comm, &sizes, ready, ReduceOp::Sum)
        .unwrap();
    assert_eq!(report.buckets, 3);
    assert_eq!(*comm.calls.lock().unwrap(), vec![4, 5, 4]);
    let all: Vec<f32> = tensors
        .iter()
        .flat_map(|t| t.to_vec::<f32>().unwrap())
        .collect();
    assert_eq!(all, (1..=13).map(|i| 2.0 * i as f32).collect::<Vec<_>>());
}

#[test]
fn a_producer_that_stops_early_or_sends_the_wrong_tensor_is_an_error() {
    let comm = Doubling::default();
    let sizes = [2, 3];
    let exchange = |items: Vec<(usize, Tensor)>| {
        let (send, ready) = std::sync::mpsc::channel();
        for item in items {
            send.send(item).unwrap();
        }
        drop(send);
        BucketedAllReduce::new(4)
            .all_reduce_as_ready(&comm, &sizes, ready, ReduceOp::Sum)
            .unwrap_err()
            .to_string()
    };
    let err = exchange(vec![(0, t(&[1., 2.]))]);
    assert!(
        err.contains("stopped after 1 of 2") && err.contains("position 1"),
        "{err}"
    );
    let err = exchange(vec![(1, t(&[1., 2.]))]);
    assert!(
        err.contains("position 1 has 2 elements, 3 were announced"),
        "{err}"
    );
    let err = exchange(vec![(0, t(&[1., 2.])), (0, t(&[1., 2.]))]);
    assert!(err.contains("position 0 arrived twice"), "{err}");
    let err = exchange(vec![(7, t(&[1.]))]);
    assert!(err.contains("position 7, but the list has 2"), "{err}");
}
