//! GPT-2's byte-to-unicode mapping.
//!
//! Byte-level BPE files (`vocab.json`, `merges.txt`, `tokenizer.json`) store tokens as
//! text, so every byte gets a printable stand-in character: printable Latin-1 bytes map
//! to themselves, the other 68 (controls, space, ...) to U+0100 onwards (`' '` is `Ġ`,
//! `'\n'` is `Ċ`). Internally we work on raw bytes and only translate at the file edge.

/// The stand-in character of each byte.
pub(crate) const BYTE_TO_CHAR: [char; 256] = build_byte_to_char();

const fn is_printable_kept(b: u32) -> bool {
    (b >= '!' as u32 && b <= '~' as u32) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
}

const fn build_byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    let mut b = 0u32;
    while b < 256 {
        let cp = if is_printable_kept(b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        b += 1;
    }
    table
}

/// The byte a stand-in character represents, if it is one.
#[inline]
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 256 && is_printable_kept(cp) {
        return Some(cp as u8);
    }
    if (256..256 + 68).contains(&cp) {
        // The n-th non-printable byte maps to 256 + n, in byte order.
        return NON_PRINTABLE.get((cp - 256) as usize).copied();
    }
    None
}

const NON_PRINTABLE: [u8; 68] = {
    let mut out = [0u8; 68];
    let mut n = 0;
    let mut b = 0u32;
    while b < 256 {
        if !is_printable_kept(b) {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
};

/// Bytes to their stand-in text (`" hi"` -> `"Ġhi"`).
pub fn bytes_to_token_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect()
}

/// Stand-in text back to bytes; `None` when a character is not a byte stand-in.
pub fn token_text_to_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mappings_and_inverse() {
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[b'a' as usize], 'a');
        assert_eq!(BYTE_TO_CHAR[0xAD], '\u{143}'); // the last stand-in
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(BYTE_TO_CHAR[b as usize]), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
        assert_eq!(token_text_to_bytes("Ġhello"), Some(b" hello".to_vec()));
    }
}
