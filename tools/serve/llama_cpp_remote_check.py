"""The remote text backend against llama.cpp's server, by hand (never in CI).

llama.cpp's OpenAI-compatible server through llama-cpp-python serves a GGUF (the default model
unless --model); `latent-choir render --backend openai` lets it write while the default model
reads, twice with the same seed, and the script reports what the server sent, whether the two
renders are the same bytes, and how fast pieces came.

    python3 -m venv /tmp/venv-llamacpp
    /tmp/venv-llamacpp/bin/pip install 'llama-cpp-python[server]' numpy
    cargo build --release --bin latent-choir
    /tmp/venv-llamacpp/bin/python tools/serve/llama_cpp_remote_check.py [--model X.gguf] [--tokens 32]
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = ROOT / "target/release/latent-choir"
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("XDG_DATA_HOME", pathlib.Path.home() / ".local/share")
) / "latent-choir/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def manifest(run):
    with zipfile.ZipFile(run) as z:
        return json.loads(z.read("manifest.json"))


def render(url, out, tokens, raw):
    args = [str(CLI), "render", "--prompt", "Write a short poem about the sea.",
            "--tokens", str(tokens), "--seed", "3", "--backend", "openai", "--url", url,
            "--out", str(out)]
    if raw:
        args.append("--raw")
    started = time.monotonic()
    subprocess.run(args, check=True, capture_output=True)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(args.model),
         "--port", str(port), "--n_ctx", "2048", "--logits_all", "True", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        one = {"max_tokens": 1, "temperature": 1.0, "seed": 1}
        completion = post(base + "/completions", {"prompt": "The sea is", "logprobs": 5, **one})
        print("completions, one token:", json.dumps(completion["choices"][0])[:400])
        chat = post(base + "/chat/completions", {
            "messages": [{"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello! How"}],
            "logprobs": True, "top_logprobs": 5, "continue_final_message": True,
            "add_generation_prompt": False, **one})
        print("chat, continuing an answer:", json.dumps(chat["choices"][0])[:400])
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            for raw in (True, False):
                name = "raw" if raw else "chat"
                seconds = [render(base, tmp / f"{name}{i}.wav", args.tokens, raw) for i in (1, 2)]
                first, second = (manifest(tmp / f"{name}{i}.lcrun") for i in (1, 2))
                remote = first.get("remote") or {}
                pieces = remote.get("pieces", [])
                same = all((tmp / f"{name}1{ext}").read_bytes() == (tmp / f"{name}2{ext}").read_bytes()
                           for ext in (".wav", ".mid"))
                here = sum(1 for p in pieces if "chosen" in p)
                print(f"\n{name}: {len(pieces)} pieces ({here} chosen here from the server's "
                      f"alternatives) for {len(first['tokens'])} local tokens, renders took "
                      f"{seconds[0]:.1f} s and {seconds[1]:.1f} s "
                      f"({len(pieces) / seconds[1]:.1f} pieces/s), same bytes twice: {same}, "
                      f"same pieces: {first.get('remote') == second.get('remote')}")
                print("  text:", repr("".join(p["text"] for p in pieces if not p.get("ended"))))
                print("  read:", repr("".join(first["tokens"])))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
