#!/usr/bin/env python3
"""Write GGUF versions of the tiny reference models in tests/fixtures/gguf/tiny-*.gguf.

Run by hand after make_fixtures.py (it reads the Hugging Face folders that script wrote), never
in CI:

    /tmp/venv-ref/bin/python tools/reference/make_gguf_fixtures.py

Each file holds the folder's weights as f32 under llama.cpp's names, converted the way llama.cpp's
convert_hf_to_gguf.py converts the family (written here from its conventions, with the `gguf`
package's own tensor-name map):
  * llama: Q and K rows permuted per head into adjacent RoPE pairs (the interleaved layout);
    every other family keeps transformers' halves;
  * gemma3: 1 added to every RMSNorm weight ((1 + w) as stored), no output tensor (tied);
  * phi3: qkv_proj -> attn_qkv, gate_up_proj -> ffn_up (stacked), LongRoPE as the tensors
    rope_factors_long / rope_factors_short with rope.scaling.attn_factor and
    rope.scaling.original_context_length;
  * metadata {arch}.block_count, .context_length, .embedding_length, .feed_forward_length,
    .attention.head_count(_kv), .attention.key_length / value_length, .rope.freq_base,
    .rope.dimension_count, .attention.layer_norm_rms_epsilon, gemma3's .attention.sliding_window
    and .rope.freq_base_swa, rope.scaling.type / factor for linear scaling.
  * the tokenizer as byte-level BPE metadata (tokenizer.ggml.model "gpt2") from the folder's
    tokenizer.json: tokens, merges, token types (special tokens as control).

One deviation, because the fixture exercises it: tiny-gemma3's query_pre_attn_scalar (24) is not
its head_dim (16), which llama.cpp's gemma3 cannot say (it takes 1/sqrt(head_dim), the same
for every released size but 27B); the file carries gemma3.attention.scale = 24^-1/2, a key
llama.cpp defines, and the Rust loader reads it when present.

The Rust test (tests/model_reference.rs) checks each file against the folder's reference.json.
"""

import json
import math
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "gguf"

ARCH = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
    "qwen3": gguf.MODEL_ARCH.QWEN3,
    "phi3": gguf.MODEL_ARCH.PHI3,
    "gemma3_text": gguf.MODEL_ARCH.GEMMA3,
}


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K permutation: within each head, rows (i, i + d/2) become (2i, 2i + 1)."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def rope_params(config: dict, layer_type: str | None = None) -> dict:
    params = config.get("rope_parameters") or {}
    if layer_type is not None:
        params = params.get(layer_type) or {}
    return params


def write_tokenizer(writer: gguf.GGUFWriter, folder: Path, vocab_size: int) -> None:
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = dict(tok["model"]["vocab"])
    special = set()
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special.add(added["id"])
    tokens = [""] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    assert len(tokens) <= vocab_size and all(tokens), "vocabulary has holes"
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))
    ]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)


def convert(name: str) -> Path:
    folder = FIXTURES / name
    config = json.loads((folder / "config.json").read_text())
    model_type = config["model_type"]
    arch = ARCH[model_type]
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    n_layers = config["num_hidden_layers"]
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    tensors = load_file(folder / "model.safetensors")
    name_map = gguf.get_tensor_name_map(arch, n_layers)

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.gguf"
    writer = gguf.GGUFWriter(str(path), arch_name)
    writer.add_name(name)
    writer.add_block_count(n_layers)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if "head_dim" in config:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)

    if model_type == "gemma3_text":
        full = rope_params(config, "full_attention")
        local = rope_params(config, "sliding_attention")
        writer.add_rope_freq_base(full["rope_theta"])
        writer.add_rope_freq_base_swa(local["rope_theta"])
        if full.get("rope_type") == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(full["factor"])
        writer.add_sliding_window(config["sliding_window"])
        pattern = [t == "sliding_attention" for t in config["layer_types"]]
        # llama.cpp's fixed gemma3 period of 6; the fixture is built to follow it.
        assert pattern == [(i + 1) % 6 != 0 for i in range(n_layers)], pattern
        if config["query_pre_attn_scalar"] != head_dim:
            writer.add_float32(f"{arch_name}.attention.scale", config["query_pre_attn_scalar"] ** -0.5)
    elif model_type == "phi3":
        rope = rope_params(config)
        rope_dims = int(rope.get("partial_rotary_factor", 1.0) * config["hidden_size"]) // n_head
        original = rope["original_max_position_embeddings"]
        scale = config["max_position_embeddings"] / original
        writer.add_rope_freq_base(rope["rope_theta"])
        writer.add_rope_dimension_count(rope_dims)
        writer.add_rope_scaling_orig_ctx_len(original)
        writer.add_rope_scaling_attn_factors(
            math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0
        )
        writer.add_sliding_window(config.get("sliding_window") or 0)
        writer.add_tensor("rope_factors_long.weight", np.array(rope["long_factor"], dtype=np.float32))
        writer.add_tensor("rope_factors_short.weight", np.array(rope["short_factor"], dtype=np.float32))
    else:
        rope = rope_params(config)
        assert rope.get("rope_type", "default") == "default", rope
        writer.add_rope_freq_base(rope["rope_theta"])

    for hf_name, value in tensors.items():
        value = value.astype(np.float32)
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        if model_type == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            value = permute(value, n_head)
        if model_type == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            value = permute(value, n_kv)
        if model_type == "gemma3_text" and hf_name.endswith("norm.weight"):
            value = value + np.float32(1.0)
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, hf_name
        writer.add_tensor(gguf_name, np.ascontiguousarray(value))

    write_tokenizer(writer, folder, config["vocab_size"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main() -> int:
    names = sys.argv[1:] or ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3", "tiny-phi3"]
    for name in names:
        path = convert(name)
        reader = gguf.GGUFReader(str(path))
        print(f"{path.name:20} {path.stat().st_size / 1024:6.0f} KiB  "
              f"{len(reader.tensors)} tensors: {', '.join(t.name for t in reader.tensors[:6])} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
