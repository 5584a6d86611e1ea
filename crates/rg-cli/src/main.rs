//! `rgrad`: the RustyGradients command line. Thin: parsing, progress and output
//! formats; the work is done by the library crates.

mod collectives;
mod convert;
mod device;
mod eval;
mod generate;
mod input;
mod inspect;
mod interrupt;
mod preflight;
mod tokenize;
mod train;
mod vocab_check;

#[cfg(test)]
mod help_check;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rgrad",
    version,
    about = "RustyGradients: train and run GPT models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GPT on your text, or on the built-in addition task when --data is absent.
    #[command(allow_negative_numbers = true, after_help = train::EXAMPLES)]
    Train(Box<train::TrainArgs>),
    /// Generate text from a model directory or checkpoint.
    Generate(generate::GenerateArgs),
    /// Train, run and measure tokenizers.
    #[command(subcommand)]
    Tokenize(tokenize::TokenizeCommand),
    /// Score a model on held-out text: loss, perplexity, greedy agreement with --reference.
    Eval(eval::EvalArgs),
    /// Print the devices this build can use.
    Devices,
    /// List the tensors (name, dtype, shape, bytes) of a safetensors file or model directory.
    Inspect(inspect::InspectArgs),
    /// Convert a model directory or safetensors file: dtype (f32/bf16/f16) and key layout.
    Convert(convert::ConvertArgs),
}

fn main() {
    let cli = Cli::parse();
    rusty_gradients::register_backends();
    // This thread issues every op: as a pool thread it runs each op's first part itself
    // instead of waking a worker and sleeping until it is done.
    if let Err(e) = rusty_gradients::cpu::init_thread_pool() {
        eprintln!("error: could not start the CPU thread pool: {e}");
        std::process::exit(1);
    }
    let result = match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Generate(args) => generate::run(args),
        Command::Tokenize(command) => tokenize::run(command),
        Command::Eval(args) => eval::run(args),
        Command::Devices => device::list(),
        Command::Inspect(args) => inspect::run(args),
        Command::Convert(args) => convert::run(args),
    };
    if let Err(e) = result {
        // One line: the chain of causes, never a backtrace.
        let mut msg = e.to_string();
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        eprintln!("error: {}", msg.replace('\n', " "));
        std::process::exit(1);
    }
}
