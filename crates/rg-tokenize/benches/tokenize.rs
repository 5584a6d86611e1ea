//! Encode throughput (single thread and all cores) of our GPT-2 tokenizer on Tiny
//! Shakespeare, and the time to train a 4096-id vocabulary on it.
//!
//! `cargo bench -p rg-tokenize --bench tokenize`; needs the shared data folder
//! (`RG_SHARED_DIR`, default `../shared` beside the workspace). Peers: `peers.py`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rg_tokenize::{BpeTokenizer, BpeTrainer, ENDOFTEXT};

fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("RG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    dir.join("data/tinyshakespeare.txt")
        .is_file()
        .then_some(dir)
}

fn bench(c: &mut Criterion) {
    let Some(shared) = shared() else {
        eprintln!("shared data folder not found: set RG_SHARED_DIR; nothing to measure");
        return;
    };
    let text = std::fs::read_to_string(shared.join("data/tinyshakespeare.txt")).unwrap();
    let tok = BpeTokenizer::from_tokenizer_json(shared.join("data/gpt2-tokenizer/tokenizer.json"))
        .unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let threads = rayon::current_num_threads();
    // Batches of whole lines, as peers.py gives tiktoken and tokenizers.
    let per = lines.len().div_ceil(8 * threads);
    let batches: Vec<String> = lines.chunks(per).map(|c| c.concat()).collect();
    let batch_refs: Vec<&str> = batches.iter().map(String::as_str).collect();

    let mut g = c.benchmark_group("gpt2_encode_tinyshakespeare");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("single_thread", |b| b.iter(|| tok.encode(&text)));
    g.bench_function(format!("encode_parallel_{threads}_threads"), |b| {
        b.iter(|| tok.encode_parallel(&text))
    });
    g.bench_function(format!("encode_batch_{threads}_threads"), |b| {
        b.iter(|| tok.encode_batch(&batch_refs))
    });
    g.finish();

    let mut g = c.benchmark_group("bpe_train_tinyshakespeare");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("vocab_4096", |b| {
        b.iter(|| {
            BpeTrainer::new(4096, &[ENDOFTEXT])
                .train(&[text.as_str()])
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
