use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use rusty_gradients::gpt::generate::{generate, GenerateOptions, Sampling};
use rusty_gradients::hub::{load_model_with_dtype, HubOptions};
use rusty_gradients::DType;
use serde_json::json;

#[derive(Args)]
pub struct GenerateArgs {
    /// A model directory (ours or Hugging Face's), a training run's output directory
    /// (its newest checkpoint), or a hub id (`gpt2`, `owner/name`) from the Hugging Face
    /// cache, downloaded when missing unless HF_HUB_OFFLINE=1.
    #[arg(long)]
    model: String,
    /// Weight dtype for compute: f32, or bf16 (bf16 weights, f32 accumulation).
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f64>,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the generated text contains this string (repeatable); it is not printed.
    #[arg(long)]
    stop: Vec<String>,
    /// Keep the end of a prompt longer than the context instead of failing.
    #[arg(long)]
    truncate: bool,
    /// text: stream the continuation; json: one object with ids, text and speeds.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let device = crate::device::parse(&args.device)?;
    let sampling = Sampling {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
    };
    sampling.validate()?;
    let dtype: DType = args.dtype.parse().context("--dtype")?;
    let hub = HubOptions {
        progress: args.format != "json",
        ..HubOptions::default()
    };
    let loaded = load_model_with_dtype(&args.model, &device, &hub, dtype)
        .with_context(|| format!("--model {}", args.model))?;
    let rss_after_load = memory_status("VmRSS");
    let tok = loaded.tokenizer;
    let prompt_ids = tok.encode(&args.prompt);
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_token: tok.eot_token(),
        truncate: args.truncate,
    };
    let json_out = args.format == "json";
    let mut stdout = std::io::stdout().lock();
    if !json_out {
        write!(stdout, "{}", args.prompt)?;
        stdout.flush()?;
    }
    // Text is printed only once it cannot be the start of a stop string, and only in
    // whole characters (a token may end inside a multi-byte character).
    let mut generated: Vec<u32> = Vec::new();
    let mut printed = 0usize;
    let mut stopped_at: Option<usize> = None;
    let gen = generate(&loaded.model, &prompt_ids, &options, |id| {
        generated.push(id);
        let text = String::from_utf8_lossy(&tok.decode_bytes(&generated)?).into_owned();
        if let Some(pos) = args.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            stopped_at = Some(pos);
        }
        if !json_out {
            let safe = stopped_at.unwrap_or_else(|| safe_prefix(&text, &args.stop));
            if safe > printed {
                let _ = write!(stdout, "{}", &text[printed..safe]);
                let _ = stdout.flush();
                printed = safe;
            }
        }
        Ok(stopped_at.is_none())
    })?;
    let full = String::from_utf8_lossy(&tok.decode_bytes(&gen.generated_ids)?).into_owned();
    let text = match stopped_at {
        Some(pos) => full[..pos].to_string(),
        None => full,
    };
    if json_out {
        let out = json!({
            "prompt_ids": gen.prompt_ids,
            "generated_ids": gen.generated_ids,
            "text": text,
            "prefill_tokens_per_s": gen.prefill_tokens_per_s,
            "decode_tokens_per_s": gen.decode_tokens_per_s,
            "weight_bytes": loaded.model.weight_bytes(),
            "rss_after_load_bytes": rss_after_load,
            "rss_after_generate_bytes": memory_status("VmRSS"),
            "peak_rss_bytes": memory_status("VmHWM"),
        });
        writeln!(stdout, "{out}")?;
    } else {
        if text.len() > printed {
            write!(stdout, "{}", &text[printed..])?;
        }
        writeln!(stdout)?;
    }
    Ok(())
}

/// A `/proc/self/status` memory figure (`VmRSS`: resident now, a memory-mapped file's
/// touched pages included; `VmHWM`: the peak) in bytes; `None` off Linux.
fn memory_status(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How much of `text` can be printed: up to a character boundary that is not inside a
/// possible start of a stop string, and not a trailing replacement character (an
/// incomplete multi-byte sequence).
fn safe_prefix(text: &str, stops: &[String]) -> usize {
    let mut end = text.trim_end_matches('\u{FFFD}').len();
    for s in stops {
        for (i, _) in text.char_indices() {
            if i < end && s.starts_with(&text[i..]) {
                end = i;
                break;
            }
        }
    }
    end
}
