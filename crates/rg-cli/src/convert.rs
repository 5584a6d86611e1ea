use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use rusty_gradients::gpt::convert::{
    convert_file, convert_model_dir, ConvertOptions, ConvertReport, FloatDType, KeyLayout,
};
use serde_json::json;

#[derive(Args)]
pub struct ConvertArgs {
    /// A model directory (Hugging Face GPT-2 or one of our checkpoints), or a single
    /// .safetensors file.
    #[arg(long)]
    input: PathBuf,
    /// The model directory (or, for a file --input, the .safetensors file) to write.
    /// Written atomically: complete or absent.
    #[arg(long)]
    output: PathBuf,
    /// f32, bf16 or f16 for the floating-point tensors (default: keep their dtypes);
    /// q8_0: `wte` and Linear weights as int8 + per-32 f16 scales, the rest f32.
    #[arg(long)]
    dtype: Option<String>,
    /// hf: `transformer.` names (loads in transformers); plain: no prefix. Default: hf
    /// for a directory; a file keeps its names unless this is given.
    #[arg(long)]
    layout: Option<String>,
    /// Replace an existing --output (never the input or a directory holding it)
    /// [default: off].
    #[arg(long)]
    overwrite: bool,
    /// text: a summary line; json: one object.
    #[arg(long, default_value = "text")]
    format: String,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let q8_0 = args.dtype.as_deref() == Some("q8_0");
    let dtype =
        match args.dtype.as_deref() {
            None => None,
            Some("q8_0") => Some(FloatDType::F32),
            Some(s) => Some(FloatDType::parse(s).ok_or_else(|| {
                anyhow::anyhow!("--dtype: {s:?} is not one of f32, bf16, f16, q8_0")
            })?),
        };
    let layout = match args.layout.as_deref() {
        None => None,
        Some(s) => Some(
            KeyLayout::parse(s)
                .ok_or_else(|| anyhow::anyhow!("--layout: {s:?} is not one of hf, plain"))?,
        ),
    };
    let json_out = match args.format.as_str() {
        "text" => false,
        "json" => true,
        other => bail!("--format: {other:?} is not one of text, json"),
    };
    let options = ConvertOptions {
        dtype,
        layout,
        overwrite: args.overwrite,
        q8_0,
    };
    let report = if args.input.is_dir() {
        convert_model_dir(&args.input, &args.output, &options)?
    } else if args.input.is_file() {
        convert_file(&args.input, &args.output, &options)?
    } else {
        bail!(
            "--input {}: no such file or directory",
            args.input.display()
        );
    };
    print_report(&report, json_out);
    Ok(())
}

fn print_report(r: &ConvertReport, json_out: bool) {
    if json_out {
        let out = json!({
            "output": r.output,
            "tensors": r.tensors,
            "converted": r.converted,
            "dropped": r.dropped,
            "transposed": r.transposed,
            "copied_files": r.copied_files,
            "bytes": r.bytes,
        });
        println!("{out}");
        return;
    }
    let mut line = format!(
        "wrote {} ({} tensors, {} converted, {} bytes",
        r.output.display(),
        r.tensors,
        r.converted,
        r.bytes
    );
    if !r.dropped.is_empty() {
        line.push_str(&format!(", {} dropped", r.dropped.len()));
    }
    if !r.transposed.is_empty() {
        line.push_str(&format!(", {} weights transposed", r.transposed.len()));
    }
    if !r.copied_files.is_empty() {
        line.push_str(&format!(", copied {}", r.copied_files.join(" ")));
    }
    line.push(')');
    println!("{line}");
}
