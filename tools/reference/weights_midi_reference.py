#!/usr/bin/env python3
"""Regenerate tests/fixtures/weights/styles-mido.json: how `mido` (an independent MIDI parser)
reads the four weight pieces of the tiny llama fixture, for tests/cli_weights.rs to compare its
own reading (midly) of a fresh render against.

Run by hand, after building the CLI (`cargo build --bin latent-choir --features standalone`):

    python3 -m venv /tmp/venv-mido && /tmp/venv-mido/bin/pip install mido
    /tmp/venv-mido/bin/python tools/reference/weights_midi_reference.py [path/to/latent-choir]

Per style: ticks per beat, the tempo map (BPM at tick), the markers, and per track its name,
program changes (channel, program), the channels its notes use, its note-on count and its first
eight note-ons (tick, channel, key, velocity).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import mido

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "debug" / "latent-choir"
MODEL = ROOT / "tests" / "fixtures" / "tiny-llama"


def summary(path):
    midi = mido.MidiFile(path)
    out = {"ticks_per_beat": midi.ticks_per_beat, "tempo": [], "markers": [], "tracks": []}
    for i, track in enumerate(midi.tracks):
        tick = 0
        name, programs, channels, ons = None, [], set(), []
        for msg in track:
            tick += msg.time
            if msg.type == "track_name":
                name = msg.name
            elif msg.type == "set_tempo":
                out["tempo"].append([tick, round(mido.tempo2bpm(msg.tempo), 3)])
            elif msg.type == "marker":
                out["markers"].append([tick, msg.text])
            elif msg.type == "program_change":
                programs.append([msg.channel, msg.program])
            elif msg.type == "note_on" and msg.velocity > 0:
                channels.add(msg.channel)
                ons.append([tick, msg.channel, msg.note, msg.velocity])
        if i > 0:
            out["tracks"].append({"name": name, "programs": programs, "channels": sorted(channels),
                                  "note_ons": len(ons), "first": ons[:8]})
    return out


def main():
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for style in ["opera", "house", "acid", "dna"]:
            mid = Path(tmp) / f"{style}.mid"
            subprocess.run([str(CLI), "weights", "--model", str(MODEL), "--style", style,
                            "--bars", "8", "--out", str(Path(tmp) / f"{style}.wav"),
                            "--midi", str(mid)], check=True,
                           env={"XDG_CACHE_HOME": tmp, "PATH": "/usr/bin:/bin"})
            result[style] = summary(mid)
    out = ROOT / "tests" / "fixtures" / "weights" / "styles-mido.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
