//! rg-io benchmarks: opening (mapping + validating) a GPT-2 124M-sized f32 file, and
//! half-precision -> f32 conversion throughput. Figures are recorded in PERF.md.
//!
//! The model file (~498 MB, GPT-2 124M's tensor names and shapes, zero data) is
//! generated into the temp dir at start and removed at the end; it is opened with the
//! page cache warm, since it has just been written.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rg_core::{DType, Device};
use rg_cpu as _;
use rg_io::convert::{bf16_le_bytes_to_f32, f16_le_bytes_to_f32};
use rg_io::{save_safetensors_entries, SafeTensorsFile, TensorEntry};

/// GPT-2 124M's parameters, named as Hugging Face's `save_pretrained` writes them.
fn gpt2_124m_shapes() -> Vec<(String, Vec<usize>)> {
    let (vocab, positions, embd, layers) = (50257, 1024, 768, 12);
    let mut shapes = vec![
        ("transformer.wte.weight".to_string(), vec![vocab, embd]),
        ("transformer.wpe.weight".to_string(), vec![positions, embd]),
        ("transformer.ln_f.weight".to_string(), vec![embd]),
        ("transformer.ln_f.bias".to_string(), vec![embd]),
    ];
    for i in 0..layers {
        let p = format!("transformer.h.{i}");
        for (suffix, shape) in [
            ("ln_1.weight", vec![embd]),
            ("ln_1.bias", vec![embd]),
            ("attn.c_attn.weight", vec![embd, 3 * embd]),
            ("attn.c_attn.bias", vec![3 * embd]),
            ("attn.c_proj.weight", vec![embd, embd]),
            ("attn.c_proj.bias", vec![embd]),
            ("ln_2.weight", vec![embd]),
            ("ln_2.bias", vec![embd]),
            ("mlp.c_fc.weight", vec![embd, 4 * embd]),
            ("mlp.c_fc.bias", vec![4 * embd]),
            ("mlp.c_proj.weight", vec![4 * embd, embd]),
            ("mlp.c_proj.bias", vec![embd]),
        ] {
            shapes.push((format!("{p}.{suffix}"), shape));
        }
    }
    shapes
}

fn write_gpt2_file() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rg-io-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gpt2-124m.safetensors");
    let shapes = gpt2_124m_shapes();
    let largest = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .max()
        .unwrap();
    let zeros = vec![0u8; 4 * largest];
    let entries = shapes.iter().map(|(name, shape)| {
        let len = 4 * shape.iter().product::<usize>();
        TensorEntry::new(name.as_str(), DType::F32, shape.clone(), &zeros[..len])
    });
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    save_safetensors_entries(&path, entries, &metadata).unwrap();
    path
}

fn open_gpt2(c: &mut Criterion) {
    let path = write_gpt2_file();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut group = c.benchmark_group(format!("gpt2_124m_f32 ({} MB)", size / 1_000_000));
    group.bench_function("open_and_validate", |b| {
        b.iter(|| black_box(SafeTensorsFile::open(&path).unwrap()))
    });
    group.bench_function("open_and_load_all_tensors_cpu", |b| {
        b.iter(|| {
            let file = SafeTensorsFile::open(&path).unwrap();
            let tensors: Vec<_> = file
                .names()
                .map(|name| file.tensor(name, &Device::Cpu).unwrap())
                .collect();
            black_box(tensors)
        })
    });
    group.bench_function("reference_crate_deserialize_over_mmap", |b| {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the benchmark owns the file and does not modify it while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        b.iter(|| black_box(safetensors::SafeTensors::deserialize(&map).unwrap().len()))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

fn half_to_f32(c: &mut Criterion) {
    // 32 Mi elements (64 MiB in, 128 MiB out, far beyond the caches: memory-bound, what
    // loading a checkpoint sees) and 8 Ki elements (in L1/L2: the compute cost).
    half_to_f32_of_size(c, 32 << 20, "32 Mi elements");
    half_to_f32_of_size(c, 8 << 10, "8 Ki elements, in cache");
}

fn half_to_f32_of_size(c: &mut Criterion, n: usize, label: &str) {
    let src: Vec<u8> = (0..n as u32)
        .flat_map(|i| ((i.wrapping_mul(2654435761) >> 16) as u16 & 0x7bff).to_le_bytes())
        .collect();
    let mut dst = vec![0f32; n];
    let mut group = c.benchmark_group(format!("half_to_f32 ({label})"));
    group.throughput(Throughput::Bytes(src.len() as u64));
    group.sample_size(20);
    group.bench_function("bf16_le_bytes_to_f32", |b| {
        b.iter(|| bf16_le_bytes_to_f32(black_box(&src), &mut dst))
    });
    group.bench_function("f16_le_bytes_to_f32", |b| {
        b.iter(|| f16_le_bytes_to_f32(black_box(&src), &mut dst))
    });
    // Baselines: the per-element `half` conversions a naive loader would write.
    group.bench_function("baseline_half_bf16_per_element", |b| {
        b.iter(|| {
            for (s, d) in black_box(&src).chunks_exact(2).zip(dst.iter_mut()) {
                *d = half::bf16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        })
    });
    group.bench_function("baseline_half_f16_per_element", |b| {
        b.iter(|| {
            for (s, d) in black_box(&src).chunks_exact(2).zip(dst.iter_mut()) {
                *d = half::f16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, open_gpt2, half_to_f32);
criterion_main!(benches);
