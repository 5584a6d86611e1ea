//! Views share storage; `contiguous` copies only when the layout needs it.

use rg_core::{bf16, f16, DType, Device, HostBuffer, Tensor};
use rg_cpu as _;

fn t(dims: &[usize]) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| i as f32).collect::<Vec<_>>(),
        dims.to_vec(),
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn transpose_reads_through_strides() {
    let x = t(&[2, 3]);
    let y = x.t().unwrap();
    assert!(y.same_storage(&x) && !y.is_contiguous());
    assert_eq!(y.dims(), &[3, 2]);
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
    let c = y.contiguous().unwrap();
    assert!(!c.same_storage(&x) && c.is_contiguous());
    assert!(
        x.contiguous().unwrap().same_storage(&x),
        "contiguous() of contiguous data must not copy"
    );
}

#[test]
fn narrow_broadcast_squeeze_unsqueeze_permute() {
    let x = t(&[3, 4]);
    assert_eq!(
        x.narrow(1, 1, 2).unwrap().to_vec::<f32>().unwrap(),
        vec![1., 2., 5., 6., 9., 10.]
    );
    let b = t(&[3]).broadcast_to([2, 3]).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![0., 1., 2., 0., 1., 2.]);
    let u = x.unsqueeze(0).unwrap();
    assert_eq!(u.dims(), &[1, 3, 4]);
    assert_eq!(u.squeeze(0).unwrap().dims(), &[3, 4]);
    let p = t(&[2, 3, 4]).permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.dims(), &[4, 2, 3]);
    assert_eq!(p.to_vec::<f32>().unwrap()[..3], [0., 4., 8.]);
    // Reshape of a non-contiguous view copies, of a contiguous one does not.
    assert!(x.reshape([4, 3]).unwrap().same_storage(&x));
    assert!(!x.t().unwrap().reshape([12]).unwrap().same_storage(&x));
}

#[test]
fn reshape_splits_and_merges_strided_runs_in_place_and_copies_otherwise() {
    // A fused projection [2, 3, 12] sliced into its middle third [2, 3, 4].
    let qkv = t(&[2, 3, 12]);
    let k = qkv.narrow(2, 4, 4).unwrap();
    let expected = k.contiguous().unwrap().to_vec::<f32>().unwrap();
    // Splitting the sliced axis into heads, or merging the two leading axes, is a view.
    for shape in [
        vec![2, 3, 2, 2],
        vec![6, 4],
        vec![1, 2, 3, 1, 4, 1],
        vec![6, 2, 2],
    ] {
        let r = k.reshape(shape.as_slice()).unwrap();
        assert!(r.same_storage(&qkv), "{shape:?} should be a view");
        assert_eq!(r.dims(), shape.as_slice());
        assert_eq!(r.to_vec::<f32>().unwrap(), expected, "{shape:?}");
    }
    // Merging the sliced axis with the one before it cannot be strided: a copy.
    let merged = k.reshape([2, 12]).unwrap();
    assert!(!merged.same_storage(&qkv));
    assert_eq!(merged.to_vec::<f32>().unwrap(), expected);
    // A transpose split along its strided axis stays a view, merged does not.
    let tr = t(&[4, 6]).t().unwrap(); // [6, 4], strides [1, 6]
    let split = tr.reshape([2, 3, 4]).unwrap();
    assert!(split.same_storage(&tr));
    assert_eq!(
        split.to_vec::<f32>().unwrap(),
        tr.contiguous().unwrap().to_vec::<f32>().unwrap()
    );
    assert!(!tr.reshape([24]).unwrap().same_storage(&tr));
    // Reshaping a view back to a shape that needs a copy still gives the right values.
    let back = k.reshape([2, 3, 2, 2]).unwrap().reshape([2, 12]).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), expected);
}

#[test]
fn half_precision_conversion_round_trips() {
    let x = Tensor::from_vec(vec![1.5f32, -2.25, 65504.0], [3], &Device::Cpu).unwrap();
    let h = x.to_dtype(DType::F16).unwrap();
    assert_eq!(h.to_vec::<f16>().unwrap()[1], f16::from_f32(-2.25));
    let b = x.to_dtype(DType::BF16).unwrap();
    assert_eq!(b.to_vec::<bf16>().unwrap()[0], bf16::from_f32(1.5));
    assert_eq!(
        b.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap()[..2],
        [1.5, -2.25]
    );
}

#[test]
fn conversions_keep_the_memory_order_of_transposed_and_permuted_tensors() {
    let x = t(&[2, 3, 4]);
    for view in [
        x.t().unwrap(),
        x.permute(&[2, 0, 1]).unwrap(),
        x.narrow(0, 1, 1).unwrap().t().unwrap(),
    ] {
        let b = view.to_dtype(DType::BF16).unwrap();
        assert_eq!(b.layout().strides(), view.layout().strides());
        assert_eq!(b.layout().offset(), 0);
        let back = b.to_dtype(DType::F32).unwrap();
        assert_eq!(back.to_vec::<f32>().unwrap(), view.to_vec::<f32>().unwrap());
    }
    // Not dense (every other column): a contiguous copy.
    let sparse = x.narrow(2, 0, 2).unwrap().t().unwrap();
    let b = sparse.to_dtype(DType::BF16).unwrap();
    assert!(b.is_contiguous());
    assert_eq!(
        b.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(),
        sparse.to_vec::<f32>().unwrap()
    );
}

#[test]
fn ndarray_round_trip() {
    let a = ndarray::ArrayD::from_shape_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    let x = Tensor::from_ndarray(&a, &Device::Cpu).unwrap();
    assert_eq!(x.to_ndarray::<f64>().unwrap(), a);
    assert_eq!(
        x.to_host().unwrap(),
        HostBuffer::F64(vec![1.0, 2.0, 3.0, 4.0])
    );
}

#[test]
fn concat_and_copy_into_views() {
    let a = t(&[2, 2]);
    let b = t(&[2, 1]);
    let c = Tensor::concat(&[a, b], 1).unwrap();
    assert_eq!(c.to_vec::<f32>().unwrap(), vec![0., 1., 0., 2., 3., 1.]);
}

#[test]
fn matmul_broadcasts_batches_and_reads_transposes() {
    let a = t(&[2, 2, 3]);
    let w = t(&[4, 3]).t().unwrap(); // [3, 4], transposed view
    let y = a.matmul(&w).unwrap();
    assert_eq!(y.dims(), &[2, 2, 4]);
    // Row 0 of batch 0: [0,1,2] . columns of w (= rows of the [4,3] matrix).
    assert_eq!(y.to_vec::<f32>().unwrap()[..4], [5., 14., 23., 32.]);
}
