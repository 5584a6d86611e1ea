//! Converting model files (what `rgrad convert` runs):
//!
//! - [`convert_model_dir`]: a Hugging Face GPT-2 directory or one of our checkpoints
//!   (either key layout, with or without `attn.bias` mask buffers) into a model
//!   directory: `model.safetensors` in the chosen [`KeyLayout`] and dtype,
//!   `config.json` (Hugging Face GPT-2 form) and the tokenizer files. Every weight is
//!   checked against the config (names and shapes) before anything is written, and
//!   the directory appears complete or not at all ([`AtomicDir`]).
//! - [`convert_file`]: one safetensors file to another dtype (and, optionally, key
//!   layout), written atomically.
//!
//! Dtype conversion: f32/f64/bf16/f16 to f32, bf16 or f16, rounding to nearest, ties
//! to even (`half`), with NaN and infinity preserved. Widening (bf16/f16 -> f32) is
//! exact, so f32 -> bf16 -> f32 returns the bf16-rounded values. Tensors of other
//! dtypes (integers, bool, 8-bit floats) are copied unchanged.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use rg_core::{bf16, f16};
use rg_io::convert::{bf16_le_bytes_to_f32, f16_le_bytes_to_f32};
use rg_io::{save_safetensors_entries, AtomicDir, SafeTensorsFile, StoredDType, TensorEntry};
use serde_json::Value;

use crate::checkpoint::{read_json, CONFIG_FILE, MODEL_FILE};
use crate::{GptConfig, GptError, Result};

/// Files besides the weights and the config that a converted directory carries over
/// verbatim when the input has them: tokenizers (GPT-2's, Hugging Face's, ours) and
/// Hugging Face's generation settings.
pub const CARRIED_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
    rg_tokenize::CHAR_TOKENIZER_FILE,
];

/// How tensor names are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// Hugging Face's `GPT2LMHeadModel` names: `transformer.h.0.attn.c_attn.weight`.
    Hf,
    /// Our module names without a prefix: `h.0.attn.c_attn.weight`.
    Plain,
}

impl KeyLayout {
    pub fn parse(s: &str) -> Option<KeyLayout> {
        match s {
            "hf" => Some(KeyLayout::Hf),
            "plain" => Some(KeyLayout::Plain),
            _ => None,
        }
    }

    /// The stored name of a parameter called `name` in our (unprefixed) names.
    pub fn name(self, name: &str) -> String {
        match self {
            KeyLayout::Hf => format!("transformer.{name}"),
            KeyLayout::Plain => name.to_string(),
        }
    }
}

/// The floating-point dtypes a conversion can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatDType {
    F32,
    BF16,
    F16,
}

impl FloatDType {
    pub fn parse(s: &str) -> Option<FloatDType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Some(FloatDType::F32),
            "bf16" | "bfloat16" => Some(FloatDType::BF16),
            "f16" | "float16" => Some(FloatDType::F16),
            _ => None,
        }
    }

    pub fn stored(self) -> StoredDType {
        match self {
            FloatDType::F32 => StoredDType::F32,
            FloatDType::BF16 => StoredDType::BF16,
            FloatDType::F16 => StoredDType::F16,
        }
    }
}

/// PyTorch's name for a stored dtype (`config.json`'s `torch_dtype`).
fn torch_dtype_name(dtype: StoredDType) -> Option<&'static str> {
    match dtype {
        StoredDType::F32 => Some("float32"),
        StoredDType::F64 => Some("float64"),
        StoredDType::BF16 => Some("bfloat16"),
        StoredDType::F16 => Some("float16"),
        _ => None,
    }
}

/// What a conversion should produce.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Target dtype of floating-point tensors; `None` keeps each tensor's dtype.
    pub dtype: Option<FloatDType>,
    /// Key layout of the output. `None`: [`KeyLayout::Hf`] for a directory; for a
    /// single file, names (and buffers) are kept as they are.
    pub layout: Option<KeyLayout>,
    /// Replace an existing output (never the input, nor a directory holding it).
    pub overwrite: bool,
    /// Store `wte` and the Linear weights as Q8_0 (`crate::quantized`; directories
    /// only), the other tensors in `dtype`.
    pub q8_0: bool,
}

/// What a conversion did.
#[derive(Debug, Clone, Default)]
pub struct ConvertReport {
    /// The directory or file written.
    pub output: PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Tensors whose dtype changed.
    pub converted: usize,
    /// Tensors left out: attention-mask buffers and the tied `lm_head.weight`.
    pub dropped: Vec<String>,
    /// Weights stored as `[out, in]` (nn.Linear) that were transposed to Conv1D's
    /// `[in, out]`.
    pub transposed: Vec<String>,
    /// Files copied from the input directory as they are (tokenizer and such).
    pub copied_files: Vec<String>,
    /// Size of the safetensors file written.
    pub bytes: u64,
}

// ---------------------------------------------------------------------------
// dtype conversion

/// Converts little-endian tensor bytes of dtype `src` to `dst`. Floating-point
/// sources (f32, f64, bf16, f16) are converted, rounding to nearest even; bytes that
/// already have the target dtype, and non-float tensors, are returned borrowed and
/// unchanged with their own dtype.
pub fn convert_bytes(
    src: StoredDType,
    bytes: &[u8],
    dst: FloatDType,
) -> (StoredDType, Cow<'_, [u8]>) {
    let target = dst.stored();
    if src == target
        || !matches!(
            src,
            StoredDType::F32 | StoredDType::F64 | StoredDType::BF16 | StoredDType::F16
        )
    {
        return (src, Cow::Borrowed(bytes));
    }
    let out = if src == StoredDType::F64 {
        // Round once, straight from f64.
        let values = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")));
        match dst {
            FloatDType::F32 => values.flat_map(|v| (v as f32).to_le_bytes()).collect(),
            FloatDType::BF16 => values
                .flat_map(|v| bf16::from_f64(v).to_bits().to_le_bytes())
                .collect(),
            FloatDType::F16 => values
                .flat_map(|v| f16::from_f64(v).to_bits().to_le_bytes())
                .collect(),
        }
    } else {
        let values = to_f32(src, bytes);
        encode_f32(&values, dst)
    };
    (target, Cow::Owned(out))
}

/// f32/bf16/f16 bytes as f32 values (widening is exact).
fn to_f32(src: StoredDType, bytes: &[u8]) -> Vec<f32> {
    match src {
        StoredDType::BF16 => {
            let mut out = vec![0f32; bytes.len() / 2];
            bf16_le_bytes_to_f32(bytes, &mut out);
            out
        }
        StoredDType::F16 => {
            let mut out = vec![0f32; bytes.len() / 2];
            f16_le_bytes_to_f32(bytes, &mut out);
            out
        }
        StoredDType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")) as f32)
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("chunks of 4")))
            .collect(),
    }
}

fn encode_f32(values: &[f32], dst: FloatDType) -> Vec<u8> {
    match dst {
        FloatDType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        FloatDType::BF16 => values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
        FloatDType::F16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
    }
}

/// Transposes a row-major `[rows, cols]` matrix of `elem`-byte elements.
fn transpose_bytes(bytes: &[u8], rows: usize, cols: usize, elem: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    for (i, row) in bytes.chunks_exact(cols * elem).enumerate() {
        for (j, value) in row.chunks_exact(elem).enumerate() {
            let at = (j * rows + i) * elem;
            out[at..at + elem].copy_from_slice(value);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// names and shapes

/// How a stored GPT-2 tensor name maps to ours.
enum NameRole {
    /// A model parameter, by our unprefixed name.
    Param(String),
    /// `attn.bias` / `attn.masked_bias`: causal-mask buffers the model rebuilds.
    Buffer,
    /// `lm_head.weight`: the output projection, tied to `wte.weight`.
    LmHead,
}

fn name_role(stored: &str) -> NameRole {
    let name = stored.strip_prefix("transformer.").unwrap_or(stored);
    if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
        NameRole::Buffer
    } else if name == "lm_head.weight" {
        NameRole::LmHead
    } else {
        NameRole::Param(name.to_string())
    }
}

/// Every parameter of a GPT-2 model with `config`, in our names, with its shape.
/// Linear (Conv1D) weights are `[in, out]`.
pub fn gpt2_param_shapes(config: &GptConfig) -> Vec<(String, Vec<usize>)> {
    let c = config.n_embd;
    let mut out = vec![
        ("wte.weight".to_string(), vec![config.vocab_size, c]),
        ("wpe.weight".to_string(), vec![config.block_size, c]),
    ];
    for i in 0..config.n_layer {
        let p = |s: &str| format!("h.{i}.{s}");
        out.extend([
            (p("ln_1.weight"), vec![c]),
            (p("ln_1.bias"), vec![c]),
            (p("attn.c_attn.weight"), vec![c, 3 * c]),
            (p("attn.c_attn.bias"), vec![3 * c]),
            (p("attn.c_proj.weight"), vec![c, c]),
            (p("attn.c_proj.bias"), vec![c]),
            (p("ln_2.weight"), vec![c]),
            (p("ln_2.bias"), vec![c]),
            (p("mlp.c_fc.weight"), vec![c, 4 * c]),
            (p("mlp.c_fc.bias"), vec![4 * c]),
            (p("mlp.c_proj.weight"), vec![4 * c, c]),
            (p("mlp.c_proj.bias"), vec![c]),
        ]);
    }
    out.push(("ln_f.weight".to_string(), vec![c]));
    out.push(("ln_f.bias".to_string(), vec![c]));
    out
}

fn is_linear_weight(name: &str) -> bool {
    [
        ".attn.c_attn.weight",
        ".attn.c_proj.weight",
        ".mlp.c_fc.weight",
        ".mlp.c_proj.weight",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

// ---------------------------------------------------------------------------
// paths

/// `path` made absolute with symlinks resolved, also when it (or some of its
/// parents) does not exist yet.
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut existing = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| GptError::io(path, "resolve path", e))?
            .join(path)
    };
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut p) => {
                for part in rest.iter().rev() {
                    p.push(part);
                }
                return Ok(p);
            }
            Err(_) => match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => return Ok(existing),
            },
        }
    }
}

/// Refuses outputs that would destroy the input (the same path, or a directory that
/// holds it) and, without `overwrite`, existing outputs.
fn check_output(input: &Path, output: &Path, overwrite: bool) -> Result<()> {
    if output
        .components()
        .next_back()
        .is_some_and(|c| matches!(c, Component::ParentDir | Component::RootDir))
    {
        return Err(GptError::bad_file(
            output,
            "output must name a file or directory",
        ));
    }
    let (input_abs, output_abs) = (resolve(input)?, resolve(output)?);
    if input_abs == output_abs {
        return Err(GptError::bad_file(
            output,
            "is the input; write the conversion somewhere else",
        ));
    }
    if input_abs.starts_with(&output_abs) {
        return Err(GptError::bad_file(
            output,
            format!(
                "holds the input {}; replacing it would destroy the input",
                input.display()
            ),
        ));
    }
    if output.exists() && !overwrite {
        return Err(GptError::bad_file(
            output,
            "already exists (pass --overwrite to replace it)",
        ));
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| GptError::io(parent, "create directory", e))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// conversions

/// Converts one safetensors file. Names are kept unless `options.layout` is set, in
/// which case GPT-2 names are rewritten to that layout and mask buffers and a tied
/// `lm_head.weight` are dropped. The metadata is kept. The output is written
/// atomically; the input is never overwritten.
pub fn convert_file(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let file = SafeTensorsFile::open(input)?;
    check_output(input, output, options.overwrite)?;
    if options.q8_0 {
        return Err(GptError::bad_file(
            input,
            "q8_0 quantizes model directories only (it needs config.json to know which tensors are weights)",
        ));
    }
    if output.is_dir() {
        return Err(GptError::bad_file(
            output,
            "is a directory; give a .safetensors file name (or a directory as --input)",
        ));
    }
    let mut report = ConvertReport {
        output: output.to_path_buf(),
        ..ConvertReport::default()
    };
    let mut entries = Vec::with_capacity(file.len());
    for info in file.tensors() {
        let name = match options.layout {
            None => info.name().to_string(),
            Some(layout) => match name_role(info.name()) {
                NameRole::Param(n) => layout.name(&n),
                NameRole::Buffer => {
                    report.dropped.push(info.name().to_string());
                    continue;
                }
                NameRole::LmHead => {
                    check_tied(&file, info.name())?;
                    report.dropped.push(info.name().to_string());
                    continue;
                }
            },
        };
        let raw = file.raw_bytes(info.name())?;
        let (dtype, bytes) = match options.dtype {
            Some(dst) => convert_bytes(info.dtype(), raw, dst),
            None => (info.dtype(), Cow::Borrowed(raw)),
        };
        if dtype != info.dtype() {
            report.converted += 1;
        }
        entries.push(TensorEntry::new(name, dtype, info.shape().to_vec(), bytes));
    }
    report.tensors = entries.len();
    create_parent(output)?;
    save_safetensors_entries(output, entries, file.metadata())?;
    report.bytes = std::fs::metadata(output)
        .map_err(|e| GptError::io(output, "stat", e))?
        .len();
    Ok(report)
}

/// A stored `lm_head.weight` must equal the token embedding it is tied to: GPT-2
/// ties them, and so does our model, so an untied head cannot be converted.
fn check_tied(file: &SafeTensorsFile, lm_head: &str) -> Result<()> {
    let wte = ["transformer.wte.weight", "wte.weight"]
        .into_iter()
        .find(|n| file.get(n).is_some());
    let Some(wte) = wte else {
        return Err(GptError::bad_file(
            file.path(),
            format!("{lm_head:?} is present but no wte.weight to tie it to"),
        ));
    };
    let (head, emb) = (file.info(lm_head)?, file.info(wte)?);
    let same = head.shape() == emb.shape()
        && if head.dtype() == emb.dtype() {
            file.raw_bytes(lm_head)? == file.raw_bytes(wte)?
        } else {
            let a = to_f32(head.dtype(), file.raw_bytes(lm_head)?);
            let b = to_f32(emb.dtype(), file.raw_bytes(wte)?);
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
    if !same {
        return Err(GptError::bad_file(
            file.path(),
            format!(
                "tensor {lm_head:?} differs from {wte:?}: untied output embeddings are not supported (GPT-2 ties them)"
            ),
        ));
    }
    Ok(())
}

/// Converts a GPT-2 model directory (Hugging Face's or one of our checkpoints) into
/// the model directory `output`: `model.safetensors` in `options.layout` (default
/// [`KeyLayout::Hf`]) and `options.dtype`, without mask buffers or a tied
/// `lm_head.weight`, Conv1D weights `[in, out]`; `config.json` with `torch_dtype` set
/// to the weights' dtype; and the files in [`CARRIED_FILES`] that the input has.
/// Training state (`optimizer.safetensors`, `trainer_state.json`) is not carried: the
/// result is a model, not a run to resume.
///
/// Every weight is checked against the config first (a missing, unexpected or
/// misshapen tensor is an error naming it), and so is the tokenizer; the output
/// appears complete or not at all, and never replaces the input.
pub fn convert_model_dir(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    if !input.is_dir() {
        return Err(GptError::bad_file(
            input,
            "not a model directory (expected config.json, model.safetensors and tokenizer files)",
        ));
    }
    check_output(input, output, options.overwrite)?;
    if output.exists() && !output.is_dir() {
        return Err(GptError::bad_file(
            output,
            "is a file; a directory --input converts into a directory",
        ));
    }
    let layout = options.layout.unwrap_or(KeyLayout::Hf);

    let config_path = input.join(CONFIG_FILE);
    let mut config_json = read_json(&config_path)?;
    let config = GptConfig::from_hf_json(&config_json)
        .map_err(|e| GptError::bad_file(&config_path, e.to_string()))?;
    // The output must load with its tokenizer: check it now, not after writing.
    rg_tokenize::load_tokenizer(input)?;

    let weights_path = input.join(MODEL_FILE);
    let file = SafeTensorsFile::open(&weights_path)?;
    let bad = |msg: String| GptError::bad_file(&weights_path, msg);

    let mut report = ConvertReport {
        output: output.to_path_buf(),
        ..ConvertReport::default()
    };
    // Our name -> stored name.
    let mut params: HashMap<String, &str> = HashMap::with_capacity(file.len());
    for info in file.tensors() {
        match name_role(info.name()) {
            NameRole::Param(name) => {
                if let Some(other) = params.insert(name.clone(), info.name()) {
                    return Err(bad(format!(
                        "tensors {other:?} and {:?} both hold parameter {name:?}",
                        info.name()
                    )));
                }
            }
            NameRole::Buffer => report.dropped.push(info.name().to_string()),
            NameRole::LmHead => {
                check_tied(&file, info.name())?;
                report.dropped.push(info.name().to_string());
            }
        }
    }

    let expected = gpt2_param_shapes(&config);
    let transposed = linear_weights_transposed(&file, &params, &expected, &weights_path)?;
    for (name, shape) in &expected {
        let stored = params.get(name).ok_or_else(|| {
            bad(format!(
                "missing tensor {:?} (expected shape {shape:?} for the model in {CONFIG_FILE})",
                layout.name(name)
            ))
        })?;
        let info = file.info(stored)?;
        let want: Vec<usize> = if transposed && is_linear_weight(name) {
            shape.iter().rev().copied().collect()
        } else {
            shape.clone()
        };
        if info.shape() != want.as_slice() {
            return Err(bad(format!(
                "tensor {stored:?} has shape {:?}, the model in {CONFIG_FILE} expects {want:?}",
                info.shape()
            )));
        }
        if info.dtype().load_dtype().is_none_or(|d| !d.is_float()) {
            return Err(bad(format!(
                "tensor {stored:?} has dtype {}, expected a floating-point type",
                info.dtype()
            )));
        }
    }
    if params.len() > expected.len() {
        let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut unexpected: Vec<&str> = params
            .iter()
            .filter(|(n, _)| !known.contains(n.as_str()))
            .map(|(_, s)| *s)
            .collect();
        unexpected.sort_unstable();
        return Err(bad(format!(
            "unexpected tensors for the model in {CONFIG_FILE}: {}",
            unexpected.join(", ")
        )));
    }

    let mut entries = Vec::with_capacity(expected.len());
    let mut out_dtype = None;
    for (name, shape) in &expected {
        let stored = params[name];
        let info = file.info(stored)?;
        let mut raw = Cow::Borrowed(file.raw_bytes(stored)?);
        if transposed && is_linear_weight(name) {
            // Stored [out, in] = [shape[1], shape[0]].
            raw = Cow::Owned(transpose_bytes(
                &raw,
                shape[1],
                shape[0],
                info.dtype().size_in_bytes(),
            ));
            report.transposed.push(stored.to_string());
        }
        if options.q8_0 && crate::precision::keeps_half(name) {
            let values = to_f32(info.dtype(), &raw);
            // Reduction axis last: `wte` is `[vocab, c]` already; a Conv1D weight
            // `[in, out]` becomes `[out, in]`.
            let (rows, cols, values) = if is_linear_weight(name) {
                let (d_in, d_out) = (shape[0], shape[1]);
                let mut t = vec![0f32; values.len()];
                for (i, row) in values.chunks_exact(d_out).enumerate() {
                    for (o, &v) in row.iter().enumerate() {
                        t[o * d_in + i] = v;
                    }
                }
                (d_out, d_in, t)
            } else {
                (shape[0], shape[1], values)
            };
            let stored_name = layout.name(name);
            let pair = crate::quantized::quantized_entries(&stored_name, &values, rows, cols)
                .map_err(|e| bad(format!("cannot quantize {stored_name:?} to q8_0: {e}")))?;
            report.converted += 1;
            entries.extend(pair);
            continue;
        }
        let (dtype, bytes) = match options.dtype {
            Some(dst) => match convert_bytes(info.dtype(), &raw, dst) {
                (d, Cow::Owned(b)) => (d, Cow::Owned(b)),
                (d, Cow::Borrowed(_)) => (d, raw),
            },
            None => (info.dtype(), raw),
        };
        if dtype != info.dtype() {
            report.converted += 1;
        }
        out_dtype.get_or_insert(dtype);
        entries.push(TensorEntry::new(
            layout.name(name),
            dtype,
            shape.clone(),
            bytes,
        ));
    }
    report.tensors = entries.len();

    // config.json: the input's settings, with the dtype of the weights written.
    if let Value::Object(map) = &mut config_json {
        map.entry("model_type").or_insert_with(|| "gpt2".into());
        map.entry("architectures")
            .or_insert_with(|| serde_json::json!(["GPT2LMHeadModel"]));
        if let Some(name) = out_dtype.and_then(torch_dtype_name) {
            map.insert("torch_dtype".into(), name.into());
            if map.contains_key("dtype") {
                map.insert("dtype".into(), name.into());
            }
        }
    }

    let mut metadata = file.metadata().clone();
    metadata.insert("format".into(), "pt".into());
    if options.q8_0 {
        metadata.extend(crate::quantized::metadata());
    }

    create_parent(output)?;
    let staging = AtomicDir::new(output)?;
    let tmp = staging.path().to_path_buf();
    let model_out = tmp.join(MODEL_FILE);
    save_safetensors_entries(&model_out, entries, &metadata)?;
    report.bytes = std::fs::metadata(&model_out)
        .map_err(|e| GptError::io(&model_out, "stat", e))?
        .len();
    let text = serde_json::to_string_pretty(&config_json).expect("JSON values serialise");
    rg_io::atomic_write(tmp.join(CONFIG_FILE), text.as_bytes())?;
    for name in CARRIED_FILES {
        let src = input.join(name);
        if src.is_file() {
            copy_file(&src, &tmp.join(name))?;
            report.copied_files.push((*name).to_string());
        }
    }
    // Read back what was written before publishing it.
    SafeTensorsFile::open(&model_out)?;
    staging.commit()?;
    Ok(report)
}

/// Copies the contents of `src` into a new file `dst` with default permissions (a
/// read-only input does not make a read-only output).
fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    let mut from = std::fs::File::open(src).map_err(|e| GptError::io(src, "open", e))?;
    let mut to = std::fs::File::create(dst).map_err(|e| GptError::io(dst, "create", e))?;
    std::io::copy(&mut from, &mut to).map_err(|e| GptError::io(dst, "copy", e))?;
    Ok(())
}

/// Whether the Linear (Conv1D) weights are stored as nn.Linear's `[out, in]`
/// instead of GPT-2's `[in, out]`. Decided by the non-square ones (`c_attn`,
/// `c_fc`, `mlp.c_proj`); square ones follow them. A file mixing both is an error.
fn linear_weights_transposed(
    file: &SafeTensorsFile,
    params: &HashMap<String, &str>,
    expected: &[(String, Vec<usize>)],
    path: &Path,
) -> Result<bool> {
    let (mut plain, mut flipped): (Option<&str>, Option<&str>) = (None, None);
    for (name, shape) in expected {
        if !is_linear_weight(name) || shape[0] == shape[1] {
            continue;
        }
        let Some(info) = params.get(name).and_then(|s| file.get(s)) else {
            continue;
        };
        if info.shape() == shape.as_slice() {
            plain.get_or_insert(info.name());
        } else if info.shape() == [shape[1], shape[0]] {
            flipped.get_or_insert(info.name());
        }
    }
    match (plain, flipped) {
        (Some(a), Some(b)) => Err(GptError::bad_file(
            path,
            format!(
                "tensor {a:?} is stored [in, out] (Conv1D) but {b:?} is [out, in] (nn.Linear); a file must use one layout"
            ),
        )),
        (None, Some(_)) => Ok(true),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 lies halfway between bf16 1.0 and 1 + 2^-7: ties to even (1.0).
        let halfway = 1.0f32 + 2f32.powi(-8);
        let above = f32::from_bits(halfway.to_bits() + 1);
        let bytes: Vec<u8> = [halfway, above, f32::NAN, f32::INFINITY, -0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (dtype, out) = convert_bytes(StoredDType::F32, &bytes, FloatDType::BF16);
        assert_eq!(dtype, StoredDType::BF16);
        let back = to_f32(StoredDType::BF16, &out);
        assert_eq!(back[0], 1.0);
        assert_eq!(back[1], 1.0 + 2f32.powi(-7));
        assert!(back[2].is_nan());
        assert_eq!(back[3], f32::INFINITY);
        assert_eq!(back[4].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn same_dtype_and_integers_are_borrowed() {
        let bytes = [1u8, 2, 3, 4];
        let (d, out) = convert_bytes(StoredDType::F32, &bytes, FloatDType::F32);
        assert!(matches!(out, Cow::Borrowed(_)) && d == StoredDType::F32);
        let (d, out) = convert_bytes(StoredDType::I32, &bytes, FloatDType::BF16);
        assert!(matches!(out, Cow::Borrowed(_)) && d == StoredDType::I32);
    }

    #[test]
    fn f16_to_bf16_goes_through_exact_f32() {
        let v = [0.1f32, -3.5, 65504.0];
        let f16_bytes: Vec<u8> = v
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        let (_, out) = convert_bytes(StoredDType::F16, &f16_bytes, FloatDType::BF16);
        let got = to_f32(StoredDType::BF16, &out);
        for (g, x) in got.iter().zip(v) {
            assert_eq!(*g, bf16::from_f32(f16::from_f32(x).to_f32()).to_f32());
        }
    }

    #[test]
    fn transposes_any_element_size() {
        // [[1, 2, 3], [4, 5, 6]] as u16.
        let m: Vec<u8> = [1u16, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = transpose_bytes(&m, 2, 3, 2);
        let got: Vec<u16> = t
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(got, [1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn param_shapes_match_the_model() {
        use rg_cpu as _;
        use rg_nn::Module;
        let config = GptConfig::preset("micro").unwrap();
        let model = crate::Gpt::init(config.clone(), 0, rg_core::Device::Cpu).unwrap();
        let mut from_model: Vec<(String, Vec<usize>)> = model
            .named_params()
            .into_iter()
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect();
        let mut ours = gpt2_param_shapes(&config);
        from_model.sort();
        ours.sort();
        assert_eq!(ours, from_model);
    }

    /// A checkpoint rewritten with unprefixed names and nn.Linear `[out, in]` weights
    /// converts back to the checkpoint's own file, byte for byte; a file mixing the two
    /// weight layouts is refused.
    #[test]
    fn linear_layout_weights_are_transposed_back() {
        use rg_cpu as _;
        use rg_tokenize::{CharTokenizer, Tokenizer};

        let tmp = tempfile::tempdir().unwrap();
        let tok = CharTokenizer::from_text("hello world, converted", &[]);
        let config = GptConfig {
            vocab_size: tok.vocab_size(),
            block_size: 8,
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            layer_norm_eps: 1e-5,
            dropout: 0.0,
        };
        let model = crate::Gpt::init(config, 3, rg_core::Device::Cpu).unwrap();
        let ckpt = tmp.path().join("ckpt");
        crate::checkpoint::save_checkpoint(&ckpt, &model, &tok, None).unwrap();
        let original = std::fs::read(ckpt.join(MODEL_FILE)).unwrap();

        let rewrite = |dir: &Path, transpose: &dyn Fn(&str) -> bool| {
            std::fs::create_dir_all(dir).unwrap();
            for name in [CONFIG_FILE, rg_tokenize::CHAR_TOKENIZER_FILE] {
                std::fs::copy(ckpt.join(name), dir.join(name)).unwrap();
            }
            let file = SafeTensorsFile::open(ckpt.join(MODEL_FILE)).unwrap();
            let entries: Vec<TensorEntry> = file
                .tensors()
                .iter()
                .map(|t| {
                    let name = t.name().strip_prefix("transformer.").unwrap();
                    let raw = file.raw_bytes(t.name()).unwrap();
                    if transpose(name) {
                        let (r, c) = (t.shape()[0], t.shape()[1]);
                        TensorEntry::new(
                            name.to_string(),
                            t.dtype(),
                            vec![c, r],
                            transpose_bytes(raw, r, c, 4),
                        )
                    } else {
                        TensorEntry::new(
                            name.to_string(),
                            t.dtype(),
                            t.shape().to_vec(),
                            raw.to_vec(),
                        )
                    }
                })
                .collect();
            save_safetensors_entries(dir.join(MODEL_FILE), entries, file.metadata()).unwrap();
        };

        let linear = tmp.path().join("linear");
        rewrite(&linear, &|n| is_linear_weight(n));
        let out = tmp.path().join("out");
        let report = convert_model_dir(&linear, &out, &ConvertOptions::default()).unwrap();
        assert_eq!(report.transposed.len(), 8);
        assert_eq!(report.copied_files, [rg_tokenize::CHAR_TOKENIZER_FILE]);
        assert!(std::fs::read(out.join(MODEL_FILE)).unwrap() == original);

        let mixed = tmp.path().join("mixed");
        rewrite(&mixed, &|n| n.ends_with("mlp.c_fc.weight"));
        let err = convert_model_dir(&mixed, &tmp.path().join("out2"), &ConvertOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("must use one layout"), "{err}");
        assert!(!tmp.path().join("out2").exists());
    }

    #[test]
    fn resolve_handles_missing_components() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b/c");
        let r = resolve(&p).unwrap();
        assert_eq!(r, tmp.path().canonicalize().unwrap().join("a/b/c"));
    }
}
