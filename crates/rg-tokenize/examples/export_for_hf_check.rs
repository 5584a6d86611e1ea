//! Writes what `tests/check_hf_compat.py` needs to check that a `tokenizer.json` we
//! write loads in the Python `tokenizers` package and gives our ids: a tokenizer
//! trained on Tiny Shakespeare (saved with `Tokenizer::save`), a re-save of GPT-2's,
//! and our ids for a few texts, as `ids.json`. The files we write list special tokens
//! as added tokens, which `tokenizers` always splits out, so the ids to compare are
//! those of our `encode_with_special`.
//!
//! `cargo run --release -p rg-tokenize --example export_for_hf_check -- OUT_DIR`

use std::path::PathBuf;

use rg_tokenize::{load_tokenizer, train_bpe_from_files, Tokenizer, ENDOFTEXT};

fn main() {
    let shared = PathBuf::from(
        std::env::var("RG_SHARED_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").into()),
    );
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: export_for_hf_check OUT_DIR"),
    );
    let corpus = shared.join("data/tinyshakespeare.txt");
    let shakespeare = std::fs::read_to_string(&corpus).expect("read corpus");
    let stress = include_str!("../tests/data/stress.txt");
    let with_special = format!("First doc.{ENDOFTEXT}Second doc.{ENDOFTEXT}");

    let trained = train_bpe_from_files(&[&corpus], 4096, &[ENDOFTEXT]).expect("train");
    let gpt2 = load_tokenizer(shared.join("data/gpt2-tokenizer")).expect("load GPT-2");
    let mut cases = Vec::new();
    for (name, tok) in [
        ("trained", &trained as &dyn Tokenizer),
        ("gpt2", gpt2.as_ref()),
    ] {
        let dir = out.join(name);
        tok.save(&dir).expect("save");
        cases.push(serde_json::json!({
            "tokenizer": dir.join("tokenizer.json"),
            "texts": [
                {"text": shakespeare, "ids": tok.encode_with_special(&shakespeare)},
                {"text": stress, "ids": tok.encode_with_special(stress)},
                {"text": with_special, "ids": tok.encode_with_special(&with_special)},
            ],
        }));
    }
    let ids_path = out.join("ids.json");
    std::fs::write(&ids_path, serde_json::to_string(&cases).expect("json"))
        .expect("write ids.json");
    println!("wrote {}", ids_path.display());
}
