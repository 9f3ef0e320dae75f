//! Abliteration (Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single
//! Direction"): every weight that writes into the residual stream loses its component along one
//! unit direction r̂, so no embedding, block or bias can add anything along r̂ and the stream
//! never gains a component along it. The rest of the network is untouched.
//!
//! Reads a Hugging Face folder (llama, qwen2 or GPT-2; f32, f16 or bf16 safetensors, one file or
//! shards) or a llama GGUF file, and writes a Hugging Face folder that [`loader::load`] reads:
//! `config.json`, one `model.safetensors`, the tokenizer files and `abliteration.json`, which
//! records what was done and marks the folder as ours. Changed tensors are written in f32
//! (rounded back to bf16 they would carry a component of ~1e-3 along r̂ again); the others keep
//! their stored dtype. A GGUF is dequantized: every tensor is written in f32, Q and K put back in
//! transformers' row order, the config and tokenizer rebuilt from its metadata.
//!
//! [`loader::load`]: super::loader::load

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::gguf_file;
use safetensors::tensor::{Dtype, TensorView};

use super::arch::checkpoint::{Checkpoint, read_config};
use super::arch::{SAFETENSORS_MODEL_TYPES, gguf, gpt2, llama};
use super::error::{LlmError, Result};
use super::tokenizer::Tokenizer;

/// What [`abliterate`] or [`export_hf`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct AbliterateReport {
    /// Hugging Face names of the tensors projected, in the written file's order.
    pub tensors_changed: Vec<String>,
    /// `"safetensors"` (a Hugging Face folder) or `"gguf"`.
    pub source_format: &'static str,
    pub out_dir: PathBuf,
    /// The LM head is the token embedding, so projecting the embedding (as Arditi et al. do)
    /// also changes the logits' readout.
    pub tied_embeddings: bool,
}

/// Written into every output folder; its presence lets a later run replace the folder.
pub const MARKER_FILE: &str = "abliteration.json";

/// Files an output folder may hold; anything else makes a non-empty folder someone else's.
const OUTPUT_FILES: &[&str] = &[
    MARKER_FILE,
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// Tokenizer and generation files copied from a Hugging Face folder when present: the loader
/// reads end ids, BOS and the chat template from them.
const OPTIONAL_FOLDER_FILES: &[&str] = &[
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// Writes the model at `model_path` with `direction` (one value per residual dimension, any
/// non-zero length) projected out of every weight that writes into the residual stream, as a
/// Hugging Face folder at `out_dir`. `out_dir` must be new, empty, or an earlier output of this
/// module, which is then replaced; the folder appears only once it is complete.
pub fn abliterate(
    model_path: &Path,
    direction: &[f32],
    out_dir: &Path,
) -> Result<AbliterateReport> {
    convert(model_path, Some(direction), out_dir)
}

/// Writes the model at `model_path` unchanged as a Hugging Face folder at `out_dir` (same rules
/// as [`abliterate`]): a GGUF dequantized, a folder re-packed into one `model.safetensors`.
pub fn export_hf(model_path: &Path, out_dir: &Path) -> Result<AbliterateReport> {
    convert(model_path, None, out_dir)
}

fn convert(
    model_path: &Path,
    direction: Option<&[f32]>,
    out_dir: &Path,
) -> Result<AbliterateReport> {
    if !model_path.exists() {
        return Err(LlmError::NotFound(model_path.to_path_buf()));
    }
    let mut source = Source::open(model_path)?;
    let unit = direction
        .map(|d| unit_direction(d, source.width()))
        .transpose()?;
    check_out_dir(out_dir)?;
    let staging = Staging::create(out_dir)?;
    let written = source.write(unit.as_deref(), &staging.path)?;
    let report = AbliterateReport {
        tensors_changed: written.changed,
        source_format: source.format(),
        out_dir: out_dir.to_path_buf(),
        tied_embeddings: written.tied,
    };
    let marker = serde_json::json!({
        "written_by": "latent-choir abliterate (Arditi et al. 2024)",
        "source": model_path.display().to_string(),
        "source_format": report.source_format,
        "direction": unit,
        "tensors_changed": report.tensors_changed,
        "tied_embeddings": report.tied_embeddings,
    });
    write_json(&staging.path.join(MARKER_FILE), &marker)?;
    drop(source);
    staging.commit(out_dir)?;
    Ok(report)
}

/// `direction` scaled to unit length, kept in f64 so the projection leaves as little as
/// possible along it.
fn unit_direction(direction: &[f32], width: usize) -> Result<Vec<f64>> {
    if direction.len() != width {
        return Err(LlmError::Direction(format!(
            "it has {} values but the model's residual stream is {width} wide",
            direction.len()
        )));
    }
    if let Some(i) = direction.iter().position(|v| !v.is_finite()) {
        return Err(LlmError::Direction(format!(
            "value {i} is {}, not a finite number",
            direction[i]
        )));
    }
    let norm = direction
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Err(LlmError::Direction(
            "it is all zeros, so there is nothing to project out".into(),
        ));
    }
    Ok(direction.iter().map(|&v| f64::from(v) / norm).collect())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    /// llama and qwen2 (`llama.rs`'s names), and llama GGUFs once renamed.
    Llama,
    Gpt2,
}

/// How a tensor writes into the residual stream.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// Each row (the last axis, as wide as the stream) is a vector added to the stream:
    /// embeddings, biases, GPT-2's `Conv1D` weights (stored `[in, out]`). x ← x − (x·r̂) r̂.
    Rows,
    /// `[width, in]`: what each input adds is a column. W ← W − r̂ (r̂ᵀ W).
    Columns,
}

/// The role of tensor `name` (Hugging Face naming), `None` if it does not write into the
/// stream.
fn role(family: Family, name: &str) -> Option<Role> {
    match family {
        Family::Llama => {
            if name == "model.embed_tokens.weight" {
                return Some(Role::Rows);
            }
            let (_, part) = name.strip_prefix("model.layers.")?.split_once('.')?;
            match part {
                "self_attn.o_proj.weight" | "mlp.down_proj.weight" => Some(Role::Columns),
                "self_attn.o_proj.bias" | "mlp.down_proj.bias" => Some(Role::Rows),
                _ => None,
            }
        }
        Family::Gpt2 => {
            let name = name.strip_prefix("transformer.").unwrap_or(name);
            if matches!(name, "wte.weight" | "wpe.weight") {
                return Some(Role::Rows);
            }
            let (_, part) = name.strip_prefix("h.")?.split_once('.')?;
            matches!(
                part,
                "attn.c_proj.weight" | "attn.c_proj.bias" | "mlp.c_proj.weight" | "mlp.c_proj.bias"
            )
            .then_some(Role::Rows)
        }
    }
}

/// The weights that must be there to be projected: a checkpoint under other names would
/// otherwise come out unchanged without a word.
fn required(family: Family, n_layers: usize, prefix: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(2 + 2 * n_layers);
    match family {
        Family::Llama => {
            names.push("model.embed_tokens.weight".to_owned());
            for i in 0..n_layers {
                names.push(format!("model.layers.{i}.self_attn.o_proj.weight"));
                names.push(format!("model.layers.{i}.mlp.down_proj.weight"));
            }
        }
        Family::Gpt2 => {
            names.push(format!("{prefix}wte.weight"));
            names.push(format!("{prefix}wpe.weight"));
            for i in 0..n_layers {
                names.push(format!("{prefix}h.{i}.attn.c_proj.weight"));
                names.push(format!("{prefix}h.{i}.mlp.c_proj.weight"));
            }
        }
    }
    names
}

/// Projects `r` (unit length) out of `values`, a tensor of `shape` in `role`. Fails with a
/// message when the shape does not fit the role.
fn project(
    role: Role,
    name: &str,
    shape: &[usize],
    values: &mut [f32],
    r: &[f64],
) -> std::result::Result<(), String> {
    let width = r.len();
    match role {
        Role::Rows if shape.last() == Some(&width) => {
            for row in values.chunks_exact_mut(width) {
                let along: f64 = row.iter().zip(r).map(|(&x, &d)| f64::from(x) * d).sum();
                for (x, &d) in row.iter_mut().zip(r) {
                    *x = (f64::from(*x) - along * d) as f32;
                }
            }
            Ok(())
        }
        Role::Columns if shape.len() == 2 && shape[0] == width => {
            let cols = shape[1];
            let mut along = vec![0.0_f64; cols];
            for (row, &d) in values.chunks_exact(cols).zip(r) {
                for (a, &x) in along.iter_mut().zip(row) {
                    *a += d * f64::from(x);
                }
            }
            for (row, &d) in values.chunks_exact_mut(cols).zip(r) {
                for (x, &a) in row.iter_mut().zip(&along) {
                    *x = (f64::from(*x) - d * a) as f32;
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "tensor {name} has shape {shape:?}, which does not write into a {width}-wide stream"
        )),
    }
}

/// One tensor of the output file.
enum Entry<'a> {
    /// Copied as stored.
    Stored(TensorView<'a>),
    /// A changed or dequantized tensor, as little-endian f32 bytes.
    F32 { shape: Vec<usize>, bytes: Vec<u8> },
}

impl Entry<'_> {
    fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Self::F32 {
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// What a conversion did.
struct Written {
    changed: Vec<String>,
    tied: bool,
}

/// The `config.json` model types abliterate rewrites: those under llama's (or GPT-2's) names.
const ABLITERATE_MODEL_TYPES: &[&str] = &["gpt2", "llama", "mistral", "qwen2"];

/// An opened model: what its headers say, its tensors not read yet.
enum Source {
    Folder {
        folder: PathBuf,
        family: Family,
        width: usize,
        n_layers: usize,
        /// `config.json` says the LM head is the token embedding.
        tied_in_config: bool,
        checkpoint: Checkpoint,
    },
    Gguf {
        path: PathBuf,
        file: File,
        content: gguf_file::Content,
        config: gguf::Config,
    },
}

impl Source {
    fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let (config_path, value) = read_config(path, SAFETENSORS_MODEL_TYPES)?;
            if let Some(kind) = value.get("model_type").and_then(|v| v.as_str())
                && !ABLITERATE_MODEL_TYPES.contains(&kind)
            {
                return Err(corrupt(
                    &config_path,
                    format!(
                        "abliterate does not support {kind} yet; it takes {}",
                        ABLITERATE_MODEL_TYPES.join(", ")
                    ),
                ));
            }
            let (family, width, n_layers, tied_in_config) =
                match value.get("model_type").and_then(|v| v.as_str()) {
                    Some("gpt2") => {
                        let config = gpt2::Config::load(path)?;
                        (Family::Gpt2, config.n_embd, config.n_layer, false)
                    }
                    _ => {
                        let config = llama::Config::load(path)?;
                        let tied = config.tie_word_embeddings;
                        (
                            Family::Llama,
                            config.hidden_size,
                            config.num_hidden_layers,
                            tied,
                        )
                    }
                };
            Ok(Self::Folder {
                folder: path.to_path_buf(),
                family,
                width,
                n_layers,
                tied_in_config,
                checkpoint: Checkpoint::open(path)?,
            })
        } else {
            let mut file = File::open(path).map_err(|e| io_error(path, e))?;
            let content =
                gguf_file::Content::read(&mut file).map_err(|e| corrupt(path, e.to_string()))?;
            let arch = content
                .metadata
                .get("general.architecture")
                .and_then(|v| v.to_string().ok())
                .cloned()
                .unwrap_or_default();
            if !super::arch::GGUF_ARCHITECTURES.contains(&arch.as_str()) {
                return Err(LlmError::UnknownArchitecture(arch));
            }
            if arch != "llama" {
                return Err(corrupt(
                    path,
                    format!("abliterate does not support {arch} GGUF files yet; it takes llama"),
                ));
            }
            let config =
                gguf::Config::from_gguf(&content).map_err(|message| corrupt(path, message))?;
            if config.rope_dim != config.head_dim {
                return Err(corrupt(
                    path,
                    format!(
                        "RoPE turns {} of each head's {} values, which a Hugging Face llama \
                         config cannot say",
                        config.rope_dim, config.head_dim
                    ),
                ));
            }
            Ok(Self::Gguf {
                path: path.to_path_buf(),
                file,
                content,
                config,
            })
        }
    }

    fn width(&self) -> usize {
        match self {
            Self::Folder { width, .. } => *width,
            Self::Gguf { config, .. } => config.width,
        }
    }

    fn format(&self) -> &'static str {
        match self {
            Self::Folder { .. } => "safetensors",
            Self::Gguf { .. } => "gguf",
        }
    }

    /// Writes the folder's files into `dir`, `r` projected out when given.
    fn write(&mut self, r: Option<&[f64]>, dir: &Path) -> Result<Written> {
        match self {
            Self::Folder {
                folder,
                family,
                n_layers,
                tied_in_config,
                checkpoint,
                ..
            } => {
                // GPT-2 ties whenever the checkpoint has no head of its own; llama when its
                // config says so.
                let tied = *tied_in_config || !checkpoint.contains("lm_head.weight");
                write_folder(folder, *family, *n_layers, tied, checkpoint, r, dir)
            }
            Self::Gguf {
                path,
                file,
                content,
                config,
            } => write_gguf(path, file, content, config, r, dir),
        }
    }
}

/// A Hugging Face folder: tensors re-packed into one file, the residual writers projected, the
/// config and tokenizer files copied.
fn write_folder(
    folder: &Path,
    family: Family,
    n_layers: usize,
    tied: bool,
    checkpoint: &Checkpoint,
    r: Option<&[f64]>,
    dir: &Path,
) -> Result<Written> {
    let names = checkpoint.names();
    let prefix = if checkpoint.contains("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    if let Some(missing) = required(family, n_layers, prefix)
        .into_iter()
        .find(|name| !checkpoint.contains(name))
    {
        return Err(LlmError::MissingTensor(missing));
    }
    let mut tensors = Vec::with_capacity(names.len());
    let mut changed = Vec::new();
    for name in names {
        let view = checkpoint.view(name)?;
        let entry = match (role(family, name), r) {
            (Some(role), Some(r)) => {
                let shape = view.shape().to_vec();
                let mut values = checkpoint.vector(name, &shape)?;
                project(role, name, &shape, &mut values, r).map_err(|m| corrupt(folder, m))?;
                changed.push(name.to_owned());
                Entry::f32(shape, &values)
            }
            _ => Entry::Stored(view),
        };
        tensors.push((name.to_owned(), entry));
    }
    write_safetensors(&dir.join("model.safetensors"), &tensors)?;
    for file in ["config.json", "tokenizer.json"] {
        copy(&folder.join(file), &dir.join(file))?;
    }
    for file in OPTIONAL_FOLDER_FILES {
        let from = folder.join(file);
        if from.is_file() {
            copy(&from, &dir.join(file))?;
        }
    }
    Ok(Written { changed, tied })
}

/// A llama GGUF: every tensor dequantized under its Hugging Face name, Q and K un-permuted,
/// the residual writers projected; `config.json` and the tokenizer files from the metadata.
fn write_gguf(
    path: &Path,
    file: &mut File,
    content: &gguf_file::Content,
    config: &gguf::Config,
    r: Option<&[f64]>,
    dir: &Path,
) -> Result<Written> {
    let tokenizer = Tokenizer::from_gguf(content)?;
    let mut names = Vec::with_capacity(content.tensor_infos.len());
    for gguf_name in content.tensor_infos.keys() {
        let (hf, heads) = hf_name(gguf_name, config).ok_or_else(|| {
            corrupt(
                path,
                format!("tensor {gguf_name} has no counterpart in a Hugging Face llama model"),
            )
        })?;
        names.push((hf, gguf_name.as_str(), heads));
    }
    names.sort_unstable();
    if let Some(missing) = required(Family::Llama, config.n_layers, "")
        .into_iter()
        .find(|name| !names.iter().any(|(hf, _, _)| hf == name))
    {
        return Err(LlmError::MissingTensor(missing));
    }
    let tied = !content.tensor_infos.contains_key("output.weight");

    let mut tensors = Vec::with_capacity(names.len());
    let mut changed = Vec::new();
    let mut rows_of = HashMap::new();
    for (hf, gguf_name, heads) in names {
        let tensor = content
            .tensor(file, gguf_name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .map_err(|e| corrupt(path, format!("tensor {gguf_name}: {e}")))?;
        let shape = tensor.dims().to_vec();
        let mut values = tensor.flatten_all()?.to_vec1::<f32>()?;
        if let Some(heads) = heads {
            values = unpermute_heads(&values, &shape, heads, config.head_dim).ok_or_else(|| {
                corrupt(
                    path,
                    format!(
                        "tensor {gguf_name} has shape {shape:?}, not {heads} heads of {}",
                        config.head_dim
                    ),
                )
            })?;
        }
        if let (Some(role), Some(r)) = (role(Family::Llama, &hf), r) {
            project(role, &hf, &shape, &mut values, r).map_err(|m| corrupt(path, m))?;
            changed.push(hf.clone());
        }
        rows_of.insert(gguf_name, shape.first().copied().unwrap_or(0));
        tensors.push((hf, Entry::f32(shape, &values)));
    }
    let vocab_size = rows_of.get("token_embd.weight").copied().unwrap_or(0);
    let intermediate_size = match config.feed_forward_length {
        Some(width) => width,
        None => rows_of.get("blk.0.ffn_gate.weight").copied().unwrap_or(0),
    };
    write_safetensors(&dir.join("model.safetensors"), &tensors)?;
    drop(tensors);

    let eos = tokenizer.eos_ids();
    let hf_config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": config.width,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": f64::from(config.rms_eps),
        "rope_theta": f64::from(config.rope_theta),
        "max_position_embeddings": config.context_length,
        "tie_word_embeddings": tied,
        "bos_token_id": tokenizer.bos_id(),
        "eos_token_id": if eos.len() == 1 { serde_json::json!(eos[0]) } else { serde_json::json!(eos) },
        "torch_dtype": "float32",
    });
    write_json(&dir.join("config.json"), &hf_config)?;
    tokenizer.save_hf(dir)?;
    Ok(Written { changed, tied })
}

/// The Hugging Face name of GGUF llama tensor `gguf`, with, for Q and K, the number of heads
/// whose rows llama.cpp's converter permuted. `None` for a tensor the HF model has no place for.
fn hf_name(gguf: &str, config: &gguf::Config) -> Option<(String, Option<usize>)> {
    let (stem, kind) = gguf.rsplit_once('.')?;
    if !matches!(kind, "weight" | "bias") {
        return None;
    }
    let (hf, heads) = match stem {
        "token_embd" => ("model.embed_tokens".to_owned(), None),
        "output_norm" => ("model.norm".to_owned(), None),
        "output" => ("lm_head".to_owned(), None),
        _ => {
            let (layer, part) = stem.strip_prefix("blk.")?.split_once('.')?;
            let layer: usize = layer.parse().ok().filter(|&l| l < config.n_layers)?;
            let (part, heads) = match part {
                "attn_norm" => ("input_layernorm", None),
                "attn_q" => ("self_attn.q_proj", Some(config.n_heads)),
                "attn_k" => ("self_attn.k_proj", Some(config.n_kv_heads)),
                "attn_v" => ("self_attn.v_proj", None),
                "attn_output" => ("self_attn.o_proj", None),
                "ffn_norm" => ("post_attention_layernorm", None),
                "ffn_gate" => ("mlp.gate_proj", None),
                "ffn_up" => ("mlp.up_proj", None),
                "ffn_down" => ("mlp.down_proj", None),
                _ => return None,
            };
            (format!("model.layers.{layer}.{part}"), heads)
        }
    };
    Some((format!("{hf}.{kind}"), heads))
}

/// llama.cpp's converter reorders each head's Q and K rows (weights and biases) from
/// transformers' layout, where RoPE pairs value `j` with `j + d/2`, into adjacent pairs
/// (`2j`, `2j + 1`), the pairs its RoPE turns. This puts row `2j + s` of each head back at
/// `s·d/2 + j`, so the folder's RoPE turns the same pairs by the same angles. `None` if `shape`
/// is not `heads × head_dim` rows.
fn unpermute_heads(
    values: &[f32],
    shape: &[usize],
    heads: usize,
    head_dim: usize,
) -> Option<Vec<f32>> {
    let rows = heads * head_dim;
    if shape.first() != Some(&rows) || !head_dim.is_multiple_of(2) || rows == 0 {
        return None;
    }
    let cols = values.len() / rows;
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for head in 0..heads {
        for j in 0..half {
            for s in 0..2 {
                let from = (head * head_dim + 2 * j + s) * cols;
                let to = (head * head_dim + s * half + j) * cols;
                out[to..to + cols].copy_from_slice(&values[from..from + cols]);
            }
        }
    }
    Some(out)
}

fn write_safetensors(path: &Path, tensors: &[(String, Entry<'_>)]) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, entry)| {
            let view = match entry {
                Entry::Stored(view) => view.clone(),
                Entry::F32 { shape, bytes } => TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map_err(|e| corrupt(path, format!("tensor {name}: {e}")))?,
            };
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| LlmError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The output folder may be missing, empty, or an earlier output (its marker present and
/// nothing but files this module writes): then nothing of anyone else's is ever replaced.
fn check_out_dir(out_dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(out_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(out_dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(out_dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    let ours = names.iter().all(|n| OUTPUT_FILES.contains(&n.as_str()))
        && names.iter().any(|n| n == MARKER_FILE);
    if names.is_empty() || ours {
        Ok(())
    } else {
        Err(LlmError::Io {
            path: out_dir.to_path_buf(),
            message: format!(
                "the folder is not empty and not an earlier abliterate output (no {MARKER_FILE}, \
                 or other files in it); choose a new folder"
            ),
        })
    }
}

/// A hidden sibling of the output folder the files are written into; renamed to the output
/// folder once complete, removed if the conversion fails.
struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    fn create(out_dir: &Path) -> Result<Self> {
        let name = out_dir.file_name().ok_or_else(|| LlmError::Io {
            path: out_dir.to_path_buf(),
            message: "not a folder name to write to".into(),
        })?;
        let parent = out_dir.parent().unwrap_or(Path::new(""));
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let path = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| io_error(&path, e))?;
        }
        fs::create_dir(&path).map_err(|e| io_error(&path, e))?;
        Ok(Self {
            path,
            committed: false,
        })
    }

    /// Replaces `out_dir` (checked again: it may have changed while the model was written).
    fn commit(mut self, out_dir: &Path) -> Result<()> {
        check_out_dir(out_dir)?;
        if out_dir.exists() {
            for entry in fs::read_dir(out_dir).map_err(|e| io_error(out_dir, e))? {
                let path = entry.map_err(|e| io_error(out_dir, e))?.path();
                fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
            fs::remove_dir(out_dir).map_err(|e| io_error(out_dir, e))?;
        }
        fs::rename(&self.path, out_dir).map_err(|e| io_error(out_dir, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).map_err(|e| io_error(from, e))?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| LlmError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    fs::write(path, text).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, err: std::io::Error) -> LlmError {
    if err.kind() == std::io::ErrorKind::NotFound {
        LlmError::NotFound(path.to_path_buf())
    } else {
        LlmError::Io {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}

fn corrupt(path: &Path, message: impl ToString) -> LlmError {
    LlmError::Corrupt {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_undoes_llama_cpp_permute() {
        // llama.cpp: reshape(heads, 2, d/2, cols).swapaxes(1, 2): HF row s·d/2 + j → 2j + s.
        let (heads, head_dim, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..heads * head_dim * cols).map(|v| v as f32).collect();
        let mut gguf = vec![0.0; hf.len()];
        for h in 0..heads {
            for s in 0..2 {
                for j in 0..head_dim / 2 {
                    let from = (h * head_dim + s * head_dim / 2 + j) * cols;
                    let to = (h * head_dim + 2 * j + s) * cols;
                    gguf[to..to + cols].copy_from_slice(&hf[from..from + cols]);
                }
            }
        }
        let shape = [heads * head_dim, cols];
        assert_eq!(
            unpermute_heads(&gguf, &shape, heads, head_dim).as_deref(),
            Some(&hf[..])
        );
        assert!(unpermute_heads(&gguf, &[7, cols], heads, head_dim).is_none());
    }

    #[test]
    fn projections_leave_nothing_along_the_direction() {
        let r = unit_direction(&[3.0, 0.0, 4.0], 3).unwrap();
        let mut rows = vec![1.0, 2.0, 3.0, -4.0, 5.0, 0.5];
        project(Role::Rows, "e", &[2, 3], &mut rows, &r).unwrap();
        for row in rows.chunks_exact(3) {
            let along: f64 = row.iter().zip(&r).map(|(&x, &d)| f64::from(x) * d).sum();
            assert!(along.abs() < 1e-6, "{along}");
        }
        // [width 3, in 2]: every column loses its part along r.
        let mut w = vec![1.0, 2.0, 3.0, -4.0, 5.0, 0.5];
        project(Role::Columns, "w", &[3, 2], &mut w, &r).unwrap();
        for c in 0..2 {
            let along: f64 = (0..3).map(|o| f64::from(w[o * 2 + c]) * r[o]).sum();
            assert!(along.abs() < 1e-6, "{along}");
        }
        assert!(project(Role::Columns, "w", &[2, 3], &mut w, &r).is_err());
        assert!(unit_direction(&[0.0; 3], 3).is_err());
        assert!(unit_direction(&[1.0, f32::NAN, 0.0], 3).is_err());
        assert!(unit_direction(&[1.0; 2], 3).is_err());
    }

    #[test]
    fn names_and_roles() {
        assert!(matches!(
            role(Family::Llama, "model.layers.3.mlp.down_proj.weight"),
            Some(Role::Columns)
        ));
        assert!(role(Family::Llama, "model.layers.3.mlp.up_proj.weight").is_none());
        assert!(role(Family::Llama, "lm_head.weight").is_none());
        assert!(matches!(
            role(Family::Gpt2, "transformer.h.0.mlp.c_proj.weight"),
            Some(Role::Rows)
        ));
        assert!(matches!(role(Family::Gpt2, "wpe.weight"), Some(Role::Rows)));
        assert!(role(Family::Gpt2, "h.0.attn.c_attn.weight").is_none());
    }
}
