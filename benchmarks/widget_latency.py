"""Benchmark: how long the emotion switch takes to show one choice of a 4-second clip.

    python benchmarks/widget_latency.py [--checkpoints DIR] [--data DIR] [--clips N]
        [--griffin-lim-iters N] [--torch-threads N|0] [--vocoder world|griffin-lim]

Loads classifier.pt and gan.pt from the checkpoints folder (default EMOGAN_WORK/checkpoints),
joins two corpus recordings into 4-s clips and passes them in as uploads, then times, per clip:
a new clip (analysis + translation + rendering), a new target for the same clip, and the same
choice again (the cache), through ``--vocoder`` (default: the package's). Targets: a new choice
within ~2 s on a laptop CPU, and a conversion of a 4-s clip within 1.5 s; a repeated
choice costs nothing. ``--torch-threads 0`` leaves torch's own thread setting. Prints a JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from emogan_utils.config import DEFAULT_VOCODER, VOCODERS, Paths
from emogan_utils.data import load_corpus
from emogan_utils.features import AudioConfig, load_audio
from emogan_utils.synth import default_corpus
from emogan_utils.switch import SwitchConfig, load_engine, upload_source

SECONDS = 4.0


def four_second_clip(paths: list[str], config: AudioConfig) -> bytes:
    """Two recordings back to back, cut to 4 s, as WAV bytes (what an upload delivers)."""
    wave = np.concatenate([load_audio(p, config, trim=False, fixed_length=False) for p in paths])
    wave = wave[:int(SECONDS * config.sample_rate)]
    buffer = io.BytesIO()
    sf.write(buffer, wave, config.sample_rate, format="WAV")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, default=Paths.from_env().checkpoints)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--griffin-lim-iters", type=int, default=SwitchConfig.griffin_lim_iters)
    parser.add_argument("--torch-threads", type=int, default=SwitchConfig.torch_threads)
    parser.add_argument("--vocoder", choices=VOCODERS, default=DEFAULT_VOCODER)
    args = parser.parse_args()

    config = SwitchConfig(griffin_lim_iters=args.griffin_lim_iters,
                          torch_threads=args.torch_threads or None, vocoder=args.vocoder)
    engine = load_engine(args.checkpoints, config)
    table = load_corpus(args.data or default_corpus())
    files = list(table["path"].sample(2 * (args.clips + 1), random_state=0))
    sources = [upload_source(f"clip{i}.wav", four_second_clip(files[2 * i:2 * i + 2],
                                                              engine.translator.audio), 8.0)
               for i in range(args.clips + 1)]
    engine.result(sources[0], "angry", 1.0)  # warm-up: inverters, fonts, first allocations
    times: dict[str, list[float]] = {"new clip": [], "new target": [], "same choice": []}
    for source in sources[1:]:
        for name, target, strength in (("new clip", "angry", 1.0), ("new target", "sad", 0.7),
                                       ("same choice", "angry", 1.0)):
            start = time.perf_counter()
            engine.result(source, target, strength)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:>12}: median {statistics.median(values):.2f} s, max {max(values):.2f} s")
    print(json.dumps({
        "seconds_of_audio": SECONDS, "vocoder": config.vocoder,
        "griffin_lim_iters": config.griffin_lim_iters,
        "torch_threads": config.torch_threads, "computed": dict(engine.computed),
        "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "max_s": {k: round(max(v), 3) for k, v in times.items()},
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
