#!/usr/bin/env python3
"""Regenerate tests/fixtures/spectral/tiny-llama.json: what `latent-choir spectral` must hear in
the tiny llama fixture, computed with transformers and NumPy.

Run by hand, never in CI (it needs torch and transformers; the Rust test only reads the JSON):

    python3 -m venv /tmp/venv-ref
    /tmp/venv-ref/bin/pip install torch transformers numpy tokenizers
    /tmp/venv-ref/bin/python tools/reference/spectral_reference.py

Two parts, for tests/cli_spectral.rs:

  * layers: the prompt LAYERS_PROMPT tokenised without special tokens; with
    output_hidden_states=True the L2 norm of every hidden state (L + 1 of them, the embedding
    output first, the last after the final norm) of every token but the first (the attention
    sink, which `spectral --mode layers` leaves out by default): norms[layer][token].
  * dataset: every line of tests/fixtures/directions/positive.txt and negative.txt (stripped,
    empty lines skipped) its own sequence, tokenised without special tokens; at hidden state
    DATASET_LAYER the mean over every position but the first (float64); the DATASET_DIMS
    dimensions of highest population variance (ddof 0) across the prompts, highest first
    (ties to the lower index, by a stable sort of the negated variances); and for each prompt
    the pooled values on those dimensions (their absolute values are the amplitudes, their signs
    the phases).
"""

import json
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODEL = FIXTURES / "tiny-llama"
OUT = FIXTURES / "spectral" / "tiny-llama.json"
LAYERS_PROMPT = "The river remembers every stone it has carried to the sea."
DATASET_LAYER = 1
DATASET_DIMS = 8


def lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [line.strip() for line in text.split("\n") if line.strip()]


def hidden_states(model, ids: list[int]) -> np.ndarray:
    """[L + 1, positions, width] float64."""
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    return torch.stack([h[0] for h in out.hidden_states]).double().numpy()


def main() -> None:
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    model.eval()

    ids = tokenizer.encode(LAYERS_PROMPT, add_special_tokens=False).ids
    states = hidden_states(model, ids)
    norms = np.linalg.norm(states[:, 1:], axis=2)

    prompts = lines(FIXTURES / "directions" / "positive.txt") + lines(
        FIXTURES / "directions" / "negative.txt"
    )
    pooled = []
    for prompt in prompts:
        p_ids = tokenizer.encode(prompt, add_special_tokens=False).ids
        assert len(p_ids) >= 2, prompt
        pooled.append(hidden_states(model, p_ids)[DATASET_LAYER, 1:].mean(axis=0))
    pooled = np.array(pooled)
    variance = pooled.var(axis=0)
    order = np.argsort(-variance, kind="stable")[:DATASET_DIMS]

    OUT.write_text(
        json.dumps(
            {
                "layers": {
                    "prompt": LAYERS_PROMPT,
                    "token_ids": ids[1:],
                    "norms": norms.tolist(),
                },
                "dataset": {
                    "prompts": prompts,
                    "layer": DATASET_LAYER,
                    "dims": order.tolist(),
                    "variance": variance[order].tolist(),
                    "values": pooled[:, order].tolist(),
                },
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT}: {len(ids) - 1} tokens × {norms.shape[0]} states, dims {order.tolist()}")


if __name__ == "__main__":
    main()
