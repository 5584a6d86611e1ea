//! The hand-written scanner against the GPT-2 pattern run by a backtracking regex
//! engine (fancy-regex, as tiktoken uses): every code point's class, and random text.

use fancy_regex::Regex;
use proptest::prelude::*;
use rg_tokenize::pretokenize;

const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Compiled once: building a fancy-regex costs more than running it on a short text.
static GPT2_REGEX: std::sync::LazyLock<Regex> =
    std::sync::LazyLock::new(|| Regex::new(GPT2_PATTERN).unwrap());

fn regex_pieces(text: &str) -> Vec<String> {
    GPT2_REGEX
        .find_iter(text)
        .map(|m| m.expect("regex runs").as_str().to_owned())
        .collect()
}

fn ours(text: &str) -> Vec<String> {
    pretokenize(text).into_iter().map(str::to_owned).collect()
}

#[test]
fn every_code_point_has_the_regex_class() {
    // The regex engine's class of c, then: "x" + c must be one piece for the x of that
    // class (the classes are disjoint, so that pins c's class in our tables).
    let classes = Regex::new(r"^(?:(\p{L})|(\p{N})|(\s))$").unwrap();
    let mut mismatches = Vec::new();
    let mut buf = String::new();
    for c in (0x80..=0x10FFFFu32).filter_map(char::from_u32) {
        buf.clear();
        buf.push(c);
        let caps = classes.captures(&buf).unwrap();
        let probe = match caps {
            Some(m) if m.get(1).is_some() => 'a',
            Some(m) if m.get(2).is_some() => '1',
            Some(_) => '\t',
            None => '!',
        };
        buf.insert(0, probe);
        if pretokenize(&buf).len() != 1 {
            mismatches.push((c as u32, probe));
        }
    }
    let shown: Vec<String> = mismatches
        .iter()
        .take(20)
        .map(|(c, p)| format!("U+{c:04X} (regex class of {p:?})"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {shown:?}",
        mismatches.len()
    );
}

/// Text drawn mostly from the characters that steer the pattern.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        " ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{2028}", "'", "'s", "'t", "'re",
        "'ve", "'m", "'ll", "'d", "'S", "a", "Z", "é", "中", "ß", "1", "٣", "½", "Ⅻ", "!", "?",
        ".", "😀", "\u{200d}", "\u{301}", "\u{1c}", "\u{b}", "-", "_", "\"",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_tricky_text_splits_like_the_regex(text in tricky_text()) {
        prop_assert_eq!(ours(&text), regex_pieces(&text));
    }

    #[test]
    fn random_unicode_splits_like_the_regex(text in any::<String>()) {
        prop_assert_eq!(ours(&text), regex_pieces(&text));
    }
}
