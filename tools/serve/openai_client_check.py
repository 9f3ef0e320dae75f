#!/usr/bin/env python3
"""By hand: the official `openai` Python client against a running `latent-choir serve`.

    python3 -m venv /tmp/venv-openai && /tmp/venv-openai/bin/pip install openai
    latent-choir serve --port 8080 &
    /tmp/venv-openai/bin/python tools/serve/openai_client_check.py --base-url http://127.0.0.1:8080/v1

Checks completions, chat, streaming (both), seeds, stop, logprobs and an error, printing one
PASS/FAIL line per check; exits non-zero if any failed.
"""

import argparse
import sys

import openai
from openai import OpenAI

RESULTS = []


def check(name, fn):
    try:
        detail = fn()
        RESULTS.append((name, True, detail or ""))
        print(f"PASS {name}" + (f": {detail}" if detail else ""))
    except Exception as e:  # noqa: BLE001 - a by-hand report
        RESULTS.append((name, False, repr(e)))
        print(f"FAIL {name}: {e!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="not-needed", max_retries=0, timeout=120)
    model = client.models.list().data[0].id
    print(f"model: {model}")
    prompt = "The old lighthouse keeper opened the door and"

    def completion():
        r = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0.8, seed=11)
        assert r.object == "text_completion", r.object
        assert r.choices[0].text, "empty text"
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.completion_tokens <= 12
        return repr(r.choices[0].text)

    def completion_seed_and_stream():
        kwargs = dict(model=model, prompt=prompt, max_tokens=12, temperature=0.8, seed=11)
        a = client.completions.create(**kwargs).choices[0].text
        b = client.completions.create(**kwargs).choices[0].text
        assert a == b, (a, b)
        streamed = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kwargs) if c.choices)
        assert streamed == a, (streamed, a)
        return "same seed → same text, streamed too"

    def completion_logprobs():
        r = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0, logprobs=3)
        lp = r.choices[0].logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
        assert all(x <= 0 for x in lp.token_logprobs)
        return f"first token {lp.tokens[0]!r} at {lp.token_logprobs[0]:.3f}"

    def stop():
        r = client.completions.create(model=model, prompt=prompt, max_tokens=32, temperature=0, stop=["\n", "."])
        text = r.choices[0].text
        assert "\n" not in text and "." not in text, text
        return f"{text!r} ({r.choices[0].finish_reason})"

    def chat():
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}],
            max_tokens=16,
            seed=5,
            temperature=0.7,
            logprobs=True,
            top_logprobs=2,
        )
        m = r.choices[0].message
        assert m.role == "assistant" and m.content, m
        assert len(r.choices[0].logprobs.content) == r.usage.completion_tokens
        return repr(m.content)

    def chat_stream():
        kwargs = dict(
            model=model,
            messages=[{"role": "user", "content": "Say hello to the sea."}],
            max_tokens=16,
            seed=5,
            temperature=0.7,
        )
        whole = client.chat.completions.create(**kwargs).choices[0].message.content
        chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == whole, (streamed, whole)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        return f"{len(chunks)} chunks"

    def errors():
        try:
            client.completions.create(model="no-such-model", prompt="hi", max_tokens=1)
        except openai.NotFoundError as e:
            assert e.body and "message" in e.body, e.body
        else:
            raise AssertionError("an unknown model was accepted")
        try:
            client.completions.create(model=model, prompt="hi", max_tokens=1, temperature="hot")
        except openai.BadRequestError as e:
            assert e.body.get("param") == "temperature", e.body
        else:
            raise AssertionError("temperature 'hot' was accepted")
        return "404 and 400 raised as the client's own errors"

    check("completion", completion)
    check("completion seed + stream", completion_seed_and_stream)
    check("completion logprobs", completion_logprobs)
    check("stop", stop)
    check("chat", chat)
    check("chat stream + usage", chat_stream)
    check("errors", errors)
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
