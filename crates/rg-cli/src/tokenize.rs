use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rusty_gradients::tokenize::{
    load_tokenizer, stats_for_files, train_bpe_from_files, Tokenizer, ENDOFTEXT,
};

#[derive(Subcommand)]
pub enum TokenizeCommand {
    /// Learn a byte-level BPE vocabulary from text files.
    Train(TrainArgs),
    /// Text to token ids.
    Encode(EncodeArgs),
    /// Token ids to text.
    Decode(DecodeArgs),
    /// Tokens, bytes per token and throughput of a tokenizer on some text.
    Stats(StatsArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// Text files (or directories of *.txt files).
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Tokens in the vocabulary: the 256 bytes, the specials, then learned merges.
    #[arg(long)]
    vocab_size: usize,
    /// Output directory for tokenizer.json, vocab.json and merges.txt.
    #[arg(long)]
    out: PathBuf,
    /// Special tokens reserved after the byte alphabet.
    #[arg(long, default_values_t = [ENDOFTEXT.to_string()])]
    special: Vec<String>,
}

#[derive(Args)]
pub struct EncodeArgs {
    /// tokenizer.json, or a directory with tokenizer.json or vocab.json + merges.txt.
    #[arg(long)]
    tokenizer: PathBuf,
    /// The UTF-8 text file to encode.
    #[arg(long)]
    input: PathBuf,
    /// json: a JSON array of ids; ids: ids separated by spaces.
    #[arg(long, default_value = "ids", value_parser = ["json", "ids"])]
    format: String,
}

#[derive(Args)]
pub struct DecodeArgs {
    /// tokenizer.json, or a directory with tokenizer.json or vocab.json + merges.txt.
    #[arg(long)]
    tokenizer: PathBuf,
    /// A file of ids (JSON array or whitespace-separated); `-` reads standard input.
    #[arg(long)]
    input: PathBuf,
}

#[derive(Args)]
pub struct StatsArgs {
    /// tokenizer.json, or a directory with tokenizer.json or vocab.json + merges.txt.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Text files to measure on (one or more).
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// text: one summary line; json: one object.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

fn tokenizer(path: &PathBuf) -> Result<Box<dyn Tokenizer>> {
    load_tokenizer(path).with_context(|| format!("--tokenizer {}", path.display()))
}

pub fn run(command: TokenizeCommand) -> Result<()> {
    match command {
        TokenizeCommand::Train(a) => {
            if a.vocab_size == 0 {
                bail!("--vocab-size must be positive");
            }
            let specials: Vec<&str> = a.special.iter().map(String::as_str).collect();
            let start = std::time::Instant::now();
            let tok = train_bpe_from_files(
                &crate::input::text_files("--data", &a.data)?,
                a.vocab_size,
                &specials,
            )
            .context("--data")?;
            tok.save(&a.out)
                .with_context(|| format!("--out {}", a.out.display()))?;
            eprintln!(
                "trained {} tokens in {:.2}s; wrote {}",
                tok.vocab_size(),
                start.elapsed().as_secs_f64(),
                a.out.display()
            );
        }
        TokenizeCommand::Encode(a) => {
            let tok = tokenizer(&a.tokenizer)?;
            let text = crate::input::read_utf8("--input", &a.input)?;
            let ids = tok.encode(&text);
            let mut out = std::io::stdout().lock();
            if a.format == "json" {
                writeln!(out, "{}", serde_json::to_string(&ids)?)?;
            } else {
                let line: Vec<String> = ids.iter().map(u32::to_string).collect();
                writeln!(out, "{}", line.join(" "))?;
            }
        }
        TokenizeCommand::Decode(a) => {
            let tok = tokenizer(&a.tokenizer)?;
            let raw = if a.input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("--input -")?
            } else {
                std::fs::read_to_string(&a.input)
                    .with_context(|| format!("--input {}", a.input.display()))?
            };
            let ids = parse_ids(&raw).with_context(|| format!("--input {}", a.input.display()))?;
            let bytes = tok.decode_bytes(&ids)?;
            std::io::stdout().lock().write_all(&bytes)?;
        }
        TokenizeCommand::Stats(a) => {
            let tok = tokenizer(&a.tokenizer)?;
            let s = stats_for_files(tok.as_ref(), &a.input, 10).context("--input")?;
            if a.format == "json" {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "{} bytes, {} tokens ({} distinct of {}), {:.3} bytes/token, {:.1} MB/s",
                    s.bytes,
                    s.tokens,
                    s.distinct_tokens,
                    s.vocab_size,
                    s.bytes_per_token,
                    s.bytes as f64 / s.encode_seconds.max(1e-9) / 1e6
                );
            }
        }
    }
    Ok(())
}

/// Ids as a JSON array or separated by whitespace/commas.
fn parse_ids(raw: &str) -> Result<Vec<u32>> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).context("not a JSON array of ids");
    }
    trimmed
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("{s:?} is not a token id"))
        })
        .collect()
}
