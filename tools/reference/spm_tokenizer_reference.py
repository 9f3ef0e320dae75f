#!/usr/bin/env python3
"""Fixtures for SentencePiece GGUF tokenizers and chat templates (`tests/spm_tokenizer.rs`).

Run by hand, never in CI:

    /tmp/venv-ref/bin/pip install sentencepiece gguf transformers jinja2
    /tmp/venv-ref/bin/python tools/reference/spm_tokenizer_reference.py

No model can be downloaded here, so everything is made locally:

1. Two tiny SentencePiece BPE models (a few hundred pieces, byte fallback on) are trained with the
   `sentencepiece` package on the small corpus below:
   * `spm-llama`: Llama 2 / Mistral layout (<unk>=0, <s>=1, </s>=2), a space prefix
     (`add_dummy_prefix`), digits split.
   * `spm-gemma`: Gemma layout (<pad>=0, <eos>=1, <bos>=2, <unk>=3), no space prefix, the chat
     markers <start_of_turn> and <end_of_turn> as user-defined pieces.
2. Each is written as GGUF tokenizer metadata with the `gguf` package the way llama.cpp's converter
   writes a SentencePiece vocabulary: `tokenizer.ggml.model = "llama"`, the pieces, their scores and
   types (normal 1, unknown 2, control 3, user-defined 4, unused 5, byte 6), the special ids,
   add_bos/add_eos, add_space_prefix and a chat template. No tensors: the files are a few KB.
3. For each tricky string the reference ids come from `sentencepiece` itself. Control and
   user-defined pieces written in the text are matched whole, as llama.cpp does when it parses
   special tokens: the text is cut at them and every piece of plain text between is encoded by
   `sentencepiece` on its own (which adds the space prefix to each, as llama.cpp does after a
   special token). For `spm-gemma`, whose markers are user-defined pieces that sentencepiece matches
   itself, the script checks that this agrees with encoding the whole text in one call. The decoded
   text is `sentencepiece`'s `decode` where the ids hold no control token (sentencepiece drops
   those); with control tokens it is the pieces concatenated (control tokens as their text, `▁` as a
   space, byte pieces as bytes, the first piece's space prefix removed).

Chat templates: the real templates cannot be downloaded, so the ones below were written by hand
from memory of the templates these models publish in their `tokenizer_config.json` (Gemma 3, Llama
3, Llama 3.1, Phi-3, Qwen 2.5, Llama 2, Mistral v0.1 and v0.3, SmolLM2). Each is rendered by transformers'
own renderer (`render_jinja_template`, what `apply_chat_template` calls) for one user message, with
and without a system message, with `add_generation_prompt=True`.

Writes `tests/fixtures/tokenizer/spm-llama.gguf`, `spm-gemma.gguf`, `spm.json` and
`chat_templates.json`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import sentencepiece as spm

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "tokenizer"

SENTENCES = [
    "The choir sang in the hall, and every voice found its own note.",
    "A model reads the prompt, one token at a time, and its hidden states rise and fall.",
    "Music is made of notes, rests and the silence between them.",
    "She played the piano for three hours; he listened from the stairs.",
    "In 2024 the orchestra played 12 concerts and 345 people came to the last one.",
    "def play(note):\n    return note * 2\n",
    "Layers of attention hum like strings: low, middle, high.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! Hello again, world.",
    "Where is the melody? It is hidden in the harmony.",
    "Tokens become frames, frames become notes, notes become sound.",
    "We tuned the violins to 440 Hz and the cellos followed.",
    "Café au lait, crème brûlée and a naïve résumé.",
    "user: what is the capital of France?\nmodel: Paris is the capital of France.",
    "Numbers like 3.14159 and 2.71828 appear in songs too.",
    "The drummer kept time while the bass walked up and down the scale.",
]


def corpus() -> str:
    lines = []
    for round_ in range(6):
        for i, sentence in enumerate(SENTENCES):
            words = sentence.split(" ")
            shift = (i + round_) % len(words)
            lines.append(" ".join(words[shift:] + words[:shift]) if round_ else sentence)
    return "\n".join(lines) + "\n"


CASES = [
    "Hello world",
    "hello",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between     words",
    "line one\nline two\n\nline four\n",
    "\ttab\tseparated\t",
    "  \n  \n ",
    "Numbers: 0 1 12 123 1234 3.14159 -42 1,000,000",
    "Café naïve résumé Ångström",
    "日本語のテキスト",
    "Emoji: 🎵🎶 👩‍🎤 👍🏽",
    "zero\u200bwidth and non\u00a0breaking",
    "The choir sang; the model listened.",
    "aaaaaaaaaaaaaaaaaaaa!!!!????",
    "x",
    " ",
]

LLAMA_SPECIAL_CASES = [
    "<s>hello</s>",
    "text</s> more <s> text",
    "<s incomplete and /s> lookalikes",
]

GEMMA_SPECIAL_CASES = [
    "<start_of_turn>user\nHello there<end_of_turn>\n<start_of_turn>model\n",
    "a<start_of_turn>b",
    "<start_of_turn incomplete",
    "<bos>not a bos in text?",
]


def train(workdir: Path, name: str, **options) -> spm.SentencePieceProcessor:
    text_file = workdir / "corpus.txt"
    text_file.write_text(corpus(), encoding="utf-8")
    prefix = workdir / name
    spm.SentencePieceTrainer.train(
        input=str(text_file),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=420,
        byte_fallback=True,
        character_coverage=0.995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        hard_vocab_limit=False,
        minloglevel=2,
        **options,
    )
    return spm.SentencePieceProcessor(model_file=str(prefix) + ".model")


def piece_type(sp: spm.SentencePieceProcessor, i: int) -> int:
    # llama.cpp's converter: normal 1, unknown 2, control 3, user-defined 4, unused 5, byte 6.
    if sp.is_unknown(i):
        return 2
    if sp.is_control(i):
        return 3
    if sp.is_byte(i):
        return 6
    if sp.is_unused(i):
        return 5
    piece = sp.id_to_piece(i)
    # The python API has no is_user_defined; user-defined pieces score 0 and are not normal.
    return 4 if piece in USER_DEFINED.get(id(sp), ()) else 1


USER_DEFINED: dict[int, tuple[str, ...]] = {}


def write_gguf(sp, path: Path, *, bos, eos, unk, pad, add_bos, add_space_prefix, template):
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    n = sp.get_piece_size()
    writer.add_token_list([sp.id_to_piece(i).encode("utf-8") for i in range(n)])
    writer.add_token_scores([float(sp.get_score(i)) for i in range(n)])
    writer.add_token_types([piece_type(sp, i) for i in range(n)])
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_unk_token_id(unk)
    if pad is not None:
        writer.add_pad_token_id(pad)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(add_space_prefix)
    writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def specials(sp) -> list[str]:
    out = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or piece_type(sp, i) == 4:
            out.append(sp.id_to_piece(i))
    return sorted(out, key=len, reverse=True)


def reference_ids(sp, text: str) -> list[int]:
    marks = specials(sp)
    ids: list[int] = []
    rest = text
    while rest:
        hits = [(rest.find(m), -len(m), m) for m in marks if m in rest]
        if not hits:
            ids += sp.encode(rest)
            break
        at, _, mark = min(hits)
        if at > 0:
            ids += sp.encode(rest[:at])
        ids.append(sp.piece_to_id(mark))
        rest = rest[at + len(mark):]
    return ids


def concat_decode(sp, ids: list[int], add_space_prefix: bool) -> str:
    out = b""
    for k, i in enumerate(ids):
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            out += bytes([int(piece[3:5], 16)])
        elif sp.is_control(i) or piece_type(sp, i) == 4:
            out += piece.encode()
        else:
            text = piece.replace("\u2581", " ")
            if k == 0 and add_space_prefix and text.startswith(" "):
                text = text[1:]
            out += text.encode()
    return out.decode("utf-8", errors="replace")


def cases_for(sp, texts, add_space_prefix: bool, check_whole: bool) -> list[dict]:
    out = []
    for text in texts:
        ids = reference_ids(sp, text)
        controls = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.is_control(i)]
        if check_whole and not any(c in text for c in controls):
            whole = sp.encode(text)
            assert whole == ids, (text, whole, ids)
        has_control = any(sp.is_control(i) for i in ids)
        decoded = concat_decode(sp, ids, add_space_prefix) if has_control else sp.decode(ids)
        out.append(
            {
                "text": text,
                "ids": ids,
                "pieces": [sp.id_to_piece(i) for i in ids],
                "decoded": decoded,
            }
        )
    return out


# --- chat templates, written by hand (see the docstring) ---------------------------------------

GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

LLAMA3 = """{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"""

LLAMA31 = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

PHI3 = """{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"""

QWEN25 = """{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

MISTRAL_V01 = """{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"""

MISTRAL_V03 = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message["role"] == "user" %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"] + eos_token}}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

LLAMA2 = """{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"""

SMOLLM2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

FAMILIES = [
    # name, template, bos, eos, the format we should recognise, stop markers, system supported
    ("gemma3", GEMMA3, "<bos>", "<eos>", "gemma", ["<end_of_turn>"], True),
    ("llama3", LLAMA3, "<|begin_of_text|>", "<|eot_id|>", "llama3", ["<|eot_id|>"], True),
    ("llama3.1", LLAMA31, "<|begin_of_text|>", "<|eot_id|>", "llama3", ["<|eot_id|>"], True),
    ("phi3", PHI3, "<s>", "<|endoftext|>", "phi3", ["<|end|>"], True),
    ("qwen2.5", QWEN25, None, "<|im_end|>", "chatml", ["<|im_end|>"], True),
    ("smollm2", SMOLLM2, None, "<|im_end|>", "chatml", ["<|im_end|>"], True),
    ("mistral-v0.1", MISTRAL_V01, "<s>", "</s>", "mistral", ["</s>"], False),
    ("llama2", LLAMA2, "<s>", "</s>", "mistral", ["</s>"], True),
    ("mistral-v0.3", MISTRAL_V03, "<s>", "</s>", "mistral", ["</s>"], True),
]

CHAT_USERS = ["What is the capital of France?", "  padded question \n"]
CHAT_SYSTEM = "You sing every answer."


def chat_fixture() -> list[dict]:
    from transformers.utils.chat_template_utils import render_jinja_template

    def render(template, bos, eos, messages):
        rendered, _ = render_jinja_template(
            conversations=[messages],
            chat_template=template,
            add_generation_prompt=True,
            bos_token=bos or "",
            eos_token=eos,
        )
        return rendered[0]

    out = []
    for name, template, bos, eos, fmt, stops, system_ok in FAMILIES:
        cases = []
        for user in CHAT_USERS:
            messages = [{"role": "user", "content": user}]
            cases.append({"system": None, "user": user, "prompt": render(template, bos, eos, messages)})
            if system_ok:
                messages = [{"role": "system", "content": CHAT_SYSTEM}] + messages
                cases.append(
                    {"system": CHAT_SYSTEM, "user": user, "prompt": render(template, bos, eos, messages)}
                )
        out.append(
            {
                "family": name,
                "template": template,
                "bos_token": bos,
                "eos_token": eos,
                "format": fmt,
                "stops": stops,
                "cases": cases,
            }
        )
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fixture = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        llama = train(tmp, "spm-llama", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True)
        USER_DEFINED[id(llama)] = ()
        gemma_marks = ("<start_of_turn>", "<end_of_turn>")
        gemma = train(
            tmp,
            "spm-gemma",
            pad_id=0,
            eos_id=1,
            bos_id=2,
            unk_id=3,
            pad_piece="<pad>",
            eos_piece="<eos>",
            bos_piece="<bos>",
            add_dummy_prefix=False,
            user_defined_symbols=list(gemma_marks),
        )
        USER_DEFINED[id(gemma)] = gemma_marks

        write_gguf(
            llama,
            OUT / "spm-llama.gguf",
            bos=1,
            eos=2,
            unk=0,
            pad=None,
            add_bos=True,
            add_space_prefix=True,
            template=MISTRAL_V01,
        )
        write_gguf(
            gemma,
            OUT / "spm-gemma.gguf",
            bos=2,
            eos=1,
            unk=3,
            pad=0,
            add_bos=True,
            add_space_prefix=False,
            template=GEMMA3,
        )
        fixture["spm-llama"] = {
            "vocab_size": llama.get_piece_size(),
            "bos_id": 1,
            "eos_id": 2,
            "cases": cases_for(llama, CASES + LLAMA_SPECIAL_CASES, True, False),
        }
        fixture["spm-gemma"] = {
            "vocab_size": gemma.get_piece_size(),
            "bos_id": 2,
            "eos_id": 1,
            "cases": cases_for(gemma, CASES + GEMMA_SPECIAL_CASES, False, True),
        }
        # Byte fallback must be exercised: some case needs <0xXX> pieces in each model.
        for name, sp in (("spm-llama", llama), ("spm-gemma", gemma)):
            assert any(
                sp.is_byte(i) for c in fixture[name]["cases"] for i in c["ids"]
            ), f"{name}: no byte pieces used"
    (OUT / "spm.json").write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (OUT / "chat_templates.json").write_text(
        json.dumps(chat_fixture(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print("wrote", OUT)


if __name__ == "__main__":
    main()
