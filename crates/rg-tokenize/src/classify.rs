//! Character classes of GPT-2's pre-tokenization pattern, looked up by code point.
//!
//! The pattern only ever asks "is this a letter (`\p{L}`), a number (`\p{N}`),
//! whitespace (`\s`) or something else?", so one small enum answers all of it.
//! ASCII and the first 2048 code points (Latin, Greek, Cyrillic, Hebrew, Arabic...)
//! come from a table built at compile time; the rest is a binary search over
//! [`crate::unicode_tables::RANGES`].

use crate::unicode_tables::RANGES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CharClass {
    /// Neither letter, number nor whitespace (`[^\s\p{L}\p{N}]`).
    Other = 0,
    Letter = 1,
    Number = 2,
    Space = 3,
}

/// Code points below this bound are answered by [`LOW`].
const LOW_LIMIT: usize = 0x800;

const fn build_low() -> [CharClass; LOW_LIMIT] {
    let mut table = [CharClass::Other; LOW_LIMIT];
    let mut c = 0;
    while c < 0x80 {
        let b = c as u8;
        table[c] = if b.is_ascii_alphabetic() {
            CharClass::Letter
        } else if b.is_ascii_digit() {
            CharClass::Number
        } else if matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            CharClass::Space
        } else {
            CharClass::Other
        };
        c += 1;
    }
    let mut r = 0;
    while r < RANGES.len() && (RANGES[r].0 as usize) < LOW_LIMIT {
        let (first, last, class) = RANGES[r];
        let mut cp = first as usize;
        while cp <= last as usize && cp < LOW_LIMIT {
            table[cp] = class;
            cp += 1;
        }
        r += 1;
    }
    table
}

static LOW: [CharClass; LOW_LIMIT] = build_low();

/// Class of an ASCII byte (`b < 0x80`).
#[inline(always)]
pub(crate) fn ascii_class(b: u8) -> CharClass {
    LOW[(b & 0x7F) as usize]
}

/// Class of any Unicode scalar value.
#[inline]
pub(crate) fn class_of(cp: u32) -> CharClass {
    if (cp as usize) < LOW_LIMIT {
        return LOW[cp as usize];
    }
    match RANGES.binary_search_by(|&(first, last, _)| {
        if last < cp {
            std::cmp::Ordering::Less
        } else if first > cp {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }) {
        Ok(i) => RANGES[i].2,
        Err(_) => CharClass::Other,
    }
}

/// Decodes the character starting at `s[i]` and returns its class and byte length.
///
/// Invalid UTF-8 (possible through the bytes API) is one `Other` unit per byte, so any
/// byte string splits into pieces that concatenate back to itself.
#[inline]
pub(crate) fn class_at(s: &[u8], i: usize) -> (CharClass, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (ascii_class(b0), 1);
    }
    match decode_utf8(s, i) {
        Some((cp, len)) => (class_of(cp), len),
        None => (CharClass::Other, 1),
    }
}

/// Strict UTF-8 decoding of one scalar value at `s[i]` (rejects overlong forms and
/// surrogates, like `std::str::from_utf8`).
#[inline]
fn decode_utf8(s: &[u8], i: usize) -> Option<(u32, usize)> {
    let b0 = s[i] as u32;
    let cont = |k: usize| -> Option<u32> {
        let b = *s.get(i + k)? as u32;
        (b & 0xC0 == 0x80).then_some(b & 0x3F)
    };
    match b0 {
        0xC2..=0xDF => Some((((b0 & 0x1F) << 6) | cont(1)?, 2)),
        0xE0..=0xEF => {
            let cp = ((b0 & 0x0F) << 12) | (cont(1)? << 6) | cont(2)?;
            (cp >= 0x800 && !(0xD800..=0xDFFF).contains(&cp)).then_some((cp, 3))
        }
        0xF0..=0xF4 => {
            let cp = ((b0 & 0x07) << 18) | (cont(1)? << 12) | (cont(2)? << 6) | cont(3)?;
            (0x10000..=0x10FFFF).contains(&cp).then_some((cp, 4))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_samples() {
        assert_eq!(class_of('a' as u32), CharClass::Letter);
        assert_eq!(class_of('7' as u32), CharClass::Number);
        assert_eq!(class_of(' ' as u32), CharClass::Space);
        assert_eq!(class_of('\'' as u32), CharClass::Other);
        assert_eq!(class_of(0x1C), CharClass::Other); // not \s for Oniguruma
        assert_eq!(class_of('é' as u32), CharClass::Letter);
        assert_eq!(class_of('²' as u32), CharClass::Number);
        assert_eq!(class_of(0x3000), CharClass::Space);
        assert_eq!(class_of('中' as u32), CharClass::Letter);
        assert_eq!(class_of('😀' as u32), CharClass::Other);
        assert_eq!(class_of(0x200D), CharClass::Other); // zero-width joiner
        assert_eq!(class_of(0x0301), CharClass::Other); // combining accent (Mn)
        assert_eq!(class_of(0x10FFFF), CharClass::Other);
    }

    #[test]
    fn decoding_matches_std() {
        for s in ["é", "中", "😀", "\u{10FFFF}"] {
            let b = s.as_bytes();
            assert_eq!(decode_utf8(b, 0).map(|x| x.1), Some(b.len()), "{s}");
        }
        for bad in [
            &[0xC0u8, 0x80][..],
            &[0xED, 0xA0, 0x80],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xE2, 0x82],
        ] {
            assert_eq!(decode_utf8(bad, 0), None, "{bad:?}");
        }
    }
}
