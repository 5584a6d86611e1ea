use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rusty_gradients::gpt::checkpoint::load_model_dir;
use rusty_gradients::gpt::generate::{generate, Sampling};
use serde_json::json;

#[derive(Args)]
pub struct GenerateArgs {
    /// Model directory: a checkpoint or a Hugging Face GPT-2 directory.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// text: stream the continuation; json: one object with ids, text and speeds.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        anyhow::bail!("--temperature: {} must be a number >= 0", args.temperature);
    }
    let device = crate::device::parse(&args.device)?;
    let loaded = load_model_dir(&args.model, &device)
        .with_context(|| format!("--model {}", args.model.display()))?;
    let tok = loaded.tokenizer;
    let prompt_ids = tok.encode(&args.prompt);
    let sampling = Sampling {
        temperature: args.temperature,
        seed: args.seed,
    };
    let json_out = args.format == "json";
    let mut stdout = std::io::stdout().lock();
    if !json_out {
        write!(stdout, "{}", args.prompt)?;
    }
    // Stream whole characters: a token may end inside a multi-byte character.
    let mut pending: Vec<u32> = Vec::new();
    let gen = generate(
        &loaded.model,
        &prompt_ids,
        args.max_new_tokens,
        sampling,
        tok.eot_token(),
        |id| {
            if !json_out {
                pending.push(id);
                if let Ok(text) = tok.decode(&pending) {
                    if !text.contains('\u{FFFD}') {
                        let _ = write!(stdout, "{text}");
                        let _ = stdout.flush();
                        pending.clear();
                    }
                }
            }
            Ok(())
        },
    )?;
    let text = tok.decode(&gen.generated_ids)?;
    if json_out {
        let out = json!({
            "prompt_ids": gen.prompt_ids,
            "generated_ids": gen.generated_ids,
            "text": text,
            "prefill_tokens_per_s": gen.prefill_tokens_per_s,
            "decode_tokens_per_s": gen.decode_tokens_per_s,
        });
        writeln!(stdout, "{out}")?;
    } else {
        if !pending.is_empty() {
            write!(
                stdout,
                "{}",
                String::from_utf8_lossy(&tok.decode_bytes(&pending)?)
            )?;
        }
        writeln!(stdout)?;
    }
    Ok(())
}
