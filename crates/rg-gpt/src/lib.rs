//! `rg-gpt`: the GPT-2 architecture ([`Gpt`], [`GptConfig`]), its trainer
//! ([`Trainer`]), checkpoints and model directories ([`checkpoint`]), training data
//! ([`data`]) and the built-in tasks ([`tasks`]).

mod attention;
mod block;
pub mod checkpoint;
mod config;
pub mod convert;
pub mod data;
pub mod data_shard;
mod error;
pub mod eval;
pub mod generate;
mod grad_exchange;
mod in_memory;
mod kv_cache;
mod metrics;
mod model;
mod precision;
pub mod quantized;
pub mod retention;
mod rng_state;
pub mod tasks;
mod train;
pub mod zero_shards;

pub use attention::CausalSelfAttention;
pub use block::{Block, Mlp};
pub use config::{GptConfig, PRESETS};
pub use error::{GptError, Result};
pub use grad_exchange::ExchangeTimes;
pub use in_memory::{load_model_from_bytes, InMemoryModel, ModelBytes};
pub use kv_cache::KvCache;
pub use model::Gpt;
pub use train::{
    EvalReport, Event, Precision, ScheduleKind, StepReport, Summary, TrainConfig, Trainer,
};
