#!/usr/bin/env python3
"""Regenerate tests/fixtures/weights/*.json: what NumPy finds in the fixture models' weights, for
tests/weights_stats.rs to compare `latent_choir::weights::analysis` against.

Run by hand, never in CI:

    python3 -m venv /tmp/venv-weights
    /tmp/venv-weights/bin/pip install numpy gguf
    /tmp/venv-weights/bin/python tools/reference/weights_reference.py

Per fixture model (tests/fixtures/tiny-llama, tests/fixtures/tiny-gpt2; safetensors parsed by
hand, float32) and, when present, the default model (SmolLM2-135M-Instruct Q4_1 GGUF, read and
dequantized with the `gguf` package):

  * every weight matrix oriented out x in (GPT-2's Conv1D weights transposed, its c_attn split in
    three equal row blocks q, k, v): singular values (numpy.linalg.svd, float64), Frobenius
    norm, population mean/std/skewness/excess kurtosis, min/max, numpy.histogram with 64 bins,
    row L2 norms;
  * every norm's gamma and its moments;
  * per block: tension = sqrt(sum of squared Frobenius norms of q,k,v,o) / sqrt(same for the MLP
    matrices); svd_delta_mean = mean over q,k,v,o,gate,up,down of the L2 distance between the
    unit-normalized leading 32 singular values of this block and the block before (0 for block 0);
  * the model's key: rows = every gamma (block by block attention then MLP norm, then the final
    norm), columns centred, SVD; each component's sign makes its largest-|loading| entry positive;
    scores = U * S; skew(PC2) >= 0 -> Major, else excess kurtosis(PC3) > 0 -> Harmonic minor,
    else Dorian; root = argmax |PC1 loading| mod 12.

For the default model only a summary is written (its full stats would be megabytes): the key,
and for blocks 0, 15 and 29 the q and down matrices' leading 16 singular values, Frobenius norm
and moments.
"""

import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "weights"
DELTA_VALUES = 32
BINS = 64


def read_safetensors(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


def moments(x):
    x = np.asarray(x, dtype=np.float64).ravel()
    mean = x.mean()
    d = x - mean
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    skew = m3 / m2**1.5 if m2 > 0 else 0.0
    kurt = m4 / m2**2 - 3.0 if m2 > 0 else 0.0
    return {"mean": mean, "std": np.sqrt(m2), "skewness": skew, "kurtosis": kurt,
            "min": x.min(), "max": x.max()}


def matrix_stats(name, role, layer, w, full=True):
    w = np.asarray(w, dtype=np.float32)
    w64 = w.astype(np.float64)
    s = np.linalg.svd(w64, compute_uv=False)
    out = {
        "name": name, "role": role, "layer": layer, "shape": list(w.shape),
        "singular_values": s.tolist() if full else s[:16].tolist(),
        "frobenius": float(np.sqrt((w64**2).sum())),
        "moments": {k: float(v) for k, v in moments(w64).items()},
    }
    if full:
        counts, _ = np.histogram(w64, bins=BINS)
        out["histogram"] = counts.tolist()
        out["row_norms"] = np.sqrt((w64**2).sum(axis=1)).tolist()
    return out


def layer_stats(matrices, layers):
    by = {(m["role"], m["layer"]): m for m in matrices}
    out = []
    for l in range(layers):
        energy = lambda roles: np.sqrt(sum(by[(r, l)]["frobenius"] ** 2 for r in roles if (r, l) in by))
        attn, mlp = energy(["q", "k", "v", "o"]), energy(["gate", "up", "down"])
        deltas = []
        if l > 0:
            for r in ["q", "k", "v", "o", "gate", "up", "down"]:
                if (r, l) in by and (r, l - 1) in by:
                    a = np.array(by[(r, l - 1)]["singular_values"])
                    b = np.array(by[(r, l)]["singular_values"])
                    k = min(len(a), len(b), DELTA_VALUES)
                    a, b = a[:k] / np.linalg.norm(a[:k]), b[:k] / np.linalg.norm(b[:k])
                    deltas.append(float(np.linalg.norm(a - b)))
        out.append({"index": l, "tension": float(attn / mlp),
                    "svd_delta_mean": float(np.mean(deltas)) if deltas else 0.0})
    return out


def model_key(gammas):
    g = np.array(gammas, dtype=np.float64)
    c = g - g.mean(axis=0)
    u, s, vt = np.linalg.svd(c, full_matrices=False)
    scores = []
    for k in range(min(3, len(s))):
        top = int(np.argmax(np.abs(vt[k])))
        sign = -1.0 if vt[k][top] < 0 else 1.0
        scores.append(sign * u[:, k] * s[k])
        if k == 0:
            root_dimension = top
    std = lambda x, p: ((x - x.mean()) ** p).mean() / ((x - x.mean()) ** 2).mean() ** (p / 2)
    skew = std(scores[1], 3)
    kurt = std(scores[2], 4) - 3.0
    scale = "Major" if skew >= 0 else ("Harmonic minor" if kurt > 0 else "Dorian")
    return {"root": root_dimension % 12, "scale": scale, "pc2_skewness": float(skew),
            "pc3_kurtosis": float(kurt), "root_dimension": root_dimension, "vectors": len(gammas)}


def llama(folder):
    t = read_safetensors(folder / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    layers = cfg["num_hidden_layers"]
    matrices = [matrix_stats("model.embed_tokens.weight", "embedding", None, t["model.embed_tokens.weight"])]
    gammas = []
    parts = [("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"), ("self_attn.v_proj", "v"),
             ("self_attn.o_proj", "o"), ("mlp.gate_proj", "gate"), ("mlp.up_proj", "up"),
             ("mlp.down_proj", "down")]
    for l in range(layers):
        p = f"model.layers.{l}"
        gammas.append(t[f"{p}.input_layernorm.weight"])
        gammas.append(t[f"{p}.post_attention_layernorm.weight"])
        for part, role in parts:
            name = f"{p}.{part}.weight"
            matrices.append(matrix_stats(name, role, l, t[name]))
    gammas.append(t["model.norm.weight"])
    if not cfg.get("tie_word_embeddings", False) and "lm_head.weight" in t:
        matrices.append(matrix_stats("lm_head.weight", "head", None, t["lm_head.weight"]))
    return matrices, gammas, layers


def gpt2(folder):
    t = read_safetensors(folder / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    layers = cfg["n_layer"]
    pre = "transformer." if "transformer.wte.weight" in t else ""
    matrices = [matrix_stats(f"{pre}wte.weight", "embedding", None, t[f"{pre}wte.weight"]),
                matrix_stats(f"{pre}wpe.weight", "position", None, t[f"{pre}wpe.weight"])]
    gammas = []
    for l in range(layers):
        p = f"{pre}h.{l}"
        gammas.append(t[f"{p}.ln_1.weight"])
        gammas.append(t[f"{p}.ln_2.weight"])
        c_attn = t[f"{p}.attn.c_attn.weight"].T
        n = c_attn.shape[0] // 3
        for i, role in enumerate(["q", "k", "v"]):
            matrices.append(matrix_stats(f"{p}.attn.c_attn.weight[{role}]", role, l, c_attn[i * n:(i + 1) * n]))
        matrices.append(matrix_stats(f"{p}.attn.c_proj.weight", "o", l, t[f"{p}.attn.c_proj.weight"].T))
        matrices.append(matrix_stats(f"{p}.mlp.c_fc.weight", "up", l, t[f"{p}.mlp.c_fc.weight"].T))
        matrices.append(matrix_stats(f"{p}.mlp.c_proj.weight", "down", l, t[f"{p}.mlp.c_proj.weight"].T))
    gammas.append(t[f"{pre}ln_f.weight"])
    return matrices, gammas, layers


def write(name, matrices, gammas, layers):
    doc = {"matrices": matrices, "layers": layer_stats(matrices, layers),
           "norms": [{k: float(v) for k, v in moments(g).items()} for g in gammas],
           "key": model_key(gammas)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=None, separators=(",", ":")))
    print(f"wrote {name}.json: {len(matrices)} matrices, key {doc['key']['root']} {doc['key']['scale']}")


def default_model():
    data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    path = data / "latent-choir" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        print(f"no default model at {path}; skipping its summary", file=sys.stderr)
        return
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}

    def read(name):
        t = tensors[name]
        values = dequantize(t.data, t.tensor_type)
        return np.asarray(values, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])

    layers = 1 + max(int(n.split(".")[1]) for n in tensors if n.startswith("blk."))
    gammas = []
    for l in range(layers):
        gammas.append(read(f"blk.{l}.attn_norm.weight").ravel())
        gammas.append(read(f"blk.{l}.ffn_norm.weight").ravel())
    gammas.append(read("output_norm.weight").ravel())
    matrices = []
    for l in (0, 15, 29):
        for part, role in (("attn_q", "q"), ("ffn_down", "down")):
            name = f"blk.{l}.{part}.weight"
            matrices.append(matrix_stats(name, role, l, read(name), full=False))
    doc = {"matrices": matrices, "key": model_key(gammas)}
    (OUT / "smollm2-summary.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote smollm2-summary.json: key {doc['key']}")


if __name__ == "__main__":
    write("tiny-llama", *llama(ROOT / "tests" / "fixtures" / "tiny-llama"))
    write("tiny-gpt2", *gpt2(ROOT / "tests" / "fixtures" / "tiny-gpt2"))
    default_model()
