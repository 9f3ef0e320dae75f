#!/usr/bin/env python3
"""Latent Choir in Carla, headless: the CLAP or VST3 build on Carla's engine over JACK's dummy
driver, its MIDI output recorded with `jack_midi_dump`.

By hand, not CI. Needs a Carla built from its public source (`make backend` in a checkout of
github.com/falkTX/Carla; this script only uses the checkout, it copies nothing from it), `jackd`
and the JACK example clients (Debian `jackd2`), `python3`, and a bundle
(`cargo xtask bundle latent_choir --release`). The plugin plays its default model
(`cargo xtask fetch-model`; without a cached PCA map it fits one first, a minute or more).

    tools/daw/carla_check.py --carla ~/src/Carla --format clap
    tools/daw/carla_check.py --carla ~/src/Carla --format vst3 --seconds 30

What it does:

1. starts a private JACK server (`jackd -n latent-choir-carla -d dummy`, 48 kHz, 512-frame
   blocks) and `jack_midi_dump` on it;
2. loads `libcarla_standalone2.so` through Carla's own ctypes wrapper
   (`source/frontend/carla_backend.py`), starts its JACK engine (one JACK client per plugin,
   Carla's internal transport at `--bpm`) and adds the plugin;
3. writes every parameter as Carla shows it (`params.tsv`: name, value, text; the round trip of
   each text through the plugin's own conversion is checked by the repository's tests);
4. connects the plugin's MIDI output to the dump (absolute frames), sets Ornaments, Humanise
   and Swing to 0 (every note-on on the grid), turns Generate on, waits for the first
   note (at most `--wait` seconds), plays `--seconds` more and stops, and counts what came out: note-ons and offs per channel, ons without offs, and the
   spacing of note-ons against the beat grid (Tokens per Beat);
5. saves the project, removes the plugin, loads the project and compares every parameter value.

Prints a summary; the JACK, Carla and dump logs stay in `--out` (default a fresh folder under
/tmp).
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = "latent-choir-carla"
RATE = 48_000
BLOCK = 512
CLAP_ID = "org.latent-choir.latent-choir"


def start_jack(out: Path) -> subprocess.Popen:
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    log = open(out / "jackd.log", "w")
    jack = subprocess.Popen(
        ["jackd", "-n", SERVER, "-d", "dummy", "-r", str(RATE), "-p", str(BLOCK)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    subprocess.run(["jack_wait", "-s", SERVER, "-w", "-t", "10"], check=True, env=env)
    return jack


def jack_env() -> dict:
    return dict(os.environ, JACK_DEFAULT_SERVER=SERVER, JACK_NO_AUDIO_RESERVATION="1")


def ports() -> list:
    listing = subprocess.run(["jack_lsp"], capture_output=True, text=True, env=jack_env())
    return [line.strip() for line in listing.stdout.splitlines() if line.strip()]


def load_carla(carla: Path):
    frontend = carla / "source" / "frontend"
    sys.path.insert(0, str(frontend))
    import carla_backend as cb  # noqa: E402  (Carla's own wrapper, from the checkout)

    library = carla / "bin" / "libcarla_standalone2.so"
    if not library.exists():
        sys.exit(f"{library} is missing: run `make backend` in {carla}")
    host = cb.CarlaHostDLL(str(library), False)
    host.set_engine_option(cb.ENGINE_OPTION_PROCESS_MODE, cb.ENGINE_PROCESS_MODE_MULTIPLE_CLIENTS, "")
    host.set_engine_option(cb.ENGINE_OPTION_TRANSPORT_MODE, cb.ENGINE_TRANSPORT_MODE_INTERNAL, "")
    host.set_engine_option(cb.ENGINE_OPTION_PATH_BINARIES, 0, str(carla / "bin"))
    host.set_engine_option(cb.ENGINE_OPTION_PATH_RESOURCES, 0, str(carla / "resources"))
    return cb, host


def parameters(host, plugin_id: int) -> list:
    """(index, name, value, text) of every input parameter."""
    result = []
    for index in range(host.get_parameter_count(plugin_id)):
        info = host.get_parameter_info(plugin_id, index)
        value = host.get_current_parameter_value(plugin_id, index)
        result.append((index, info["name"], value, host.get_parameter_text(plugin_id, index)))
    return result


def index_of(params: list, name: str) -> int:
    for index, title, _, _ in params:
        if title == name:
            return index
    sys.exit(f"no parameter named {name!r}")


def read_dump(path: Path) -> list:
    """(frame, status, data1, data2) of every event `jack_midi_dump` printed."""
    events = []
    pattern = re.compile(r"^\s*(\d+):\s*([0-9a-fA-F]{2})\s+([0-9a-fA-F]{2})\s+([0-9a-fA-F]{2})")
    for line in path.read_text(errors="replace").splitlines():
        match = pattern.match(line)
        if match:
            frame, status, one, two = match.groups()
            events.append((int(frame), int(status, 16), int(one, 16), int(two, 16)))
    return events


def summarize(events: list, bpm: float, per_beat: float) -> dict:
    sounding = {}
    ons, offs, orphans = 0, 0, 0
    channels = {}
    on_frames = []
    for frame, status, key, velocity in events:
        kind, channel = status & 0xF0, status & 0x0F
        if kind == 0x90 and velocity > 0:
            ons += 1
            channels[channel + 1] = channels.get(channel + 1, 0) + 1
            sounding[(channel, key)] = sounding.get((channel, key), 0) + 1
            on_frames.append(frame)
        elif kind == 0x80 or (kind == 0x90 and velocity == 0):
            offs += 1
            if sounding.get((channel, key), 0) > 0:
                sounding[(channel, key)] -= 1
            else:
                orphans += 1
    step = RATE * 60.0 / bpm / per_beat
    off_grid = 0
    if on_frames:
        first = on_frames[0]
        for frame in on_frames:
            phase = ((frame - first) / step) % 1.0
            if min(phase, 1.0 - phase) * step > 1.0:
                off_grid += 1
    return {
        "note_ons": ons,
        "note_offs": offs,
        "offs_without_on": orphans,
        "still_sounding": sum(sounding.values()),
        "ons_per_channel": dict(sorted(channels.items())),
        "ons_off_the_grid": off_grid,
        "grid_step_frames": step,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carla", type=Path, required=True, help="the Carla checkout, built with `make backend`")
    parser.add_argument("--format", choices=["clap", "vst3"], default="clap")
    parser.add_argument("--bundle", type=Path, help="default: target/bundled/Latent Choir.<format>")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to play after Generate is on")
    parser.add_argument("--wait", type=float, default=300.0, help="longest wait for the first note")
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--out", type=Path, help="where the logs go (default: a new folder under /tmp)")
    args = parser.parse_args()

    repo = Path(__file__).resolve().parents[2]
    bundle = args.bundle or repo / "target" / "bundled" / f"Latent Choir.{args.format}"
    if not bundle.exists():
        sys.exit(f"{bundle} is missing: cargo xtask bundle latent_choir --release")
    out = args.out or Path(tempfile.mkdtemp(prefix="carla-check-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"logs in {out}")

    jack = start_jack(out)
    dump = None
    try:
        os.environ.update(jack_env())
        cb, host = load_carla(args.carla)
        if not host.engine_init("JACK", "Carla"):
            print("engine_init failed:", host.get_last_error())
            return 1
        host.transport_bpm(args.bpm)
        kind = cb.PLUGIN_CLAP if args.format == "clap" else cb.PLUGIN_VST3
        label = CLAP_ID if args.format == "clap" else ""
        if not host.add_plugin(cb.BINARY_NATIVE, kind, str(bundle), "Latent Choir", label, 0, None, 0):
            print("add_plugin failed:", host.get_last_error())
            return 1
        plugin_id = 0
        host.set_active(plugin_id, True)
        for _ in range(50):
            host.engine_idle()
            time.sleep(0.02)

        params = parameters(host, plugin_id)
        with open(out / "params.tsv", "w") as tsv:
            tsv.write("index\tname\tvalue\ttext\n")
            for index, name, value, text in params:
                tsv.write(f"{index}\t{name}\t{value}\t{text}\n")
        print(f"{len(params)} parameters; Tokens per Beat shows "
              f"{params[index_of(params, 'Tokens per Beat')][3]!r}")

        dump_log = open(out / "midi_dump.txt", "w")
        dump = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", "latent-choir-dump"], stdout=dump_log,
                                stderr=subprocess.STDOUT, env=jack_env())
        time.sleep(1.0)
        outputs = [p for p in ports() if "Latent Choir" in p and "events-out" in p]
        inputs = [p for p in ports() if p.startswith("latent-choir-dump:")]
        print("plugin MIDI outputs:", outputs, "dump inputs:", inputs)
        for source in outputs:
            for sink in inputs:
                subprocess.run(["jack_connect", source, sink], env=jack_env(), check=False)

        # Every note-on on the grid: no ornaments (between steps), no humanise, no swing.
        for name in ("Ornaments", "Humanise", "Swing"):
            host.set_parameter_value(plugin_id, index_of(params, name), 0.0)
        host.set_parameter_value(plugin_id, index_of(params, "Generate"), 1.0)
        host.transport_play()
        # The model loads (and its map is fitted, the first time) on the plugin's worker.
        began = time.time()
        while not read_dump(out / "midi_dump.txt"):
            if time.time() - began > args.wait:
                print(f"no MIDI after {args.wait} s")
                break
            host.engine_idle()
            time.sleep(0.05)
        print(f"first MIDI after {time.time() - began:.1f} s")
        began = time.time()
        while time.time() - began < args.seconds:
            host.engine_idle()
            time.sleep(0.02)
        host.transport_pause()
        for _ in range(50):
            host.engine_idle()
            time.sleep(0.02)
        host.set_parameter_value(plugin_id, index_of(params, "Generate"), 0.0)
        for _ in range(50):
            host.engine_idle()
            time.sleep(0.02)

        # The project round trip: every value comes back.
        project = out / "session.carxp"
        before = {name: value for _, name, value, _ in parameters(host, plugin_id)}
        host.save_project(str(project))
        host.remove_all_plugins()
        for _ in range(10):
            host.engine_idle()
            time.sleep(0.02)
        restored_ok = host.load_project(str(project))
        for _ in range(50):
            host.engine_idle()
            time.sleep(0.02)
        after = {name: value for _, name, value, _ in parameters(host, 0)} if restored_ok else {}
        differing = [name for name in before if abs(before[name] - after.get(name, float("nan"))) > 1e-6
                     or name not in after]
        host.engine_close()
    finally:
        if dump is not None:
            dump.send_signal(signal.SIGINT)
            try:
                dump.wait(timeout=5)
            except subprocess.TimeoutExpired:
                dump.kill()
        jack.send_signal(signal.SIGTERM)
        try:
            jack.wait(timeout=5)
        except subprocess.TimeoutExpired:
            jack.kill()

    per_beat_text = params[index_of(params, "Tokens per Beat")][3]
    per_beat = 2.0
    try:
        whole, _, fraction = per_beat_text.partition(" ")
        if "/" in whole:
            a, b = whole.split("/")
            per_beat = float(a) / float(b)
        else:
            per_beat = float(whole)
            if fraction:
                a, b = fraction.split("/")
                per_beat += float(a) / float(b)
    except ValueError:
        pass
    summary = summarize(read_dump(out / "midi_dump.txt"), args.bpm, per_beat)
    print(f"format {args.format}, {args.seconds} s at {args.bpm} BPM, Tokens per Beat {per_beat_text}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    print(f"  project round trip: {len(before)} values, {len(differing)} differ {differing[:5]}")
    return 0 if summary["note_ons"] > 0 and summary["still_sounding"] == 0 and not differing else 2


if __name__ == "__main__":
    sys.exit(main())
