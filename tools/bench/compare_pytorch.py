"""Decode speed of Latent Choir's engine against PyTorch `transformers` eager, same weights, same
run, 2 threads. Run by hand, never in CI:

    python3 -m venv /tmp/venv-bench
    /tmp/venv-bench/bin/pip install torch transformers safetensors tokenizers
    cargo build --release --bin latent-choir
    /tmp/venv-bench/bin/python tools/bench/compare_pytorch.py [--tokens 128]

It builds a GPT-2 124M (random weights: speed does not depend on them) as a Hugging Face folder
under target/bench/gpt2-124m, times greedy decoding with full hidden-state capture in both, and
prints the ratio. Our side (`latent-choir bench-model`) also measures how fast its threads read
memory and prints what share of that ceiling decode reached. With `--gguf` it also times the
default model in our engine alone.
"""

import argparse
import pathlib
import re
import subprocess
import time

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
FOLDER = ROOT / "target/bench/gpt2-124m"
CLI = ROOT / "target/release/latent-choir"
PROMPT = "The forest was silent. Then"


def build_model() -> None:
    if (FOLDER / "model.safetensors").exists():
        return
    FOLDER.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).eval().save_pretrained(FOLDER)
    # Any byte-level BPE will do for timing; the model's vocabulary is GPT-2's 50257.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = ["The forest was silent, and the choir sang of rivers, stone and light."] * 50
    trainer = trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tokenizer.train_from_iterator(text, trainer)
    tokenizer.save(str(FOLDER / "tokenizer.json"))


def ours(model: pathlib.Path, tokens: int) -> float:
    out = subprocess.run([str(CLI), "bench-model", "--model", str(model), "--tokens", str(tokens)],
                         check=True, capture_output=True, text=True).stdout
    print(out.strip())
    return float(re.search(r"= ([0-9.]+) tokens/s", out).group(1))


def pytorch(tokens: int) -> float:
    torch.set_num_threads(2)
    model = GPT2LMHeadModel.from_pretrained(FOLDER, attn_implementation="eager").eval()
    ids = torch.tensor([[464, 8222, 373, 10574, 13, 3244]])
    with torch.no_grad():
        out = model(ids, use_cache=True, output_hidden_states=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(tokens):
            out = model(token, past_key_values=past, use_cache=True, output_hidden_states=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        elapsed = time.perf_counter() - start
    rate = tokens / elapsed
    print(f"pytorch eager, 2 threads: {tokens} tokens in {elapsed:.2f} s = {rate:.1f} tokens/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--gguf", action="store_true")
    args = parser.parse_args()
    build_model()
    theirs = pytorch(args.tokens)
    mine = ours(FOLDER, args.tokens)
    print(f"GPT-2 124M f32: latent-choir {mine:.1f} tok/s vs pytorch {theirs:.1f} tok/s = {mine / theirs:.2f}x")
    if args.gguf:
        ours(pathlib.Path.home() / ".local/share/latent-choir/models/SmolLM2-135M-Instruct.Q4_1.gguf", args.tokens)


if __name__ == "__main__":
    main()
