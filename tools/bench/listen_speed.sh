#!/usr/bin/env bash
# How fast `latent-choir listen` hears a 3-minute song (the target: 50× real time on 2 cores).
# The song is rendered by this project (90 bars at 120 BPM on the GM SoundFont, 48 kHz stereo),
# so the benchmark needs nothing from outside.
#
#   cargo xtask fetch-model && cargo build --release --bin latent-choir
#   tools/bench/listen_speed.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$here/target/release/latent-choir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$cli" render --prompt "Describe a long walk by the sea." --bars 90 --bpm 120 --seed 2 \
    --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 --out "$work/song.wav" >/dev/null
for run in 1 2 3; do
    "$cli" listen "$work/song.wav" --out "$work/song.ndjson" --midi "$work/song.mid" \
        --json-report "$work/report.json"
    python3 - "$work/report.json" "$run" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
song = r["inputs"][0]
key = song["key"]["name"] if song["key"] else None
print(f"run {sys.argv[2]}: {r['audio_s']:.1f} s of audio in {r['run_time_s']:.2f} s: "
      f"{r['real_time_factor']}x real time, {len(song['notes'])} notes, key {key}")
PY
done
