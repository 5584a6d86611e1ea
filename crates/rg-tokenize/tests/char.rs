//! The character tokenizer: vocabulary from text, JSON round trip, unknown characters.

mod common;

use rg_tokenize::{load_tokenizer, CharTokenizer, TokenizeError, Tokenizer};

#[test]
fn builds_sorted_vocabulary_and_round_trips() {
    let text = "hello, world!\nHELLO 😀 ünïcode";
    let tok = CharTokenizer::from_text(text, &["<|endoftext|>"]);
    let mut want: Vec<char> = text.chars().collect();
    want.sort();
    want.dedup();
    assert_eq!(tok.chars(), want.as_slice(), "ids follow code point order");
    assert_eq!(tok.vocab_size(), want.len() + 1);
    assert_eq!(tok.eot_token(), Some(want.len() as u32));
    let ids = tok.encode(text);
    assert_eq!(ids.len(), text.chars().count());
    assert_eq!(tok.decode(&ids).unwrap(), text);
    assert_eq!(
        tok.token_to_id("h"),
        Some(want.binary_search(&'h').unwrap() as u32)
    );
    assert_eq!(
        tok.id_to_token(tok.eot_token().unwrap()).as_deref(),
        Some("<|endoftext|>")
    );

    let with_eot = "hello<|endoftext|>world";
    let ids = tok.encode_with_special(with_eot);
    assert_eq!(ids[5], tok.eot_token().unwrap());
    assert_eq!(tok.decode(&ids).unwrap(), with_eot);
}

#[test]
fn unknown_characters() {
    let tok = CharTokenizer::from_text("abc", &[]);
    assert_eq!(
        tok.encode("abxc"),
        [0, 1, 2],
        "encode drops what it cannot represent"
    );
    assert!(matches!(
        tok.try_encode("abxc"),
        Err(TokenizeError::UnknownChar { ch: 'x' })
    ));
    let with_unk = CharTokenizer::from_chars(vec!['?', 'a', 'b'], &[], Some('?')).unwrap();
    assert_eq!(with_unk.encode("axb"), [1, 0, 2]);
    assert!(CharTokenizer::from_chars(vec!['a', 'a'], &[], None).is_err());
    assert!(matches!(
        tok.decode(&[3]),
        Err(TokenizeError::UnknownId { id: 3, .. })
    ));
}

#[test]
fn saves_and_loads_as_json() {
    let dir = common::temp_dir("char");
    let tok = CharTokenizer::from_chars(
        vec!['\n', ' ', '"', 'a', '😀'],
        &["<|endoftext|>"],
        Some(' '),
    )
    .unwrap();
    tok.save(&dir).unwrap();
    let back = load_tokenizer(&dir).unwrap();
    assert_eq!(back.kind(), "char");
    let text = "a \"😀\"\nzz";
    assert_eq!(back.encode(text), tok.encode(text));
    assert_eq!(back.vocab_size(), 6);
    assert_eq!(back.eot_token(), Some(5));

    let file = dir.join(rg_tokenize::CHAR_TOKENIZER_FILE);
    std::fs::write(&file, r#"{"type": "char", "version": 1, "chars": ["ab"]}"#).unwrap();
    let e = CharTokenizer::load(&file).unwrap_err().to_string();
    assert!(
        e.contains("chars[0]") && e.contains("not one character"),
        "{e}"
    );
    std::fs::write(&file, r#"{"type": "char", "version": 2, "chars": []}"#).unwrap();
    assert!(matches!(
        CharTokenizer::load(&file),
        Err(TokenizeError::Unsupported { .. })
    ));
    std::fs::write(&file, "{\"type\": \"char\",\n \"chars\": [").unwrap();
    assert!(matches!(
        CharTokenizer::load(&file),
        Err(TokenizeError::Json { line: 2, .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
