use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rusty_gradients::gpt::checkpoint::load_model_dir;
use rusty_gradients::gpt::data::{DataSource, SamplerKind, TextData};
use rusty_gradients::gpt::tasks::AdditionTask;
use rusty_gradients::gpt::{Event, Gpt, GptConfig, ScheduleKind, TrainConfig, Trainer};
use rusty_gradients::tokenize::{load_tokenizer, CharTokenizer, Tokenizer};
use rusty_gradients::Device;
use serde_json::json;

/// Every flag is optional: defaults depend on whether the run trains on --data or on
/// the built-in task.
#[derive(Args)]
pub struct TrainArgs {
    /// Text file, or directory of *.txt files, tokenized as one stream. Without it,
    /// trains on the built-in 3-digit addition task.
    #[arg(long)]
    data: Option<PathBuf>,
    /// `char` (build a character vocabulary from the data), a tokenizer.json, or a
    /// directory with vocab.json + merges.txt. Default: char, or --init's tokenizer.
    #[arg(long)]
    tokenizer: Option<String>,
    /// Start from a Hugging Face GPT-2 directory or one of our checkpoints.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue a run from one of its checkpoints (same --data).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Model preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl, nano, micro.
    #[arg(long)]
    config: Option<String>,
    #[arg(long)]
    n_layer: Option<usize>,
    #[arg(long)]
    n_head: Option<usize>,
    #[arg(long)]
    n_embd: Option<usize>,
    #[arg(long)]
    block_size: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    seq_len: Option<usize>,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    min_lr: Option<f64>,
    /// constant or cosine (linear warmup, cosine decay to --min-lr).
    #[arg(long)]
    lr_schedule: Option<String>,
    #[arg(long)]
    warmup: Option<usize>,
    #[arg(long)]
    weight_decay: Option<f64>,
    #[arg(long)]
    beta1: Option<f64>,
    #[arg(long)]
    beta2: Option<f64>,
    #[arg(long)]
    eps: Option<f64>,
    /// Global gradient-norm limit; 0 turns clipping off.
    #[arg(long)]
    grad_clip: Option<f64>,
    #[arg(long)]
    grad_accum: Option<usize>,
    #[arg(long)]
    dropout: Option<f64>,
    /// sequential or random.
    #[arg(long)]
    sampler: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Fraction of the token stream held out for evaluation (its tail).
    #[arg(long)]
    eval_fraction: Option<f64>,
    #[arg(long)]
    eval_every: Option<usize>,
    #[arg(long)]
    eval_iters: Option<usize>,
    #[arg(long)]
    save_every: Option<usize>,
    /// Keep only the newest N step checkpoints (the best one is kept as `best`).
    #[arg(long)]
    keep_last: Option<usize>,
    /// Compute precision of matmuls and attention: f32, or bf16 (autocast; weights and
    /// optimizer state stay f32).
    #[arg(long, value_parser = ["f32", "bf16"])]
    dtype: Option<String>,
    /// Output directory: checkpoints/, metrics.jsonl, loss.svg.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// text: a progress bar; json: one JSON object per step on stdout.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Settings of the built-in task: a model and schedule that reach high held-out
/// accuracy in a couple of minutes on two cores.
fn task_defaults() -> (GptConfig, TrainConfig) {
    let model = GptConfig {
        vocab_size: 13,
        block_size: 16,
        n_layer: 2,
        n_head: 4,
        n_embd: 96,
        layer_norm_eps: 1e-5,
        dropout: 0.0,
    };
    let train = TrainConfig {
        batch_size: 64,
        seq_len: 12,
        steps: 2500,
        lr: 1e-3,
        min_lr: 1e-4,
        lr_schedule: ScheduleKind::Cosine,
        warmup: 50,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        grad_clip: 1.0,
        grad_accum: 1,
        seed: 1337,
        eval_every: 500,
        eval_iters: 4,
        save_every: 0,
        keep_last: 0,
        precision: Default::default(),
    };
    (model, train)
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

/// The text of `--data`: a file, or a directory's *.txt files in name order, joined.
fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    for f in crate::input::text_files("--data", &[path.to_path_buf()])? {
        text.push_str(&crate::input::read_utf8("--data", &f)?);
    }
    Ok(text)
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
        let task = AdditionTask::new(3, 500, train.seed)?;
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
        let model = Gpt::init(model_cfg, train.seed, device)?;
        let tokenizer: Box<dyn Tokenizer> = Box::new(task.tokenizer().clone());
        let data = Box::new(AdditionTask::new(3, 500, train.seed)?);
        return Ok(Setup {
            model,
            data,
            tokenizer,
            train,
            task: Some(task),
        });
    };
    let text = read_text(data_path)?;
    let (model, tokenizer) = match &args.init {
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
            let model = Gpt::from_tensors(cfg, tensors_of(&loaded.model))?;
            (model, tokenizer)
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
            let seed = args.seed.unwrap_or(TrainConfig::default().seed);
            (Gpt::init(cfg, seed, device)?, tokenizer)
        }
    };
    let tokens = tokenizer.encode(&text);
    let train = args.apply_run_settings(TrainConfig {
        seq_len: model.config().block_size.min(64),
        ..TrainConfig::default()
    })?;
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
    let tokenizer = loaded.tokenizer;
    let (data, task): (Box<dyn DataSource>, Option<AdditionTask>) = match &args.data {
        None => (
            Box::new(AdditionTask::new(3, 500, train.seed)?),
            Some(AdditionTask::new(3, 500, train.seed)?),
        ),
        Some(path) => {
            let sampler: SamplerKind = args
                .sampler
                .as_deref()
                .or(info.sampler.as_deref())
                .unwrap_or("random")
                .parse()?;
            let tokens = tokenizer.encode(&read_text(path)?);
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

pub fn run(args: TrainArgs) -> Result<()> {
    let device = crate::device::parse(&args.device)?;
    let json_log = args.log_format == "json";
    let s = setup(&args, device)?;
    let described = s.data.describe();
    let params = rusty_gradients::nn::Module::param_count(&s.model);
    let total_steps = s.train.steps;
    let mut trainer = Trainer::new(
        s.model,
        s.data,
        s.tokenizer,
        s.train,
        Some(args.out.clone()),
    )?;
    if let Some(task) = s.task {
        trainer = trainer.with_accuracy(move |m| task.accuracy(m));
    }
    if let Some(dir) = &args.resume {
        trainer
            .restore(dir)
            .with_context(|| format!("--resume {}", dir.display()))?;
    }
    let bar = if json_log {
        ProgressBar::hidden()
    } else {
        eprintln!(
            "{described}; model: {params} parameters; writing to {}",
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
    let summary = trainer.run(|event| match event {
        Event::Step(r) => {
            if json_log {
                println!(
                    "{}",
                    json!({"event": "step", "step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm, "tokens_per_s": r.tokens_per_s})
                );
            } else {
                bar.set_position(r.step as u64);
                bar.set_message(format!("loss {:.4} lr {:.2e} {:.0} tok/s", r.loss, r.lr, r.tokens_per_s));
            }
        }
        Event::Eval(e) => {
            if json_log {
                println!("{}", json!({"event": "eval", "step": e.step, "eval_loss": e.eval_loss, "eval_accuracy": e.eval_accuracy}));
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
    });
    if json_log {
        println!("{done}");
    } else {
        let acc = summary
            .eval_accuracy
            .map(|a| format!(", held-out accuracy {:.1}%", 100.0 * a))
            .unwrap_or_default();
        eprintln!(
            "done: {} steps in {:.1}s, final loss {:.4}{}{acc}; checkpoint {}",
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
