#!/usr/bin/env python3
"""Reference token ids for `tests/tokenizer_reference.rs`, from Hugging Face `transformers`.

Run by hand, never in CI. It needs the default model (`cargo xtask fetch-model`) and a private venv:

    python3 -m venv /tmp/venv-tok
    /tmp/venv-tok/bin/pip install "transformers>=4.46,<5" gguf sentencepiece jinja2
    /tmp/venv-tok/bin/python tools/reference/tokenizer_reference.py

It loads the tokenizer the way a user of `transformers` would,
`AutoTokenizer.from_pretrained(folder, gguf_file=name)`, and writes
`tests/fixtures/tokenizer/smollm2.json`: for each test string the token ids, the tokens and the
decoded text, and the chat prompt for one user message with its ids.

Two things are done on purpose and are worth knowing:

* transformers 4.x is used, not 5.x. Both refuse to read a GGUF unless PyTorch is installed, but
  in 4.x the metadata-only path (`return_tensors=False`, all a tokenizer needs) never touches
  torch, so we tell its availability check that torch is there. 5.x imports torch outright.
  4.x also wrongly turns on a BOS token for this file (the GGUF says
  `tokenizer.ggml.add_bos_token = false`), so ids are taken with `add_special_tokens=False`, and
  it cleans up spaces around punctuation when decoding unless told not to (5.x no longer does by
  default), so decoding passes `clean_up_tokenization_spaces=False`.

* transformers does not know llama.cpp's `smollm` pre-tokenizer and falls back to GPT-2's split,
  which keeps runs of digits together. SmolLM2's own `tokenizer.json` isolates every numeric
  character (`Digits(individual_digits=True)` before `ByteLevel`), as llama.cpp's `smollm` split
  does; the vocabulary confirms it, since no token joins a numeric character to anything else
  (checked below). For ASCII digits both splits give the same ids, because no merge involves a
  digit; they differ for non-ASCII numerals after a space (" ½", " ²"). The reference therefore
  uses SmolLM2's own pre-tokenizer, and records what the stock GGUF loader gives as
  `hf_gguf_stock_ids` wherever that differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = (
    Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    / "latent-choir"
    / "models"
    / "SmolLM2-135M-Instruct.Q4_1.gguf"
)
DEFAULT_OUT = REPO / "tests" / "fixtures" / "tokenizer" / "smollm2.json"
CHAT_PROMPT = "What is the capital of France?"

# Varied on purpose: each line exercises one part of the split regex, the byte-level alphabet or
# the special-token matcher.
CASES = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between     words",
    "line one\nline two\n\nline four\n",
    "\ttab\tseparated\tvalues\t",
    "\r\nWindows line endings\r\n",
    "  \n  \n ",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1,000,000 0x1F",
    "A long number: 98765432109876543210123456789",
    "$1,234.56, 50% off, 24/7, 2024-11-21T05:32:00Z",
    "Non-ASCII numerals: x² + y² = r², ½ cup, ① ② ③, Ⅻ, ٣٤٥, １２３",
    "Punctuation!?... (parens) [brackets] {braces} <angles> \"double\" 'single' --- ~~~",
    "don't, I'm, we've, they'll, she'd, it's, you're",
    "DON'T SHOUT, It'S fine, WE'LL see",
    "Café naïve résumé façade Ångström jalapeño",
    "日本語のテキストと中文文本，还有한국어도。",
    "Mixed scripts: αβγ Привет мир مرحبا שלום नमस्ते",
    "Emoji: 🎵🎶 🎹 👩‍🎤 👍🏽 🇫🇷",
    "e\u0301 (combining acute), non\u00a0breaking, zero\u200bwidth",
    "fn main() {\n    println!(\"Hello, {}!\", name);\n}\n",
    "def f(x):\n\treturn x ** 2  # square\n",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "<|endoftext|>",
    "text<|endoftext|>more text <|im_end|>",
    "<|im_start incomplete and |im_end|> lookalikes",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!!!!!!!!!!!??",
    "ALL CAPS AND lowercase AND MiXeD CaSe",
    "The melody rose, fell, and rose again; the choir of layers hummed along.",
]


def load_tokenizer(model: Path):
    import transformers

    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        sys.exit(
            f"transformers {transformers.__version__}: 5.x needs PyTorch to read a GGUF; "
            'install "transformers>=4.46,<5" in the venv instead'
        )
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    # Metadata only: torch is never used on this path (see the module docstring).
    gguf_utils.is_torch_available = lambda: True
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)


def gguf_metadata(model: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(model))
    keys = [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
    ]
    return {k: reader.fields[k].contents() for k in keys if k in reader.fields}


def bytes_to_unicode() -> dict[int, str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def check_numerals_isolated(meta: dict) -> None:
    """No normal token may join a numeric character to anything: the merges were learned on text
    split with every numeric character on its own."""
    char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
    for index, (token, kind) in enumerate(zip(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"])):
        if kind != 1:
            continue
        text = bytes(char_to_byte[c] for c in token).decode("utf-8", "replace")
        if len(text) > 1 and any(unicodedata.category(c).startswith("N") for c in text):
            sys.exit(f"token {index} {token!r} joins a numeral to other text: the split assumption is wrong")


def smollm_pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model} is missing: run `cargo xtask fetch-model` first")

    import tokenizers
    import transformers

    meta = gguf_metadata(args.model)
    assert meta["tokenizer.ggml.model"] == "gpt2", meta["tokenizer.ggml.model"]
    assert meta["tokenizer.ggml.pre"] == "smollm", meta["tokenizer.ggml.pre"]
    check_numerals_isolated(meta)

    tok = load_tokenizer(args.model)
    stock = [tok.encode(text, add_special_tokens=False) for text in CASES]
    tok.backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()

    cases = []
    for text, stock_ids in zip(CASES, stock):
        ids = tok.encode(text, add_special_tokens=False)
        case = {
            "text": text,
            "ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "decoded": tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        }
        if stock_ids != ids:
            case["hf_gguf_stock_ids"] = stock_ids
        cases.append(case)

    messages = [{"role": "user", "content": CHAT_PROMPT}]
    chat_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    chat_ids = tok.encode(chat_text, add_special_tokens=False)
    templated_ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(templated_ids, dict):
        templated_ids = templated_ids["input_ids"]
    assert list(templated_ids) == chat_ids, (templated_ids, chat_ids)

    digest = hashlib.sha256(args.model.read_bytes()).hexdigest()
    fixture = {
        "about": "Reference tokenization of SmolLM2-135M-Instruct (GGUF) by Hugging Face transformers; "
        "written by tools/reference/tokenizer_reference.py, see its docstring.",
        "generator": {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "pre_tokenizer": "SmolLM2's own: Digits(individual_digits=True) + ByteLevel(use_regex=True)",
            "encode": "add_special_tokens=False",
            "decode": "skip_special_tokens=False, clean_up_tokenization_spaces=False",
        },
        "model": {
            "file": args.model.name,
            "bytes": args.model.stat().st_size,
            "sha256": digest,
        },
        "vocab_size": len(tok),
        "bos_id": int(meta["tokenizer.ggml.bos_token_id"]),
        "eos_id": int(meta["tokenizer.ggml.eos_token_id"]),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "cases": cases,
        "chat": {"prompt": CHAT_PROMPT, "text": chat_text, "ids": chat_ids},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    differing = sum("hf_gguf_stock_ids" in c for c in cases)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(cases)} cases, "
          f"{differing} where the stock GGUF loader differs)")


if __name__ == "__main__":
    main()
