#!/usr/bin/env python3
"""Regenerate the Spotify Basic Pitch reference fixtures in tests/fixtures/listen/.

Run by hand, never in CI (it needs onnxruntime and basic-pitch; the Rust tests only read what it wrote):

    python3.11 -m venv /tmp/listen-venv
    /tmp/listen-venv/bin/pip install onnxruntime==1.31.1 librosa==0.11.0 pretty_midi==0.2.11.post0 \\
        mir_eval==0.8.2 resampy==0.4.3 scipy==1.17.1 soundfile==0.14.0 numpy==2.4.6
    /tmp/listen-venv/bin/pip install --no-deps basic-pitch==0.4.0
    /tmp/listen-venv/bin/python tools/listen/make_fixtures.py

(basic-pitch is installed with --no-deps so that pip does not pull TensorFlow / CoreML / tflite; with only
onnxruntime present, basic_pitch picks saved_models/icassp_2022/nmp.onnx, which is the model used here.)
The script is deterministic: the audio is synthesised from fixed note lists without randomness, and the
model runs on the CPUExecutionProvider.

Files written (all into tests/fixtures/listen/):
  melody.wav          ~4.5 s, 22050 Hz mono PCM16: 8 events of a plucked 5-harmonic tone in C major
                      (MIDI 60..76), one of them the two-note chord F4+A4, and one rest.
  chords.wav          ~3.5 s, same format: sustained A minor, F major, E major triads, softer 3-harmonic tone.
  melody.onnx.npz     (uncompressed np.savez) float32 arrays:
                        note [T,88], onset [T,88], contour [T,264]  -- unwrapped exactly as
                            basic_pitch.inference.run_inference does (T = floor(n_samples * 86 / 22050))
                        window0_note [172,88], window0_onset [172,88], window0_contour [172,264]
                            -- raw model output for the first window (3840 zeros + the first 40004
                            samples), before the 15-frame trim.
  melody.notes.json,  note events of basic_pitch.inference.predict(path, nmp.onnx) with default parameters,
  chords.notes.json   sorted by (start, pitch); each note also carries start_frame / end_frame (frame
                      indices from basic_pitch.note_creation.output_to_notes_polyphonic, checked to give
                      the same notes as predict()), "phase" ("onset" for the onset-driven pass, "melodia"
                      for the melodia-trick pass) and "bends_in_midi" (False when predict's MIDI drops the
                      bends because the note overlaps another one; the note event itself keeps them).
                      "synthesized" lists what was actually put into the WAV, for accuracy checks.
"""

import json
import os
import pathlib
import sys

import numpy as np
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "listen"

SR = 22050


# ----------------------------------------------------------------------------------------------------------
# Synthesis
# ----------------------------------------------------------------------------------------------------------


def midi_hz(m):
    return 440.0 * 2.0 ** ((m - 69) / 12.0)


def tone(pitch, dur, n_samples_total, harmonics, attack, decay_tau, release, harm_decay_scale):
    """One note: sum of harmonics with a fast attack, exponential decay (faster for upper partials)
    and a short linear release at the end. Returns an array of n_samples_total (note length + release)."""
    t = np.arange(n_samples_total) / SR
    f0 = midi_hz(pitch)
    y = np.zeros(n_samples_total)
    for k, a in enumerate(harmonics, start=1):
        if k * f0 >= SR / 2:
            break
        tau = decay_tau / (1.0 + harm_decay_scale * (k - 1))
        y += a * np.exp(-t / tau) * np.sin(2 * np.pi * k * f0 * t)
    env = np.minimum(1.0, t / attack)
    rel_start = dur
    env = env * np.clip(1.0 - (t - rel_start) / release, 0.0, 1.0)
    return y * env


def render(events, total_s, harmonics, attack, decay_tau, release, harm_decay_scale, gain, peak):
    n = int(round(total_s * SR))
    y = np.zeros(n)
    for start, dur, pitches in events:
        i0 = int(round(start * SR))
        m = int(round((dur + release) * SR))
        m = min(m, n - i0)
        for p in pitches:
            y[i0 : i0 + m] += gain * tone(p, dur, m, harmonics, attack, decay_tau, release, harm_decay_scale)
    y = y * (peak / np.max(np.abs(y)))  # deterministic normalisation to a fixed peak
    return np.round(y * 32767.0).astype(np.int16)


# (start s, duration s, [midi pitches])
MELODY = [
    (0.00, 0.40, [60]),  # C4
    (0.45, 0.40, [64]),  # E4
    (0.90, 0.40, [67]),  # G4
    (1.35, 0.50, [72]),  # C5
    # rest 1.85 .. 2.40
    (2.40, 0.60, [65, 69]),  # F4 + A4 chord
    (3.10, 0.40, [74]),  # D5
    (3.55, 0.40, [76]),  # E5
    (4.00, 0.40, [71]),  # B4
]
MELODY_LEN_S = 4.5

CHORDS = [
    (0.05, 1.05, [57, 60, 64]),  # A minor: A3 C4 E4
    (1.20, 1.05, [53, 57, 60]),  # F major: F3 A3 C4
    (2.35, 1.05, [52, 56, 59]),  # E major: E3 G#3 B3
]
CHORDS_LEN_S = 3.5


def synth_melody():
    return render(
        MELODY,
        MELODY_LEN_S,
        harmonics=[1.0, 0.5, 0.33, 0.25, 0.2],
        attack=0.005,
        decay_tau=0.45,
        release=0.03,
        harm_decay_scale=1.0,
        gain=1.0,
        peak=0.7,
    )


def synth_chords():
    return render(
        CHORDS,
        CHORDS_LEN_S,
        harmonics=[1.0, 0.3, 0.08],
        attack=0.03,
        decay_tau=2.5,
        release=0.06,
        harm_decay_scale=1.0,
        gain=1.0,
        peak=0.5,
    )


def write_wav(path, pcm):
    sf.write(str(path), pcm, SR, subtype="PCM_16")
    back, sr = sf.read(str(path), dtype="int16")
    assert sr == SR and np.array_equal(back, pcm), "WAV round trip changed the samples"


# ----------------------------------------------------------------------------------------------------------
# Basic Pitch
# ----------------------------------------------------------------------------------------------------------

import logging

logging.disable(logging.WARNING)  # basic_pitch warns about every absent backend on import
import basic_pitch  # noqa: E402
import basic_pitch.inference as bpi  # noqa: E402
import basic_pitch.note_creation as bpn  # noqa: E402
from basic_pitch.constants import AUDIO_N_SAMPLES, AUDIO_SAMPLE_RATE, FFT_HOP, ANNOTATIONS_FPS  # noqa: E402
import onnxruntime as ort  # noqa: E402

logging.disable(logging.NOTSET)

MODEL_PATH = pathlib.Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx"

PARAMS = {
    "onset_threshold": 0.5,
    "frame_threshold": 0.3,
    "minimum_note_length_ms": 127.70,
    "min_note_len_frames": int(np.round(127.70 / 1000 * (AUDIO_SAMPLE_RATE / FFT_HOP))),
    "infer_onsets": True,
    "melodia_trick": True,
    "multiple_pitch_bends": False,
    "include_pitch_bends": True,
    "energy_tol": 11,
    "minimum_frequency": None,
    "maximum_frequency": None,
    "midi_tempo": 120,
}

N_OVERLAPPING_FRAMES = 30
OVERLAP_LEN = N_OVERLAPPING_FRAMES * FFT_HOP  # 7680
HOP_SIZE = AUDIO_N_SAMPLES - OVERLAP_LEN  # 36164


def load_audio(path):
    """What librosa.load(path, sr=22050, mono=True) returns for a 22050 Hz mono PCM16 file:
    soundfile's float32 read (int16 / 32768), no resampling."""
    y, sr = sf.read(str(path), dtype="float32", always_2d=False)
    assert sr == AUDIO_SAMPLE_RATE and y.ndim == 1
    return y


def run_model(session, audio):
    """Mirror of basic_pitch.inference.run_inference with the windows made by hand."""
    n = audio.shape[0]
    padded = np.concatenate([np.zeros(OVERLAP_LEN // 2, dtype=np.float32), audio])
    raw = {"note": [], "onset": [], "contour": []}
    for i in range(0, padded.shape[0], HOP_SIZE):
        w = padded[i : i + AUDIO_N_SAMPLES]
        if len(w) < AUDIO_N_SAMPLES:
            w = np.pad(w, (0, AUDIO_N_SAMPLES - len(w)))
        x = w.reshape(1, AUDIO_N_SAMPLES, 1).astype(np.float32)
        note, onset, contour = session.run(
            ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"],
            {"serving_default_input_2:0": x},
        )
        raw["note"].append(note)
        raw["onset"].append(onset)
        raw["contour"].append(contour)
    n_keep = int(np.floor(n * (ANNOTATIONS_FPS / AUDIO_SAMPLE_RATE)))
    half = N_OVERLAPPING_FRAMES // 2
    unwrapped = {}
    for k, v in raw.items():
        cat = np.concatenate(v)[:, half:-half, :]
        unwrapped[k] = cat.reshape(-1, cat.shape[2])[:n_keep].astype(np.float32)
    window0 = {k: v[0][0].astype(np.float32) for k, v in raw.items()}
    return unwrapped, window0, len(raw["note"])


def frame_level_notes(output):
    """The frame-index notes, the same way model_output_to_notes computes them."""
    p = PARAMS
    common = dict(
        onset_thresh=p["onset_threshold"],
        frame_thresh=p["frame_threshold"],
        min_note_len=p["min_note_len_frames"],
        infer_onsets=p["infer_onsets"],
        max_freq=p["maximum_frequency"],
        min_freq=p["minimum_frequency"],
        energy_tol=p["energy_tol"],
    )
    # copies: constrain_frequency can write into its inputs (not with None limits, but be safe)
    notes = bpn.output_to_notes_polyphonic(
        output["note"].copy(), output["onset"].copy(), melodia_trick=p["melodia_trick"], **common
    )
    n_onset_phase = len(
        bpn.output_to_notes_polyphonic(output["note"].copy(), output["onset"].copy(), melodia_trick=False, **common)
    )
    with_bends = bpn.get_pitch_bends(output["contour"], notes)
    times = bpn.model_frames_to_time(output["contour"].shape[0])
    return notes, with_bends, times, n_onset_phase


def bends_kept_in_midi(events):
    """Index set of note events whose bends survive drop_overlapping_pitch_bends (multiple_pitch_bends=False)."""
    order = sorted(range(len(events)), key=lambda i: events[i])
    dropped = set()
    for a in range(len(order) - 1):
        for b in range(a + 1, len(order)):
            if events[order[b]][0] >= events[order[a]][1]:
                break
            dropped.add(order[a])
            dropped.add(order[b])
    return {i for i in range(len(events)) if i not in dropped}


def transcribe(session, wav_path, synth_events):
    audio = load_audio(wav_path)

    # 1. our own windowing must match run_inference bit for bit
    unwrapped, window0, n_windows = run_model(session, audio)
    ref = bpi.run_inference(wav_path, bpi.Model(MODEL_PATH))
    for k in ("note", "onset", "contour"):
        assert ref[k].shape == unwrapped[k].shape, (k, ref[k].shape, unwrapped[k].shape)
        assert np.array_equal(ref[k], unwrapped[k]), f"{k}: hand windowing differs from run_inference"

    # 2. predict() with default parameters (it loads nmp.onnx itself)
    _, _, events = bpi.predict(
        wav_path,
        MODEL_PATH,
        onset_threshold=PARAMS["onset_threshold"],
        frame_threshold=PARAMS["frame_threshold"],
        minimum_note_length=PARAMS["minimum_note_length_ms"],
        minimum_frequency=PARAMS["minimum_frequency"],
        maximum_frequency=PARAMS["maximum_frequency"],
        multiple_pitch_bends=PARAMS["multiple_pitch_bends"],
        melodia_trick=PARAMS["melodia_trick"],
        midi_tempo=PARAMS["midi_tempo"],
    )

    # 3. the same list through output_to_notes_polyphonic, with frame indices
    notes, with_bends, times, n_onset_phase = frame_level_notes(unwrapped)
    assert len(notes) == len(events), (len(notes), len(events))
    for (s, e, p, a, b), (ts, te, tp, ta, tb) in zip(with_bends, events):
        assert times[s] == ts and times[e] == te and p == tp and a == ta, ((s, e, p, a), (ts, te, tp, ta))
        assert (b is None and tb is None) or [int(x) for x in b] == [int(x) for x in tb]

    kept = bends_kept_in_midi(events)
    out = []
    for idx, ((s, e, p, a, b), ev) in enumerate(zip(with_bends, events)):
        out.append(
            {
                "start": float(ev[0]),
                "end": float(ev[1]),
                "pitch": int(ev[2]),
                "amplitude": float(ev[3]),
                "pitch_bends": None if ev[4] is None else [int(x) for x in ev[4]],
                "start_frame": int(s),
                "end_frame": int(e),
                "phase": "onset" if idx < n_onset_phase else "melodia",
                "order": idx,
                "bends_in_midi": idx in kept,
            }
        )
    out.sort(key=lambda d: (d["start"], d["pitch"]))

    doc = {
        "basic_pitch": "0.4.0",
        "onnxruntime": ort.__version__,
        "model": "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        "audio": os.path.basename(str(wav_path)),
        "n_samples": int(audio.shape[0]),
        "n_windows": int(n_windows),
        "n_frames": int(unwrapped["note"].shape[0]),
        "params": PARAMS,
        "note_fields": "order = index in predict()'s unsorted list; phase = which pass of "
        "output_to_notes_polyphonic made it; times = model_frames_to_time(n_frames)[frame]",
        "notes": out,
        "synthesized": [
            {"start": s, "end": round(s + d, 6), "pitches": ps} for s, d, ps in synth_events
        ],
    }
    return doc, unwrapped, window0


def main():
    assert basic_pitch_version() == "0.4.0", basic_pitch_version()
    assert ort.__version__ == "1.31.1", ort.__version__
    OUT.mkdir(parents=True, exist_ok=True)

    melody_wav = OUT / "melody.wav"
    chords_wav = OUT / "chords.wav"
    write_wav(melody_wav, synth_melody())
    write_wav(chords_wav, synth_chords())

    session = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])

    for name, wav, synth in (("melody", melody_wav, MELODY), ("chords", chords_wav, CHORDS)):
        doc, unwrapped, window0 = transcribe(session, wav, synth)
        with open(OUT / f"{name}.notes.json", "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        if name == "melody":
            np.savez(
                OUT / "melody.onnx.npz",
                note=unwrapped["note"],
                onset=unwrapped["onset"],
                contour=unwrapped["contour"],
                window0_note=window0["note"],
                window0_onset=window0["onset"],
                window0_contour=window0["contour"],
            )
        want = sorted({p for _, _, ps in synth for p in ps})
        got = [n["pitch"] for n in doc["notes"]]
        print(
            f"{name}: {doc['n_samples']} samples, {doc['n_windows']} windows, {doc['n_frames']} frames, "
            f"{len(got)} notes"
        )
        print(f"  synthesized pitches {want}")
        for n in doc["notes"]:
            print(
                f"  {n['start']:6.3f}-{n['end']:6.3f} s  frames {n['start_frame']:3d}-{n['end_frame']:3d}  "
                f"pitch {n['pitch']:3d}  amp {n['amplitude']:.3f}  {n['phase']}"
            )
        print(f"  missed pitches {sorted(set(want) - set(got))}, extra pitches {sorted(set(got) - set(want))}")

    total = 0
    for p in sorted(OUT.iterdir()):
        total += p.stat().st_size
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size} bytes")
    print(f"total {total} bytes")


def basic_pitch_version():
    from importlib.metadata import version

    return version("basic-pitch")


if __name__ == "__main__":
    sys.exit(main())
