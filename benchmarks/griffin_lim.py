"""Griffin-Lim from log-mel: emogan_utils.inversion against librosa's mel_to_audio.

Both invert the same batch of 4-second log-mels with the same STFT, filterbank and number of
Griffin-Lim iterations, in this one process. Prints the best of a few runs in seconds, the
speed ratio and the spectral convergence (SC) of each result against the original clips'
magnitude. Target: the package at least 10x faster with SC no worse.

librosa's FFTs run on one thread whatever the machine; torch uses every core by default. The
package is timed on one torch thread (like for like) and on torch's default thread count (what
a user gets: the batch spread over one worker thread per core), each time against the same
librosa run; with more than one thread, the same batch is also timed in one call on torch's
intra-op threads (how the package ran before). Each time is then split into the package's own
stage (mel to linear power: least squares and NNLS updates) and torchaudio's ``GriffinLim``,
which bounds the ratio the package can reach.

    python benchmarks/griffin_lim.py [--clips 8] [--n-iter 32] [--nnls-iter 30] [--repeats 3]

Clips come from real RAVDESS (``EMOGAN_RAVDESS``, default ../shared/ravdess/16k) when present,
otherwise synthetic harmonic signals with a moving pitch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import librosa
import numpy as np
import torch

from emogan_utils.config import real_ravdess
from emogan_utils.features import AudioConfig, db_to_power, load_audio, log_mel
from emogan_utils.inversion import MelInverter, griffin_lim, waveform_spectral_convergence
from emogan_utils.threads import map_batch



def synthetic_clip(config: AudioConfig, rng: np.random.Generator) -> np.ndarray:
    """A voice-like harmonic signal: gliding f0, 1/k harmonics, syllable-rate envelope."""
    t = np.arange(config.n_samples) / config.sample_rate
    f0 = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / config.sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 30) if k * f0.max() < config.f_max)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None)
    return (0.1 * envelope * harmonics).astype(np.float32)


def load_clips(n: int, config: AudioConfig) -> tuple[np.ndarray, str]:
    """``n`` clips of ``config.duration`` seconds, real when available, and where they came from."""
    files = sorted(real_ravdess().glob("Actor_*/*.flac"))
    if files:
        pick = np.linspace(0, len(files) - 1, n).astype(int)
        return (np.stack([load_audio(files[i], config) for i in pick]),
                f"RAVDESS ({real_ravdess()})")
    rng = np.random.default_rng(0)
    return np.stack([synthetic_clip(config, rng) for _ in range(n)]), "synthetic harmonic"


def librosa_inversion(mel_db: np.ndarray, config: AudioConfig, n_iter: int) -> np.ndarray:
    """librosa's mel_to_audio with the package's STFT and filterbank, seeded."""
    np.random.seed(0)  # librosa starts Griffin-Lim from random phases
    return librosa.feature.inverse.mel_to_audio(
        librosa.db_to_power(mel_db), sr=config.sample_rate, n_fft=config.n_fft,
        hop_length=config.hop_length, win_length=config.n_fft, center=True, pad_mode="constant",
        power=2.0, n_iter=n_iter, length=config.n_samples, fmin=config.f_min, fmax=config.f_max,
        htk=False, norm="slaney")


def best_time(repeats: int, run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Fastest of ``repeats`` runs (the least disturbed by other jobs) and its result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def split_times(repeats: int, mel_db: np.ndarray, inverter: MelInverter) -> tuple[float, float]:
    """Fastest seconds of the package's two stages: mel to linear power, then torchaudio's
    ``GriffinLim`` on the magnitude."""
    mel_power = db_to_power(torch.from_numpy(mel_db))
    with torch.no_grad():  # each spread over the cores as MelInverter.forward spreads a batch
        power_s, power = best_time(repeats, lambda: map_batch(inverter.linear_power, mel_power))
        loop_s, _ = best_time(repeats, lambda: map_batch(inverter.griffin_lim, power.sqrt()))
    return power_s, loop_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--n-iter", type=int, default=32)
    parser.add_argument("--nnls-iter", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="report the fastest run")
    args = parser.parse_args()

    config = replace(AudioConfig(), duration=4.0)
    waves, source = load_clips(args.clips, config)
    mel_db = log_mel(waves, config)
    print(f"{args.clips} x {config.duration:.0f} s clips from {source}; log-mel {mel_db.shape}; "
          f"{args.n_iter} Griffin-Lim iterations")

    theirs_s, theirs = best_time(args.repeats,
                                 lambda: librosa_inversion(mel_db, config, args.n_iter))
    sc_theirs = waveform_spectral_convergence(waves, theirs, config)
    print(f"librosa.feature.inverse.mel_to_audio:  {theirs_s:7.2f} s  SC {sc_theirs:.3f}")

    inverter = MelInverter(config, args.n_iter, length=config.n_samples, nnls_iter=args.nnls_iter)
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        ours_s, ours = best_time(args.repeats, lambda: griffin_lim(
            mel_db, config, n_iter=args.n_iter, length=config.n_samples,
            nnls_iter=args.nnls_iter).numpy())
        sc_ours = waveform_spectral_convergence(waves, ours, config)
        print(f"emogan_utils.inversion.griffin_lim (nnls_iter={args.nnls_iter}), "
              f"{threads} torch thread(s): {ours_s:7.2f} s  SC {sc_ours:.3f}; "
              f"speed ratio {theirs_s / ours_s:.1f}x; SC difference (ours - librosa) "
              f"{sc_ours - sc_theirs:+.3f}")
        power_s, loop_s = split_times(args.repeats, mel_db, inverter)
        print(f"  of which mel -> linear power {power_s:.2f} s, torchaudio's GriffinLim "
              f"{loop_s:.2f} s (librosa's time over GriffinLim alone: {theirs_s / loop_s:.1f}x)")
        if threads > 1:
            with torch.no_grad():
                one_call_s, _ = best_time(args.repeats,
                                          lambda: inverter.invert(torch.from_numpy(mel_db)))
            print(f"  the same batch in one call on {threads} intra-op threads (what the "
                  f"package did before it spread batches over worker threads): {one_call_s:.2f} s")
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
