//! A model's weights one matrix at a time, by what each does (query, MLP gate, norm γ, …) rather
//! than by each family's names, dequantized to f32 and oriented out × in. The weight analysis
//! (`weights::analysis`) reads a model through this without building it.
//!
//! Families: llama-style Hugging Face folders (llama, mistral, qwen2, qwen3, gemma3_text),
//! GPT-2 folders (its fused `c_attn` split into q, k and v; its `Conv1D` weights transposed) and
//! GGUF files of the same families (every quantization candle reads, dequantized); Phi-3's
//! stacked QKV and gate/up are split back into their roles by rows. Only the norms every family
//! has are listed (not Qwen3's and Gemma's q/k norms, nor Gemma's post-branch norms); Gemma's
//! γ is as stored, `w` in a Hugging Face folder and `1 + w` in a GGUF. A GGUF's Q and K rows stay in llama.cpp's
//! interleaved order: that only permutes rows, so singular values, norms and moments are those
//! of the Hugging Face tensors, and row norms are a per-head reordering of theirs.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::gguf_file;
use serde::{Deserialize, Serialize};

use super::arch::checkpoint::{Checkpoint, read_config};
use super::arch::{SAFETENSORS_MODEL_TYPES, gguf, gpt2, llama};
use super::error::{LlmError, Result};

/// What a matrix does in the model, across families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Token embeddings (vocab × hidden).
    Embedding,
    /// Learned position embeddings (GPT-2).
    Position,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    /// The output head when it is not tied to the embeddings.
    Head,
}

impl Role {
    /// The attention matrices, in the order the fugue enters them (soprano … bass).
    pub const ATTENTION: [Role; 4] = [Role::Q, Role::K, Role::V, Role::O];
    /// The MLP matrices (GPT-2 has no gate).
    pub const MLP: [Role; 3] = [Role::Gate, Role::Up, Role::Down];

    pub const fn name(self) -> &'static str {
        match self {
            Role::Embedding => "embedding",
            Role::Position => "position",
            Role::Q => "q",
            Role::K => "k",
            Role::V => "v",
            Role::O => "o",
            Role::Gate => "gate",
            Role::Up => "up",
            Role::Down => "down",
            Role::Head => "head",
        }
    }
}

/// Which norm a γ vector scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormRole {
    /// Before attention (`input_layernorm`, `ln_1`).
    Attention,
    /// Before the MLP (`post_attention_layernorm`, `ln_2`).
    Mlp,
    /// After the last block.
    Final,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Matrix(Role),
    Norm(NormRole),
}

/// How a stored tensor becomes the matrix: GPT-2 stores `Conv1D` weights in × out, and packs
/// q, k and v side by side in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    AsStored,
    Transposed,
    /// Transposed, then rows `part·n … (part+1)·n` of the three equal parts.
    TransposedPart(usize),
    /// Rows `start … start + len` as stored: Phi-3's stacked q, k, v and gate, up.
    Rows {
        start: usize,
        len: usize,
    },
}

/// One matrix or γ vector of the model, not read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The checkpoint's name; GPT-2's split parts end in `[q]`, `[k]`, `[v]`.
    pub name: String,
    pub kind: Kind,
    pub layer: Option<usize>,
    /// How the file stores it: "F32", "BF16", "Q4_1", …
    pub dtype: String,
    stored: String,
    layout: Layout,
}

/// One matrix or vector, read: `values` row-major, `shape` [rows, cols] ([1, n] for γ).
#[derive(Debug, Clone)]
pub struct WeightTensor {
    pub shape: [usize; 2],
    pub values: Vec<f32>,
}

enum Source {
    Folder(Checkpoint),
    Gguf {
        file: File,
        content: gguf_file::Content,
    },
}

/// An opened model's weights.
pub struct Inventory {
    path: PathBuf,
    /// "llama", "gpt2" or "gguf-llama".
    pub family: String,
    pub layers: usize,
    pub hidden: usize,
    entries: Vec<Entry>,
    source: Source,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("path", &self.path)
            .field("family", &self.family)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Inventory {
    /// Opens a GGUF file or a Hugging Face folder and lists its weights; reads none of them.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(LlmError::NotFound(path.to_path_buf()));
        }
        if path.is_dir() {
            Self::open_folder(path)
        } else {
            Self::open_gguf(path)
        }
    }

    fn open_folder(folder: &Path) -> Result<Self> {
        let (path, value) = read_config(folder, SAFETENSORS_MODEL_TYPES)?;
        if let Some(kind) = value.get("model_type").and_then(|v| v.as_str())
            && !INVENTORY_FAMILIES.contains(&kind)
        {
            return Err(not_supported(&path, kind));
        }
        let checkpoint = Checkpoint::open(folder)?;
        let is_gpt2 = value.get("model_type").and_then(|v| v.as_str()) == Some("gpt2");
        let (family, layers, hidden, mut entries) = if is_gpt2 {
            let config = gpt2::Config::load(folder)?;
            let prefix = if checkpoint.contains("transformer.wte.weight") {
                "transformer."
            } else {
                ""
            };
            let entries = gpt2_entries(prefix, config.n_layer);
            ("gpt2", config.n_layer, config.n_embd, entries)
        } else {
            let config = llama::Config::load(folder)?;
            let names = if config.family == llama::Family::Gemma3 {
                &HF_GEMMA
            } else {
                &HF
            };
            let mut entries = llama_entries(names, config.num_hidden_layers);
            if config.family == llama::Family::Phi3 {
                let head = config.head_dim;
                let stacked = Stacked {
                    qkv: "self_attn.qkv_proj",
                    gate_up: "mlp.gate_up_proj",
                    q: config.num_attention_heads * head,
                    kv: config.num_key_value_heads * head,
                    intermediate: config.intermediate_size,
                };
                stacked.split(&mut entries, names.layer);
            }
            if !config.tie_word_embeddings && checkpoint.contains("lm_head.weight") {
                entries.push(entry("lm_head.weight", Kind::Matrix(Role::Head), None));
            }
            (
                match config.family {
                    llama::Family::Gemma3 => "gemma3",
                    llama::Family::Phi3 => "phi3",
                    _ => "llama",
                },
                config.num_hidden_layers,
                config.hidden_size,
                entries,
            )
        };
        for e in &mut entries {
            if !checkpoint.contains(&e.stored) {
                return Err(LlmError::MissingTensor(e.stored.clone()));
            }
            e.dtype = checkpoint.stored_dtype(&e.stored).to_uppercase();
        }
        Ok(Self {
            path: folder.to_path_buf(),
            family: family.to_owned(),
            layers,
            hidden,
            entries,
            source: Source::Folder(checkpoint),
        })
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let corrupt = |message: String| LlmError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let mut file = File::open(path).map_err(|e| LlmError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| corrupt(e.to_string()))?;
        let arch = gguf::architecture(&content)?;
        if !INVENTORY_FAMILIES.contains(&arch.as_str()) {
            return Err(not_supported(path, &arch));
        }
        let config = gguf::Config::from_gguf(&content).map_err(corrupt)?;
        let mut entries = llama_entries(&GGUF, config.n_layers);
        if arch == "phi3" {
            let gate_up = content
                .tensor_infos
                .get("blk.0.ffn_up.weight")
                .ok_or_else(|| LlmError::MissingTensor("blk.0.ffn_up.weight".into()))?
                .shape
                .dims2()?
                .0;
            let stacked = Stacked {
                qkv: "attn_qkv",
                gate_up: "ffn_up",
                q: config.n_heads * config.head_dim,
                kv: config.n_kv_heads * config.head_dim,
                intermediate: config.feed_forward_length.unwrap_or(gate_up / 2),
            };
            stacked.split(&mut entries, GGUF.layer);
        }
        if content.tensor_infos.contains_key("output.weight") {
            entries.push(entry("output.weight", Kind::Matrix(Role::Head), None));
        }
        for e in &mut entries {
            let info = content
                .tensor_infos
                .get(&e.stored)
                .ok_or_else(|| LlmError::MissingTensor(e.stored.clone()))?;
            e.dtype = format!("{:?}", info.ggml_dtype).to_uppercase();
        }
        Ok(Self {
            path: path.to_path_buf(),
            family: format!("gguf-{arch}"),
            layers: config.n_layers,
            hidden: config.width,
            entries,
            source: Source::Gguf { file, content },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every matrix and γ vector: embeddings first, then block by block, the final norm and
    /// the head last.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Reads entry `index` (from [`Inventory::entries`]) as f32.
    pub fn read(&mut self, index: usize) -> Result<WeightTensor> {
        let entry = self
            .entries
            .get(index)
            .ok_or_else(|| LlmError::MissingTensor(format!("entry {index}")))?
            .clone();
        let corrupt = |message: String| LlmError::Corrupt {
            path: self.path.clone(),
            message: format!("tensor {}: {message}", entry.stored),
        };
        let tensor = match &mut self.source {
            Source::Folder(checkpoint) => {
                let view = checkpoint.view(&entry.stored)?;
                let shape = view.shape().to_vec();
                checkpoint.tensor(&entry.stored, &shape)?
            }
            Source::Gguf { file, content } => content
                .tensor(file, &entry.stored, &Device::Cpu)
                .and_then(|q| q.dequantize(&Device::Cpu))
                .map_err(|e| corrupt(e.to_string()))?,
        };
        let dims = tensor.dims().to_vec();
        let values = tensor.flatten_all()?.to_vec1::<f32>()?;
        let shape = match (entry.kind, dims.as_slice()) {
            (Kind::Norm(_), [n]) => [1, *n],
            (Kind::Matrix(_), [rows, cols]) => [*rows, *cols],
            _ => return Err(corrupt(format!("unexpected shape {dims:?}"))),
        };
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            return Err(corrupt(format!("value {bad} is {}", values[bad])));
        }
        Ok(match entry.layout {
            Layout::AsStored => WeightTensor { shape, values },
            Layout::Transposed => transpose(shape, &values),
            Layout::TransposedPart(part) => {
                let full = transpose(shape, &values);
                let [rows, cols] = full.shape;
                if rows % 3 != 0 {
                    return Err(corrupt(format!(
                        "{rows} output features do not split into q, k and v"
                    )));
                }
                let n = rows / 3;
                WeightTensor {
                    shape: [n, cols],
                    values: full.values[part * n * cols..(part + 1) * n * cols].to_vec(),
                }
            }
            Layout::Rows { start, len } => {
                let [rows, cols] = shape;
                if start + len > rows {
                    return Err(corrupt(format!(
                        "rows {start}..{} asked of {rows}",
                        start + len
                    )));
                }
                WeightTensor {
                    shape: [len, cols],
                    values: values[start * cols..(start + len) * cols].to_vec(),
                }
            }
        })
    }
}

/// The families (`model_type`s and GGUF architectures) whose weights are listed.
const INVENTORY_FAMILIES: &[&str] = &[
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma3_text",
    "gemma3",
];

/// Phi-3's stacked matrices (names relative to a block) and the rows of each part.
struct Stacked {
    qkv: &'static str,
    gate_up: &'static str,
    q: usize,
    kv: usize,
    intermediate: usize,
}

impl Stacked {
    /// Points each q, k, v, gate and up entry at its rows of the stacked matrix.
    fn split(&self, entries: &mut [Entry], layer: fn(usize) -> String) {
        let (q, kv, i) = (self.q, self.kv, self.intermediate);
        for e in entries {
            let (Kind::Matrix(role), Some(l)) = (e.kind, e.layer) else {
                continue;
            };
            let (fused, start, len) = match role {
                Role::Q => (self.qkv, 0, q),
                Role::K => (self.qkv, q, kv),
                Role::V => (self.qkv, q + kv, kv),
                Role::Gate => (self.gate_up, 0, i),
                Role::Up => (self.gate_up, i, i),
                _ => continue,
            };
            let stored = format!("{}.{fused}.weight", layer(l));
            e.name = format!("{stored}[{}]", role.name());
            e.stored = stored;
            e.layout = Layout::Rows { start, len };
        }
    }
}

fn not_supported(path: &Path, kind: &str) -> LlmError {
    LlmError::Corrupt {
        path: path.to_path_buf(),
        message: format!(
            "the weights inventory does not support {kind}; it reads {}",
            INVENTORY_FAMILIES.join(", ")
        ),
    }
}

fn transpose([rows, cols]: [usize; 2], values: &[f32]) -> WeightTensor {
    let mut out = vec![0.0; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    WeightTensor {
        shape: [cols, rows],
        values: out,
    }
}

fn entry(stored: &str, kind: Kind, layer: Option<usize>) -> Entry {
    Entry {
        name: stored.to_owned(),
        kind,
        layer,
        dtype: String::new(),
        stored: stored.to_owned(),
        layout: Layout::AsStored,
    }
}

/// A llama-style file's names (without `.weight`).
struct Names {
    embed: &'static str,
    final_norm: &'static str,
    layer: fn(usize) -> String,
    parts: [(&'static str, Kind); 9],
}

const HF: Names = Names {
    embed: "model.embed_tokens",
    final_norm: "model.norm",
    layer: |i| format!("model.layers.{i}"),
    parts: [
        ("input_layernorm", Kind::Norm(NormRole::Attention)),
        ("self_attn.q_proj", Kind::Matrix(Role::Q)),
        ("self_attn.k_proj", Kind::Matrix(Role::K)),
        ("self_attn.v_proj", Kind::Matrix(Role::V)),
        ("self_attn.o_proj", Kind::Matrix(Role::O)),
        ("post_attention_layernorm", Kind::Norm(NormRole::Mlp)),
        ("mlp.gate_proj", Kind::Matrix(Role::Gate)),
        ("mlp.up_proj", Kind::Matrix(Role::Up)),
        ("mlp.down_proj", Kind::Matrix(Role::Down)),
    ],
};

/// Gemma's MLP norm is `pre_feedforward_layernorm` (its `post_attention_layernorm` is on the
/// attention output).
const HF_GEMMA: Names = Names {
    parts: [
        ("input_layernorm", Kind::Norm(NormRole::Attention)),
        ("self_attn.q_proj", Kind::Matrix(Role::Q)),
        ("self_attn.k_proj", Kind::Matrix(Role::K)),
        ("self_attn.v_proj", Kind::Matrix(Role::V)),
        ("self_attn.o_proj", Kind::Matrix(Role::O)),
        ("pre_feedforward_layernorm", Kind::Norm(NormRole::Mlp)),
        ("mlp.gate_proj", Kind::Matrix(Role::Gate)),
        ("mlp.up_proj", Kind::Matrix(Role::Up)),
        ("mlp.down_proj", Kind::Matrix(Role::Down)),
    ],
    ..HF
};

const GGUF: Names = Names {
    embed: "token_embd",
    final_norm: "output_norm",
    layer: |i| format!("blk.{i}"),
    parts: [
        ("attn_norm", Kind::Norm(NormRole::Attention)),
        ("attn_q", Kind::Matrix(Role::Q)),
        ("attn_k", Kind::Matrix(Role::K)),
        ("attn_v", Kind::Matrix(Role::V)),
        ("attn_output", Kind::Matrix(Role::O)),
        ("ffn_norm", Kind::Norm(NormRole::Mlp)),
        ("ffn_gate", Kind::Matrix(Role::Gate)),
        ("ffn_up", Kind::Matrix(Role::Up)),
        ("ffn_down", Kind::Matrix(Role::Down)),
    ],
};

fn llama_entries(names: &Names, layers: usize) -> Vec<Entry> {
    let mut entries = vec![entry(
        &format!("{}.weight", names.embed),
        Kind::Matrix(Role::Embedding),
        None,
    )];
    for i in 0..layers {
        let prefix = (names.layer)(i);
        for (part, kind) in names.parts {
            entries.push(entry(&format!("{prefix}.{part}.weight"), kind, Some(i)));
        }
    }
    entries.push(entry(
        &format!("{}.weight", names.final_norm),
        Kind::Norm(NormRole::Final),
        None,
    ));
    entries
}

fn gpt2_entries(prefix: &str, layers: usize) -> Vec<Entry> {
    let mut entries = vec![
        entry(
            &format!("{prefix}wte.weight"),
            Kind::Matrix(Role::Embedding),
            None,
        ),
        entry(
            &format!("{prefix}wpe.weight"),
            Kind::Matrix(Role::Position),
            None,
        ),
    ];
    for i in 0..layers {
        let block = format!("{prefix}h.{i}");
        let c_attn = format!("{block}.attn.c_attn.weight");
        entries.push(entry(
            &format!("{block}.ln_1.weight"),
            Kind::Norm(NormRole::Attention),
            Some(i),
        ));
        for (part, (role, tag)) in [(Role::Q, "q"), (Role::K, "k"), (Role::V, "v")]
            .into_iter()
            .enumerate()
        {
            entries.push(Entry {
                name: format!("{c_attn}[{tag}]"),
                layout: Layout::TransposedPart(part),
                ..entry(&c_attn, Kind::Matrix(role), Some(i))
            });
        }
        let transposed = |stored: String, role: Role| Entry {
            layout: Layout::Transposed,
            ..entry(&stored, Kind::Matrix(role), Some(i))
        };
        entries.push(transposed(format!("{block}.attn.c_proj.weight"), Role::O));
        entries.push(entry(
            &format!("{block}.ln_2.weight"),
            Kind::Norm(NormRole::Mlp),
            Some(i),
        ));
        entries.push(transposed(format!("{block}.mlp.c_fc.weight"), Role::Up));
        entries.push(transposed(format!("{block}.mlp.c_proj.weight"), Role::Down));
    }
    entries.push(entry(
        &format!("{prefix}ln_f.weight"),
        Kind::Norm(NormRole::Final),
        None,
    ));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let t = transpose([2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(t.shape, [3, 2]);
        assert_eq!(t.values, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn phi3_splits_its_stacked_matrices_by_rows() {
        let mut entries = llama_entries(&HF, 2);
        Stacked {
            qkv: "self_attn.qkv_proj",
            gate_up: "mlp.gate_up_proj",
            q: 64,
            kv: 32,
            intermediate: 128,
        }
        .split(&mut entries, HF.layer);
        let find = |role| {
            entries
                .iter()
                .find(|e| e.kind == Kind::Matrix(role) && e.layer == Some(1))
                .unwrap()
        };
        assert_eq!(
            find(Role::V).stored,
            "model.layers.1.self_attn.qkv_proj.weight"
        );
        assert_eq!(find(Role::V).layout, Layout::Rows { start: 96, len: 32 });
        assert_eq!(
            find(Role::Up).name,
            "model.layers.1.mlp.gate_up_proj.weight[up]"
        );
        assert_eq!(
            find(Role::Up).layout,
            Layout::Rows {
                start: 128,
                len: 128
            }
        );
        assert_eq!(find(Role::O).layout, Layout::AsStored);
    }

    #[test]
    fn gpt2_splits_c_attn_into_three_roles() {
        let entries = gpt2_entries("", 2);
        let q: Vec<_> = entries
            .iter()
            .filter(|e| e.kind == Kind::Matrix(Role::Q))
            .collect();
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].name, "h.1.attn.c_attn.weight[q]");
        assert_eq!(q[1].stored, "h.1.attn.c_attn.weight");
        assert!(!entries.iter().any(|e| e.kind == Kind::Matrix(Role::Gate)));
    }
}
