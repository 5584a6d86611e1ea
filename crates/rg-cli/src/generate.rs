use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use rusty_gradients::gpt::checkpoint::read_json;
use rusty_gradients::gpt::generate::{generate, slide_keep, GenerateOptions, Generation, Sampling};
use rusty_gradients::gpt::GptConfig;
use rusty_gradients::hub::{load_model_files, resolve_model, HubOptions, ModelFiles};
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
    /// Text to continue (required; it is printed before the continuation).
    #[arg(long)]
    prompt: String,
    /// Tokens to generate; past the model's context the window slides (see --no-slide).
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy (always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample only from the K most likely tokens [default: all].
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only from the most likely tokens whose probabilities sum to P, in (0, 1]
    /// [default: 1, all].
    #[arg(long)]
    top_p: Option<f64>,
    /// Above 1 discourages tokens already in the context window (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    /// Seed of the sampler: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the generated text contains this string (repeatable); it is not
    /// printed [default: none].
    #[arg(long)]
    stop: Vec<String>,
    /// Keep the end of a prompt longer than the context instead of failing [default: off].
    #[arg(long)]
    truncate: bool,
    /// Stop when prompt and new tokens fill the model's context instead of sliding the
    /// window (keep the newest half, re-read it) [default: off, slide].
    #[arg(long)]
    no_slide: bool,
    /// Drop prompt characters the model's vocabulary lacks (with a warning) instead of
    /// failing [default: off].
    #[arg(long)]
    skip_unknown: bool,
    /// Start even when the memory estimate exceeds the memory available [default: off].
    #[arg(long)]
    force: bool,
    /// text: stream the continuation; json: one object with ids, text, speeds and
    /// context events.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// Device to run on: cpu, or cuda[:N] in a CUDA build.
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
    let json_out = args.format == "json";
    let files =
        resolve_model(&args.model, &hub).with_context(|| format!("--model {}", args.model))?;
    let config = model_config(&files).with_context(|| format!("--model {}", args.model))?;
    let estimate = crate::preflight::generation(&config, dtype.size_in_bytes() as u64, 1);
    if !json_out {
        eprintln!("{}", crate::preflight::describe(&estimate));
    }
    crate::preflight::check(
        &estimate,
        args.force,
        "use --dtype bf16 to halve the weights, or a smaller model",
    )?;
    let loaded = load_model_files(&files, &device, dtype)
        .with_context(|| format!("--model {}", args.model))?;
    let rss_after_load = crate::preflight::process_memory("VmRSS");
    let tok = loaded.tokenizer;
    let prompt = crate::vocab_check::checked_text(
        "--prompt",
        tok.as_ref(),
        &args.prompt,
        args.skip_unknown,
    )?;
    let prompt_ids = tok.encode(&prompt);
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_token: tok.eot_token(),
        truncate: args.truncate,
        slide_context: !args.no_slide,
    };
    let mut stdout = std::io::stdout().lock();
    if !json_out {
        write!(stdout, "{prompt}")?;
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
            "context_length": config.block_size,
            "context_slides": gen.context_slides,
            "stopped_at_context": gen.stopped_at_context,
            "memory_estimate_bytes": estimate.bytes,
            "rss_after_load_bytes": rss_after_load,
            "rss_after_generate_bytes": crate::preflight::process_memory("VmRSS"),
            "peak_rss_bytes": crate::preflight::process_memory("VmHWM"),
        });
        writeln!(stdout, "{out}")?;
    } else {
        if text.len() > printed {
            write!(stdout, "{}", &text[printed..])?;
        }
        writeln!(stdout)?;
        drop(stdout);
        report_context(&gen, config.block_size, args.max_new_tokens);
    }
    Ok(())
}

/// Says on stderr when the context window slid or generation stopped at it, so a
/// short or long-range-incoherent output is never a surprise.
fn report_context(gen: &Generation, context: usize, asked: usize) {
    if gen.context_slides > 0 {
        eprintln!(
            "note: the context of {context} tokens filled; the window slid {} times (each keeps the newest {} tokens)",
            gen.context_slides,
            slide_keep(context)
        );
    }
    if gen.stopped_at_context {
        eprintln!(
            "note: stopped at the context of {context} tokens after {} of {asked} tokens (--no-slide)",
            gen.generated_ids.len()
        );
    }
}

/// The model's configuration, read before any weights are.
fn model_config(files: &ModelFiles) -> Result<GptConfig> {
    let json = read_json(&files.config)?;
    GptConfig::from_hf_json(&json).with_context(|| format!("{}", files.config.display()))
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
