//! Engine rules on hand-made vocabularies: a token that merge order bypasses is not
//! taken whole, bytes missing from the vocabulary are dropped (as in `tokenizers`
//! without an unk token), and bad parts are errors.

use rg_tokenize::{BpeTokenizer, SpecialTokens, TokenizeError};

/// Bytes a=0 b=1 c=2, then bc=3 (rank 0), ab=4 (rank 1), abc=5 from (ab, c) (rank 2).
fn bypassing() -> BpeTokenizer {
    let tokens = ["a", "b", "c", "bc", "ab", "abc"]
        .map(|t| t.as_bytes().to_vec())
        .to_vec();
    BpeTokenizer::from_parts(tokens, &[(1, 2), (0, 1), (4, 2)], SpecialTokens::default()).unwrap()
}

#[test]
fn a_token_merge_order_bypasses_is_not_taken_whole() {
    let tok = bypassing();
    // (b, c) merges first, and (a, bc) is no merge: "abc" is never produced.
    for _ in 0..3 {
        // Repeated, so the learnt "not whole" answer and the per-call cache both apply.
        assert_eq!(tok.encode("abc"), [0, 3]);
    }
    // Long enough for the per-call cache (spaces are not in this vocabulary: dropped).
    assert_eq!(tok.encode(&"abc ".repeat(300)), [0, 3].repeat(300));
    assert_eq!(tok.encode("ab"), [4]);
}

#[test]
fn bytes_missing_from_the_vocabulary_are_dropped() {
    let tok = bypassing();
    assert_eq!(tok.encode("a?b"), [0, 1]);
    assert_eq!(tok.decode(&tok.encode("zzz")).unwrap(), "");
}

#[test]
fn bad_parts_are_errors() {
    let t = |s: &[&str]| s.iter().map(|t| t.as_bytes().to_vec()).collect::<Vec<_>>();
    let none = SpecialTokens::default;
    let err = BpeTokenizer::from_parts(t(&["a", "b"]), &[(0, 1)], none()).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"ab\", which is not in the vocabulary"),
        "{err}"
    );
    let err = BpeTokenizer::from_parts(t(&["a", "b"]), &[(0, 9)], none()).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let err = BpeTokenizer::from_parts(t(&["a", "a"]), &[], none()).unwrap_err();
    assert!(err.to_string().contains("same bytes"), "{err}");
    let specials = SpecialTokens::new(vec![("<|x|>".into(), 1)]);
    let err = BpeTokenizer::from_parts(t(&["a", "b"]), &[], specials).unwrap_err();
    assert!(
        matches!(err, TokenizeError::Config(_)) && err.to_string().contains("differs"),
        "{err}"
    );
}
