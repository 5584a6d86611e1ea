//! `rg-hub`: turns a local model directory or a Hugging Face Hub id into a GPT-2 config,
//! tokenizer and weights.
//!
//! Not built yet: filled by the hub/generation issue.
