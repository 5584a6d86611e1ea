//! Round trips: any Unicode text through `encode`/`decode`, any bytes through
//! `encode_bytes`/`decode_bytes`, and long runs of one character in linear-ish time.

mod common;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rg_tokenize::{train_bpe, BpeTokenizer};

/// A small BPE trained here (no shared data needed), on text with several scripts.
static SMALL: LazyLock<BpeTokenizer> = LazyLock::new(|| {
    let text = format!(
        "{}{}",
        common::STRESS,
        "The quick brown fox jumps over the lazy dog. 12 34 5678!\n".repeat(20)
    );
    train_bpe(&[&text], 600, &["<|endoftext|>"]).unwrap()
});

/// GPT-2, when the shared data is there.
static GPT2: LazyLock<Option<BpeTokenizer>> = LazyLock::new(|| {
    let shared = common::shared_dir("roundtrip (GPT-2 part)")?;
    Some(
        BpeTokenizer::from_tokenizer_json(common::gpt2_dir(&shared).join("tokenizer.json"))
            .unwrap(),
    )
});

fn tokenizers() -> Vec<&'static BpeTokenizer> {
    std::iter::once(&*SMALL).chain(GPT2.as_ref()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_unicode_round_trips(text in any::<String>()) {
        for tok in tokenizers() {
            let ids = tok.encode(&text);
            prop_assert_eq!(tok.decode(&ids).unwrap(), text.clone());
            prop_assert_eq!(tok.encode_bytes(text.as_bytes()), ids.clone());
            prop_assert_eq!(tok.decode(&tok.encode_with_special(&text)).unwrap(), text.clone());
        }
    }

    #[test]
    fn any_bytes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for tok in tokenizers() {
            let ids = tok.encode_bytes(&bytes);
            prop_assert_eq!(tok.decode_bytes(&ids).unwrap(), bytes.clone());
        }
    }

    #[test]
    fn long_mixed_runs_round_trip(parts in prop::collection::vec((prop::sample::select(vec!["a", " ", "b", "\n", "1", "!", "é"]), 1usize..400), 1..8)) {
        let text: String = parts.iter().map(|(s, n)| s.repeat(*n)).collect();
        for tok in tokenizers() {
            prop_assert_eq!(tok.decode(&tok.encode(&text)).unwrap(), text.clone());
        }
    }
}

#[test]
fn megabyte_runs_encode_in_linear_time() {
    const MB: usize = 1 << 20;
    // A megabyte of the runs the brief names; 128 KiB of other single-class runs.
    let cases = [
        ("a", MB),
        (" ", MB),
        ("\n", MB / 8),
        ("7", MB / 8),
        ("!", MB / 8),
        ("ab", MB / 8),
        ("é", MB / 8),
        (" a", MB / 8),
    ];
    for (unit, bytes) in cases {
        let text = unit.repeat(bytes / unit.len());
        // An eighth of the run, timed first: the bound scales with the machine's speed
        // (an emulator such as qemu-aarch64 in CI is many times slower than hardware).
        let eighth = unit.repeat(bytes / 8 / unit.len());
        for tok in tokenizers() {
            let start = Instant::now();
            tok.encode(&eighth);
            let small = start.elapsed();
            let start = Instant::now();
            let ids = tok.encode(&text);
            let took = start.elapsed();
            // Quadratic merging takes 64 times the eighth's time (minutes on hardware);
            // n log n about 8 to 9 times (well under a second).
            let bound = Duration::from_secs(5).max(small * 40);
            assert!(
                took < bound,
                "{unit:?} x {}: {took:?} (an eighth took {small:?})",
                text.len() / unit.len()
            );
            assert_eq!(tok.decode(&ids).unwrap(), text, "{unit:?}");
        }
    }
}

#[test]
fn unknown_ids_are_errors() {
    let tok = &*SMALL;
    let n = tok.vocab_size() as u32;
    let err = tok.decode(&[0, n]).unwrap_err();
    assert!(err.to_string().contains(&n.to_string()), "{err}");
    assert!(tok.decode_bytes(&[u32::MAX]).is_err());
    // A multi-byte character cut between tokens decodes lossily, never panics.
    let ids = tok.encode("😀");
    assert_eq!(
        tok.decode(&ids[..1])
            .unwrap()
            .chars()
            .all(|c| c == '\u{FFFD}'),
        ids.len() > 1
    );
}

#[test]
fn many_special_tokens_in_a_long_text() {
    let tok = &*SMALL;
    let eot = tok.token_id("<|endoftext|>").unwrap();
    let doc = "The quick brown fox. 12 jumps!\n".repeat(30);
    let text = format!("{doc}<|endoftext|>").repeat(40);
    let mut want = Vec::new();
    for _ in 0..40 {
        want.extend(tok.encode(&doc));
        want.push(eot);
    }
    assert_eq!(tok.encode_with_special(&text), want);
    assert!(!tok.encode(&text).contains(&eot));
    assert_eq!(tok.decode(&want).unwrap(), text);
}

#[test]
fn parallel_encode_equals_serial() {
    // Large enough to be cut into several chunks (128 KiB or more each).
    let text = common::STRESS.repeat(400);
    for tok in tokenizers() {
        assert_eq!(tok.encode_parallel(&text), tok.encode(&text));
        let lines: Vec<&str> = text.split_inclusive('\n').take(500).collect();
        let batch = tok.encode_batch(&lines);
        assert!(lines
            .iter()
            .zip(&batch)
            .all(|(l, ids)| tok.encode(l) == *ids));
    }
}
