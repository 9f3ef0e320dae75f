#!/usr/bin/env python3
"""Summarise what Latent Choir sent to MIDI out inside Ardour (tools/daw/ardour_check.sh).

Reads the recorder's log that ardour_check.lua wrote to OUT_DIR:
  blocks.tsv  one row per process call: engine sample, transport sample, rolling, length, offset
  events.tsv  one row per MIDI event: process call, time in it, status, data1, data2
  phases.tsv  where each phase of the scenario begins (main, replay, stopped, loop, loop-stopped)
  params.tsv  the plugin's parameters as Ardour shows them
and prints note counts per channel, note lengths, token onset gaps, block ordering and the
scenario comparisons. Standard library only.

Usage: summarize.py OUT_DIR [--bpm 120] [--rate 48000] [--block 1024] [--loop START END]
"""

import argparse
import math
import csv
import statistics
from collections import Counter, defaultdict

VOICE_CHANNELS = (0, 1, 2)  # voices 1-3 on MIDI channels 1-3 (0-based here)
DRONE_CHANNEL = 3  # the drone on channel 4


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class Run:
    """The recorder's log, with every event placed in engine and transport time."""

    def __init__(self, out, rate):
        self.rate = rate
        self.blocks = [{k: int(v) for k, v in row.items()} for row in read_tsv(f"{out}/blocks.tsv")]
        self.phases = [(p["phase"], int(p["first_block"])) for p in read_tsv(f"{out}/phases.tsv")]
        # The replay is marked just before the locate: it starts at the first rolling process
        # call whose position is behind the previous rolling one's.
        for i, (phase, first) in enumerate(self.phases):
            if phase == "replay":
                before = [b for b in self.blocks[:first] if b["rolling"]]
                last = before[-1]["transport_sample"] if before else None
                for b in self.blocks[first:]:
                    if not b["rolling"]:
                        continue
                    if last is not None and b["transport_sample"] < last:
                        self.phases[i] = (phase, b["block"])
                        break
                    last = b["transport_sample"]
        self.params = {p["name"]: p for p in read_tsv(f"{out}/params.tsv")}
        self.events = []
        for row in read_tsv(f"{out}/events.tsv"):
            b = self.blocks[int(row["block"])]
            status, d1, d2 = int(row["status"]), int(row["data1"]), int(row["data2"])
            kind = status & 0xF0
            if kind == 0x90 and d2 > 0:
                kind = "on"
            elif kind == 0x80 or kind == 0x90:
                kind = "off"
            elif kind == 0xB0:
                kind = "cc"
            else:
                kind = hex(status)
            t = int(row["time"]) - b["offset"]
            self.events.append({
                "block": b["block"],
                "time": int(row["time"]),
                "engine": b["engine_sample"] + t,  # samples since the recorder started
                "pos": b["transport_sample"] + t,  # timeline position (rolling forward)
                "rolling": b["rolling"],
                "phase": self.phase_of(b["block"]),
                "kind": kind,
                "channel": status & 0x0F,
                "note": d1,
                "velocity": d2,
            })
        self.pair_notes()

    def phase_of(self, block):
        name = "before"
        for phase, first in self.phases:
            if block >= first:
                name = phase
        return name

    def phase_blocks(self, phase):
        return [b for b in self.blocks if self.phase_of(b["block"]) == phase]

    def pair_notes(self):
        """Give every note-on its length (engine samples to its note-off) and count retriggers."""
        sounding = {}
        self.retriggers = 0
        for e in self.events:
            key = (e["channel"], e["note"])
            if e["kind"] == "on":
                if key in sounding:
                    self.retriggers += 1
                    sounding[key]["length"] = e["engine"] - sounding[key]["engine"]
                    sounding[key]["ended_rolling"] = e["rolling"]
                sounding[key] = e
                e["length"] = None
            elif e["kind"] == "off" and key in sounding:
                on = sounding.pop(key)
                on["length"] = e["engine"] - on["engine"]
                on["ended_rolling"] = e["rolling"]  # not cut short by a stop

    def sounding_after(self, block):
        """(channel, note) pairs still on after the given process call."""
        sounding = set()
        for e in self.events:
            if e["block"] > block:
                break
            key = (e["channel"], e["note"])
            if e["kind"] == "on":
                sounding.add(key)
            elif e["kind"] == "off":
                sounding.discard(key)
        return sounding

    def ms(self, samples):
        return 1000.0 * samples / self.rate


def fmt_notes(notes, rate, limit=3):
    return ", ".join(f"{n['pos'] / rate:.3f}s ch{n['channel']} n{n['note']} v{n['velocity']}"
                     for n in notes[:limit])


def compare(a, b, rate, label_a, label_b):
    """Compare two note-on sequences given as lists of events, by (pos, channel, note, velocity)."""
    ka = [(n["pos"], n["channel"], n["note"], n["velocity"]) for n in a]
    kb = [(n["pos"], n["channel"], n["note"], n["velocity"]) for n in b]
    same = sum((Counter(ka) & Counter(kb)).values())
    print(f"    {label_a}: {len(ka)} note-ons, {label_b}: {len(kb)}, identical (position, channel, "
          f"note, velocity): {same}")
    for i, (x, y) in enumerate(zip(sorted(ka), sorted(kb))):
        if x != y:
            print(f"    first difference (note-on #{i + 1}): {label_a} {x[0] / rate:.4f}s ch{x[1]} "
                  f"n{x[2]} v{x[3]} / {label_b} {y[0] / rate:.4f}s ch{y[1]} n{y[2]} v{y[3]}")
            break
    return same == len(ka) == len(kb)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--stop-at", type=float, help="checks the stop (else it is only reported)")
    ap.add_argument("--loop", type=float, nargs=2)
    ap.add_argument("--feel", action="store_true",
                    help="Humanise and the moving bass were left on: notes may be up to the "
                         "humanised window late and the bass moves")
    args = ap.parse_args()
    run = Run(args.out, args.rate)
    rate = args.rate
    checks = []

    def check(ok, text):
        checks.append((ok, text))

    tpb = float(run.params.get("Tokens per Beat", {}).get("value", 2.0))  # plain value
    step = rate * 60.0 / args.bpm / tpb  # samples per token
    ticks = args.block / (rate * 60.0 / args.bpm) * 1920
    print()
    print(f"== Latent Choir in Ardour: {args.bpm:g} BPM, {rate} Hz, {args.block}-frame blocks "
          f"({ticks:.2f} Ardour ticks per block), Tokens per Beat {tpb:g}: token step "
          f"{step:.1f} samples = {run.ms(step):.1f} ms")
    shown = []
    for k in ("Generate", "Tokens per Beat", "Scale", "Root", "Drone MIDI Channel"):
        p = run.params.get(k)
        if p:
            named = f" '{p['value_name']}'" if p["value_name"] else ""
            shown.append(f"{k} = {float(p['value']):g}{named} ({p['kind']}, "
                         f"{float(p['lower']):g}..{float(p['upper']):g}, "
                         f"{p['scale_points']} named values)")
    print("   parameters in Ardour: " + "; ".join(shown))

    # ---- main pass -----------------------------------------------------------------------
    main = [e for e in run.events if e["phase"] == "main" and e["rolling"]]
    ons = [e for e in main if e["kind"] == "on"]
    # Process calls inside a pass where Ardour was not rolling (the locate of --locate-back).
    gap_ons = [e for e in run.events if e["phase"] in ("main", "replay") and not e["rolling"]
               and e["kind"] == "on" and e["block"] > run.phases[0][1]]
    blocks = run.phase_blocks("main")
    rolled = [b for b in blocks if b["rolling"]]
    span = (rolled[0]["transport_sample"], rolled[-1]["transport_sample"] + rolled[-1]["n_samples"]) \
        if rolled else (0, 0)
    print(f"-- main pass: rolled {span[0] / rate:.2f}-{span[1] / rate:.2f} s "
          f"({len(rolled)} process calls)")
    if not ons:
        print("   no note-ons at all")
        check(False, "the plugin played notes")
    else:
        first = ons[0]
        print(f"   first note-on at {first['pos'] / rate:.3f} s; measured over "
              f"{(span[1] - first['pos']) / rate:.2f} s from there")
        per_channel = Counter(e["channel"] for e in ons)
        print("   note-ons per channel (0-based): " + ", ".join(
            f"ch{c} {per_channel[c]}" + (" (drone)" if c == DRONE_CHANNEL else "")
            for c in sorted(set(per_channel) | set(VOICE_CHANNELS) | {DRONE_CHANNEL})))
        drone = per_channel[DRONE_CHANNEL]
        print(f"   drone note-ons: {drone} ({drone / max(1, len(rolled)):.2f} per process call)")
        voice_ons = [e for e in ons if e["channel"] in VOICE_CHANNELS]
        lengths = [e["length"] for e in voice_ons if e["length"] is not None and e["ended_rolling"]]
        cut = sum(1 for e in voice_ons if e["length"] is not None and not e["ended_rolling"])
        if lengths:
            print(f"   voice note length: median {run.ms(statistics.median(lengths)):.1f} ms, "
                  f"min {run.ms(min(lengths)):.1f} ms, max {run.ms(max(lengths)):.1f} ms "
                  f"({len(lengths)} notes; {cut} ended by the stop or locate and "
                  f"{len(voice_ons) - len(lengths) - cut} never ended are left out)")
        onsets = sorted({e["engine"] for e in voice_ons})
        gaps = [b - a for a, b in zip(onsets, onsets[1:])]
        if gaps:
            print(f"   token onsets (distinct voice note-on times): {len(onsets)}, smallest gap "
                  f"{run.ms(min(gaps)):.1f} ms ({min(gaps)} samples), median gap "
                  f"{run.ms(statistics.median(gaps)):.1f} ms")
        quarter = step / 4
        humanise = float(run.params.get("Humanise", {}).get("value", 0.0)) if args.feel else 0.0
        # Humanise plays a note up to 8 % of a step late (at 100 %).
        late = 0.08 * humanise * step + 1.0
        off_grid = [e for e in voice_ons
                    if not 0.0 <= (e["pos"] - math.floor(e["pos"] / quarter + 0.5 - 1e-9) * quarter)
                    <= late and abs(e["pos"] - round(e["pos"] / quarter) * quarter) > 1.0]
        worst = max(abs(e["pos"] - round(e["pos"] / quarter) * quarter) for e in voice_ons)
        print(f"   voice note-ons off the quarter-step grid (> 1 sample): {len(off_grid)} of "
              f"{len(voice_ons)} (worst {worst:.1f} samples)")
        print(f"   notes re-struck while sounding (no note-off between): {run.retriggers}")
        if gap_ons:
            print(f"   note-ons in non-rolling process calls between the passes (the locate): "
                  f"{len(gap_ons)}: {fmt_notes(gap_ons, rate)}")
        if gaps and min(gaps) < quarter - 1:
            i = gaps.index(min(gaps))
            print(f"   closest onsets at {onsets[i] / rate:.4f} and {onsets[i + 1] / rate:.4f} s "
                  "(engine time)")
        if not args.feel:
            check(drone <= 2, f"drone struck at most twice in the main pass ({drone})")
        if lengths:
            med = statistics.median(lengths)
            check(med >= 0.25 * step, f"median voice note >= a quarter step "
                  f"({run.ms(med):.1f} ms vs {run.ms(0.25 * step):.1f} ms)")
        if gaps and not args.feel:
            check(min(gaps) >= quarter - 1, f"no token onsets closer than a quarter step "
                  f"({run.ms(min(gaps)):.1f} ms vs {run.ms(quarter):.1f} ms)")
        check(not off_grid, f"voice note-ons on the tempo grid ({len(off_grid)} off)")

    # ---- ordering within each process call ------------------------------------------------
    by_block = defaultdict(list)
    for e in run.events:
        by_block[e["block"]].append(e["time"])
    unsorted = [b for b, times in by_block.items() if times != sorted(times)]
    print(f"-- events per process call sorted by time: {'yes' if not unsorted else 'NO'} "
          f"({len(by_block)} calls with events, {len(unsorted)} unsorted"
          + (f", first in call {unsorted[0]}" if unsorted else "") + ")")
    check(not unsorted, "events sorted within every process call")

    # ---- locate back -----------------------------------------------------------------------
    replay = [e for e in run.events if e["phase"] == "replay" and e["kind"] == "on" and e["rolling"]]
    if any(p == "replay" for p, _ in run.phases):
        end = min(span[1], max([b["transport_sample"] for b in run.phase_blocks("replay")] or [0]))
        a = [e for e in ons if e["pos"] < end]
        b = [e for e in replay if e["pos"] < end]
        print(f"-- locate back to 0 while rolling, then the same span (to {end / rate:.2f} s) again:")
        drone_b = sum(1 for e in b if e["channel"] == DRONE_CHANNEL)
        print(f"    replay: drone note-ons {drone_b}")
        check(compare(a, b, rate, "first pass", "replay"),
              "the replay after locating back plays the first pass's notes")

    # ---- stops -------------------------------------------------------------------------------
    for phase in ("stopped", "loop-stopped"):
        blocks = [b for b in run.phase_blocks(phase) if not b["rolling"]]
        if not blocks:
            continue
        evs = [e for e in run.events if e["phase"] == phase and not e["rolling"]]
        offs = sum(1 for e in evs if e["kind"] == "off")
        stopped_ons = [e for e in evs if e["kind"] == "on"]
        left = run.sounding_after(blocks[-1]["block"])
        secs = sum(b["n_samples"] for b in blocks) / rate
        print(f"-- {phase}: transport stopped at {blocks[0]['transport_sample'] / rate:.3f} s, "
              f"engine ran {secs:.1f} s: {offs} note-offs, {len(stopped_ons)} note-ons while "
              f"stopped, {len(left)} notes still on at the end"
              + (f" ({sorted(left)})" if left else " (all released)"))
        if stopped_ons:
            print(f"    note-ons while stopped: {fmt_notes(stopped_ons, rate)}")
        if args.stop_at is not None:
            check(not stopped_ons, f"{phase}: no note-ons while stopped ({len(stopped_ons)})")
            check(not left, f"{phase}: every note released ({len(left)} left on)")

    # ---- loop --------------------------------------------------------------------------------
    if args.loop:
        start, end = (round(x * rate) for x in args.loop)
        rounds, last = [[]], None
        for b in run.phase_blocks("loop"):
            if not b["rolling"]:
                continue
            if last is not None and b["transport_sample"] < last:
                rounds.append([])
            last = b["transport_sample"]
            rounds[-1].append(b["block"])
        rounds = rounds[:3]
        print(f"-- loop {args.loop[0]:g}-{args.loop[1]:g} s: {len(rounds)} rounds recorded")
        notes = [[e for e in run.events if e["block"] in set(r) and e["kind"] == "on"
                  and start <= e["pos"] < end] for r in rounds]
        for i, n in enumerate(notes):
            drone_n = sum(1 for e in n if e["channel"] == DRONE_CHANNEL)
            print(f"    round {i + 1}: {len(n)} note-ons ({drone_n} drone)")
        for i in range(1, len(notes)):
            check(compare(notes[0], notes[i], rate, "round 1", f"round {i + 1}"),
                  f"loop round {i + 1} plays round 1's notes")
        first_pass = [e for e in ons if start <= e["pos"] < end]
        if span[1] >= end and notes:
            compare(first_pass, notes[0], rate, "main pass", "round 1")
            # A jump releases everything, so the loop start strikes again what the main pass
            # held over it (the drone, a tied voice): extras are allowed there and only there.
            key = lambda n: (n["pos"], n["channel"], n["note"], n["velocity"])
            missing = Counter(map(key, first_pass)) - Counter(map(key, notes[0]))
            extra = Counter(map(key, notes[0])) - Counter(map(key, first_pass))
            late = [k for k in extra if k[0] >= start + step]
            print(f"    main pass notes missing from round 1: {sum(missing.values())}; "
                  f"round 1's extra notes: {sum(extra.values())} ({len(late)} after the loop's "
                  f"first step)")
            check(not missing and not late,
                  "loop round 1 plays the main pass's notes in that range (plus what the loop "
                  "start strikes again)")

    print("-- checks:")
    for ok, text in checks:
        print(f"   [{'ok' if ok else 'FAIL'}] {text}")
    return 0 if all(ok for ok, _ in checks) else 3


if __name__ == "__main__":
    raise SystemExit(main())
