#!/usr/bin/env python3
"""Checks a `latent-choir render` by hand with independent readers: the run file with NumPy,
the MIDI file with mido. Not run in CI.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy mido
    /tmp/venv/bin/python tools/check/check_render.py forest.lcrun forest.mid
"""

import json
import sys

import mido
import numpy as np


def check_run(path):
    run = np.load(path)
    manifest = json.loads(run["manifest.json"])
    assert manifest["format"] == "latent-choir-run", manifest["format"]
    assert manifest["version"] == 1
    n = len(manifest["tokens"])
    states = manifest["hidden_states"]
    shapes = {
        "token_ids": (n,), "index": (n,), "temperature": (n,),
        "coords": (states, n, 4), "norm": (states, n), "entropy": (states, n),
        "sparsity": (states, n), "loudness_lufs": (n,), "loudness_smoothed": (n,),
        "loudness_velocity": (n,), "curve_temperature": (n,),
    }
    for name, shape in shapes.items():
        array = run[name]
        assert array.shape == shape, (name, array.shape, shape)
        assert np.all(np.isfinite(array)), name
    coords = run["coords"]
    assert coords.min() >= -1 and coords.max() <= 1
    print(f"run: {n} tokens, {states} hidden states, model {manifest['model']['name']} "
          f"({manifest['model']['sha256'][:12]}…), {manifest['bpm']} BPM, "
          f"scale {manifest['params']['scale']['text']} root {manifest['params']['root']['text']}")
    print("text:", "".join(manifest["tokens"]).strip()[:200])
    print("temperature range:", run["temperature"].min(), run["temperature"].max())
    return manifest


def check_midi(path, manifest):
    midi = mido.MidiFile(path)
    assert midi.type == 1, midi.type
    assert midi.ticks_per_beat == 960
    names = [next((m.name for m in t if m.type == "track_name"), "") for t in midi.tracks]
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    print(f"midi: {len(midi.tracks)} tracks {names}, {mido.tempo2bpm(tempo):.2f} BPM, "
          f"{midi.length:.1f} s")
    assert len(midi.tracks) == 5 and names[4] == "Drone"
    for index, track in enumerate(midi.tracks[1:], start=1):
        sounding, ons, channels = {}, 0, set()
        for message in track:
            if message.type == "note_on" and message.velocity > 0:
                key = (message.channel, message.note)
                assert key not in sounding, f"track {index}: {key} struck twice"
                sounding[key] = True
                ons += 1
                channels.add(message.channel)
            elif message.type in ("note_off", "note_on"):
                key = (message.channel, message.note)
                assert sounding.pop(key, None), f"track {index}: off without on {key}"
        assert not sounding, f"track {index}: left sounding {sounding}"
        print(f"  {names[index]}: {ons} notes, channels {sorted(c + 1 for c in channels)}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    manifest = check_run(sys.argv[1])
    check_midi(sys.argv[2], manifest)
    print("ok")


if __name__ == "__main__":
    main()
