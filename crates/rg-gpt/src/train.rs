//! The training loop: AdamW (decay on matrices and embeddings only), a learning-rate
//! schedule, global gradient-norm clipping, gradient accumulation, dropout, held-out
//! evaluation and checkpoints.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use web_time::Instant;

use rg_autograd::{no_grad, Gradients, Var};
use rg_core::Device;
use rg_dist::{Communicator, ReduceOp, SingleProcess};
use rg_nn::optim::ParamGroup;
use rg_nn::{
    clip_coefficient, grad_norm, AdamW, AdamWConfig, DropoutRng, LrSchedule, Module, Optimizer,
};
use rg_tokenize::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checkpoint::{self, TrainingState};
use crate::data::DataSource;
use crate::data_shard::ShardedData;
use crate::grad_exchange::{ExchangeTimes, GradExchange};
use crate::metrics::MetricsLog;
use crate::retention;
use crate::zero_shards;
use crate::{rng_state, Gpt, GptError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    Cosine,
}

/// The precision of matmuls and attention during training. Parameters, gradients and
/// optimizer state are f32 either way (mixed precision with f32 master weights).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// bf16 autocast: matmul and attention inputs rounded to bf16, f32 accumulation.
    Bf16,
}

impl Precision {
    pub fn compute_dtype(self) -> Option<rg_core::DType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(rg_core::DType::BF16),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = GptError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(GptError::setting(
                "--dtype",
                format!("{other:?} is not one of: f32, bf16"),
            )),
        }
    }
}

impl std::str::FromStr for ScheduleKind {
    type Err = GptError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(ScheduleKind::Constant),
            "cosine" => Ok(ScheduleKind::Cosine),
            other => Err(GptError::setting(
                "--lr-schedule",
                format!("{other:?} is not one of: constant, cosine"),
            )),
        }
    }
}

/// Run settings (the `rgrad train` flags that are not about data or model size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub lr_schedule: ScheduleKind,
    pub warmup: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 0 turns clipping off.
    pub grad_clip: f64,
    pub grad_accum: usize,
    pub seed: u64,
    /// 0 evaluates only at the end.
    pub eval_every: usize,
    pub eval_iters: usize,
    /// 0 saves only at the end.
    pub save_every: usize,
    /// Step checkpoints to keep (0 keeps all); `best` is kept regardless.
    #[serde(default)]
    pub keep_last: usize,
    /// Compute precision of matmuls and attention (`--dtype`).
    #[serde(default)]
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 12,
            seq_len: 64,
            steps: 1000,
            lr: 1e-3,
            min_lr: 1e-4,
            lr_schedule: ScheduleKind::Cosine,
            warmup: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            grad_clip: 1.0,
            grad_accum: 1,
            seed: 1337,
            eval_every: 250,
            eval_iters: 20,
            save_every: 0,
            keep_last: 0,
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    /// Errors name the offending flag.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--batch-size", self.batch_size),
            ("--seq-len", self.seq_len),
            ("--steps", self.steps),
            ("--grad-accum", self.grad_accum),
            ("--eval-iters", self.eval_iters),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(GptError::setting(flag, "must be at least 1"));
            }
        }
        let checks: [(&'static str, bool, &str); 7] = [
            (
                "--lr",
                self.lr > 0.0 && self.lr.is_finite(),
                "must be a positive number",
            ),
            (
                "--min-lr",
                self.min_lr >= 0.0 && self.min_lr <= self.lr,
                "must be between 0 and --lr",
            ),
            (
                "--weight-decay",
                self.weight_decay >= 0.0 && self.weight_decay.is_finite(),
                "must be >= 0",
            ),
            (
                "--beta1",
                (0.0..1.0).contains(&self.beta1),
                "must be in [0, 1)",
            ),
            (
                "--beta2",
                (0.0..1.0).contains(&self.beta2),
                "must be in [0, 1)",
            ),
            ("--eps", self.eps > 0.0, "must be positive"),
            (
                "--grad-clip",
                self.grad_clip >= 0.0 && self.grad_clip.is_finite(),
                "must be >= 0 (0 = off)",
            ),
        ];
        for (flag, ok, msg) in checks {
            if !ok {
                return Err(GptError::setting(flag, msg));
            }
        }
        Ok(())
    }

    pub fn schedule(&self) -> Result<LrSchedule> {
        Ok(match self.lr_schedule {
            ScheduleKind::Constant => LrSchedule::Constant { lr: self.lr },
            ScheduleKind::Cosine => {
                LrSchedule::warmup_cosine(self.lr, self.min_lr, self.warmup, self.steps)?
            }
        })
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Steps completed (1 after the first).
    pub step: usize,
    /// Mean loss over the step's micro-batches, before the update.
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub tokens: usize,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
    /// The gradient exchange, with more than one rank.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeTimes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub step: usize,
    pub eval_loss: f64,
    /// Exact-match accuracy, for tasks that define it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

/// What happens during [`Trainer::run`], for progress display and logs.
pub enum Event<'a> {
    Step(&'a StepReport),
    Eval(&'a EvalReport),
    Checkpoint(&'a Path),
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub steps: usize,
    pub final_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
    pub checkpoint: Option<PathBuf>,
    pub wall_s: f64,
    /// The stop flag ended the run before `steps` (the checkpoint is of the last step).
    pub interrupted: bool,
    /// Processes that trained the model together (1 without data parallelism).
    pub world_size: usize,
    /// Hash of the final parameters, checked equal on every rank when `world_size > 1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param_hash: Option<u64>,
}

/// A held-out accuracy measure of a model (the built-in tasks define one).
type AccuracyFn = Box<dyn Fn(&Gpt) -> Result<f64> + Send>;

pub struct Trainer {
    model: Gpt,
    params: Vec<Var>,
    optimizer: AdamW,
    schedule: LrSchedule,
    data: Box<dyn DataSource>,
    tokenizer: Box<dyn Tokenizer>,
    config: TrainConfig,
    dropout_rng: DropoutRng,
    step: usize,
    out: Option<PathBuf>,
    metrics: Option<MetricsLog>,
    accuracy: Option<AccuracyFn>,
    best_eval_loss: f64,
    stop: Option<Arc<AtomicBool>>,
    comm: Box<dyn Communicator>,
    exchange: GradExchange,
    /// ZeRO stage 1: the rank that owns each parameter's optimizer state and update
    /// (index as `params`); `None` without sharding.
    owners: Option<Vec<usize>>,
}

impl Trainer {
    /// `out`: where checkpoints, `metrics.jsonl` and `loss.svg` go (`None`: nowhere).
    pub fn new(
        model: Gpt,
        data: Box<dyn DataSource>,
        tokenizer: Box<dyn Tokenizer>,
        config: TrainConfig,
        out: Option<PathBuf>,
    ) -> Result<Self> {
        config.validate()?;
        if config.seq_len > model.config().block_size {
            return Err(GptError::setting(
                "--seq-len",
                format!(
                    "{} exceeds the model's context of {} (--block-size)",
                    config.seq_len,
                    model.config().block_size
                ),
            ));
        }
        let named = model.named_params();
        // Weights loaded from a file are memory-mapped; the optimizer writes them in
        // place. Copy them now, so the mapping is gone before gradients and moments
        // exist (copying on the first update kept both alive at the step's peak).
        for (_, v) in &named {
            v.tensor().make_owned();
        }
        let params: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
        let adamw = AdamWConfig {
            lr: config.lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
        };
        let optimizer = AdamW::new(
            ParamGroup::decay_matrices_only(named, config.weight_decay),
            adamw,
        )?;
        let metrics = out.as_deref().map(MetricsLog::open).transpose()?;
        let exchange = GradExchange::new(&params);
        Ok(Trainer {
            schedule: config.schedule()?,
            dropout_rng: DropoutRng::new(config.seed ^ 0xD120),
            model,
            params,
            optimizer,
            data,
            tokenizer,
            config,
            step: 0,
            out,
            metrics,
            accuracy: None,
            best_eval_loss: f64::INFINITY,
            stop: None,
            comm: Box::new(SingleProcess),
            exchange,
            owners: None,
        })
    }

    /// ZeRO stage 1 (`--zero 1`): each rank keeps AdamW moments for, and updates, only
    /// the parameters it owns (whole tensors, balanced by size), then sends them to the
    /// other ranks. Each gradient of 1 MB or more is reduced to its owner only (the
    /// small ones, packed together, are all-reduced). Moments take about 1/N of the
    /// memory. Call after [`Trainer::with_communicator`].
    pub fn with_zero_stage_1(mut self) -> Result<Self> {
        let world = self.comm.world_size();
        let sizes: Vec<usize> = self.params.iter().map(|p| p.elem_count()).collect();
        let owners = balance_owners(&sizes, world);
        let rank = self.comm.rank();
        let owned: std::collections::HashSet<String> = self
            .model
            .named_params()
            .into_iter()
            .zip(&owners)
            .filter(|(_, &o)| o == rank)
            .map(|((name, _), _)| name)
            .collect();
        self.optimizer.own_only(|name| owned.contains(name));
        self.exchange.set_owners(&owners);
        self.owners = Some(owners);
        Ok(self)
    }

    /// The norm of the averaged gradient over all parameters. With ZeRO a rank holds
    /// the averaged gradient of the parameters it owns only: the owners' sums of squares
    /// are gathered (the other ranks add exact zeros) and added in parameter order, the
    /// additions `grad_norm` makes, so every rank clips by the same bits as without
    /// ZeRO.
    fn global_grad_norm(&self, grads: &Gradients) -> Result<f64> {
        let Some(owners) = &self.owners else {
            return Ok(grad_norm(grads, &self.params)?);
        };
        let rank = self.comm.rank();
        let mut owned = vec![0f64; self.params.len()];
        for ((p, &owner), sum) in self.params.iter().zip(owners).zip(&mut owned) {
            if let Some(g) = grads.get(p).filter(|_| owner == rank) {
                *sum = g.sum_squares()?;
            }
        }
        let mut all = vec![0f64; owned.len()];
        self.comm.all_reduce_f64(&owned, &mut all, ReduceOp::Sum)?;
        Ok(all.iter().fold(0.0, |total, x| total + x).sqrt())
    }

    /// After a sharded update: every parameter travels from its owner to the others.
    fn gather_updated_params(&self) -> Result<()> {
        let Some(owners) = &self.owners else {
            return Ok(());
        };
        for (p, &owner) in self.params.iter().zip(owners) {
            self.comm.broadcast(p.tensor(), owner)?;
        }
        Ok(())
    }

    /// Trains data-parallel with the ranks of `comm`: this rank takes its slice of each
    /// global batch (`batch_size` rows per rank), dropout masks follow the global
    /// sample, gradients are averaged across ranks before the update, and only rank 0
    /// writes metrics and checkpoints. Rank 0's parameters are broadcast now and
    /// checked equal everywhere. Call before [`Trainer::restore`].
    pub fn with_communicator(mut self, comm: Box<dyn Communicator>) -> Result<Self> {
        let (rank, world) = (comm.rank(), comm.world_size());
        if world > 1 {
            self.data = Box::new(ShardedData::new(self.data, rank, world)?);
            self.dropout_rng = self.dropout_rng.sharded(rank, world)?;
            if rank != 0 {
                self.metrics = None;
            }
            for p in &self.params {
                comm.broadcast(p.tensor(), 0)?;
            }
            self.check_params_equal(comm.as_ref(), "initial parameters")?;
        }
        self.exchange
            .set_overlap(comm.local_size() < comm.world_size());
        self.comm = comm;
        Ok(self)
    }

    pub fn communicator(&self) -> &dyn Communicator {
        self.comm.as_ref()
    }

    fn is_writer(&self) -> bool {
        self.comm.rank() == 0
    }

    /// Hashes the parameters and errors unless every rank has the same hash.
    fn check_params_equal(&self, comm: &dyn Communicator, what: &str) -> Result<u64> {
        let tensors: Vec<_> = self.params.iter().map(|p| p.tensor().clone()).collect();
        let hash = rg_dist::hash_tensors(&tensors)?;
        rg_dist::check_same_everywhere(comm, hash, what)?;
        Ok(hash)
    }

    /// Whether gradients are exchanged during the backward pass (`true`) or after it.
    /// The results are the same bits either way. [`Trainer::with_communicator`] turns
    /// it on when the ranks span several hosts: there the network moves the data while
    /// the cores compute. On one host the exchange is a memory copy by the same cores
    /// the backward pass needs, and overlapping measured slower (GPT-2 124M, 2 ranks x 1
    /// thread, AMD EPYC: 2.5-3.5 s a step against 2.56-2.59 s after backward).
    pub fn with_overlapped_exchange(mut self, overlap: bool) -> Self {
        self.exchange.set_overlap(overlap);
        self
    }

    /// A held-out accuracy measure reported with each evaluation (built-in tasks).
    pub fn with_accuracy(mut self, f: impl Fn(&Gpt) -> Result<f64> + Send + 'static) -> Self {
        self.accuracy = Some(Box::new(f));
        self
    }

    /// A flag (set by a signal handler, say) that ends [`Trainer::run`] cleanly: the
    /// step under way finishes, a checkpoint of it is written, and `run` returns with
    /// `interrupted` set. Checked between steps only, so no step is half applied.
    pub fn with_stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Whether any rank was asked to stop: ranks must stop after the same step, and a
    /// signal may reach them at different times.
    fn stop_agreed(&self) -> Result<bool> {
        let local = if self.stop_requested() { 1.0 } else { 0.0 };
        if self.comm.world_size() == 1 {
            return Ok(local > 0.0);
        }
        Ok(self.comm.all_reduce_scalar(local, ReduceOp::Max)? > 0.0)
    }

    pub fn model(&self) -> &Gpt {
        &self.model
    }

    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn device(&self) -> Device {
        self.model.device()
    }

    /// One optimizer step over `grad_accum` micro-batches.
    pub fn step(&mut self) -> Result<StepReport> {
        let start = Instant::now();
        let (b, t) = (self.config.batch_size, self.config.seq_len);
        let lr = self.schedule.lr_at(self.step);
        self.optimizer.set_lr(lr);
        let device = self.device();
        let accum = self.config.grad_accum;
        let dropout = self.model.config().dropout > 0.0;
        let mut grads = Gradients::default();
        let (mut loss_sum, mut tokens) = (0.0, 0);
        let world = self.comm.world_size();
        let mut exchange = None;
        for micro in 0..accum {
            let batch = self.data.next_train(b, t, &device)?;
            let rng = if dropout {
                Some(&mut self.dropout_rng)
            } else {
                None
            };
            let loss = batch_loss(&self.model, self.config.precision, &batch, rng)?;
            loss_sum += loss.tensor().to_f64_vec()?[0];
            tokens += batch.tokens();
            let loss = if accum > 1 {
                loss.scale(1.0 / accum as f64)?
            } else {
                loss
            };
            // Ranks exchange gradients once per step, during the last micro-batch's
            // backward pass.
            if world > 1 && micro + 1 == accum {
                exchange = Some(self.exchange.backward_and_sum(
                    &mut self.comm,
                    &loss,
                    &mut grads,
                    &self.params,
                )?);
            } else {
                grads.accumulate_all(loss.backward()?)?;
            }
        }
        if world > 1 {
            loss_sum = self.comm.all_reduce_scalar(loss_sum, ReduceOp::Avg)?;
            tokens *= world;
        }
        // The exchange leaves the ranks' sums: the average is part of the update's
        // gradient scale (exactly, for a power-of-two world: the scalings commute).
        let per_rank = 1.0 / world as f64;
        let norm = rg_core::profile::phase("optimizer", || {
            let norm = self.global_grad_norm(&grads)? * per_rank;
            let scale = if self.config.grad_clip > 0.0 {
                clip_coefficient(norm, self.config.grad_clip)
            } else {
                1.0
            };
            self.optimizer
                .step_with_grad_scale(&grads, scale * per_rank)?;
            Ok::<_, GptError>(norm)
        })?;
        if self.owners.is_some() {
            rg_core::profile::phase("all_gather", || self.gather_updated_params())?;
        }
        self.step += 1;
        let elapsed = start.elapsed().as_secs_f64();
        let report = StepReport {
            step: self.step,
            loss: loss_sum / accum as f64,
            lr,
            grad_norm: norm,
            tokens,
            tokens_per_s: tokens as f64 / elapsed.max(1e-9),
            elapsed_s: elapsed,
            exchange,
        };
        if let Some(m) = self.metrics.as_mut() {
            let mut line = serde_json::to_value(&report).expect("reports serialise");
            line["event"] = json!("step");
            m.record_train(report.step, report.loss, &line)?;
        }
        Ok(report)
    }

    /// Mean loss over `eval_iters` held-out batches (and the task's accuracy).
    pub fn evaluate(&mut self) -> Result<Option<EvalReport>> {
        let (b, t) = (self.config.batch_size, self.config.seq_len);
        let device = self.device();
        let mut total = 0.0;
        let mut count = 0;
        no_grad(|| -> Result<()> {
            for i in 0..self.config.eval_iters {
                let Some(batch) = self.data.eval_batch(i, b, t, &device)? else {
                    break;
                };
                let loss = batch_loss(&self.model, self.config.precision, &batch, None)?;
                total += loss.tensor().to_f64_vec()?[0];
                count += 1;
            }
            Ok(())
        })?;
        if count == 0 {
            return Ok(None);
        }
        // Each rank evaluated its slice of the same global batches.
        let eval_loss = self
            .comm
            .all_reduce_scalar(total / count as f64, ReduceOp::Avg)?;
        let eval_accuracy = match &self.accuracy {
            Some(f) if self.is_writer() => Some(f(&self.model)?),
            _ => None,
        };
        let report = EvalReport {
            step: self.step,
            eval_loss,
            eval_accuracy,
        };
        if let Some(m) = self.metrics.as_mut() {
            let mut line = serde_json::to_value(&report).expect("reports serialise");
            line["event"] = json!("eval");
            m.record_eval(report.step, report.eval_loss, &line)?;
        }
        Ok(Some(report))
    }

    /// Step, data position, RNG states and settings: what a resumed run needs.
    pub fn trainer_state(&self) -> Value {
        let (seed, pos) = self.dropout_rng.state();
        json!({
            "step": self.step,
            "optimizer_step": self.optimizer.step_count(),
            "data": self.data.state(),
            "dropout_rng": rng_state::parts_to_json(&seed, pos),
            "train_config": self.config,
            "dropout": self.model.config().dropout,
            "data_description": self.data.describe(),
            "world_size": self.comm.world_size(),
            "zero_stage": if self.owners.is_some() { 1 } else { 0 },
        })
    }

    /// Writes `<out>/checkpoints/step-NNNNNN`, prunes to `keep_last`, and returns its
    /// path (on rank 0; other ranks get `None`). Every rank must call it.
    pub fn save_checkpoint(&self) -> Result<Option<PathBuf>> {
        let Some(out) = &self.out else {
            return Ok(None);
        };
        let written = (|| {
            let path = self.write_checkpoint(&format!("step-{:06}", self.step))?;
            if self.is_writer() {
                if self.config.keep_last > 0 {
                    retention::prune(out, self.config.keep_last)?;
                }
                if let Some(m) = &self.metrics {
                    m.plot(&out.join("loss.svg"))?;
                }
            }
            Ok(path)
        })();
        // A checkpoint counts once every rank has reached it. Agreeing on the outcome
        // (rather than a plain barrier) ends every rank with an error when rank 0's
        // write failed, instead of leaving the others waiting in the next collective.
        let (outcome, path) = match written {
            Ok(path) => (Ok(()), path),
            Err(e) => (Err(e), None),
        };
        self.agree_all_succeeded(outcome, "writing the checkpoint")?;
        Ok(path)
    }

    /// Writes checkpoint `name` from rank 0. Under ZeRO every rank first writes its
    /// optimizer shard, and rank 0 commits the checkpoint only once all ranks report
    /// success (the agreement is also the barrier), so all must call this.
    fn write_checkpoint(&self, name: &str) -> Result<Option<PathBuf>> {
        let out = self
            .out
            .as_deref()
            .expect("callers check for an output directory");
        let dir = out.join(retention::CHECKPOINTS_DIR).join(name);
        let (rank, world) = (self.comm.rank(), self.comm.world_size());
        let shards = if self.owners.is_some() {
            let staging = zero_shards::staging_dir(&dir);
            let written = zero_shards::write_shard(&staging, &self.optimizer, rank, world);
            self.agree_all_succeeded(written, "writing its optimizer shard")?;
            Some(staging)
        } else {
            None
        };
        if !self.is_writer() {
            return Ok(None);
        }
        let training = TrainingState {
            optimizer: &self.optimizer,
            trainer_state: self.trainer_state(),
            optimizer_shards: shards.as_deref().map(|s| (s, world)),
        };
        checkpoint::save_checkpoint(&dir, &self.model, self.tokenizer.as_ref(), Some(training))
            .map(Some)
    }

    /// Returns this rank's error, or an error on every rank if any rank failed, so no
    /// rank goes on to wait in a collective that a failed rank will never join.
    fn agree_all_succeeded(&self, local: Result<()>, what: &str) -> Result<()> {
        let failed = if local.is_err() { 1.0 } else { 0.0 };
        let any = self.comm.all_reduce_scalar(failed, ReduceOp::Max)?;
        local?;
        if any > 0.0 {
            return Err(GptError::setting(
                "checkpoint",
                format!("another rank failed {what}; see its error"),
            ));
        }
        Ok(())
    }

    /// Keeps `<out>/checkpoints/best` at the lowest held-out loss seen.
    fn track_best(&mut self, eval: &EvalReport) -> Result<()> {
        if self.out.is_some() && eval.eval_loss < self.best_eval_loss {
            self.best_eval_loss = eval.eval_loss;
            // Every rank: under ZeRO each contributes its shard (the held-out loss is
            // reduced, so all take this branch together).
            let written = self.write_checkpoint(retention::BEST_DIR).map(|_| ());
            self.agree_all_succeeded(written, "writing the best checkpoint")?;
        }
        Ok(())
    }

    /// Restores optimizer moments, step, data position and RNG states from a checkpoint
    /// written by [`Trainer::save_checkpoint`] (the model weights are loaded by the caller).
    pub fn restore(&mut self, checkpoint_dir: &Path) -> Result<()> {
        let state_path = checkpoint_dir.join(checkpoint::TRAINER_STATE_FILE);
        let state = checkpoint::read_json(&state_path)?;
        let bad =
            |what: &str| GptError::bad_file(&state_path, format!("missing or malformed {what}"));
        let sharded = state.get("zero_stage").and_then(Value::as_u64).unwrap_or(0) > 0;
        let (rank, world) = (self.comm.rank(), self.comm.world_size());
        if sharded {
            let saved_world = state
                .get("world_size")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("world_size"))? as usize;
            if let Some(msg) = zero_shards::world_size_mismatch(saved_world, world) {
                return Err(GptError::bad_file(&state_path, msg));
            }
        }
        let step = state
            .get("step")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("step"))? as usize;
        let opt_step = state
            .get("optimizer_step")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("optimizer_step"))?;
        self.data
            .restore(state.get("data").ok_or_else(|| bad("data"))?)?;
        let rng = state
            .get("dropout_rng")
            .and_then(rng_state::from_json)
            .ok_or_else(|| bad("dropout_rng"))?;
        let (seed, pos) = (rng.get_seed(), rng.get_word_pos());
        self.dropout_rng =
            DropoutRng::from_state(seed, pos).sharded(self.comm.rank(), self.comm.world_size())?;
        let moments = if sharded {
            // A sharded run needs only its own shard (same world size, so the same
            // ownership); an unsharded one takes the union of all.
            let files: Vec<String> = if self.owners.is_some() {
                vec![zero_shards::shard_file_name(rank, world)]
            } else {
                (0..world)
                    .map(|r| zero_shards::shard_file_name(r, world))
                    .collect()
            };
            zero_shards::load_shards(checkpoint_dir, &files, &self.device())?
        } else {
            checkpoint::load_tensors(
                &checkpoint_dir.join(checkpoint::OPTIMIZER_FILE),
                &self.device(),
            )?
        };
        let mut loaded = 0;
        self.optimizer.load_moments(opt_step, |name| {
            let pair = (
                moments.get(&format!("{name}.exp_avg"))?.clone(),
                moments.get(&format!("{name}.exp_avg_sq"))?.clone(),
            );
            loaded += 2;
            Some(pair)
        })?;
        if sharded && self.owners.is_some() && loaded != moments.len() {
            return Err(GptError::bad_file(
                checkpoint_dir.join(zero_shards::shard_file_name(rank, world)),
                format!(
                    "holds {} moment tensors, of which this rank owns {loaded}: the \
                     parameters were shared out differently when it was written",
                    moments.len()
                ),
            ));
        }
        self.step = step;
        Ok(())
    }

    /// Trains until `steps`, evaluating every `eval_every` steps and at the end, and
    /// checkpointing every `save_every` steps and at the end.
    pub fn run(&mut self, mut on_event: impl FnMut(Event<'_>)) -> Result<Summary> {
        let start = Instant::now();
        if let Some(out) = self.out.as_ref().filter(|_| self.is_writer()) {
            retention::remove_interrupted_writes(out)?;
        }
        let mut last_loss = f64::NAN;
        let mut last_eval: Option<EvalReport> = None;
        let mut checkpoint = None;
        let mut interrupted = false;
        while self.step < self.config.steps {
            let report = self.step()?;
            last_loss = report.loss;
            on_event(Event::Step(&report));
            if !report.loss.is_finite() {
                return Err(GptError::setting(
                    "training",
                    format!(
                        "loss became {} at step {} (try a lower --lr)",
                        report.loss, report.step
                    ),
                ));
            }
            let done = self.step == self.config.steps;
            if done || (self.config.eval_every > 0 && self.step % self.config.eval_every == 0) {
                if let Some(e) = self.evaluate()? {
                    self.track_best(&e)?;
                    on_event(Event::Eval(&e));
                    last_eval = Some(e);
                }
            }
            let stop = !done && self.stop_agreed()?;
            let periodic = self.config.save_every > 0 && self.step % self.config.save_every == 0;
            if done || periodic || stop {
                if let Some(path) = self.save_checkpoint()? {
                    on_event(Event::Checkpoint(&path));
                    checkpoint = Some(path);
                }
            }
            if stop {
                interrupted = true;
                break;
            }
        }
        let world_size = self.comm.world_size();
        let param_hash = if world_size > 1 {
            Some(self.check_params_equal(self.comm.as_ref(), "final parameters")?)
        } else {
            None
        };
        Ok(Summary {
            world_size,
            param_hash,
            steps: self.step,
            final_loss: last_loss,
            eval_loss: last_eval.as_ref().map(|e| e.eval_loss),
            eval_accuracy: last_eval.and_then(|e| e.eval_accuracy),
            checkpoint,
            wall_s: start.elapsed().as_secs_f64(),
            interrupted,
        })
    }
}

/// The model's loss on `batch`, with matmuls and attention in `precision`.
fn batch_loss(
    model: &Gpt,
    precision: Precision,
    batch: &crate::data::Batch,
    rng: Option<&mut DropoutRng>,
) -> Result<Var> {
    let loss = rg_nn::autocast(precision.compute_dtype(), || {
        model.loss(&batch.ids, &batch.targets, batch.ignore_index, rng)
    })?;
    Ok(loss)
}

/// Assigns each tensor (by size) to a rank, largest first to the least-loaded rank, so
/// every rank holds about 1/world of the elements. Deterministic: all ranks agree.
fn balance_owners(sizes: &[usize], world: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut load = vec![0usize; world.max(1)];
    let mut owners = vec![0; sizes.len()];
    for i in order {
        let rank = (0..load.len())
            .min_by_key(|&r| (load[r], r))
            .expect("at least one rank");
        owners[i] = rank;
        load[rank] += sizes[i];
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_balance_elements_across_ranks() {
        let owners = balance_owners(&[10, 1, 7, 3, 3, 6], 2);
        // 10→0, 7→1, 6→1, 3→0, 3→0 (tie: lower rank), 1→1.
        assert_eq!(owners, vec![0, 1, 1, 0, 0, 1]);
        let load = |r| {
            owners
                .iter()
                .zip([10, 1, 7, 3, 3, 6])
                .filter(|(&o, _)| o == r)
                .map(|(_, s)| s)
                .sum::<usize>()
        };
        assert_eq!((load(0), load(1)), (16, 14));
        assert_eq!(balance_owners(&[4, 4], 1), vec![0, 0]);
    }
}
