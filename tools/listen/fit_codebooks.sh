#!/usr/bin/env bash
# Refits `listen`'s residual-VQ codebooks (assets/listen/codebooks-v1.safetensors) by hand.
#
# The reference audio is made by this project: three pieces rendered by the default model with
# the built-in synth, each replayed on the General MIDI SoundFont in other scales and
# instruments (Debian's TimGM6mb.sf2, from the `timgm6mb-soundfont` package). Renders are
# deterministic, so the same build gives the same codebooks.
#
#   cargo xtask fetch-model && cargo build --release --bin latent-choir
#   tools/listen/fit_codebooks.sh [OUT]
#
# Changing the codebooks changes every token: give a new file a new id (--id) and name.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$here/target/release/latent-choir"
out="${1:-$here/assets/listen/codebooks-v1.safetensors}"
sf2=/usr/share/sounds/sf2/TimGM6mb.sf2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

render() { # name prompt bpm seed
    "$cli" render --prompt "$2" --bpm "$3" --seed "$4" --bars 16 --out "$work/$1.wav" >/dev/null
}
render forest "The forest was silent." 100 1
render city "Describe a busy city street at night." 128 7
render sea "Write a short poem about the sea." 72 3

replay() { # source name params...
    local source=$1 name=$2
    shift 2
    "$cli" replay "$work/$source.lcrun" --soundfont "$sf2" --out "$work/$name.wav" "$@" >/dev/null
}
replay forest forest-gm --param scale=Dorian --param root=D
replay city city-gm --param "scale=Natural Minor" --param root=A --param program_1=0 --param program_2=24
replay sea sea-gm --param scale=Lydian --param root=F --param program_1=40 --param program_2=56

"$cli" fit-codebooks "$work"/*.wav --out "$out" --id lc-rvq-v1
