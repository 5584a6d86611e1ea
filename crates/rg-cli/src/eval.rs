use anyhow::{bail, Context, Result};
use clap::Args;
use rusty_gradients::gpt::eval::{evaluate, greedy_agreement, EvalMode, EvalResult};
use rusty_gradients::hub::{load_model_with_dtype, HubOptions};
use rusty_gradients::DType;
use serde_json::json;

#[derive(Args)]
pub struct EvalArgs {
    /// The model to score (directory, run directory or hub id, as for generate).
    #[arg(long)]
    model: String,
    /// Weight dtype for compute: f32 or bf16 (a q8_0 directory keeps its int8 weights).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Text file to score; its tail is the held-out part (see --eval-fraction).
    #[arg(long)]
    data: std::path::PathBuf,
    /// Fraction of the token stream scored: its tail, as `rgrad train` holds it out.
    #[arg(long, default_value_t = 0.1)]
    eval_fraction: f64,
    /// Score at most this many held-out tokens (0: all).
    #[arg(long, default_value_t = 0)]
    max_tokens: usize,
    /// Tokens per window (default: the model's context).
    #[arg(long)]
    window: Option<usize>,
    /// decode: token by token through the KV cache (generation's path); forward: one
    /// pass per window.
    #[arg(long, default_value = "decode", value_parser = ["decode", "forward"])]
    mode: String,
    /// A second model, loaded with f32 weights (e.g. the original of a bf16 or q8_0
    /// run) and scored the same way: prints the fraction of positions where both
    /// models' greedy next tokens agree (default: none, no comparison).
    #[arg(long)]
    reference: Option<String>,
    /// text: a few lines; json: one object.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.eval_fraction) || args.eval_fraction == 0.0 {
        bail!("--eval-fraction: {} is not in (0, 1]", args.eval_fraction);
    }
    let dtype: DType = args.dtype.parse().context("--dtype")?;
    let mode = if args.mode == "decode" {
        EvalMode::Decode
    } else {
        EvalMode::Forward
    };
    let hub = HubOptions {
        progress: false,
        ..HubOptions::default()
    };
    let device = rusty_gradients::Device::Cpu;
    let load = |spec: &str, flag: &str, dtype: DType| {
        load_model_with_dtype(spec, &device, &hub, dtype).with_context(|| format!("{flag} {spec}"))
    };
    let loaded = load(&args.model, "--model", dtype)?;
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("--data {}", args.data.display()))?;
    let tokens = loaded.tokenizer.encode(&text);
    let held_out = (tokens.len() as f64 * args.eval_fraction).round() as usize;
    let mut scored = &tokens[tokens.len() - held_out..];
    if args.max_tokens > 0 && scored.len() > args.max_tokens {
        scored = &scored[..args.max_tokens];
    }
    let window = args.window.unwrap_or(loaded.model.config().block_size);
    let result = evaluate(&loaded.model, scored, window, mode)?;
    let reference: Option<(EvalResult, f64)> = match &args.reference {
        Some(spec) => {
            let other = load(spec, "--reference", DType::F32)?;
            let r = evaluate(&other.model, scored, window, mode)?;
            let agreement = greedy_agreement(&result, &r)?;
            Some((r, agreement))
        }
        None => None,
    };
    if args.format == "json" {
        let mut out = json!({
            "model": args.model,
            "mode": args.mode,
            "tokens_scored": result.greedy.len(),
            "loss": result.loss,
            "perplexity": result.perplexity,
            "weight_bytes": loaded.model.weight_bytes(),
        });
        if let Some((r, agreement)) = &reference {
            out["reference"] =
                json!({"model": args.reference, "loss": r.loss, "perplexity": r.perplexity});
            out["greedy_agreement"] = json!(agreement);
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: {} tokens scored ({} mode), loss {:.5}, perplexity {:.4}",
        args.model,
        result.greedy.len(),
        args.mode,
        result.loss,
        result.perplexity
    );
    if let Some((r, agreement)) = reference {
        println!(
            "reference {}: loss {:.5}, perplexity {:.4}; perplexity ratio {:.5}; greedy agreement {:.4}",
            args.reference.unwrap_or_default(),
            r.loss,
            r.perplexity,
            result.perplexity / r.perplexity,
            agreement
        );
    }
    Ok(())
}
