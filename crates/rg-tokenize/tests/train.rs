//! BPE training: same vocabulary and merges as `tokenizers`' `BpeTrainer` (the
//! reference hash comes from `benches/peers.py`'s trained tokenizer), deterministic,
//! special tokens reserved, and a trained tokenizer round-trips its files.

mod common;

use common::{fnv1a64, shakespeare, shared_dir, temp_dir};
use rg_tokenize::{
    load_tokenizer, train_bpe, train_bpe_from_files, BpeTrainer, TokenizeError, Tokenizer,
    ENDOFTEXT,
};

/// `tokenizers` 0.23 `BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"],
/// initial_alphabet=ByteLevel.alphabet())` with a `ByteLevel` pre-tokenizer, trained on
/// the whole of Tiny Shakespeare: its 3839 merges as `(left, right)` ids, hashed.
const HF_MERGES: usize = 3839;
const HF_MERGES_FNV: u64 = 0x662115acec57d5f5;
const HF_FIRST_MERGES: [u32; 20] = [
    221, 84, 72, 69, 221, 65, 79, 85, 221, 83, 221, 77, 73, 78, 221, 87, 82, 69, 72, 65,
];
const HF_LAST_TOKENS: [&str; 6] = ["irg", "Ġmend", "ourish", "Ġweigh", "rib", "Ġstory"];

#[test]
fn shakespeare_4096_equals_tokenizers_trainer() {
    let Some(shared) = shared_dir("shakespeare_4096_equals_tokenizers_trainer") else {
        return;
    };
    let tok = train_bpe_from_files(
        &[shared.join("data/tinyshakespeare.txt")],
        4096,
        &[ENDOFTEXT],
    )
    .unwrap();
    assert_eq!(tok.vocab_size(), 4096);
    let pairs: Vec<u32> = tok.merges().iter().flat_map(|&(a, b, _)| [a, b]).collect();
    assert_eq!(pairs.len() / 2, HF_MERGES);
    assert_eq!(pairs[..20], HF_FIRST_MERGES);
    assert_eq!(fnv1a64(&pairs), HF_MERGES_FNV);
    let last: Vec<String> = (4090..4096)
        .map(|id| tok.id_to_token(id).unwrap())
        .collect();
    assert_eq!(last, HF_LAST_TOKENS);
    assert_eq!(tok.eot_token(), Some(0), "specials take the first ids");
    assert_eq!(
        tok.id_to_token(1).as_deref(),
        Some("!"),
        "then the bytes in GPT-2's order"
    );

    let text = shakespeare(&shared);
    let ids = tok.encode(&text);
    assert_eq!(tok.decode(&ids).unwrap(), text);
    assert!(!ids.contains(&0), "merges never produce a special token");
}

#[test]
fn training_is_deterministic_and_round_trips_files() {
    let text = "the cat sat on the mat; the cat ate the rat.\n".repeat(50)
        + "Ünïcödé text, 日本語, emoji 😀😀 and numbers 12345 12345.\n";
    let a = train_bpe(&[&text], 300, &[ENDOFTEXT, "<|pad|>"]).unwrap();
    let b = train_bpe(&[&text], 300, &[ENDOFTEXT, "<|pad|>"]).unwrap();
    assert_eq!(a.merges(), b.merges());
    assert_eq!(a.vocab_size(), 300);
    assert_eq!(a.token_to_id("<|pad|>"), Some(1));
    assert_eq!(a.encode(&text), b.encode(&text));
    assert_eq!(a.decode(&a.encode(&text)).unwrap(), text);

    let dir = temp_dir("train-files");
    Tokenizer::save(&a, &dir).unwrap();
    let from_dir = load_tokenizer(&dir).unwrap();
    let from_pair = rg_tokenize::BpeTokenizer::from_vocab_merges(
        dir.join("vocab.json"),
        dir.join("merges.txt"),
    )
    .unwrap();
    let sample = format!("the cat{ENDOFTEXT}ate 日本<|pad|>");
    for t in [from_dir.as_ref(), &from_pair as &dyn Tokenizer] {
        assert_eq!(t.encode(&text), a.encode(&text));
        assert_eq!(
            t.encode_with_special(&sample),
            a.encode_with_special(&sample)
        );
        assert_eq!(t.vocab_size(), 300);
        assert_eq!(t.eot_token(), Some(0));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_stops_when_no_pair_is_left() {
    let tok = train_bpe(&["ab ab ab"], 10_000, &[]).unwrap();
    // "ab", " ab" -> merges: a b, Ġ ab (then nothing repeats)
    assert!(tok.vocab_size() < 300, "{}", tok.vocab_size());
    assert_eq!(
        tok.encode("ab ab"),
        [
            tok.token_to_id("ab").unwrap(),
            tok.token_to_id("Ġab").unwrap()
        ]
    );
}

#[test]
fn bad_training_settings_are_errors() {
    assert!(matches!(
        train_bpe(&["x"], 100, &[]),
        Err(TokenizeError::Config(_))
    ));
    assert!(matches!(
        train_bpe(&["x"], 300, &[""]),
        Err(TokenizeError::Config(_))
    ));
    let missing = std::path::Path::new("/nonexistent/corpus.txt");
    let err = train_bpe_from_files(&[missing], 300, &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/corpus.txt"), "{err}");
    let mut trainer = BpeTrainer::new(1000, &[]);
    trainer.min_frequency = 3;
    let tok = trainer.train(&["aa aa bb"]).unwrap();
    assert_eq!(tok.vocab_size(), 256, "no pair reaches min_frequency");
}
