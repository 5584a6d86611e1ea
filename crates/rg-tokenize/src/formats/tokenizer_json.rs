//! Hugging Face `tokenizer.json`, for byte-level BPE models (GPT-2, RoBERTa, ...).
//!
//! Anything whose behaviour our engine would not reproduce — another model type, a
//! normalizer, a pre-tokenizer other than GPT-2's `ByteLevel`, BPE dropout, subword
//! prefixes — is an [`TokenizeError::Unsupported`] error naming it, rather than
//! silently different ids.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::bpe::BpeTokenizer;
use crate::error::{read_text, write_atomic, Result, TokenizeError};
use crate::formats::{token_texts, RawBpe};

pub(crate) fn read(path: &Path) -> Result<BpeTokenizer> {
    parse(&read_text(path)?, path)
}

/// A `tokenizer.json` held in memory; `path` names it in error messages.
pub(crate) fn parse(text: &str, path: &Path) -> Result<BpeTokenizer> {
    let root: Value = serde_json::from_str(text).map_err(|e| TokenizeError::json(path, &e))?;
    let model = root
        .get("model")
        .ok_or_else(|| TokenizeError::invalid(path, "no \"model\" object"))?;
    check_supported(&root, model, path)?;
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| TokenizeError::invalid(path, "model.vocab is missing or not an object"))?
        .iter()
        .map(|(token, id)| match id.as_u64() {
            Some(id) if id < u32::MAX as u64 => Ok((token.clone(), id as u32)),
            _ => Err(TokenizeError::invalid(
                path,
                format!("model.vocab[{token:?}] is not a token id: {id}"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let merges = read_merges(model, path)?;
    let added = read_added_tokens(&root, path)?;
    let mut raw = RawBpe {
        vocab,
        merges,
        merges_by_line: false,
        added,
        ignore_merges: model
            .get("ignore_merges")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    // Added tokens may extend the model's vocabulary (ids past its end).
    for (content, id) in &raw.added {
        if !raw.vocab.iter().any(|(_, i)| i == id) {
            raw.vocab.push((content.clone(), *id));
        }
    }
    raw.into_tokenizer(path, path)
}

/// Rejects, by name, every setting that would make our ids differ from `tokenizers`'.
fn check_supported(root: &Value, model: &Value, path: &Path) -> Result<()> {
    let unsupported = |what: String| Err(TokenizeError::unsupported(path, what));
    let kind = |v: &Value| {
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let model_type = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
    if model_type != "BPE" {
        return unsupported(format!(
            "model type {model_type:?} (only byte-level BPE is supported)"
        ));
    }
    if let Some(n) = root.get("normalizer").filter(|v| !v.is_null()) {
        return unsupported(format!("normalizer {:?}", kind(n)));
    }
    match root.get("pre_tokenizer").filter(|v| !v.is_null()) {
        None => {
            return unsupported(
                "BPE without the ByteLevel pre-tokenizer (not byte-level BPE)".into(),
            )
        }
        Some(p) if kind(p) != "ByteLevel" => {
            return unsupported(format!("pre_tokenizer {:?}", kind(p)))
        }
        Some(p) => {
            if p.get("add_prefix_space").and_then(Value::as_bool) == Some(true) {
                return unsupported("ByteLevel pre_tokenizer with add_prefix_space=true".into());
            }
            if p.get("use_regex").and_then(Value::as_bool) == Some(false) {
                return unsupported("ByteLevel pre_tokenizer with use_regex=false".into());
            }
        }
    }
    if let Some(d) = root.get("decoder").filter(|v| !v.is_null()) {
        if kind(d) != "ByteLevel" {
            return unsupported(format!("decoder {:?}", kind(d)));
        }
    }
    if let Some(p) = root.get("post_processor").filter(|v| !v.is_null()) {
        if kind(p) != "ByteLevel" {
            return unsupported(format!(
                "post_processor {:?} (it adds tokens we would not)",
                kind(p)
            ));
        }
    }
    if model
        .get("dropout")
        .and_then(Value::as_f64)
        .is_some_and(|d| d > 0.0)
    {
        return unsupported("BPE dropout".into());
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if model
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return unsupported(format!("BPE {key}"));
        }
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return unsupported("BPE byte_fallback".into());
    }
    Ok(())
}

/// Merges as `"left right"` strings (older files) or `["left", "right"]` pairs (newer).
fn read_merges(model: &Value, path: &Path) -> Result<Vec<(String, String, usize)>> {
    let list = match model.get("merges") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(TokenizeError::invalid(path, "model.merges is not a list")),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let pair = match m {
                Value::String(s) => s.split_once(' ').filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains(' ')),
                Value::Array(p) => match p.as_slice() {
                    [Value::String(a), Value::String(b)] => Some((a.as_str(), b.as_str())),
                    _ => None,
                },
                _ => None,
            };
            pair.map(|(a, b)| (a.to_owned(), b.to_owned(), i)).ok_or_else(|| {
                TokenizeError::invalid(path, format!("model.merges[{i}] is not a merge (\"left right\" or [left, right]): {m}"))
            })
        })
        .collect()
}

fn read_added_tokens(root: &Value, path: &Path) -> Result<Vec<(String, u32)>> {
    let Some(list) = root.get("added_tokens").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let content = t.get("content").and_then(Value::as_str);
            let id = t
                .get("id")
                .and_then(Value::as_u64)
                .filter(|&id| id < u32::MAX as u64);
            match (content, id) {
                (Some(c), Some(id)) => Ok((c.to_owned(), id as u32)),
                _ => Err(TokenizeError::invalid(
                    path,
                    format!("added_tokens[{i}] lacks a string \"content\" or an \"id\": {t}"),
                )),
            }
        })
        .collect()
}

/// The `tokenizer.json` text for `tok`, loadable by the Python `tokenizers` package
/// (its `encode` then gives our `encode_with_special` ids).
pub(crate) fn to_json(tok: &BpeTokenizer) -> String {
    let js = |s: &str| serde_json::to_string(s).expect("strings always serialize");
    let byte_level = r#"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#;
    let mut out =
        String::from("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n");
    out.push_str("  \"added_tokens\": [");
    for (k, (content, id)) in tok.specials().iter().enumerate() {
        let sep = if k == 0 { "\n" } else { ",\n" };
        let _ = write!(
            out,
            "{sep}    {{\"id\": {id}, \"content\": {}, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}}",
            js(content)
        );
    }
    out.push_str(if tok.specials().is_empty() {
        "],\n"
    } else {
        "\n  ],\n"
    });
    let _ = write!(
        out,
        "  \"normalizer\": null,\n  \"pre_tokenizer\": {byte_level},\n  \"post_processor\": {byte_level},\n  \"decoder\": {byte_level},\n"
    );
    let _ = write!(
        out,
        "  \"model\": {{\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": {},\n    \"vocab\": {{",
        tok.ignore_merges()
    );
    let texts = token_texts(tok);
    for (id, text) in texts.iter().enumerate() {
        let sep = if id == 0 { "\n      " } else { ",\n      " };
        let _ = write!(out, "{sep}{}: {id}", js(text));
    }
    out.push_str("\n    },\n    \"merges\": [");
    for (k, &(a, b, _)) in tok.merges().iter().enumerate() {
        let sep = if k == 0 { "\n      " } else { ",\n      " };
        let _ = write!(
            out,
            "{sep}{}",
            js(&format!("{} {}", texts[a as usize], texts[b as usize]))
        );
    }
    out.push_str(if tok.merges().is_empty() {
        "]\n  }\n}\n"
    } else {
        "\n    ]\n  }\n}\n"
    });
    out
}

pub(crate) fn write(tok: &BpeTokenizer, dir: &Path) -> Result<()> {
    write_atomic(&dir.join("tokenizer.json"), to_json(tok).as_bytes())
}
