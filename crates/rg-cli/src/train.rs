use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rusty_gradients::gpt::checkpoint::load_model_dir;
use rusty_gradients::gpt::data::{DataSource, SamplerKind, TextData};
use rusty_gradients::gpt::tasks::AdditionTask;
use rusty_gradients::gpt::{Event, Gpt, GptConfig, TrainConfig, Trainer};
use rusty_gradients::tokenize::{load_tokenizer, CharTokenizer, Tokenizer};
use rusty_gradients::Device;
use serde_json::json;

use crate::collectives::Collectives;
use crate::device::DeviceSpec;

/// Every flag is optional: defaults depend on whether the run trains on --data or on
/// the built-in task (help shows both where they differ).
#[derive(Args)]
pub struct TrainArgs {
    /// Text file, or directory of *.txt files, tokenized as one stream [default: none,
    /// trains on the built-in 3-digit addition task].
    #[arg(long, help_heading = "Data")]
    data: Option<PathBuf>,
    /// `char` (a character vocabulary built from the data), a tokenizer.json, or a
    /// directory with vocab.json + merges.txt [default: char, or --init's tokenizer].
    #[arg(long, help_heading = "Data")]
    tokenizer: Option<String>,
    /// Drop characters of --data that the vocabulary lacks (with a warning) instead of
    /// failing [default: off].
    #[arg(long, help_heading = "Data")]
    skip_unknown: bool,
    /// sequential or random windows of the token stream [default: random].
    #[arg(long, help_heading = "Data")]
    sampler: Option<String>,
    /// Fraction of the token stream held out for evaluation (its tail) [default: 0.1].
    #[arg(long, help_heading = "Data")]
    eval_fraction: Option<f64>,
    /// Start from a Hugging Face GPT-2 directory or one of our checkpoints [default:
    /// fresh weights].
    #[arg(long, help_heading = "Model")]
    init: Option<PathBuf>,
    /// Continue a run from one of its checkpoints (same --data) [default: none].
    #[arg(long, help_heading = "Model")]
    resume: Option<PathBuf>,
    /// Model preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl, nano, micro [default:
    /// nano; built-in task: 2 layers, 4 heads, 96 wide].
    #[arg(long, help_heading = "Model")]
    config: Option<String>,
    /// Transformer layers [default: from --config].
    #[arg(long, help_heading = "Model")]
    n_layer: Option<usize>,
    /// Attention heads (must divide --n-embd) [default: from --config].
    #[arg(long, help_heading = "Model")]
    n_head: Option<usize>,
    /// Embedding width [default: from --config].
    #[arg(long, help_heading = "Model")]
    n_embd: Option<usize>,
    /// Context length in tokens [default: --seq-len or 64; built-in task: 16].
    #[arg(long, help_heading = "Model")]
    block_size: Option<usize>,
    /// Dropout probability [default: 0, or the checkpoint's].
    #[arg(long, help_heading = "Model")]
    dropout: Option<f64>,
    /// Rows per micro-batch [default: 12; built-in task: 64].
    #[arg(long, help_heading = "Optimisation")]
    batch_size: Option<usize>,
    /// Tokens per row [default: min(64, context); built-in task: 12].
    #[arg(long, help_heading = "Optimisation")]
    seq_len: Option<usize>,
    /// Optimizer steps in all [default: 1000; built-in task: 2500].
    #[arg(long, help_heading = "Optimisation")]
    steps: Option<usize>,
    /// Peak learning rate [default: 1e-3].
    #[arg(long, help_heading = "Optimisation")]
    lr: Option<f64>,
    /// Learning rate at the end of the cosine decay [default: 1e-4, or --lr if lower].
    #[arg(long, help_heading = "Optimisation")]
    min_lr: Option<f64>,
    /// constant or cosine (linear warmup, cosine decay to --min-lr) [default: cosine].
    #[arg(long, help_heading = "Optimisation")]
    lr_schedule: Option<String>,
    /// Linear warmup steps [default: 100; built-in task: 50].
    #[arg(long, help_heading = "Optimisation")]
    warmup: Option<usize>,
    /// AdamW weight decay on matrices and embeddings [default: 0.1].
    #[arg(long, help_heading = "Optimisation")]
    weight_decay: Option<f64>,
    /// AdamW beta1 [default: 0.9].
    #[arg(long, help_heading = "Optimisation")]
    beta1: Option<f64>,
    /// AdamW beta2 [default: 0.99; built-in task: 0.98].
    #[arg(long, help_heading = "Optimisation")]
    beta2: Option<f64>,
    /// AdamW epsilon [default: 1e-8].
    #[arg(long, help_heading = "Optimisation")]
    eps: Option<f64>,
    /// Global gradient-norm limit; 0 turns clipping off [default: 1.0].
    #[arg(long, help_heading = "Optimisation")]
    grad_clip: Option<f64>,
    /// Micro-batches per optimizer step [default: 1].
    #[arg(long, help_heading = "Optimisation")]
    grad_accum: Option<usize>,
    /// Under mpirun: 1 shards AdamW's moments across ranks (ZeRO stage 1), 0 keeps a
    /// full copy on every rank.
    #[arg(long, default_value_t = 0, help_heading = "Optimisation")]
    zero: u8,
    /// Under mpirun: send each layer's gradients while backward is still running (on),
    /// or average them after the backward pass (off); the results are the same bits.
    /// auto: on when the ranks span several hosts, off on one host, where the exchange
    /// is a memory copy by the cores the backward pass needs [default: auto].
    #[arg(long, value_parser = ["auto", "on", "off"], default_value = "auto", help_heading = "Optimisation")]
    overlap: String,
    /// Seed of initialisation, data order and dropout [default: 1337].
    #[arg(long, help_heading = "Optimisation")]
    seed: Option<u64>,
    /// Compute precision of matmuls and attention: f32, or bf16 (autocast; weights and
    /// optimizer state stay f32) [default: f32].
    #[arg(long, value_parser = ["f32", "bf16"], help_heading = "Optimisation")]
    dtype: Option<String>,
    /// Evaluate every N steps; 0 only at the end [default: 250; built-in task: 500].
    #[arg(long, help_heading = "Evaluation and checkpoints")]
    eval_every: Option<usize>,
    /// Held-out batches per evaluation [default: 20; built-in task: 4].
    #[arg(long, help_heading = "Evaluation and checkpoints")]
    eval_iters: Option<usize>,
    /// Save a checkpoint every N steps; 0 only at the end (and on Ctrl-C) [default: 0].
    #[arg(long, help_heading = "Evaluation and checkpoints")]
    save_every: Option<usize>,
    /// Keep only the newest N step checkpoints, 0 keeps all (the best one is kept as
    /// `best`) [default: 0].
    #[arg(long, help_heading = "Evaluation and checkpoints")]
    keep_last: Option<usize>,
    /// Output directory: checkpoints/, metrics.jsonl, loss.svg.
    #[arg(long, default_value = "out", help_heading = "Output")]
    out: PathBuf,
    /// text: a progress bar on stderr; json: one JSON object per event on stdout.
    #[arg(long, default_value = "text", value_parser = ["text", "json"], help_heading = "Output")]
    log_format: String,
    /// Device to train on: cpu, or cuda[:N] in a CUDA build. `cuda` without an index
    /// is GPU <local rank> under mpirun/srun (one rank per GPU), GPU 0 otherwise.
    #[arg(long, default_value = "cpu", help_heading = "Output")]
    device: String,
    /// Collectives of data-parallel training: auto is nccl when --device is cuda and
    /// rgrad was built with `--features nccl`, mpi when started by mpirun/srun, else
    /// single (one process).
    #[arg(long, value_enum, default_value_t = Collectives::Auto, help_heading = "Output")]
    collectives: Collectives,
    /// Start even when the memory estimate exceeds the memory available [default: off].
    #[arg(long, help_heading = "Output")]
    force: bool,
    /// Set on ranks other than 0 of a data-parallel run: they print nothing but errors.
    #[arg(skip)]
    quiet: bool,
}

/// Shown after `rgrad train --help`.
pub const EXAMPLES: &str = "\
Examples:
  # The built-in 3-digit addition task (about two minutes on two cores):
  rgrad train --out runs/addition

  # A character model of Tiny Shakespeare (nanoGPT's shakespeare_char, CPU size):
  rgrad train --data tinyshakespeare.txt --block-size 64 --batch-size 12 --steps 2000 \\
      --out runs/shakespeare
  rgrad generate --model runs/shakespeare --prompt 'ROMEO:' --max-new-tokens 500

  # Fine-tuning GPT-2 (124M) from a Hugging Face directory on your text:
  rgrad train --init path/to/gpt2 --data my-text.txt --seq-len 128 --batch-size 4 \\
      --lr 3e-5 --steps 200 --dtype bf16 --out runs/finetune";

/// Held-out problems of the built-in task (its accuracy is measured on them).
const TASK_TEST_PROBLEMS: usize = rusty_gradients::gpt::tasks::ADDITION_TEST_PROBLEMS;

/// Settings of the built-in task (shared with the browser build, so both train the
/// same model).
fn task_defaults() -> (GptConfig, TrainConfig) {
    rusty_gradients::gpt::tasks::addition_defaults()
}

impl TrainArgs {
    fn apply_run_settings(&self, mut c: TrainConfig) -> Result<TrainConfig> {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            batch_size,
            seq_len,
            steps,
            lr,
            min_lr,
            warmup,
            weight_decay,
            beta1,
            beta2,
            eps,
            grad_clip,
            grad_accum,
            seed,
            eval_every,
            eval_iters,
            save_every,
            keep_last
        );
        if let Some(s) = &self.lr_schedule {
            c.lr_schedule = s.parse()?;
        }
        if let Some(d) = &self.dtype {
            c.precision = d.parse()?;
        }
        if self.lr.is_some() && self.min_lr.is_none() {
            c.min_lr = c.min_lr.min(c.lr);
        }
        c.validate()?;
        Ok(c)
    }

    fn apply_model_sizes(&self, mut m: GptConfig) -> Result<GptConfig> {
        if let Some(name) = &self.config {
            let preset = GptConfig::preset(name).context("--config")?;
            m = GptConfig {
                vocab_size: m.vocab_size,
                ..preset
            };
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { m.$f = v; } )* };
        }
        set!(n_layer, n_head, n_embd, block_size, dropout);
        m.validate().context("model size flags")?;
        Ok(m)
    }
}

/// The text of `--data`: a file, or a directory's *.txt files in name order, joined;
/// empty or whitespace-only text is an error.
fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    for f in crate::input::text_files("--data", &[path.to_path_buf()])? {
        text.push_str(&crate::input::read_utf8("--data", &f)?);
    }
    if text.trim().is_empty() {
        let what = if path.is_dir() {
            "the *.txt files in this directory"
        } else {
            "the file"
        };
        let state = if text.is_empty() {
            "empty"
        } else {
            "only whitespace"
        };
        bail!(
            "--data {}: {what} {} {state}: there is nothing to train on",
            path.display(),
            if path.is_dir() { "are" } else { "is" }
        );
    }
    Ok(text)
}

/// Tokens of `text` through a tokenizer that was not built from it: characters it
/// cannot represent are an error naming them, or dropped with `--skip-unknown`.
fn encode_data(tokenizer: &dyn Tokenizer, text: &str, skip_unknown: bool) -> Result<Vec<u32>> {
    let text = crate::vocab_check::checked_text("--data", tokenizer, text, skip_unknown)?;
    Ok(tokenizer.encode(&text))
}

/// Prints the memory estimate of training `cfg` and refuses when it cannot fit.
/// `eval_prompts`: the built-in task's held-out problems (count, prompt length, with
/// the answer), generated in one batch.
fn preflight(
    args: &TrainArgs,
    cfg: &GptConfig,
    train: &TrainConfig,
    eval_prompts: Option<(usize, usize, usize)>,
) -> Result<()> {
    let bf16 = train.precision.compute_dtype().is_some();
    let estimate =
        crate::preflight::training(cfg, train.batch_size, train.seq_len, bf16, eval_prompts);
    let line = crate::preflight::describe(&estimate);
    if args.quiet {
    } else if args.log_format == "json" {
        print_json_line(
            &json!({"event": "preflight", "params": estimate.params, "flops_per_token": estimate.flops_per_token, "memory_estimate_bytes": estimate.bytes}),
        );
    } else {
        eprintln!("{line}");
    }
    crate::preflight::check(
        &estimate,
        args.force,
        "use a smaller --batch-size or --seq-len (with --grad-accum to keep the tokens per step), a smaller model, or --dtype bf16",
    )
}

fn text_tokenizer(spec: Option<&str>, text: &str) -> Result<Box<dyn Tokenizer>> {
    match spec {
        None | Some("char") => Ok(Box::new(CharTokenizer::from_text(text, &[]))),
        Some(path) => load_tokenizer(path).with_context(|| format!("--tokenizer {path}")),
    }
}

struct Setup {
    model: Gpt,
    data: Box<dyn DataSource>,
    tokenizer: Box<dyn Tokenizer>,
    train: TrainConfig,
    task: Option<AdditionTask>,
}

/// What a checkpoint says about the run that wrote it.
struct ResumeInfo {
    train: TrainConfig,
    dropout: f64,
    sampler: Option<String>,
}

fn resume_info(dir: &Path) -> Result<ResumeInfo> {
    let path = dir.join(rusty_gradients::gpt::checkpoint::TRAINER_STATE_FILE);
    let state = rusty_gradients::gpt::checkpoint::read_json(&path).context("--resume")?;
    let train: TrainConfig = serde_json::from_value(state["train_config"].clone())
        .with_context(|| format!("--resume: {}: malformed train_config", path.display()))?;
    Ok(ResumeInfo {
        train,
        dropout: state["dropout"].as_f64().unwrap_or(0.0),
        sampler: state["data"]["sampler"].as_str().map(str::to_string),
    })
}

fn setup(args: &TrainArgs, device: Device) -> Result<Setup> {
    if let Some(dir) = &args.resume {
        return setup_resume(args, dir, device);
    }
    let sampler: SamplerKind = args.sampler.as_deref().unwrap_or("random").parse()?;
    let Some(data_path) = &args.data else {
        if args.init.is_some() {
            bail!("--init: fine-tuning needs --data (the built-in task trains from scratch)");
        }
        let (model_cfg, train_cfg) = task_defaults();
        let train = args.apply_run_settings(train_cfg)?;
        let task = AdditionTask::new(3, TASK_TEST_PROBLEMS, train.seed)?;
        let model_cfg = args.apply_model_sizes(GptConfig {
            vocab_size: task.tokenizer().vocab_size(),
            ..model_cfg
        })?;
        if train.seq_len != task.seq_len() {
            bail!(
                "--seq-len: the built-in task uses rows of {} tokens",
                task.seq_len()
            );
        }
        preflight(
            args,
            &model_cfg,
            &train,
            Some((
                task.test_problems().len(),
                task.prompt_len(),
                task.seq_len(),
            )),
        )?;
        let model = Gpt::init(model_cfg, train.seed, device)?;
        let tokenizer: Box<dyn Tokenizer> = Box::new(task.tokenizer().clone());
        let data = Box::new(AdditionTask::new(3, TASK_TEST_PROBLEMS, train.seed)?);
        return Ok(Setup {
            model,
            data,
            tokenizer,
            train,
            task: Some(task),
        });
    };
    let text = read_text(data_path)?;
    let (model, tokenizer, train) = match &args.init {
        Some(dir) => {
            let loaded = load_model_dir(dir, &device)
                .with_context(|| format!("--init {}", dir.display()))?;
            let tokenizer = match &args.tokenizer {
                Some(spec) => text_tokenizer(Some(spec), &text)?,
                None => loaded.tokenizer,
            };
            let mut cfg = loaded.model.config().clone();
            if let Some(p) = args.dropout {
                cfg.dropout = p;
            }
            cfg.validate().context("--dropout")?;
            let train = text_run_settings(args, &cfg)?;
            preflight(args, &cfg, &train, None)?;
            let model = Gpt::from_tensors(cfg, tensors_of(&loaded.model))?;
            (model, tokenizer, train)
        }
        None => {
            let tokenizer = text_tokenizer(args.tokenizer.as_deref(), &text)?;
            let base = GptConfig {
                vocab_size: tokenizer.vocab_size(),
                block_size: args.seq_len.unwrap_or(64),
                ..GptConfig::preset("nano")?
            };
            let cfg = args.apply_model_sizes(base)?;
            let cfg = GptConfig {
                vocab_size: tokenizer.vocab_size(),
                ..cfg
            };
            let train = text_run_settings(args, &cfg)?;
            preflight(args, &cfg, &train, None)?;
            (Gpt::init(cfg, train.seed, device)?, tokenizer, train)
        }
    };
    let tokens = encode_data(tokenizer.as_ref(), &text, args.skip_unknown)?;
    let eval_fraction = args.eval_fraction.unwrap_or(0.1);
    let data = Box::new(TextData::new(tokens, eval_fraction, sampler, train.seed)?);
    Ok(Setup {
        model,
        data,
        tokenizer,
        train,
        task: None,
    })
}

/// Run settings of training on text: the defaults, with rows as long as the context
/// allows (at most 64 tokens), then the flags.
fn text_run_settings(args: &TrainArgs, cfg: &GptConfig) -> Result<TrainConfig> {
    args.apply_run_settings(TrainConfig {
        seq_len: cfg.block_size.min(64),
        ..TrainConfig::default()
    })
}

/// Model, tokenizer and settings from a checkpoint; flags given again override the
/// run settings (e.g. a larger --steps), the data must be the same as before.
fn setup_resume(args: &TrainArgs, dir: &Path, device: Device) -> Result<Setup> {
    if args.init.is_some() {
        bail!("--init and --resume exclude each other");
    }
    let info = resume_info(dir)?;
    let loaded =
        load_model_dir(dir, &device).with_context(|| format!("--resume {}", dir.display()))?;
    let cfg = GptConfig {
        dropout: args.dropout.unwrap_or(info.dropout),
        ..loaded.model.config().clone()
    };
    let model = Gpt::from_tensors(cfg, tensors_of(&loaded.model))?;
    let train = args.apply_run_settings(info.train)?;
    let eval_prompts = match &args.data {
        None => {
            let task = AdditionTask::new(3, TASK_TEST_PROBLEMS, train.seed)?;
            Some((
                task.test_problems().len(),
                task.prompt_len(),
                task.seq_len(),
            ))
        }
        Some(_) => None,
    };
    preflight(args, model.config(), &train, eval_prompts)?;
    let tokenizer = loaded.tokenizer;
    let (data, task): (Box<dyn DataSource>, Option<AdditionTask>) = match &args.data {
        None => (
            Box::new(AdditionTask::new(3, TASK_TEST_PROBLEMS, train.seed)?),
            Some(AdditionTask::new(3, TASK_TEST_PROBLEMS, train.seed)?),
        ),
        Some(path) => {
            let sampler: SamplerKind = args
                .sampler
                .as_deref()
                .or(info.sampler.as_deref())
                .unwrap_or("random")
                .parse()?;
            let tokens = encode_data(tokenizer.as_ref(), &read_text(path)?, args.skip_unknown)?;
            let eval_fraction = args.eval_fraction.unwrap_or(0.1);
            (
                Box::new(TextData::new(tokens, eval_fraction, sampler, train.seed)?),
                None,
            )
        }
    };
    Ok(Setup {
        model,
        data,
        tokenizer,
        train,
        task,
    })
}

/// The parameters of a loaded model, by name, to rebuild it with other settings.
fn tensors_of(model: &Gpt) -> std::collections::HashMap<String, rusty_gradients::Tensor> {
    use rusty_gradients::nn::Module;
    model
        .named_params()
        .into_iter()
        .map(|(n, v)| (n, v.tensor().clone()))
        .collect()
}

pub fn run(mut args: TrainArgs) -> Result<()> {
    let device = DeviceSpec::parse(&args.device)?;
    let backend = crate::collectives::choose(
        args.collectives,
        device,
        rusty_gradients::dist::launched_by_mpi(),
        rusty_gradients::dist::Backend::is_built_in,
    )?;
    let comm = backend
        .open()
        .with_context(|| crate::collectives::joining(args.collectives, backend))?;
    let (rank, world) = (comm.rank(), comm.world_size());
    let result = run_rank(&mut args, comm, device);
    if world > 1 {
        return result.with_context(|| format!("rank {rank} of {world}"));
    }
    result
}

fn run_rank(
    args: &mut TrainArgs,
    comm: Box<dyn rusty_gradients::dist::Communicator>,
    device: DeviceSpec,
) -> Result<()> {
    args.quiet = comm.rank() != 0;
    if args.zero > 1 {
        bail!("--zero: {} is not one of: 0, 1", args.zero);
    }
    let args = &*args;
    let device = crate::device::check(device.resolve(comm.local_rank()))?;
    let json_log = args.log_format == "json";
    let s = setup(args, device)?;
    let world = comm.world_size();
    let collectives = comm.backend_name();
    let world_line = if world > 1 {
        format!(
            "; {world} ranks ({collectives}) x {} rows = {} rows per micro-batch",
            s.train.batch_size,
            s.train.batch_size * world
        )
    } else if collectives != "single" {
        format!("; collectives {collectives} (one rank)")
    } else {
        String::new()
    };
    let described = s.data.describe();
    let params = rusty_gradients::nn::Module::param_count(&s.model);
    let total_steps = s.train.steps;
    let mut trainer = Trainer::new(
        s.model,
        s.data,
        s.tokenizer,
        s.train,
        Some(args.out.clone()),
    )?
    .with_communicator(comm)?;
    match args.overlap.as_str() {
        "on" => trainer = trainer.with_overlapped_exchange(true),
        "off" => trainer = trainer.with_overlapped_exchange(false),
        _ => {}
    }
    if args.zero == 1 {
        trainer = trainer.with_zero_stage_1()?;
    }
    if let Some(task) = s.task {
        trainer = trainer.with_accuracy(move |m| task.accuracy(m));
    }
    let signals = crate::interrupt::StopSignals::install()?;
    trainer = trainer.with_stop_flag(signals.flag());
    if let Some(dir) = &args.resume {
        trainer
            .restore(dir)
            .with_context(|| format!("--resume {}", dir.display()))?;
    }
    let bar = if json_log || args.quiet {
        ProgressBar::hidden()
    } else {
        eprintln!(
            "{described}; model: {params} parameters{world_line}; writing to {}",
            args.out.display()
        );
        let bar = ProgressBar::new(total_steps as u64);
        bar.set_position(trainer.step_count() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        bar
    };
    let quiet = args.quiet;
    let summary = trainer.run(|event| match event {
        _ if quiet => {}
        Event::Step(r) => {
            if json_log {
                let mut line = json!({"event": "step", "step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm, "tokens_per_s": r.tokens_per_s});
                if let Some(x) = &r.exchange {
                    line["exchange_s"] = json!(x.exchange_s);
                    line["exchange_exposed_s"] = json!(x.exchange_exposed_s);
                }
                print_json_line(&line);
            } else {
                bar.set_position(r.step as u64);
                bar.set_message(format!("loss {:.4} lr {:.2e} {:.0} tok/s", r.loss, r.lr, r.tokens_per_s));
            }
        }
        Event::Eval(e) => {
            if json_log {
                print_json_line(&json!({"event": "eval", "step": e.step, "eval_loss": e.eval_loss, "eval_accuracy": e.eval_accuracy}));
            } else {
                let acc = e.eval_accuracy.map(|a| format!(", held-out accuracy {:.1}%", 100.0 * a)).unwrap_or_default();
                bar.println(format!("step {}: held-out loss {:.4}{acc}", e.step, e.eval_loss));
            }
        }
        Event::Checkpoint(p) => {
            if !json_log {
                bar.println(format!("saved {}", p.display()));
            }
        }
    })?;
    bar.finish_and_clear();
    let done = json!({
        "event": "done",
        "steps": summary.steps,
        "final_loss": summary.final_loss,
        "eval_loss": summary.eval_loss,
        "eval_accuracy": summary.eval_accuracy,
        "checkpoint": summary.checkpoint,
        "wall_s": summary.wall_s,
        "interrupted": summary.interrupted,
        "peak_rss_bytes": crate::preflight::process_memory("VmHWM"),
        "world_size": summary.world_size,
        "collectives": collectives,
        "device": device.to_string(),
        "param_hash": summary.param_hash.map(|h| format!("{h:016x}")),
    });
    if summary.interrupted {
        if json_log && !args.quiet {
            print_json_line(&done);
        }
        if !args.quiet {
            report_interrupt(args, &summary, &signals);
        }
        std::process::exit(signals.exit_code());
    }
    if args.quiet {
    } else if json_log {
        print_json_line(&done);
    } else {
        let acc = summary
            .eval_accuracy
            .map(|a| format!(", held-out accuracy {:.1}%", 100.0 * a))
            .unwrap_or_default();
        let ranks = summary
            .param_hash
            .map(|h| {
                format!(
                    "; parameters bitwise equal on all {} ranks (hash {h:016x})",
                    summary.world_size
                )
            })
            .unwrap_or_default();
        eprintln!(
            "done: {} steps in {:.1}s, final loss {:.4}{}{acc}; checkpoint {}{ranks}",
            summary.steps,
            summary.wall_s,
            summary.final_loss,
            summary
                .eval_loss
                .map(|l| format!(", held-out loss {l:.4}"))
                .unwrap_or_default(),
            summary
                .checkpoint
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Where the interrupted run's checkpoint is and the command that continues it.
fn report_interrupt(
    args: &TrainArgs,
    summary: &rusty_gradients::gpt::Summary,
    signals: &crate::interrupt::StopSignals,
) {
    let Some(ckpt) = summary.checkpoint.as_deref() else {
        eprintln!(
            "{}: stopped after step {} (no --out, nothing saved)",
            signals.name(),
            summary.steps
        );
        return;
    };
    let data = args
        .data
        .as_deref()
        .map(|d| format!(" --data {}", d.display()))
        .unwrap_or_default();
    eprintln!(
        "{}: stopped after step {}; checkpoint {}\nresume with: rgrad train --resume {}{data} --out {}",
        signals.name(),
        summary.steps,
        ckpt.display(),
        ckpt.display(),
        args.out.display()
    );
}

/// One `--log-format json` line on stdout. A reader that went away (`rgrad train | head`)
/// must not end the run or lose its checkpoints: the first failed write is reported on
/// stderr once, later lines are dropped (`metrics.jsonl` in `--out` keeps them all).
fn print_json_line(value: &serde_json::Value) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{value}").and_then(|()| out.flush()) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        eprintln!("warning: cannot write the JSON log to stdout ({e}); training goes on, metrics.jsonl in --out keeps every line");
    }
}
