//! Feature `hf`: the `tokenizers` crate behind our trait, and `load_tokenizer` falling
//! back to it for models our engine does not run.
#![cfg(feature = "hf")]

mod common;

use rg_tokenize::{load_tokenizer, HfTokenizer, Tokenizer};

#[test]
fn hf_adapter_gives_gpt2_ids() {
    let Some(shared) = common::shared_dir("hf_adapter_gives_gpt2_ids") else {
        return;
    };
    let dir = common::gpt2_dir(&shared);
    let hf = HfTokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let ours = load_tokenizer(&dir).unwrap();
    assert_eq!(ours.kind(), "bpe", "byte-level BPE runs on our engine");
    let text = common::STRESS;
    assert_eq!(hf.encode(text), ours.encode(text));
    assert_eq!(hf.decode(&hf.encode(text)).unwrap(), text);
    assert_eq!(hf.vocab_size(), 50257);
    assert_eq!(hf.eot_token(), Some(50256));
    assert!(hf.decode(&[60000]).is_err());
}

#[test]
fn unsupported_models_fall_back_to_tokenizers() {
    let dir = common::temp_dir("hf-wordpiece");
    let json = r###"{
      "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
      "normalizer": {"type": "Lowercase"},
      "pre_tokenizer": {"type": "Whitespace"},
      "post_processor": null,
      "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": {"[UNK]": 0, "hello": 1, "world": 2, "wor": 3, "##ld": 4}}
    }"###;
    std::fs::write(dir.join("tokenizer.json"), json).unwrap();
    let tok = load_tokenizer(&dir).unwrap();
    assert_eq!(tok.kind(), "hf");
    assert_eq!(tok.encode("Hello World xyz"), [1, 2, 0]);
    tok.save(&dir.join("copy")).unwrap();
    assert_eq!(
        load_tokenizer(dir.join("copy")).unwrap().encode("hello"),
        [1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
