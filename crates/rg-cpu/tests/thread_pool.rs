//! `init_thread_pool` makes the caller the pool's first thread; one test per binary,
//! since the global pool can start only once per process.

use rg_core::{Device, Tensor};

#[test]
fn the_calling_thread_becomes_the_first_pool_thread_and_ops_still_work() {
    rg_cpu::init_thread_pool().expect("the global pool has not started yet");
    assert_eq!(rayon::current_thread_index(), Some(0));
    assert!(
        rg_cpu::init_thread_pool().is_err(),
        "a second start must be refused"
    );
    // A product big enough to be split across the pool, issued from this thread.
    let n = 256;
    let a = Tensor::from_vec(vec![1f32; n * n], [n, n], &Device::Cpu).unwrap();
    let b = Tensor::from_vec(vec![0.5f32; n * n], [n, n], &Device::Cpu).unwrap();
    let c = a.matmul(&b).unwrap().to_vec::<f32>().unwrap();
    assert!(c.iter().all(|&v| v == 0.5 * n as f32));
}
