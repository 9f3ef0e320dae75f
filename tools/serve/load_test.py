#!/usr/bin/env python3
"""A bounded load test of a running `latent-choir serve` (standard library only).

    latent-choir serve --port 8080 --max-concurrency 2 &
    python3 tools/serve/load_test.py --url http://127.0.0.1:8080 --tokens 64 --clients 1,2,4

For each N in --clients, N threads each stream one completion of exactly --tokens tokens
(`ignore_eos`) at once; prints aggregate tokens/s and the p50/p95 gap between a client's
consecutive tokens (its per-token latency), plus the time to the first token. Also measures
single-token requests on a prompt that grows by the token each time (the remote backend's
pattern), which the server's prefix reuse makes cheap. Requests the server refuses (429/503)
are counted, not retried.
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

PROMPT = "The old lighthouse keeper opened the door and"


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def stream_one(host, port, tokens, seed, out):
    body = json.dumps({
        "prompt": PROMPT, "max_tokens": tokens, "temperature": 0.8, "seed": seed,
        "stream": True, "ignore_eos": True,
    })
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=600)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        out.append({"status": response.status})
        response.read()
        return
    stamps = []
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("choices") and chunk["choices"][0].get("finish_reason") is None:
            stamps.append(time.perf_counter())
    conn.close()
    out.append({"status": 200, "start": start, "stamps": stamps})


def run_level(host, port, clients, tokens):
    results = []
    threads = [threading.Thread(target=stream_one, args=(host, port, tokens, i, results)) for i in range(clients)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - begin
    done = [r for r in results if r["status"] == 200]
    refused = len(results) - len(done)
    total = sum(len(r["stamps"]) for r in done)
    gaps = [b - a for r in done for a, b in zip(r["stamps"], r["stamps"][1:])]
    first = [r["stamps"][0] - r["start"] for r in done if r["stamps"]]
    print(
        f"N={clients}: {total} tokens in {wall:.2f} s = {total / wall:.1f} tokens/s aggregate; "
        f"per-token p50 {1000 * percentile(gaps, 0.5):.1f} ms, p95 {1000 * percentile(gaps, 0.95):.1f} ms; "
        f"first token p50 {1000 * percentile(first, 0.5):.0f} ms; refused {refused}"
    )


def single_token_requests(host, port, steps):
    """One token per request at its own temperature, the prompt growing by what came back."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    prompt = PROMPT
    times, cached = [], []
    for i in range(steps):
        body = json.dumps({"prompt": prompt, "max_tokens": 1, "temperature": 0.5 + (i % 5) * 0.2, "seed": i})
        start = time.perf_counter()
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
        times.append(time.perf_counter() - start)
        prompt += reply["choices"][0]["text"]
        details = reply["usage"].get("prompt_tokens_details") or {}
        cached.append(reply["usage"]["prompt_tokens"] - details.get("cached_tokens", 0))
    conn.close()
    print(
        f"single-token requests, prompt growing to {reply['usage']['prompt_tokens']} tokens over {steps} steps: "
        f"p50 {1000 * statistics.median(times):.1f} ms, p95 {1000 * percentile(times, 0.95):.1f} ms, "
        f"mean {1000 * statistics.mean(times):.1f} ms; prompt tokens run per request: mean {statistics.mean(cached):.2f}"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--tokens", type=int, default=64, help="tokens each client streams (M)")
    parser.add_argument("--clients", default="1,2,4", help="levels of N, comma-separated")
    parser.add_argument("--single-steps", type=int, default=200, help="single-token requests (0: skip)")
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    host, port = url.hostname, url.port or 80
    for n in [int(x) for x in args.clients.split(",") if x]:
        run_level(host, port, n, args.tokens)
    if args.single_steps:
        single_token_requests(host, port, args.single_steps)


if __name__ == "__main__":
    main()
