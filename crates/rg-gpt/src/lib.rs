//! `rg-gpt`: the GPT-2 architecture, its trainer and generation.
//!
//! Not built yet: filled by the training issue.
