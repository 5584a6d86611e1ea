//! Reading and writing tokenizer files, and the errors bad files give (never a panic).

mod common;

use std::path::Path;

use common::{shared_dir, temp_dir};
use rg_tokenize::{
    load_tokenizer, train_bpe, BpeTokenizer, CharTokenizer, TokenizeError, Tokenizer,
};

/// A tiny byte-level BPE written as vocab.json + merges.txt; vocab lists all 256 bytes.
fn write_tiny(dir: &Path, extra_vocab: &[(&str, u32)], merges: &str) {
    let tok = train_bpe(&["ab"], 256, &[]).unwrap(); // just the 256 bytes
    let mut vocab: Vec<(String, u32)> = (0..256)
        .map(|id| (tok.id_to_token(id).unwrap(), id))
        .collect();
    vocab.extend(extra_vocab.iter().map(|&(t, id)| (t.to_owned(), id)));
    let json = serde_json::to_string(
        &vocab
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    std::fs::write(dir.join("vocab.json"), json).unwrap();
    std::fs::write(dir.join("merges.txt"), merges).unwrap();
}

fn load_err(dir: &Path) -> String {
    match BpeTokenizer::from_vocab_merges(dir.join("vocab.json"), dir.join("merges.txt")) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn vocab_merges_round_trip_and_errors() {
    let dir = temp_dir("vm");
    write_tiny(
        &dir,
        &[("ab", 256), ("Ġab", 257)],
        "#version: 0.2\na b\nĠ ab\n",
    );
    let tok =
        BpeTokenizer::from_vocab_merges(dir.join("vocab.json"), dir.join("merges.txt")).unwrap();
    assert_eq!(tok.encode("ab ab"), [256, 257]);

    // A merge line that is not two tokens: error with file and line.
    write_tiny(
        &dir,
        &[("ab", 256)],
        "#version: 0.2\na b\nthree parts here\n",
    );
    let e = load_err(&dir);
    assert!(e.contains("merges.txt:3:"), "{e}");

    // A merge naming an unknown token.
    write_tiny(&dir, &[("ab", 256)], "a b\nzz b\n");
    let e = load_err(&dir);
    assert!(
        e.contains("merges.txt:2:") && e.contains("unknown token \"zz\""),
        "{e}"
    );

    // A merge whose result is not in the vocabulary.
    write_tiny(&dir, &[], "a b\n");
    let e = load_err(&dir);
    assert!(
        e.contains("merges.txt:1:") && e.contains("\"ab\" is not in the vocabulary"),
        "{e}"
    );

    // Gaps in ids.
    write_tiny(&dir, &[("ab", 300)], "a b\n");
    let e = load_err(&dir);
    assert!(
        e.contains("vocab.json") && e.contains("ids must run from 0 to 256 without gaps"),
        "{e}"
    );

    // Malformed JSON: file, line and column.
    std::fs::write(dir.join("vocab.json"), "{\n  \"a\": 0,\n  \"b\": oops\n}").unwrap();
    let e = load_err(&dir);
    assert!(e.contains("vocab.json:3:"), "{e}");

    // Invalid UTF-8 in an input file.
    std::fs::write(dir.join("vocab.json"), b"{\"\xff\": 0}").unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("vocab.json") && e.contains("not valid UTF-8"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokenizer_json_errors_name_what_is_wrong() {
    let dir = temp_dir("tj");
    let path = dir.join("tokenizer.json");
    let check = |json: &str, want: &str| {
        std::fs::write(&path, json).unwrap();
        let e = BpeTokenizer::from_tokenizer_json(&path).unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
        e
    };
    let e = check(
        r#"{"model": {"type": "WordPiece", "vocab": {}}}"#,
        "model type \"WordPiece\"",
    );
    assert!(matches!(e, TokenizeError::Unsupported { .. }));
    check(r#"{"model": {"type": "Unigram"}}"#, "Unigram");
    check(
        r#"{"normalizer": {"type": "NFKC"}, "pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}"#,
        "normalizer \"NFKC\"",
    );
    check(
        r#"{"pre_tokenizer": {"type": "Metaspace"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}"#,
        "pre_tokenizer \"Metaspace\"",
    );
    check(
        r#"{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "dropout": 0.1, "vocab": {}, "merges": []}}"#,
        "dropout",
    );
    check(
        r#"{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}"#,
        "model.merges[0]",
    );
    check(
        r#"{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}}"#,
        "model.merges[0] is not a merge",
    );
    check(
        r#"{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}}"#,
        "ids must run from 0 to 1 without gaps",
    );
    check("{\n\"model\": [1, 2,\n", "tokenizer.json:3:");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_tokenizer_finds_each_layout() {
    let dir = temp_dir("layouts");
    let text = "hello hello world, hello there\n";
    let bpe = train_bpe(&[text], 270, &["<|endoftext|>"]).unwrap();
    let chars = CharTokenizer::from_text(text, &["<|endoftext|>"]);

    let json_dir = dir.join("json");
    Tokenizer::save(&bpe, &json_dir).unwrap();
    let pair_dir = dir.join("pair");
    Tokenizer::save(&bpe, &pair_dir).unwrap();
    std::fs::remove_file(pair_dir.join("tokenizer.json")).unwrap();
    let char_dir = dir.join("char");
    chars.save(&char_dir).unwrap();

    for (path, kind) in [
        (json_dir.clone(), "bpe"),
        (json_dir.join("tokenizer.json"), "bpe"),
        (pair_dir, "bpe"),
        (char_dir.clone(), "char"),
        (char_dir.join(rg_tokenize::CHAR_TOKENIZER_FILE), "char"),
    ] {
        let t = load_tokenizer(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(t.kind(), kind, "{}", path.display());
        assert_eq!(t.decode(&t.encode(text)).unwrap(), text);
        assert!(t.eot_token().is_some());
    }
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(load_tokenizer(&empty)
        .unwrap_err()
        .to_string()
        .contains("no tokenizer.json"));
    std::fs::write(empty.join("x.json"), "[1, 2]").unwrap();
    assert!(load_tokenizer(empty.join("x.json")).is_err());
    assert!(matches!(
        load_tokenizer(dir.join("missing.json")),
        Err(TokenizeError::Io { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gpt2_resaved_loads_with_the_same_ids() {
    let Some(shared) = shared_dir("gpt2_resaved_loads_with_the_same_ids") else {
        return;
    };
    let gpt2 = load_tokenizer(shared.join("data/gpt2-tokenizer")).unwrap();
    let dir = temp_dir("gpt2-resave");
    gpt2.save(&dir).unwrap();
    let again = load_tokenizer(&dir).unwrap();
    let text = common::STRESS;
    assert_eq!(again.encode(text), gpt2.encode(text));
    assert_eq!(again.eot_token(), Some(50256));
    // Our vocab.json/merges.txt are GPT-2's, entry for entry.
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vocab.json")).unwrap()).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared.join("data/gpt2-tokenizer/vocab.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ours, theirs);
    let merges = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        merges(&dir.join("merges.txt")),
        merges(&shared.join("data/gpt2-tokenizer/merges.txt"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
