#!/usr/bin/env python3
"""Writes a randomly initialised GPT-2 124M checkpoint for `latent-choir bench-model --model DIR`
(with `--llama`: a SmolLM2-135M-shaped llama checkpoint in f32 instead).

Decode speed depends on the shapes, not on the values, so random weights at GPT-2 124M's real
shape (12 layers, width 768, 12 heads, vocabulary 50257, context 1024) time the model as the
real one would, without the real weights (not available offline). Needs numpy only: the
safetensors file is written by hand (an 8-byte header length, a JSON header, the raw data).

The tokenizer is the one of tests/fixtures/tiny-gpt2 (a 400-token byte-level BPE): the loader
accepts a tokenizer no larger than the model's vocabulary, and the session samples only ids
the tokenizer can spell, so prompt and decode work; the LM head still computes all 50257 logits.

    python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install numpy
    /work/bench-venv/bin/python tools/make_gpt2_124m_random.py /work/bench-models/gpt2-124m-random
    /work/bench-venv/bin/python tools/make_gpt2_124m_random.py --llama /work/bench-models/llama-135m-random

The llama variant takes the tokenizer of tests/fixtures/tiny-llama (also 400 tokens).
"""

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

N_LAYER, N_EMBD, N_HEAD, VOCAB, N_POSITIONS = 12, 768, 12, 50257, 1024
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
FIXTURE = FIXTURES / "tiny-gpt2"
# SmolLM2-135M's shape.
LLAMA = {
    "num_hidden_layers": 30,
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
    "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
}


def tensors(rng):
    """GPT-2's tensors with transformers 5.x names (`transformer.` prefix, head tied to wte)."""
    e, i = N_EMBD, 4 * N_EMBD

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    out = {
        "transformer.wte.weight": normal(VOCAB, e),
        "transformer.wpe.weight": normal(N_POSITIONS, e),
        "transformer.ln_f.weight": np.ones(e, np.float32),
        "transformer.ln_f.bias": np.zeros(e, np.float32),
    }
    for layer in range(N_LAYER):
        p = f"transformer.h.{layer}"
        # Conv1D weights are stored [in, out].
        out |= {
            f"{p}.ln_1.weight": np.ones(e, np.float32),
            f"{p}.ln_1.bias": np.zeros(e, np.float32),
            f"{p}.attn.c_attn.weight": normal(e, 3 * e),
            f"{p}.attn.c_attn.bias": np.zeros(3 * e, np.float32),
            f"{p}.attn.c_proj.weight": normal(e, e),
            f"{p}.attn.c_proj.bias": np.zeros(e, np.float32),
            f"{p}.ln_2.weight": np.ones(e, np.float32),
            f"{p}.ln_2.bias": np.zeros(e, np.float32),
            f"{p}.mlp.c_fc.weight": normal(e, i),
            f"{p}.mlp.c_fc.bias": np.zeros(i, np.float32),
            f"{p}.mlp.c_proj.weight": normal(i, e),
            f"{p}.mlp.c_proj.bias": np.zeros(e, np.float32),
        }
    return out


def llama_tensors(rng):
    """A llama's tensors under Hugging Face's names, the head tied to the embedding."""
    h, i = LLAMA["hidden_size"], LLAMA["intermediate_size"]
    q = LLAMA["num_attention_heads"] * LLAMA["head_dim"]
    kv = LLAMA["num_key_value_heads"] * LLAMA["head_dim"]

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    out = {
        "model.embed_tokens.weight": normal(LLAMA["vocab_size"], h),
        "model.norm.weight": np.ones(h, np.float32),
    }
    for layer in range(LLAMA["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        out |= {
            f"{p}.input_layernorm.weight": np.ones(h, np.float32),
            f"{p}.self_attn.q_proj.weight": normal(q, h),
            f"{p}.self_attn.k_proj.weight": normal(kv, h),
            f"{p}.self_attn.v_proj.weight": normal(kv, h),
            f"{p}.self_attn.o_proj.weight": normal(h, q),
            f"{p}.post_attention_layernorm.weight": np.ones(h, np.float32),
            f"{p}.mlp.gate_proj.weight": normal(i, h),
            f"{p}.mlp.up_proj.weight": normal(i, h),
            f"{p}.mlp.down_proj.weight": normal(h, i),
        }
    return out


def write_safetensors(path, named):
    header, offset = {}, 0
    for name, array in named.items():
        size = array.nbytes
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for array in named.values():
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def main():
    args = sys.argv[1:]
    llama = args[:1] == ["--llama"]
    if llama:
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    folder = Path(args[0])
    folder.mkdir(parents=True, exist_ok=True)
    if llama:
        config = json.loads((FIXTURES / "tiny-llama" / "config.json").read_text()) | LLAMA
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        shutil.copy(FIXTURES / "tiny-llama" / "tokenizer.json", folder / "tokenizer.json")
        write_safetensors(folder / "model.safetensors", llama_tensors(np.random.default_rng(135)))
        print(f"wrote {folder}")
        return
    config = json.loads((FIXTURE / "config.json").read_text())
    config |= {
        "n_layer": N_LAYER,
        "n_embd": N_EMBD,
        "n_head": N_HEAD,
        "vocab_size": VOCAB,
        "n_positions": N_POSITIONS,
        "n_ctx": N_POSITIONS,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(FIXTURE / "tokenizer.json", folder / "tokenizer.json")
    write_safetensors(folder / "model.safetensors", tensors(np.random.default_rng(124)))
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
