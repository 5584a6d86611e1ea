//! Memory ops: zeros/full, host round trips, strided gathers and copies, casts, and
//! zero-copy shared bytes with copy-on-write.

mod common;

use std::sync::Arc;

use common::*;
use rg_core::backend::{AdamWParams, Backend, BoxStorage, View};
use rg_core::{DType, HostBuffer, Layout, SharedBytes};
use rg_cpu::CpuStorage;

#[test]
fn zeros_and_full_for_every_dtype() {
    let b = backend();
    for dtype in DType::ALL {
        let z = b.zeros(dtype, 5).unwrap();
        assert_eq!((z.dtype(), z.len()), (dtype, 5));
        assert_eq!(read(&*z), vec![0.0; 5]);
        let f = b.full(dtype, 3, 2.5).unwrap();
        let want = if dtype.is_int() { 2.0 } else { 2.5 };
        assert_eq!(read(&*f), vec![want; 3], "{dtype}");
    }
    assert_eq!(b.zeros(DType::F32, 0).unwrap().len(), 0);
}

#[test]
fn to_host_gathers_every_layout_and_dtype() {
    let b = backend();
    let mut rng = Lcg::new(10);
    for dims in [&[1usize][..], &[7], &[3, 33], &[2, 5, 7], &[300, 200]] {
        for case in layouts(dims) {
            for dtype in DType::ALL {
                let data: Vec<f64> = rng
                    .vec(case.len, 50.0)
                    .iter()
                    .map(|v| v.abs().round())
                    .collect();
                let s = store(&data, dtype);
                let got = b.to_host(View::new(&*s, &case.layout)).unwrap();
                assert_eq!(got.dtype(), dtype);
                assert_eq!(
                    got.to_f64_vec(),
                    gather(&rounded(&data, dtype), &case.layout),
                    "{dtype} {}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn copy_strided_into_contiguous_and_strided_destinations() {
    let b = backend();
    let mut rng = Lcg::new(11);
    for dims in [&[7usize][..], &[3, 33], &[2, 5, 7], &[200, 300]] {
        let cases = layouts(dims);
        for src in &cases {
            for dst in cases.iter().filter(|c| c.name != "broadcast") {
                for dtype in [DType::F32, DType::BF16, DType::I64] {
                    let data: Vec<f64> =
                        rng.vec(src.len, 100.0).iter().map(|v| v.round()).collect();
                    let s = store(&data, dtype);
                    let mut d = b.full(dtype, dst.len, -1.0).unwrap();
                    b.copy_strided(View::new(&*s, &src.layout), &mut *d, &dst.layout)
                        .unwrap();
                    let got = read(&*d);
                    assert_eq!(
                        gather(&got, &dst.layout),
                        gather(&rounded(&data, dtype), &src.layout)
                    );
                    // Elements outside the destination view are untouched.
                    let inside: std::collections::HashSet<usize> =
                        dst.layout.storage_indices().collect();
                    for (i, v) in got.iter().enumerate() {
                        if !inside.contains(&i) {
                            assert_eq!(*v, -1.0);
                        }
                    }
                }
            }
        }
    }
    // Wrong dtype or shape is an error.
    let s = store(&[1.0, 2.0], DType::F32);
    let mut d = b.zeros(DType::F64, 2).unwrap();
    let l = Layout::contiguous([2]);
    assert!(b.copy_strided(View::new(&*s, &l), &mut *d, &l).is_err());
    let mut d = b.zeros(DType::F32, 2).unwrap();
    assert!(b
        .copy_strided(View::new(&*s, &l), &mut *d, &Layout::contiguous([1, 2]))
        .is_err());
    assert!(b
        .copy_strided(
            View::new(&*s, &l),
            &mut *d,
            &Layout::contiguous_with_offset([2], 1)
        )
        .is_err());
}

#[test]
fn concat_joins_views_of_every_layout_along_each_axis() {
    let b = backend();
    let mut rng = Lcg::new(12);
    // The last shape is large enough for the row-parallel path.
    for dims in [&[7usize][..], &[3, 33], &[2, 5, 7], &[200, 300]] {
        for axis in 0..dims.len() {
            for dtype in [DType::F32, DType::BF16, DType::I64] {
                // Three sources of lengths 1, d and 2 along `axis`, each seen through
                // a different layout of the zoo.
                let sources: Vec<(Vec<f64>, BoxStorage, Layout, usize)> = [1, dims[axis], 2]
                    .into_iter()
                    .enumerate()
                    .map(|(i, len)| {
                        let mut d = dims.to_vec();
                        d[axis] = len;
                        let cases = layouts(&d);
                        let case = cases[(i * 2 + axis) % cases.len()].clone();
                        let data: Vec<f64> =
                            rng.vec(case.len, 100.0).iter().map(|v| v.round()).collect();
                        let s = store(&data, dtype);
                        let values = gather(&rounded(&data, dtype), &case.layout);
                        (values, s, case.layout, len)
                    })
                    .collect();
                let mut out_dims = dims.to_vec();
                out_dims[axis] = sources.iter().map(|s| s.3).sum();
                let views: Vec<View<'_>> = sources
                    .iter()
                    .map(|(_, s, l, _)| View::new(&**s, l))
                    .collect();
                let got = b.concat(&views, axis, &out_dims).unwrap();
                let inner: usize = dims[axis + 1..].iter().product();
                let outer: usize = dims[..axis].iter().product();
                let mut want = Vec::new();
                for o in 0..outer {
                    for (values, _, _, len) in &sources {
                        let w = len * inner;
                        want.extend_from_slice(&values[o * w..(o + 1) * w]);
                    }
                }
                assert_eq!(got.dtype(), dtype);
                assert_eq!(read(&*got), want, "{dims:?} axis {axis} {dtype}");
            }
        }
    }
    // Sources of different dtypes are an error that names the op.
    let (x, y) = (store(&[1.0], DType::F32), store(&[1.0], DType::F64));
    let l = Layout::contiguous([1]);
    let err = b
        .concat(&[View::new(&*x, &l), View::new(&*y, &l)], 0, &[2])
        .err()
        .unwrap();
    assert!(err.to_string().contains("concat"), "{err}");
}

#[test]
fn cast_between_every_pair_of_dtypes() {
    let b = backend();
    let values = [0.0, 1.0, 2.0, 3.0, 100.0, 255.0, 7.0, 42.0];
    let l = Layout::contiguous([2, 4]).transpose(0, 1);
    for from in DType::ALL {
        let s = store(&values, from);
        for to in DType::ALL {
            let out = b.cast(View::new(&*s, &l), to).unwrap();
            assert_eq!(out.dtype(), to);
            assert_eq!(read(&*out), gather(&values, &l), "{from} -> {to}");
        }
    }
    // Fractions, negatives and rounding to narrow floats.
    let s = store(&[-1.7, 2.9, 1.0 / 3.0], DType::F64);
    let l = Layout::contiguous([3]);
    let v = View::new(&*s, &l);
    assert_eq!(read(&*b.cast(v, DType::I64).unwrap()), vec![-1.0, 2.0, 0.0]);
    assert_eq!(read(&*b.cast(v, DType::U32).unwrap()), vec![0.0, 2.0, 0.0]);
    let bf = read(&*b.cast(v, DType::BF16).unwrap());
    assert_eq!(bf[2], half::bf16::from_f64(1.0 / 3.0).to_f64());
    let f32s = store(&[1.0 / 3.0], DType::F32);
    let one = Layout::contiguous([1]);
    let h = read(&*b.cast(View::new(&*f32s, &one), DType::F16).unwrap());
    assert_eq!(h[0], half::f16::from_f32(1.0 / 3.0).to_f64());
}

fn shared(bytes: Vec<u8>, start: usize, len: usize) -> SharedBytes {
    SharedBytes::new(Arc::new(bytes), start, len).unwrap()
}

/// f32 little-endian bytes with `pad` leading junk bytes.
fn f32_bytes(values: &[f32], pad: usize) -> Vec<u8> {
    let mut out = vec![0xAB; pad];
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[test]
fn shared_bytes_are_zero_copy_when_aligned_and_copied_otherwise() {
    let b = backend();
    let values = [1.5f32, -2.0, 3.25, 4.0];
    // A `Vec<u8>` allocation is at least 4-aligned in practice; offset 0 stays aligned
    // and offset 1 cannot be.
    let aligned = shared(f32_bytes(&values, 0), 0, 16);
    let misaligned = shared(f32_bytes(&values, 1), 1, 16);
    let a = b.from_shared_bytes(DType::F32, aligned.clone()).unwrap();
    let m = b.from_shared_bytes(DType::F32, misaligned).unwrap();
    let a_cpu = CpuStorage::downcast(&*a).unwrap();
    let m_cpu = CpuStorage::downcast(&*m).unwrap();
    if aligned.as_bytes().as_ptr() as usize % 4 == 0 {
        assert!(a_cpu.is_zero_copy());
        assert_eq!(
            a_cpu.as_slice::<f32>().unwrap().as_ptr() as usize,
            aligned.as_bytes().as_ptr() as usize
        );
    }
    assert!(!m_cpu.is_zero_copy());
    assert_eq!(a_cpu.as_slice::<f32>().unwrap(), &values);
    assert_eq!(m_cpu.as_slice::<f32>().unwrap(), &values);
    // Other dtypes decode too.
    let i = b
        .from_shared_bytes(DType::I64, shared(7i64.to_le_bytes().to_vec(), 0, 8))
        .unwrap();
    assert_eq!(read(&*i), vec![7.0]);
    let bad = b.from_shared_bytes(DType::F32, shared(vec![0; 6], 0, 6));
    assert!(bad.is_err());
}

#[test]
fn writing_zero_copy_storage_copies_first() {
    let b = backend();
    let values = [1.0f32, 2.0, 3.0, 4.0];
    let bytes = shared(f32_bytes(&values, 0), 0, 16);
    let mut param = b.from_shared_bytes(DType::F32, bytes.clone()).unwrap();
    let mut m = b.zeros(DType::F32, 4).unwrap();
    let mut v = b.zeros(DType::F32, 4).unwrap();
    let g = store(&[1.0, 1.0, 1.0, 1.0], DType::F32);
    let l = Layout::contiguous([4]);
    let hp = AdamWParams {
        grad_scale: 1.0,
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 1,
    };
    b.adamw_step(&mut *param, View::new(&*g, &l), &mut *m, &mut *v, &hp)
        .unwrap();
    // The parameter moved; the shared bytes did not.
    assert!(!CpuStorage::downcast(&*param).unwrap().is_zero_copy());
    let moved = read(&*param);
    for (p, x) in moved.iter().zip(values) {
        assert!((p - (x as f64 - 0.1)).abs() < 1e-5, "{p}");
    }
    assert_eq!(bytes.as_bytes(), &f32_bytes(&values, 0)[..]);
    // copy_strided into zero-copy storage also copies first.
    let mut dst = b.from_shared_bytes(DType::F32, bytes.clone()).unwrap();
    let src = store(&[9.0], DType::F32);
    b.copy_strided(
        View::new(&*src, &Layout::contiguous([1])),
        &mut *dst,
        &Layout::contiguous_with_offset([1], 2),
    )
    .unwrap();
    assert_eq!(read(&*dst), vec![1.0, 2.0, 9.0, 4.0]);
    assert_eq!(bytes.as_bytes(), &f32_bytes(&values, 0)[..]);
}

#[test]
fn make_owned_copies_borrowed_elements_and_drops_the_borrow() {
    let b = backend();
    let values = [1.0f32, -2.0, 3.5, 4.0];
    let bytes = shared(f32_bytes(&values, 0), 0, 16);
    let mut s = b.from_shared_bytes(DType::F32, bytes.clone()).unwrap();
    let borrowed = CpuStorage::downcast(&*s).unwrap().is_zero_copy();
    s.make_owned();
    let cpu = CpuStorage::downcast(&*s).unwrap();
    assert!(!cpu.is_zero_copy());
    assert_eq!(cpu.as_slice::<f32>().unwrap(), &values);
    if borrowed {
        // The owned copy is elsewhere than the shared bytes.
        assert_ne!(
            cpu.as_slice::<f32>().unwrap().as_ptr() as usize,
            bytes.as_bytes().as_ptr() as usize
        );
    }
    // Owned storage is left as it is.
    let mut owned = store(&[5.0], DType::F32);
    let before = CpuStorage::downcast(&*owned)
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .as_ptr();
    owned.make_owned();
    let after = CpuStorage::downcast(&*owned)
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .as_ptr();
    assert_eq!(before, after);
}

#[test]
fn host_buffers_move_in_without_copy_semantics_loss() {
    let b = backend();
    let s = b.from_host(HostBuffer::U32(vec![1, 2, 3])).unwrap();
    let cpu = CpuStorage::downcast(&*s).unwrap();
    assert_eq!(cpu.as_slice::<u32>().unwrap(), &[1, 2, 3]);
    assert!(cpu.as_slice::<f32>().is_none());
    assert_eq!(cpu.to_host(), HostBuffer::U32(vec![1, 2, 3]));
}

#[test]
fn linking_registers_the_cpu_backend_as_a_singleton() {
    let a = rg_core::backend::backend_for(rg_core::Device::Cpu).unwrap();
    let b = rg_core::backend::backend_for(rg_core::Device::Cpu).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.device(), rg_core::Device::Cpu);
    assert!(Arc::ptr_eq(
        &rg_cpu::CpuBackend::shared(),
        &rg_cpu::CpuBackend::shared()
    ));
}

#[test]
fn empty_tensors_go_through_every_op_without_panicking() {
    use rg_core::backend::MatmulDims;
    use rg_core::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
    let b = backend();
    let e = store(&[], DType::F32);
    for dims in [&[0usize][..], &[0, 5], &[5, 0], &[2, 0, 3]] {
        let l = Layout::contiguous(dims);
        let v = View::new(&*e, &l);
        assert_eq!(b.unary(UnaryOp::Exp, v).unwrap().len(), 0);
        assert_eq!(b.binary(BinaryOp::Add, v, v).unwrap().len(), 0);
        assert_eq!(b.cmp(CmpOp::Lt, v, v).unwrap().len(), 0);
        assert_eq!(b.gelu_backward(v, v).unwrap().len(), 0);
        assert_eq!(b.softmax_last(v, false).unwrap().len(), 0);
        assert_eq!(b.softmax_last_backward(v, v, true).unwrap().len(), 0);
        assert_eq!(b.cast(v, DType::BF16).unwrap().len(), 0);
        assert_eq!(b.to_host(v).unwrap().len(), 0);
        let _ = b.reduce(ReduceOp::Sum, v, 0).unwrap();
        if dims.len() >= 2 {
            assert_eq!(b.causal_fill(v, 0.0).unwrap().len(), 0);
        }
    }
    // Layer norm and cross-entropy with no rows.
    let g = store(&[1.0; 4], DType::F32);
    let (l, gl) = (Layout::contiguous([0, 4]), Layout::contiguous([4]));
    let out = b
        .layer_norm(
            View::new(&*e, &l),
            View::new(&*g, &gl),
            View::new(&*g, &gl),
            1e-5,
        )
        .unwrap();
    assert_eq!((out.y.len(), out.mean.len()), (0, 0));
    let t = store(&[], DType::U32);
    let ce = b
        .cross_entropy(
            View::new(&*e, &l),
            View::new(&*t, &Layout::contiguous([0])),
            None,
        )
        .unwrap();
    assert_eq!(ce.loss.len(), 0);
    // Matmul with a zero batch, and index ops with no ids.
    let dims = MatmulDims {
        batch: 0,
        m: 2,
        n: 2,
        k: 2,
    };
    let ml = Layout::contiguous([0, 2, 2]);
    assert_eq!(
        b.matmul(View::new(&*e, &ml), View::new(&*e, &ml), dims)
            .unwrap()
            .len(),
        0
    );
    let src = store(&[1.0; 6], DType::F32);
    let sl = Layout::contiguous([2, 3]);
    let il = Layout::contiguous([0]);
    let ids = View::new(&*t, &il);
    assert_eq!(
        b.index_select(View::new(&*src, &sl), 0, ids).unwrap().len(),
        0
    );
    let add = b
        .index_add(&[2, 3], 0, ids, View::new(&*e, &Layout::contiguous([0, 3])))
        .unwrap();
    assert_eq!(read(&*add), vec![0.0; 6]);
}
