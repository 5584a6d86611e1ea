//! Saving and restoring ChaCha generators exactly (seed + stream position), so a
//! resumed run draws what the uninterrupted run would have drawn.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

pub fn to_json(rng: &ChaCha8Rng) -> Value {
    parts_to_json(&rng.get_seed(), rng.get_word_pos())
}

/// The same form from a generator's seed and stream position.
pub fn parts_to_json(seed: &[u8; 32], word_pos: u128) -> Value {
    let seed: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    json!({ "seed": seed, "word_pos": word_pos.to_string() })
}

pub fn from_json(value: &Value) -> Option<ChaCha8Rng> {
    let seed_hex = value.get("seed")?.as_str()?;
    if seed_hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(seed_hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let word_pos: u128 = value.get("word_pos")?.as_str()?.parse().ok()?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_word_pos(word_pos);
    Some(rng)
}
