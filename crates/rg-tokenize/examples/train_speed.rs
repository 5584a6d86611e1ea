//! Trains a byte-level BPE on a file and saves it: a quick check of training time.
//!
//! `cargo run --release -p rg-tokenize --example train_speed -- [FILE] [VOCAB] [OUT_DIR]`
//! (defaults: the shared Tiny Shakespeare, 4096, no saving).

use std::time::Instant;

use rg_tokenize::{train_bpe_from_files, Tokenizer, ENDOFTEXT};

fn main() {
    let shared = std::env::var("RG_SHARED_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").into());
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .unwrap_or(format!("{shared}/data/tinyshakespeare.txt"));
    let vocab: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(4096);
    let out = args.next();
    let mut best = f64::INFINITY;
    let mut tok = None;
    for _ in 0..5 {
        let t = Instant::now();
        tok = Some(train_bpe_from_files(&[&file], vocab, &[ENDOFTEXT]).expect("train"));
        best = best.min(t.elapsed().as_secs_f64());
    }
    let tok = tok.expect("trained");
    println!(
        "trained {} ids in {:.1} ms (best of 5, file read included)",
        tok.vocab_size(),
        best * 1e3
    );
    if let Some(dir) = out {
        tok.save(std::path::Path::new(&dir)).expect("save");
        println!("saved to {dir}");
    }
}
