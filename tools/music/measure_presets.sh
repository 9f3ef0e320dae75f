#!/usr/bin/env bash
# Renders the four measure prompts with every factory preset (100 BPM, 16 bars, seed 1) and
# prints tools/music/measure.py's numbers for each (by hand; the musicality issue's table).
#
#   tools/music/measure_presets.sh [OUT_DIR] [PYTHON]
#
# PYTHON needs numpy, mido, pyloudnorm and soundfile (see measure.py).
set -euo pipefail
out=${1:-target/measure}
python=${2:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release --bin latent-choir 2>&1 | tail -1
bin=target/release/latent-choir
mkdir -p "$out"
declare -A prompts=(
  [forest]="The forest was silent."
  [city]="Describe a busy city street at night."
  [cook]="How do I make bread at home?"
  [sea]="Write a short poem about the sea."
)
mapfile -t keys < <("$bin" render --prompt x --preset list | cut -d' ' -f1)
for key in "${keys[@]}"; do
  echo "== $key"
  runs=()
  for name in forest city cook sea; do
    "$bin" render --prompt "${prompts[$name]}" --bpm 100 --bars 16 --seed 1 \
      --preset "$key" --out "$out/$key-$name.wav" >/dev/null 2>"$out/$key-$name.log" ||
      { cat "$out/$key-$name.log"; exit 1; }
    runs+=("$out/$key-$name")
  done
  "$python" tools/music/measure.py "${runs[@]}"
done
