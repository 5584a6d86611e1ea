//! A character-level tokenizer: one id per distinct character of the training text
//! (nanoGPT's `shakespeare_char`), plus optional special tokens after them.
//!
//! Saved as JSON: `{"type": "char", "version": 1, "chars": [...], "specials": [...],
//! "unk": null}`, ids in list order, specials numbered after the characters.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{read_text, write_atomic, Result, TokenizeError};
use crate::formats::CHAR_TOKENIZER_FILE;
use crate::special::{Segment, SpecialTokens};
use crate::tokenizer::Tokenizer;

/// The `"type"` tag of our char-tokenizer files.
pub(crate) const CHAR_FORMAT_TYPE: &str = "char";

#[derive(Clone, Debug)]
pub struct CharTokenizer {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
    specials: SpecialTokens,
    /// Id for characters outside the vocabulary; without one they are dropped by
    /// `encode` (and an error from [`CharTokenizer::try_encode`]).
    unk: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct CharFile {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    chars: Vec<String>,
    #[serde(default)]
    specials: Vec<String>,
    #[serde(default)]
    unk: Option<char>,
}

impl CharTokenizer {
    /// The sorted set of characters of `text` (so ids do not depend on text order),
    /// then `specials`.
    pub fn from_text(text: &str, specials: &[&str]) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect(), specials, None).expect("distinct chars")
    }

    /// Ids `0..chars.len()` for `chars` (which must be distinct), then the specials;
    /// `unk` (one of `chars`) stands for unknown characters.
    pub fn from_chars(chars: Vec<char>, specials: &[&str], unk: Option<char>) -> Result<Self> {
        let mut ids = HashMap::with_capacity(chars.len());
        for (i, &c) in chars.iter().enumerate() {
            if ids.insert(c, i as u32).is_some() {
                return Err(TokenizeError::Config(format!(
                    "character {c:?} is listed twice"
                )));
            }
        }
        let unk = match unk {
            Some(c) => Some(*ids.get(&c).ok_or(TokenizeError::UnknownChar { ch: c })?),
            None => None,
        };
        let n = chars.len() as u32;
        let specials = SpecialTokens::new(
            specials
                .iter()
                .enumerate()
                .map(|(k, s)| (s.to_string(), n + k as u32))
                .collect(),
        );
        Ok(CharTokenizer {
            chars,
            ids,
            specials,
            unk,
        })
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Encodes text, failing on a character outside the vocabulary (when there is no unk).
    pub fn try_encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|c| match self.ids.get(&c).copied().or(self.unk) {
                Some(id) => Ok(id),
                None => Err(TokenizeError::UnknownChar { ch: c }),
            })
            .collect()
    }

    fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        out.extend(
            text.chars()
                .filter_map(|c| self.ids.get(&c).copied().or(self.unk)),
        );
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TokenizeError::json(path, &e))?;
        Self::from_json_value(&value, path)
    }

    pub(crate) fn from_json_value(value: &serde_json::Value, path: &Path) -> Result<Self> {
        let file: CharFile = serde_json::from_value(value.clone())
            .map_err(|e| TokenizeError::invalid(path, format!("not a char tokenizer file: {e}")))?;
        if file.kind != CHAR_FORMAT_TYPE || file.version != 1 {
            return Err(TokenizeError::unsupported(
                path,
                format!(
                    "char tokenizer type {:?} version {}",
                    file.kind, file.version
                ),
            ));
        }
        let chars = file
            .chars
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut it = s.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Ok(c),
                    _ => Err(TokenizeError::invalid(
                        path,
                        format!("chars[{i}] = {s:?} is not one character"),
                    )),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let specials: Vec<&str> = file.specials.iter().map(String::as_str).collect();
        Self::from_chars(chars, &specials, file.unk)
            .map_err(|e| TokenizeError::invalid(path, e.to_string()))
    }

    pub fn to_json(&self) -> String {
        let file = CharFile {
            kind: CHAR_FORMAT_TYPE.into(),
            version: 1,
            chars: self.chars.iter().map(|c| c.to_string()).collect(),
            specials: self.specials.iter().map(|(s, _)| s.to_owned()).collect(),
            unk: self.unk.map(|id| self.chars[id as usize]),
        };
        serde_json::to_string_pretty(&file).expect("plain data serializes")
    }
}

impl Tokenizer for CharTokenizer {
    fn kind(&self) -> &'static str {
        "char"
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len());
        self.encode_into(text, &mut out);
        out
    }

    fn encode_with_special(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len());
        for segment in self.specials.split(text) {
            match segment {
                Segment::Text(t) => self.encode_into(t, &mut out),
                Segment::Special(id) => out.push(id),
            }
        }
        out
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = String::with_capacity(ids.len());
        for &id in ids {
            match self.chars.get(id as usize) {
                Some(&c) => out.push(c),
                None => match self.specials.content(id) {
                    Some(s) => out.push_str(s),
                    None => {
                        return Err(TokenizeError::UnknownId {
                            id,
                            vocab_size: self.vocab_size(),
                        })
                    }
                },
            }
        }
        Ok(out.into_bytes())
    }

    fn vocab_size(&self) -> usize {
        self.chars.len() + self.specials.iter().count()
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        let mut it = token.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => self.ids.get(&c).copied(),
            _ => None,
        }
        .or_else(|| self.specials.id(token))
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self.chars.get(id as usize) {
            Some(c) => Some(c.to_string()),
            None => self.specials.content(id).map(str::to_owned),
        }
    }

    fn eot_token(&self) -> Option<u32> {
        self.specials.eot()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TokenizeError::io(dir, e))?;
        write_atomic(&dir.join(CHAR_TOKENIZER_FILE), self.to_json().as_bytes())
    }
}
