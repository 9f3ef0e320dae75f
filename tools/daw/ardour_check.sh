#!/usr/bin/env bash
# Latent Choir in a real DAW, headless: Ardour 7 (Debian `ardour`) on its "None (Dummy)" backend.
#
# Usage: tools/daw/ardour_check.sh [options]
#   --bundle PATH       VST3 bundle (default: target/bundled/Latent Choir.vst3); it is copied to
#                       WORKDIR/vst3/ first, so a rebuild cannot change it under Ardour
#   --bpm BPM           session tempo (default 120)
#   --seconds N         roll N seconds after the first note-on (default 20)
#   --block N           frames per process call (default 1024)
#   --rate HZ           sample rate (default 48000)
#   --stop-at S         stop the transport at S seconds on the timeline (instead of N seconds after
#                       the first note); the engine always runs 3 s more after a stop
#   --locate-back       at the end of the pass, locate back to 0 while rolling and play the same
#                       span again; compare both passes' notes by timeline position
#   --loop START END    afterwards, loop START..END (seconds) three times; compare the rounds
#   --feel              keep the plugin's Humanise and moving bass (by default the check sets
#                       Humanise 0 and Bass to Held Drone, so notes sit exactly on the grid and
#                       the drone is struck once); the grid check then allows the humanised
#                       window and the drone check is left out
#   --listen            turn Listen on (every bar): the model reads a line of what the track sounds
#                       like at every bar; the grid, replay and loop checks must still hold
#   --wait S            longest wait for the first note-on after rolling (default 240: the model
#                       loads, and the PCA map is fitted if it is not cached)
#   --workdir DIR       scratch folder (default /tmp/ardour-check); the session, Ardour's config
#                       and the recorded TSV files go to DIR/run-*/, which is kept
#   --verbose           show all of Ardour's and the plugin's output (always in DIR/run-*/ardour.log)
#
# Example: tools/daw/ardour_check.sh --bpm 140.625 --seconds 20 --locate-back --loop 4 8
#
# Prints a summary (see tools/daw/README.md). Exit status: 0 every check passed, 3 some check
# failed, 1 Ardour (or the set-up) failed. Needs: ardour (7.x, /usr/lib/ardour7), python3, the default model
# (cargo xtask fetch-model also fits its PCA map, which the plugin otherwise fits on first use).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bundle="$root/target/bundled/Latent Choir.vst3"
bpm=120 seconds=20 block=1024 rate=48000 wait=240 tail=3
stop_at="" locate_back=0 loop_start="" loop_end="" verbose=0 listen=0 feel=0
workdir=/tmp/ardour-check
ardour_lib=/usr/lib/ardour7

while [ $# -gt 0 ]; do
	case "$1" in
		--bundle) bundle="$2"; shift 2 ;;
		--bpm) bpm="$2"; shift 2 ;;
		--seconds) seconds="$2"; shift 2 ;;
		--block) block="$2"; shift 2 ;;
		--rate) rate="$2"; shift 2 ;;
		--stop-at) stop_at="$2"; shift 2 ;;
		--locate-back) locate_back=1; shift ;;
		--listen) listen=1; shift ;;
		--feel) feel=1; shift ;;
		--loop) loop_start="$2"; loop_end="$3"; shift 3 ;;
		--wait) wait="$2"; shift 2 ;;
		--workdir) workdir="$2"; shift 2 ;;
		--verbose) verbose=1; shift ;;
		-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		*) echo "ardour_check: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

[ -x "$ardour_lib/luasession" ] || { echo "ardour_check: no $ardour_lib/luasession (apt-get install ardour)" >&2; exit 1; }
[ -d "$bundle" ] || { echo "ardour_check: no VST3 bundle at $bundle (cargo xtask bundle latent_choir --release)" >&2; exit 1; }
data_home="${XDG_DATA_HOME:-$HOME/.local/share}" cache_home="${XDG_CACHE_HOME:-$HOME/.cache}"
ls "$data_home"/latent-choir/models/*.gguf >/dev/null 2>&1 \
	|| echo "ardour_check: warning: no model in $data_home/latent-choir/models (cargo xtask fetch-model)" >&2
ls "$cache_home"/latent-choir/maps/* >/dev/null 2>&1 \
	|| echo "ardour_check: warning: no PCA map cached; the plugin fits one first (a minute or more)" >&2

# A private copy of the bundle, scanned into Ardour's VST3 cache (luasession only reads the cache).
mkdir -p "$workdir"
run="$(mktemp -d "$workdir/run-XXXXXX")"
mkdir -p "$run/vst3" "$run/config/ardour7/scripts" "$run/out"
name="$(basename "$bundle" .vst3)"
cp -r "$bundle" "$run/vst3/"
# Ardour trusts its scan cache only if it is newer than the module, comparing below the second,
# while the scanner stamps the cache with whole seconds: date the copy back a little.
find "$run/vst3" -exec touch -h -d '-5 seconds' {} +
cp "$here/midi_recorder.lua" "$run/config/ardour7/scripts/"
echo "ardour_check: bundle $bundle (copied to $run/vst3/)"
LD_LIBRARY_PATH="$ardour_lib" "$ardour_lib/ardour-vst3-scanner" -f -q "$run/vst3/$name.vst3" \
	|| { echo "ardour_check: the VST3 scanner failed on the bundle" >&2; exit 1; }

# luasession as Debian's ardour7-lua wrapper runs it, with a private Ardour config folder (which
# holds the recorder script); stdout line-buffered so a crash does not swallow the log.
args=(out="$run/out" session="$run/session" vst3_path="$run/vst3" plugin_name="$name"
	rate="$rate" block="$block" bpm="$bpm" seconds="$seconds" wait="$wait" tail="$tail"
	locate_back="$locate_back" listen="$listen" feel="$feel")
[ -n "$stop_at" ] && args+=(stop_at="$stop_at")
[ -n "$loop_start" ] && args+=(loop_start="$loop_start" loop_end="$loop_end")
log="$run/ardour.log"
echo "ardour_check: Ardour at $rate Hz, $block-frame blocks, $bpm BPM (log: $log)"
set +e
(
	export LD_LIBRARY_PATH="$ardour_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	export ARDOUR_DATA_PATH=/usr/share/ardour7 ARDOUR_CONFIG_PATH=/etc/ardour7
	export ARDOUR_DLL_PATH="$ardour_lib" VAMP_PATH="$ardour_lib/vamp"
	export XDG_CONFIG_HOME="$run/config"
	stdbuf -oL "$ardour_lib/luasession" "$here/ardour_check.lua" "${args[@]}" </dev/null 2>&1
) | if [ "$verbose" = 1 ]; then tee "$log"; else tee "$log" | grep --line-buffered '^\[ardour\]\|ERROR\|Error\|FATAL'; fi
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ] || [ ! -s "$run/out/events.tsv" ]; then
	echo "ardour_check: Ardour failed (exit status $status); see $log" >&2
	exit 1
fi

status=0
python3 "$here/summarize.py" "$run/out" --bpm "$bpm" --rate "$rate" --block "$block" \
	$([ "$feel" = 1 ] && echo --feel) ${stop_at:+--stop-at "$stop_at"} ${loop_start:+--loop "$loop_start" "$loop_end"} || status=$?
echo "ardour_check: recorded events in $run/out/ (events.tsv, blocks.tsv, phases.tsv, params.tsv)"
exit "$status"
