//! `rgrad`: the RustyGradients command line. Thin: parsing, progress and output formats;
//! the work is done by the library crates.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rgrad", version, about = "RustyGradients: train and run GPT models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the devices this build can use.
    Devices,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices => devices(),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn devices() -> anyhow::Result<()> {
    use rusty_gradients::Device;
    println!("cpu");
    match Device::cuda(0) {
        Ok(d) => println!("{d}"),
        Err(e) => println!("cuda: unavailable ({e})"),
    }
    Ok(())
}
