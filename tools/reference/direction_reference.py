#!/usr/bin/env python3
"""Regenerate tests/fixtures/directions/<model>[-unpaired].npz: a concept direction of tiny
fixture models, fitted from contrastive prompt sets with scikit-learn's PCA.

Run by hand, never in CI (it needs torch, transformers and scikit-learn; the Rust test only reads
what it wrote):

    python3 -m venv /tmp/venv-dir
    /tmp/venv-dir/bin/pip install torch transformers numpy scikit-learn tokenizers
    /tmp/venv-dir/bin/python tools/reference/direction_reference.py

For each fixture model (tests/fixtures/tiny-gpt2, tests/fixtures/tiny-llama) it fits two
directions, both with the positive prompts tests/fixtures/directions/positive.txt (the "tense"
pole, 12 lines):

  * paired:   against negative.txt (12 lines, line i paired with positive line i)
              -> <model>.npz
  * unpaired: against negative_unpaired.txt (9 lines, no pairing)
              -> <model>-unpaired.npz

The procedure (the Rust fit implements the same one):

  * every line stripped of surrounding whitespace; empty lines skipped;
  * each line its own sequence (fresh model call, no cache), tokenised by the model's
    tokenizer.json WITHOUT special tokens (no BOS, no chat template), cut to the model's context
    length (max_position_embeddings or n_positions);
  * output_hidden_states=True gives L + 1 states (L = number of blocks): the embedding output
    first, the last one after the final norm; the forward pass runs in float32 and everything
    after it in float64;
  * pooled mean per prompt and state: m[l] = mean of h[l] over positions 1..n-1, i.e. every
    position but the first (the attention sink); a prompt of fewer than 2 tokens is an error;
  * used states: l = floor((L + 1) / 2) .. L inclusive, the final half of the hidden states;
  * rows, all in the same width-dimensional space:
      - paired (same number of positive and negative prompts): for each pair i, for each used
        l: m+_i[l] - m-_i[l]  (pair-major, then state);
      - unpaired (counts differ): for each used l: m+_i[l] - mean_j m-_j[l] for each positive i,
        then mean_i m+_i[l] - m-_j[l] for each negative j  (state-major; row order does not
        change the fit);
  * r = PCA(n_components=1, svd_solver="full").fit(rows).components_[0] (rows are centred by
    the PCA), normalised to unit length, then its sign chosen so that the mean over positive
    prompts and used states of m+ . r exceeds the mean over negative prompts and used states of
    m- . r (projections of the raw pooled means, not centred);
  * statistics at EVERY state l (all L + 1, used or not) of the projections m[l] . r of the
    positive and of the negative prompts: mean and standard deviation (ddof 0).

It writes (float64 unless said):

  direction                 [width]     r, unit length, oriented towards the positive pole
  layers                    [k]         the used state indices (int64)
  pos_mean, pos_std         [L + 1]     projections of the positive prompts per state
  neg_mean, neg_std         [L + 1]     projections of the negative prompts per state
  explained_variance_ratio  [1]         PCA.explained_variance_ratio_ of the component
  token_counts              [prompts]   tokens per prompt after truncation, positive prompts
                                        then negative ones (int64)

As a cross-check it prints the cosine between r and the plain mean difference over used states
(mean of m+ minus mean of m-, normalised), and the relative gap between the rows' first two
covariance eigenvalues (1 - ev2 / ev1): r is only determined (up to sign) when it is not tiny.
"""

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
PROMPTS = FIXTURES / "directions"
MODELS = ["tiny-gpt2", "tiny-llama"]
VARIANTS = [("", "negative.txt"), ("-unpaired", "negative_unpaired.txt")]


def prompt_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    # str.splitlines would also split on \x0b, \x1c..., which Rust's str::lines does not.
    lines = [line.strip() for line in text.split("\n")]
    return [line for line in lines if line]


def context_length(config) -> int:
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if value:
            return int(value)
    raise SystemExit(f"no context length in {config}")


class Model:
    def __init__(self, folder: Path):
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.eval()
        self.context = context_length(self.model.config)

    def pooled(self, lines: list[str]) -> tuple[np.ndarray, list[int]]:
        """[prompts, L + 1, width] float64 means over every position but the first, and tokens
        per prompt."""
        means, counts = [], []
        for line in lines:
            ids = self.tokenizer.encode(line, add_special_tokens=False).ids[: self.context]
            if len(ids) < 2:
                raise SystemExit(f"{line!r}: {len(ids)} token(s), a prompt needs at least 2")
            counts.append(len(ids))
            with torch.no_grad():
                out = self.model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
            states = torch.stack([h[0] for h in out.hidden_states]).double().numpy()
            means.append(states[:, 1:].mean(axis=1))
        return np.array(means), counts


def rows_of(pos: np.ndarray, neg: np.ndarray, layers: np.ndarray) -> np.ndarray:
    if len(pos) == len(neg):
        return np.array([pos[i, l] - neg[i, l] for i in range(len(pos)) for l in layers])
    rows = []
    for l in layers:
        pos_centre, neg_centre = pos[:, l].mean(axis=0), neg[:, l].mean(axis=0)
        rows.extend(pos[i, l] - neg_centre for i in range(len(pos)))
        rows.extend(pos_centre - neg[j, l] for j in range(len(neg)))
    return np.array(rows)


def fit(pos: np.ndarray, neg: np.ndarray) -> dict:
    states = pos.shape[1]  # L + 1
    layers = np.arange(states // 2, states, dtype=np.int64)  # floor((L + 1) / 2) .. L
    rows = rows_of(pos, neg, layers)
    pca = PCA(n_components=1, svd_solver="full").fit(rows)
    r = pca.components_[0] / np.linalg.norm(pca.components_[0])
    if (pos[:, layers] @ r).mean() <= (neg[:, layers] @ r).mean():
        r = -r
    pos_proj, neg_proj = pos @ r, neg @ r  # [prompts, L + 1]
    diff = pos[:, layers].mean(axis=(0, 1)) - neg[:, layers].mean(axis=(0, 1))
    singular = np.linalg.svd(rows - rows.mean(axis=0), compute_uv=False)
    return dict(
        direction=r,
        layers=layers,
        pos_mean=pos_proj.mean(axis=0),
        pos_std=pos_proj.std(axis=0, ddof=0),
        neg_mean=neg_proj.mean(axis=0),
        neg_std=neg_proj.std(axis=0, ddof=0),
        explained_variance_ratio=pca.explained_variance_ratio_.astype(np.float64),
        rows=len(rows),
        mean_diff_cosine=float(diff @ r / np.linalg.norm(diff)),
        eigen_gap=float(1.0 - singular[1] ** 2 / singular[0] ** 2),
    )


def main() -> None:
    print(f"transformers {transformers.__version__}, scikit-learn {sklearn.__version__}, torch {torch.__version__}")
    positive = prompt_lines(PROMPTS / "positive.txt")
    for name in MODELS:
        model = Model(FIXTURES / name)
        pos, pos_counts = model.pooled(positive)
        for suffix, negative_file in VARIANTS:
            neg, neg_counts = model.pooled(prompt_lines(PROMPTS / negative_file))
            result = fit(pos, neg)
            out = PROMPTS / f"{name}{suffix}.npz"
            np.savez(
                out,
                token_counts=np.array(pos_counts + neg_counts, dtype=np.int64),
                **{k: v for k, v in result.items() if k not in ("rows", "mean_diff_cosine", "eigen_gap")},
            )
            kind = "paired" if len(pos) == len(neg) else "unpaired"
            print(
                f"{out.relative_to(REPO)}: {kind}, {len(pos)} + {len(neg)} prompts, {pos.shape[1]} states, "
                f"width {pos.shape[2]}, used states {result['layers'].tolist()}, {result['rows']} rows"
            )
            print(
                f"  explained variance ratio {result['explained_variance_ratio'][0]:.6f}, "
                f"relative gap to the 2nd eigenvalue {result['eigen_gap']:.4f}"
            )
            print(f"  cosine(r, normalised mean difference over used states) {result['mean_diff_cosine']:.6f}")
            for l in range(pos.shape[1]):
                print(
                    f"  state {l}: pos {result['pos_mean'][l]:+.6f} ± {result['pos_std'][l]:.6f}, "
                    f"neg {result['neg_mean'][l]:+.6f} ± {result['neg_std'][l]:.6f}"
                )


if __name__ == "__main__":
    sys.exit(main())
