"""Time and peak memory of translating long clips, on each vocoder.

Each clip length and vocoder runs ``Translator(...)(clip, "angry")``, what ``emogan translate``
runs, in a fresh Python process, so that the peak resident set size (``ru_maxrss``) is that
translation's and not an earlier one's. The clip is a voice-like harmonic signal (gliding F0,
syllable-rate envelope) of the given length; the generator is an untrained one of the default
size (a trained one costs the same), or ``--generator``'s checkpoint. Prints a table, then one
JSON line with every figure.

    python benchmarks/long_clips.py [--seconds 10,30,60,120,240,300] [--vocoders world,griffin-lim]
                                    [--generator gan.pt] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def voice_like(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A harmonic signal with a gliding F0 and a syllable-rate envelope, ``seconds`` long."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None)
    return (0.1 * envelope * harmonics).astype(np.float32)


def untrained_generator(path: Path) -> Path:
    """An untrained GAN checkpoint of the default size at ``path``."""
    from dataclasses import asdict

    import torch

    from emogan_utils.checkpoint import save_checkpoint
    from emogan_utils.features import AudioConfig, Normalizer
    from emogan_utils.models import DiscriminatorConfig, GeneratorConfig, UNetGenerator

    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig())
    return save_checkpoint(path, kind="gan", audio=AudioConfig(),
                           model_config={"generator": asdict(GeneratorConfig()),
                                         "discriminator": asdict(DiscriminatorConfig())},
                           state={"generator": generator.state_dict()},
                           normalizer=Normalizer(np.array([-80.0]), np.array([80.0]), clip=True))


def translate_once(generator: str, seconds: float, vocoder: str) -> dict:
    """Translate one ``seconds``-long clip in this process; its time and this process's peak
    resident memory in MiB."""
    import soundfile as sf

    from emogan_utils.inference import Translator

    translator = Translator(generator, vocoder=vocoder)
    rate = translator.audio.sample_rate
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.wav"
        sf.write(clip, voice_like(seconds, rate), rate)
        start = time.perf_counter()
        wave = translator(clip, "angry")
        elapsed = time.perf_counter() - start
    return {"seconds_of_audio": seconds, "vocoder": vocoder, "time_s": round(elapsed, 2),
            "output_s": round(len(wave) / rate, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure(generator: str, seconds: float, vocoder: str, threads: int) -> dict:
    """:func:`translate_once` in a fresh process (its own peak memory)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--one", str(seconds), vocoder,
                           "--generator", generator], capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode:
        return {"seconds_of_audio": seconds, "vocoder": vocoder,
                "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="10,30,60,120,240,300")
    parser.add_argument("--vocoders", default="world,griffin-lim")
    parser.add_argument("--generator", help="GAN checkpoint (default: an untrained one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("SECONDS", "VOCODER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(translate_once(args.generator, float(args.one[0]), args.one[1])))
        return
    with tempfile.TemporaryDirectory() as folder:
        generator = args.generator or str(untrained_generator(Path(folder) / "gan.pt"))
        rows = [measure(generator, float(s), vocoder, args.threads)
                for vocoder in args.vocoders.split(",") for s in args.seconds.split(",")]
    print(f"{'clip s':>7} {'vocoder':>12} {'time s':>8} {'peak RSS MiB':>13}")
    for row in rows:
        if "error" in row:
            print(f"{row['seconds_of_audio']:>7g} {row['vocoder']:>12} error: {row['error']}")
        else:
            print(f"{row['seconds_of_audio']:>7g} {row['vocoder']:>12} {row['time_s']:>8.2f} "
                  f"{row['peak_rss_mib']:>13.1f}")
    print(json.dumps({"threads": args.threads, "results": rows}))


if __name__ == "__main__":
    main()
