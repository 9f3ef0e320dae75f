"""Reference for the default model (SmolLM2-135M-Instruct, Q4_1 GGUF), run by hand, never in CI.

Hugging Face `transformers` loads the GGUF itself: it dequantises every tensor to float32 and
un-permutes the Q/K weights that llama.cpp's converter permuted for interleaved RoPE, then runs
its own PyTorch llama. That is an implementation independent of ours (candle, quantized kernels,
interleaved RoPE on the permuted weights). Writes tests/fixtures/smollm2/reference.npz.

    python3 -m venv /tmp/venv-ref
    /tmp/venv-ref/bin/pip install torch transformers accelerate gguf numpy
    /tmp/venv-ref/bin/python tools/reference/smollm2_reference.py
"""

import os
import pathlib

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_DIR = pathlib.Path(os.environ.get("XDG_DATA_HOME", pathlib.Path.home() / ".local/share")) / "latent-choir/models"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "What is the capital of France?"
# A few layers keep the fixture small: the embedding, the first block, one in the middle and
# the final-norm output (which also pins the logits path).
LAYERS = [0, 1, 15, 30]
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/smollm2/reference.npz"

torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE)
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE, dtype=torch.float32)
model.eval()
text = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)
ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
with torch.no_grad():
    out = model(ids, output_hidden_states=True)
    greedy = model.generate(ids, max_new_tokens=12, do_sample=False)
hidden = np.stack([out.hidden_states[layer][0].numpy() for layer in LAYERS]).astype(np.float32)
answer = greedy[0, ids.shape[1]:]
OUT.parent.mkdir(parents=True, exist_ok=True)
np.savez(
    OUT,
    input_ids=ids[0].numpy().astype(np.int64),
    layers=np.array(LAYERS, dtype=np.int64),
    hidden_states=hidden,
    greedy_ids=answer.numpy().astype(np.int64),
)
print(repr(tokenizer.decode(answer)), hidden.shape, "->", OUT)
