#!/usr/bin/env python3
"""Regenerate tests/fixtures/pca/<model>[-keep-first].npz: scikit-learn's per-layer PCA of tiny
fixture models.

Run by hand, never in CI (it needs torch, transformers and scikit-learn; the Rust test only reads
what it wrote). Both procedures are fixtures, so run it twice:

    /tmp/venv-fix/bin/pip install torch transformers numpy scikit-learn
    /tmp/venv-fix/bin/python tools/reference/pca_reference.py               # <model>.npz
    /tmp/venv-fix/bin/python tools/reference/pca_reference.py --keep-first  # <model>-keep-first.npz

For each fixture model (tests/fixtures/tiny-gpt2, tests/fixtures/tiny-llama) it runs the corpus
tests/fixtures/pca/corpus.txt the way `latent-choir fit-pca` does (src/activation/fit.rs):

  * every line stripped of surrounding whitespace; empty lines skipped;
  * each line its own sequence, tokenised by the model's tokenizer.json WITHOUT special tokens
    (no BOS, no chat template), cut to the model's context length;
  * every hidden state: output_hidden_states=True gives n_layers + 1 states, the embedding
    output first and the last one after the final norm;
  * every position but each line's first (so a one-token line contributes nothing), as
    `fit-pca` does by default: the first token of a sequence is an attention sink whose hidden
    states dwarf the others' in real models (SmolLM2-135M, block 12: norm ~22,700 against ~150)
    and would make PC1 a first-token detector. --keep-first keeps every position, as
    `fit-pca --keep-first` does (the literal procedure);

then fits sklearn.decomposition.PCA(n_components=K, svd_solver="full") per hidden state on the
float64 activations, and writes (float64 arrays):

  mean                [n_layers + 1, width]       PCA.mean_
  components          [n_layers + 1, K, width]    PCA.components_
  explained_variance  [n_layers + 1, K]           PCA.explained_variance_ (denominator n - 1)
  total_variance      [n_layers + 1]              sum of the per-feature variances (ddof 1)
  eigen_gap           [n_layers + 1, K]           relative gap of each eigenvalue to its nearest
                                                  neighbour among ALL eigenvalues: a component is
                                                  only determined (up to sign) when this is not tiny
  lo, hi              [n_layers + 1, K]           2nd and 98th percentile (numpy's linear
                                                  interpolation) of every token's coordinates
                                                  (x - mean) @ components.T; the corpus is smaller
                                                  than the Rust fit's sample, so it sees all tokens
  token_counts        [lines]                     tokens per sequence after truncation
  fitted_tokens       [1]                         positions fitted (int64)
  skip_first          [1]                         1 if each line's first position was left out (int64)
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import sklearn
import torch
import transformers
from sklearn.decomposition import PCA
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CORPUS = FIXTURES / "pca" / "corpus.txt"
MODELS = ["tiny-gpt2", "tiny-llama"]
K = 8


def corpus_lines() -> list[str]:
    text = CORPUS.read_text(encoding="utf-8")
    # str.splitlines would also split on \x0b, \x1c..., which Rust's str::lines does not.
    lines = [line.strip() for line in text.split("\n")]
    return [line for line in lines if line]


def context_length(config) -> int:
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if value:
            return int(value)
    raise SystemExit(f"no context length in {config}")


def activations(folder: Path, skip_first: bool) -> tuple[np.ndarray, list[int]]:
    """[n_layers + 1, positions, width] float64 over the whole corpus, without each line's first
    position if skip_first, and tokens per line (every position counted)."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    context = context_length(model.config)
    states, counts = [], []
    for line in corpus_lines():
        ids = tokenizer.encode(line, add_special_tokens=False).ids[:context]
        counts.append(len(ids))
        if not ids:
            continue
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
        # The whole line runs through the model; only the positions kept are fitted.
        first = 1 if skip_first else 0
        states.append(torch.stack([h[0, first:] for h in out.hidden_states]).double().numpy())
    return np.concatenate(states, axis=1), counts


def eigen_gaps(x: np.ndarray, k: int) -> np.ndarray:
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    gaps = []
    for i in range(k):
        neighbours = [abs(eigenvalues[i] - eigenvalues[j]) for j in (i - 1, i + 1) if 0 <= j < len(eigenvalues)]
        gaps.append(min(neighbours) / max(eigenvalues[i], 1e-300))
    return np.array(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep-first",
        action="store_true",
        help="fit every position, each line's first (the attention sink) included; writes <model>-keep-first.npz",
    )
    args = parser.parse_args()
    skip_first = not args.keep_first
    suffix = "" if skip_first else "-keep-first"
    print(f"positions: {'skip-first' if skip_first else 'every'}")
    print(f"transformers {transformers.__version__}, scikit-learn {sklearn.__version__}, torch {torch.__version__}")
    for name in MODELS:
        hidden, counts = activations(FIXTURES / name, skip_first)
        means, components, variances, totals, gaps, los, his = [], [], [], [], [], [], []
        for x in hidden:
            pca = PCA(n_components=K, svd_solver="full").fit(x)
            means.append(pca.mean_)
            components.append(pca.components_)
            variances.append(pca.explained_variance_)
            totals.append(x.var(axis=0, ddof=1).sum())
            gaps.append(eigen_gaps(x, K))
            coordinates = (x - pca.mean_) @ pca.components_.T
            los.append(np.percentile(coordinates, 2.0, axis=0))
            his.append(np.percentile(coordinates, 98.0, axis=0))
        out = FIXTURES / "pca" / f"{name}{suffix}.npz"
        np.savez(
            out,
            mean=np.array(means),
            components=np.array(components),
            explained_variance=np.array(variances),
            total_variance=np.array(totals),
            eigen_gap=np.array(gaps),
            lo=np.array(los),
            hi=np.array(his),
            token_counts=np.array(counts, dtype=np.int64),
            fitted_tokens=np.array([hidden.shape[1]], dtype=np.int64),
            skip_first=np.array([int(skip_first)], dtype=np.int64),
        )
        print(f"{out.relative_to(REPO)}: {hidden.shape[1]} tokens, {hidden.shape[0]} states, width {hidden.shape[2]}")
        for i, g in enumerate(gaps):
            print(f"  state {i}: explained variance {np.round(variances[i][:4], 4)}, min relative gap {g.min():.4f}")


if __name__ == "__main__":
    sys.exit(main())
