//! `stats`: the figures `rgrad tokenize stats` prints.

mod common;

use rg_tokenize::{stats, stats_for_files, train_bpe, CharTokenizer};

#[test]
fn stats_count_and_rank_tokens() {
    let text = "to be or not to be, that is the question\n".repeat(20);
    let chars = CharTokenizer::from_text(&text, &[]);
    let s = stats(&chars, &text, 3);
    assert_eq!(
        (s.bytes, s.chars, s.tokens),
        (text.len(), text.len(), text.len())
    );
    assert_eq!(s.distinct_tokens, chars.chars().len());
    assert_eq!(s.bytes_per_token, 1.0);
    assert_eq!(
        s.top_tokens[0].1, " ",
        "space is the most frequent character"
    );
    assert!(s.round_trips);

    let bpe = train_bpe(&[&text], 300, &[]).unwrap();
    let s = stats(&bpe, &text, 5);
    assert!(s.bytes_per_token > 3.0, "{s:?}");
    assert_eq!(s.top_tokens.len(), 5);
    assert!(s.top_tokens.windows(2).all(|w| w[0].2 >= w[1].2));
    assert_eq!(s.vocab_size, rg_tokenize::Tokenizer::vocab_size(&bpe));

    let dir = common::temp_dir("stats");
    let file = dir.join("a.txt");
    std::fs::write(&file, &text).unwrap();
    assert_eq!(stats_for_files(&bpe, &[&file], 5).unwrap().tokens, s.tokens);
    std::fs::write(&file, b"\xff\xfe").unwrap();
    let err = stats_for_files(&bpe, &[&file], 5).unwrap_err().to_string();
    assert!(err.contains("a.txt") && err.contains("UTF-8"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
