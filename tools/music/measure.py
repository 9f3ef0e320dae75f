#!/usr/bin/env python3
"""Musical measures of a `latent-choir render` (by hand; the musicality issue's numbers).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy mido pyloudnorm soundfile
    /tmp/venv/bin/python tools/music/measure.py target/demo/forest      # forest.wav/.mid/.lcrun

Per render it prints, and with --json writes:

* per voice: note-ons, lowest and highest note, and the share of melodic intervals (between
  consecutive note-ons) of at most a fourth (5 semitones);
* how far the voices' ranges overlap, in semitones, for voices 1–2 and 2–3 (0: apart);
* the loudness range (EBU Tech 3342 LRA: 3 s short-term windows every 0.1 s, gated at −70 LUFS
  and 20 LU below their mean, 95th minus 10th percentile), and the integrated loudness;
* rests: grid steps where no voice sounds, and the text's sentences, so "a rest per sentence"
  can be read off;
* the drone's share of the notes' energy (velocity² × duration).
"""

import argparse
import json
import re
import sys

import mido
import numpy as np
import pyloudnorm
import soundfile


def notes_by_channel(path):
    """(start s, end s, channel, note, velocity) from a Standard MIDI File."""
    midi = mido.MidiFile(path)
    now, open_notes, notes = 0.0, {}, []
    for message in mido.merge_tracks(midi.tracks):
        now += mido.tick2second(message.time, midi.ticks_per_beat, tempo_at(midi))
        if message.type == "note_on" and message.velocity > 0:
            open_notes[(message.channel, message.note)] = (now, message.velocity)
        elif message.type in ("note_off", "note_on"):
            start = open_notes.pop((message.channel, message.note), None)
            if start:
                notes.append((start[0], now, message.channel, message.note, start[1]))
    return sorted(notes)


def tempo_at(midi):
    for track in midi.tracks:
        for message in track:
            if message.type == "set_tempo":
                return message.tempo
    return 500_000


def loudness_range(audio, rate):
    meter = pyloudnorm.Meter(rate, block_size=0.4)
    window, hop = int(3.0 * rate), int(0.1 * rate)
    short_term = []
    for start in range(0, max(1, len(audio) - window + 1), hop):
        block = audio[start:start + window]
        if len(block) < window:
            break
        short_term.append(meter_loudness(meter, block))
    values = np.array([v for v in short_term if v > -70.0])
    if len(values) == 0:
        return 0.0, float("-inf")
    mean = 10 * np.log10(np.mean(10 ** (values / 10)))
    gated = values[values > mean - 20.0]
    integrated = meter.integrated_loudness(audio)
    return float(np.percentile(gated, 95) - np.percentile(gated, 10)), float(integrated)


def meter_loudness(meter, block):
    with np.errstate(divide="ignore"):
        try:
            return meter.integrated_loudness(block)
        except ValueError:
            return float("-inf")


def measure(base, voice_channels, drone_channel):
    run = np.load(base + ".lcrun")
    manifest = json.loads(run["manifest.json"])
    step = 60.0 / (manifest["bpm"] * manifest["tokens_per_beat"])
    steps = manifest["steps"]
    notes = notes_by_channel(base + ".mid")
    out = {"render": base, "prompt": manifest["prompt"], "steps": steps, "voices": []}
    ranges = []
    for i, channel in enumerate(voice_channels):
        pitches = [n[3] for n in notes if n[2] == channel]
        intervals = np.abs(np.diff(pitches)) if len(pitches) > 1 else np.array([])
        small = float(np.mean(intervals <= 5)) if len(intervals) else None
        out["voices"].append({
            "voice": i + 1, "channel": channel + 1, "notes": len(pitches),
            "lowest": min(pitches, default=None), "highest": max(pitches, default=None),
            "intervals_within_a_fourth": small,
            "median_interval": float(np.median(intervals)) if len(intervals) else None,
        })
        ranges.append((min(pitches, default=0), max(pitches, default=0)))
    out["range_overlap_semitones"] = {
        f"{a + 1}-{b + 1}": max(0, min(ranges[a][1], ranges[b][1]) - max(ranges[a][0], ranges[b][0]))
        for a, b in [(0, 1), (1, 2)]
    }
    audio, rate = soundfile.read(base + ".wav", always_2d=True)
    lra, integrated = loudness_range(audio, rate)
    out["loudness_range_lu"] = round(lra, 2)
    out["integrated_lufs"] = round(integrated, 2)
    voiced = [n for n in notes if n[2] in voice_channels]
    rests = sum(
        1 for k in range(steps)
        if not any(n[0] <= (k + 0.5) * step < n[1] for n in voiced)
    )
    text = "".join(manifest["tokens"])
    out["rest_steps"] = rests
    out["sentences"] = len([s for s in re.split(r"[.!?]+", text) if s.strip()])
    energy = lambda ns: sum(v * v * (e - s) for s, e, _, _, v in ns)
    total = energy(notes)
    out["drone_energy_share"] = round(energy([n for n in notes if n[2] == drone_channel]) / total, 3) if total else None
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renders", nargs="+", help="render paths without extension")
    parser.add_argument("--voice-channels", default="1,2,3", help="MIDI channels (1-based) of voices 1–3")
    parser.add_argument("--drone-channel", type=int, default=4)
    parser.add_argument("--json", help="write every render's measures here")
    args = parser.parse_args()
    channels = [int(c) - 1 for c in args.voice_channels.split(",")]
    results = [measure(base, channels, args.drone_channel - 1) for base in args.renders]
    for r in results:
        print(f"{r['render']}: \"{r['prompt']}\", {r['steps']} steps")
        for v in r["voices"]:
            share = v["intervals_within_a_fourth"]
            print(f"  voice {v['voice']}: {v['notes']} notes, {v['lowest']}–{v['highest']}, "
                  f"intervals ≤ a fourth {share * 100 if share is not None else float('nan'):.0f}%, "
                  f"median interval {v['median_interval']}")
        print(f"  range overlap: {r['range_overlap_semitones']} semitones")
        print(f"  loudness range {r['loudness_range_lu']} LU, integrated {r['integrated_lufs']} LUFS")
        print(f"  rest steps {r['rest_steps']} for {r['sentences']} sentences; "
              f"drone's share of note energy {r['drone_energy_share']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
