"""Latent Choir's engine against llama.cpp (llama-cpp-python), same GGUF files, same machine,
same thread count (one per core, at most four, as our engine takes), same run. Run by hand, never in CI:

    python3 -m venv /tmp/venv-llamacpp
    /tmp/venv-llamacpp/bin/pip install llama-cpp-python gguf numpy
    cargo build --release --bin latent-choir
    /tmp/venv-llamacpp/bin/python tools/bench/compare_llama_cpp.py [--threads 2] [--tokens 64]

Models:
  default     the embedded default model (SmolLM2-135M-Instruct, Q4_1), from the models folder
  llama-1b    a Llama 3.2 1B-shaped model with random weights (speed does not depend on them):
              16 blocks, width 2048, 32 heads / 8 KV heads, MLP 8192, vocabulary 128,256, tied
              embeddings, written as F16 with the `gguf` package and quantized by llama.cpp's own
              `llama_model_quantize` to Q4_K_M (its mix of Q4_K and Q6_K), under target/bench/
  Pass --models to choose (default: both); --ftype Q4_0|Q8_0|... adds other quantizations of
  the 1B shape.

For each: prefill of a 256-token prompt and greedy decode of --tokens tokens. Our side runs
`latent-choir bench-model` (decode with every layer's hidden state, attention entropy and MLP
sparsity captured; llama.cpp captures nothing), llama.cpp runs `Llama.eval` token by token after
the same prompt. Both get --threads threads. It prints one row per model and the ratios, and the
resident memory each reports.
"""

import argparse
import os
import pathlib
import re
import resource
import subprocess
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = ROOT / "target/release/latent-choir"
BENCH = ROOT / "target/bench"
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("XDG_DATA_HOME", pathlib.Path.home() / ".local/share")
) / "latent-choir/models/SmolLM2-135M-Instruct.Q4_1.gguf"

# A prompt whose words are common enough to tokenize alike everywhere; cut to 256 tokens.
WORDS = (
    "the river ran under the old stone bridge while the city slept and the lights of the "
    "harbour moved slowly across the water as a song drifted from an open window above "
).split()


def llama_1b_f16(path: pathlib.Path) -> None:
    """A Llama 3.2 1B-shaped GGUF, F16, random weights, byte-level BPE vocabulary."""
    import gguf

    width, layers, heads, kv_heads, mlp, vocab = 2048, 16, 32, 8, 8192, 128256
    head_dim = width // heads
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("llama-1b-shape-random")
    writer.add_context_length(8192)
    writer.add_embedding_length(width)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(mlp)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    # Byte-level BPE: the 256 byte symbols, then two-symbol merges of printable ones until the
    # vocabulary is full (llama.cpp needs merges; the text is only there to be tokenized).
    symbols = byte_level_symbols()
    printable = [symbols[b] for b in range(0x21, 0x7F)]
    tokens, merges = list(symbols), []
    for a in printable:
        for b in printable:
            if len(tokens) >= vocab - 2:
                break
            tokens.append(a + b)
            merges.append(f"{a} {b}")
    for i in range(len(tokens), vocab - 2):
        tokens.append(f"<filler_{i}>")
    tokens += ["<|begin_of_text|>", "<|end_of_text|>"]
    types = [1] * (vocab - 2) + [3, 3]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab - 2)
    writer.add_eos_token_id(vocab - 1)
    writer.add_add_bos_token(False)

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    writer.add_tensor("token_embd.weight", normal(vocab, width))
    writer.add_tensor("output_norm.weight", np.ones(width, dtype=np.float32))
    for i in range(layers):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(width, dtype=np.float32))
        writer.add_tensor(p + "attn_q.weight", normal(width, width))
        writer.add_tensor(p + "attn_k.weight", normal(kv_heads * head_dim, width))
        writer.add_tensor(p + "attn_v.weight", normal(kv_heads * head_dim, width))
        writer.add_tensor(p + "attn_output.weight", normal(width, width))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(width, dtype=np.float32))
        writer.add_tensor(p + "ffn_gate.weight", normal(mlp, width))
        writer.add_tensor(p + "ffn_up.weight", normal(mlp, width))
        writer.add_tensor(p + "ffn_down.weight", normal(width, mlp))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def byte_level_symbols() -> list:
    """GPT-2's byte → printable character table."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in visible:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def quantized(ftype_name: str) -> pathlib.Path:
    import llama_cpp

    BENCH.mkdir(parents=True, exist_ok=True)
    out = BENCH / f"llama-1b-shape-{ftype_name}.gguf"
    if out.exists():
        return out
    f16 = BENCH / "llama-1b-shape-F16.gguf"
    if not f16.exists():
        print(f"writing {f16} (random weights)", flush=True)
        llama_1b_f16(f16)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name}")
    params.nthread = 2
    print(f"quantizing to {ftype_name} with llama.cpp", flush=True)
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), params) != 0:
        raise SystemExit(f"llama_model_quantize failed for {ftype_name}")
    return out


def prompt_of(tokens: int, tokenize) -> str:
    words = []
    while len(tokenize(" ".join(words))) < tokens:
        words.append(WORDS[len(words) % len(WORDS)])
    while len(tokenize(" ".join(words))) > tokens:
        words.pop()
    return " ".join(words)


def ours(model: pathlib.Path, prompt: str, tokens: int, threads: int) -> dict:
    # Our engine always uses one thread per core, at most four: `threads` is for llama.cpp.
    del threads
    out = subprocess.run(
        [str(CLI), "bench-model", "--model", str(model), "--tokens", str(tokens), "--prompt", prompt],
        check=True, capture_output=True, text=True,
    ).stdout
    prefill = re.search(r"prefill\s+(\d+) tokens in ([\d.]+) ms", out)
    decode = re.search(r"= ([\d.]+) tokens/s", out)
    resident = re.search(r"resident\s+(.+?) with", out)
    return {
        "prompt_tokens": int(prefill.group(1)),
        "prefill_tps": int(prefill.group(1)) / (float(prefill.group(2)) / 1e3),
        "decode_tps": float(decode.group(1)),
        "resident": resident.group(1) if resident else "?",
    }


def theirs(model: pathlib.Path, prompt: str, tokens: int, threads: int) -> dict:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(model), n_threads=threads, n_threads_batch=threads, n_ctx=1024,
        n_batch=512, verbose=False,
    )
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=False)
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(tokens):
        logits = llm.scores[llm.n_tokens - 1]
        llm.eval([int(np.argmax(logits))])
    decode = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "prompt_tokens": len(ids),
        "prefill_tps": len(ids) / prefill,
        "decode_tps": tokens / decode,
        "resident": f"peak {peak:.0f} MB (process)",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    # Ours takes one thread per core (at most 4); give llama.cpp the same.
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=["default", "llama-1b"])
    parser.add_argument("--ftype", nargs="*", default=["Q4_K_M"])
    args = parser.parse_args()
    import llama_cpp

    runs = []
    if "default" in args.models:
        runs.append(("default (SmolLM2-135M Q4_1)", DEFAULT_MODEL))
    if "llama-1b" in args.models:
        for ftype in args.ftype:
            runs.append((f"llama 1B shape {ftype}", quantized(ftype)))
    print(f"{'model':32} {'':10} {'prefill tok/s':>14} {'decode tok/s':>13}  resident")
    for label, path in runs:
        vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        prompt = prompt_of(256, lambda t: vocab.tokenize(t.encode(), add_bos=False, special=False))
        us = ours(path, prompt, args.tokens, args.threads)
        them = theirs(path, prompt, args.tokens, args.threads)
        for who, r in (("ours", us), ("llama.cpp", them)):
            print(f"{label:32} {who:10} {r['prefill_tps']:14.1f} {r['decode_tps']:13.1f}  {r['resident']}"
                  f"  ({r['prompt_tokens']} prompt tokens)")
        print(f"{'':32} {'ratio':10} {us['prefill_tps'] / them['prefill_tps']:13.2f}x "
              f"{us['decode_tps'] / them['decode_tps']:12.2f}x", flush=True)


if __name__ == "__main__":
    main()
