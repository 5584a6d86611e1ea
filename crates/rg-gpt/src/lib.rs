//! `rg-gpt`: the GPT-2 architecture ([`Gpt`], [`GptConfig`]), its trainer and the
//! built-in tasks.

mod attention;
mod block;
mod config;
mod model;

pub use attention::CausalSelfAttention;
pub use block::{Block, Mlp};
pub use config::{GptConfig, PRESETS};
pub use model::Gpt;
