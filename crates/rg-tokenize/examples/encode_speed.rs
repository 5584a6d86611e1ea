//! Quick encode-throughput check outside criterion: best of N runs, MB/s (10^6 bytes).
//!
//! `cargo run --release -p rg-tokenize --example encode_speed -- [FILE] [TOKENIZER] [RUNS]`
//! (defaults: the shared Tiny Shakespeare and GPT-2 tokenizer.json, 20 runs).

use std::time::Instant;

use rg_tokenize::BpeTokenizer;

fn main() {
    let shared = std::env::var("RG_SHARED_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").into());
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .unwrap_or(format!("{shared}/data/tinyshakespeare.txt"));
    let tok_path = args
        .next()
        .unwrap_or(format!("{shared}/data/gpt2-tokenizer/tokenizer.json"));
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(20);
    let text = std::fs::read_to_string(&file).expect("read text");
    let t = Instant::now();
    let tok = BpeTokenizer::from_tokenizer_json(&tok_path).expect("load tokenizer");
    println!("load {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let mb = text.len() as f64 / 1e6;
    let best = |f: &dyn Fn() -> usize| {
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let n = tok.encode(&text).len();
    println!("{n} tokens");
    println!(
        "encode 1 thread: {:.1} MB/s",
        mb / best(&|| tok.encode(&text).len())
    );
    // On a busy machine wall time counts waiting for a core; CPU time of the thread
    // (Linux only) is closer to what a quiet machine shows.
    if let Some(cpu) = (0..runs)
        .map(|_| {
            let before = thread_cpu_seconds()?;
            std::hint::black_box(tok.encode(&text));
            Some(thread_cpu_seconds()? - before)
        })
        .try_fold(f64::INFINITY, |b, t| t.map(|t| b.min(t)))
    {
        println!("encode 1 thread, by thread CPU time: {:.1} MB/s", mb / cpu);
    }
    let threads = rayon::current_num_threads();
    println!(
        "encode_parallel {threads} threads: {:.1} MB/s",
        mb / best(&|| tok.encode_parallel(&text).len())
    );
    // Batches of whole lines, as benches/peers.py gives tiktoken and tokenizers.
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let per = lines.len().div_ceil(8 * threads);
    let batches: Vec<String> = lines.chunks(per).map(|c| c.concat()).collect();
    let refs: Vec<&str> = batches.iter().map(String::as_str).collect();
    println!(
        "encode_batch {threads} threads: {:.1} MB/s",
        mb / best(&|| tok.encode_batch(&refs).len())
    );
}

/// CPU time of the calling thread, from /proc/thread-self/schedstat (nanoseconds).
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}
