//! A JSON value that keeps every object member in file order, duplicates included.
//!
//! `serde_json::Value` (and any derived struct) silently keeps the last of two members
//! with the same key, so a header listing a tensor twice would load whichever came
//! last. Parsing into this type instead lets the header validator see and reject
//! duplicates at every level, naming them. serde_json's nesting limit (128) still
//! applies, so deeply nested input is an error, not a stack overflow.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonValue {
    Null,
    Bool(bool),
    /// A number that fits u64 exactly.
    Unsigned(u64),
    /// A negative integer.
    Negative(i64),
    /// Anything else numeric: fractions, exponents, integers beyond u64.
    Float(f64),
    String(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// What the value is, for "expected X, got Y" messages.
    pub(crate) fn kind(&self) -> String {
        match self {
            JsonValue::Null => "null".into(),
            JsonValue::Bool(b) => format!("the boolean {b}"),
            JsonValue::Unsigned(n) => format!("the number {n}"),
            JsonValue::Negative(n) => format!("the number {n}"),
            JsonValue::Float(x) => format!("the number {x}"),
            JsonValue::String(s) => format!("the string {:?}", truncate(s)),
            JsonValue::Array(a) => format!("an array of {} elements", a.len()),
            JsonValue::Object(o) => format!("an object with {} members", o.len()),
        }
    }
}

/// Long strings in error messages are cut so a hostile header cannot make the error
/// message itself huge.
pub(crate) fn truncate(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonValueVisitor)
    }
}

struct JsonValueVisitor;

impl<'de> Visitor<'de> for JsonValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Unsigned(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<JsonValue, E> {
        Ok(if v >= 0 {
            JsonValue::Unsigned(v as u64)
        } else {
            JsonValue::Negative(v)
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        // No size_hint preallocation: the hint comes from the input.
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, JsonValue>()? {
            members.push((key, value));
        }
        Ok(JsonValue::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> JsonValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn keeps_duplicate_members_in_order() {
        assert_eq!(
            parse(r#"{"a":1,"a":-2}"#),
            JsonValue::Object(vec![
                ("a".into(), JsonValue::Unsigned(1)),
                ("a".into(), JsonValue::Negative(-2)),
            ])
        );
    }

    #[test]
    fn numbers_beyond_u64_are_floats() {
        assert!(matches!(parse("18446744073709551616"), JsonValue::Float(_)));
        assert_eq!(parse("1.0"), JsonValue::Float(1.0));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(serde_json::from_str::<JsonValue>(&deep).is_err());
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(100);
        assert!(truncate(&s).len() <= 64);
    }
}
