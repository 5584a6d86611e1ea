//! A tied embedding's rows are added into the output layer's gradient in place, as
//! GPT-2's `wte` needs: no vocabulary-sized table of zeros, no dense add of two
//! vocabulary-sized gradients. Its own test binary, because it turns on profiling
//! (read once per process) to see which backend ops the backward pass ran.

use rg_autograd::Var;
use rg_core::{Device, Tensor};

#[test]
fn tied_embedding_rows_go_into_the_output_layers_gradient_in_place() {
    // SAFETY: set before this process starts any thread or backend.
    unsafe { std::env::set_var("RG_PROFILE", "1") };
    rg_cpu::register();
    let cpu = Device::Cpu;
    let (vocab, dim) = (6, 4);
    let table: Vec<f32> = (0..vocab * dim).map(|i| i as f32 * 0.25 - 2.0).collect();
    let w = Var::parameter(Tensor::from_vec(table, [vocab, dim], &cpu).unwrap());
    let tokens = Tensor::from_vec(vec![1u32, 4, 1], [3], &cpu).unwrap();
    let hidden = w.embedding(&tokens).unwrap();
    let logits = hidden.matmul(&w.t().unwrap()).unwrap();
    let loss = logits.sum_all().unwrap();
    rg_core::profile::reset();
    let grads = loss.backward().unwrap();
    let report = rg_core::profile::report();
    let ops: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("backward"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(ops.contains(&"index_add_assign"), "{report}");
    assert!(
        !ops.iter()
            .any(|op| *op == "index_add" || op.starts_with("binary:Add")),
        "the embedding's rows went through a dense table: {report}"
    );
    // d loss / d w: the output layer's part is sum over rows of hidden, for every
    // vocabulary row; the embedding's part adds each token's column sums of w.
    let g = grads.get(&w).unwrap().to_vec::<f32>().unwrap();
    let w_rows = w.tensor().to_vec::<f32>().unwrap();
    let h = hidden.tensor().to_vec::<f32>().unwrap();
    let column_sums: Vec<f32> = (0..dim)
        .map(|d| (0..vocab).map(|v| w_rows[v * dim + d]).sum())
        .collect();
    for v in 0..vocab {
        let uses = [1, 4, 1].iter().filter(|&&t| t == v).count() as f32;
        for d in 0..dim {
            let from_head: f32 = (0..3).map(|r| h[r * dim + d]).sum();
            let want = from_head + uses * column_sums[d];
            assert!((g[v * dim + d] - want).abs() < 1e-4, "row {v} dim {d}");
        }
    }
}
