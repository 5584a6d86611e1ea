//! Every user mistake is a `Result` whose message names the op and the shapes, dtypes
//! or devices involved.

use rg_core::{DType, Device, Error, Tensor};
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

fn msg(e: Error) -> String {
    e.to_string()
}

#[test]
fn broadcast_mismatch_names_both_shapes() {
    let m = msg(t(&[2, 3]).add(&t(&[4])).unwrap_err());
    assert!(
        m.contains("add") && m.contains("[2, 3]") && m.contains("[4]"),
        "{m}"
    );
}

#[test]
fn matmul_inner_mismatch_names_both_shapes() {
    let m = msg(t(&[2, 3]).matmul(&t(&[4, 5])).unwrap_err());
    assert!(
        m.contains("matmul") && m.contains("[2, 3]") && m.contains("[4, 5]"),
        "{m}"
    );
    let m = msg(t(&[3]).matmul(&t(&[3, 2])).unwrap_err());
    assert!(m.contains("matmul") && m.contains("[3]"), "{m}");
}

#[test]
fn bad_axis_names_axis_and_shape() {
    let m = msg(t(&[2, 3]).sum(2, false).unwrap_err());
    assert!(
        m.contains("sum") && m.contains("axis 2") && m.contains("[2, 3]"),
        "{m}"
    );
    let m = msg(t(&[2, 3]).transpose(0, -3).unwrap_err());
    assert!(m.contains("transpose") && m.contains("-3"), "{m}");
}

#[test]
fn reshape_count_mismatch_names_shapes() {
    let m = msg(t(&[2, 3]).reshape([4, 2]).unwrap_err());
    assert!(
        m.contains("reshape") && m.contains("[2, 3]") && m.contains("[4, 2]"),
        "{m}"
    );
}

#[test]
fn narrow_out_of_bounds() {
    let m = msg(t(&[2, 3]).narrow(1, 2, 2).unwrap_err());
    assert!(m.contains("narrow") && m.contains("[2, 3]"), "{m}");
}

#[test]
fn dtype_mismatch_names_dtypes() {
    let a = t(&[2]);
    let b = Tensor::from_vec(vec![1.0f64, 2.0], [2], &Device::Cpu).unwrap();
    let m = msg(a.add(&b).unwrap_err());
    assert!(
        m.contains("add") && m.contains("f32") && m.contains("f64"),
        "{m}"
    );
    let m = msg(a.to_vec::<f64>().unwrap_err());
    assert!(m.contains("f32") && m.contains("f64"), "{m}");
    let ids = Tensor::from_vec(vec![1u32], [1], &Device::Cpu).unwrap();
    let m = msg(ids.exp().unwrap_err());
    assert!(m.contains("exp") && m.contains("u32"), "{m}");
}

#[test]
fn index_out_of_range_is_an_error() {
    let table = t(&[4, 2]);
    let ids = Tensor::from_vec(vec![1u32, 4], [2], &Device::Cpu).unwrap();
    let m = msg(table.embedding(&ids).unwrap_err());
    assert!(m.contains('4'), "{m}");
    let logits = t(&[2, 3]);
    let targets = Tensor::from_vec(vec![0i64, 3], [2], &Device::Cpu).unwrap();
    let m = msg(logits.cross_entropy(&targets, None).unwrap_err());
    assert!(m.contains('3'), "{m}");
    let bad_float_ids = t(&[2]);
    let m = msg(table.index_select(0, &bad_float_ids).unwrap_err());
    assert!(m.contains("index_select") && m.contains("f32"), "{m}");
}

#[test]
fn element_count_mismatch_on_construction() {
    let m = msg(Tensor::from_vec(vec![1.0f32; 5], [2, 3], &Device::Cpu).unwrap_err());
    assert!(m.contains("[2, 3]") && m.contains('5'), "{m}");
}

#[test]
fn layer_norm_parameter_shape_mismatch() {
    let m = msg(t(&[2, 3]).layer_norm(&t(&[4]), &t(&[3]), 1e-5).unwrap_err());
    assert!(m.contains("layer_norm") && m.contains("[4]"), "{m}");
}

#[test]
fn cuda_without_backend_is_a_clear_error() {
    let m = msg(Device::cuda(0).unwrap_err());
    assert!(m.contains("cuda"), "{m}");
}

#[test]
fn device_strings_parse_or_explain() {
    assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
    assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
    let m = msg("tpu".parse::<Device>().unwrap_err());
    assert!(m.contains("tpu"), "{m}");
    assert!("bf17".parse::<DType>().is_err());
}

#[test]
fn absurd_shapes_are_errors_not_overflows() {
    let m = msg(Tensor::zeros([usize::MAX, 4], DType::F32, &Device::Cpu).unwrap_err());
    assert!(
        m.contains("zeros") && m.contains(&usize::MAX.to_string()),
        "{m}"
    );
    let m = msg(Tensor::from_vec(vec![1.0f32], [usize::MAX, 2], &Device::Cpu).unwrap_err());
    assert!(m.contains("from_vec"), "{m}");
    let m = msg(t(&[2]).reshape([usize::MAX, 3]).unwrap_err());
    assert!(m.contains("reshape"), "{m}");
}

#[test]
fn allocations_beyond_memory_are_errors() {
    // 2^60 bytes: addressable, but no machine has it.
    let m = msg(Tensor::zeros([1usize << 58], DType::F32, &Device::Cpu).unwrap_err());
    assert!(m.contains("cannot allocate"), "{m}");
}
