"""Benchmark 1: whole-corpus feature extraction, emogan's batched cached pipeline against the
plain per-file librosa loop a user would otherwise write, in one process on one machine.

    python benchmarks/feature_extraction.py [--data DIR] [--limit N] [--stages]

Prints seconds for the librosa loop, emogan's first (cold cache) run and its cached re-run
(median of five; the first re-run in a process pays page faults for fresh memory), the
speed-ups, and the largest difference between the two feature sets (same parameters). Every
figure includes the per-bin standardisation, fitted on the features.

``--stages`` first times each step of a first run on its own, one file or batch after another
on one thread (what the threads of ``extract_features`` share out), with librosa's trim beside
the package's.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import librosa
import numpy as np
import torch

from emogan_utils.data import default_corpus, load_corpus
from emogan_utils.features import (BATCH_SIZE, AudioConfig, FeatureCache, LogMel, Normalizer,
                                   extract_features, read_audio, resample,
                                   stack_fixed_length, trim_silence)


def librosa_loop(paths, config: AudioConfig) -> np.ndarray:
    """What a user writes without emogan: load, resample, trim, pad, mel, dB, file by file."""
    out = []
    for path in paths:
        wave, _ = librosa.load(path, sr=config.sample_rate, mono=True, res_type="soxr_hq")
        wave, _ = librosa.effects.trim(wave, top_db=config.trim_db, frame_length=1024, hop_length=256)
        wave = librosa.util.fix_length(wave, size=config.n_samples)
        mel = librosa.feature.melspectrogram(
            y=wave, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            n_mels=config.n_mels, fmin=config.f_min, fmax=config.f_max, pad_mode="constant")
        out.append(librosa.power_to_db(mel, ref=1.0, amin=10 ** (config.db_floor / 10), top_db=None))
    return np.stack(out)


def standardised(features: np.ndarray) -> np.ndarray:
    """What both sides end with: per-bin standardisation fitted on the features themselves."""
    return Normalizer.fit_standard(features)(features)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def stage_times(paths, config: AudioConfig) -> tuple[dict[str, float], int]:
    """Seconds of each first-run step over ``paths``, one after another on one torch thread,
    and in how many files the package's trim cut the same samples as librosa's."""
    times: dict[str, float] = {}
    decoded, times["decode"] = timed(lambda: [read_audio(path) for path in paths])
    waves, times["resample"] = timed(lambda: [resample(w, rate, config.sample_rate)
                                              for w, rate in decoded])
    theirs, times["trim (librosa.effects.trim, for comparison)"] = timed(lambda: [
        librosa.effects.trim(w, top_db=config.trim_db, frame_length=1024, hop_length=256)[0]
        for w in waves])
    trimmed, times["trim"] = timed(lambda: [trim_silence(w, config.trim_db) for w in waves])
    same = sum(np.array_equal(a, b) for a, b in zip(trimmed, theirs))
    starts = range(0, len(trimmed), BATCH_SIZE)
    batches, times["pad into batches"] = timed(lambda: [torch.from_numpy(
        stack_fixed_length(trimmed[i:i + BATCH_SIZE], config.n_samples)) for i in starts])
    transform, threads = LogMel(config), torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        mels, times["log-mel (STFT, power, filterbank, dB)"] = timed(
            lambda: [transform(b) for b in batches])
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder, config)
        _, times["write the cache shard"] = timed(lambda: cache.write(
            [cache.identity(path) for path in paths], torch.cat(mels).numpy()))
    return times, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="corpus folder (default: the configured corpus)")
    parser.add_argument("--limit", type=int, help="use only the first N files")
    parser.add_argument("--stages", action="store_true",
                        help="first time each step of a first run on one thread")
    args = parser.parse_args()
    table = load_corpus(args.data or default_corpus())
    paths = list(table.path)[: args.limit]
    config = AudioConfig()
    if args.stages:
        stage_times(paths[:BATCH_SIZE], config)  # warm-up: lazy imports, first allocations
        times, same = stage_times(paths, config)
        print(f"first-run steps, one thread, {len(paths)} files "
              f"(trim_silence cut the same samples as librosa in {same} of them):")
        for stage, seconds in times.items():
            print(f"  {stage:<44} {seconds:6.2f} s")
    with tempfile.TemporaryDirectory() as warm:  # first calls pay one-off lazy imports: not timed
        librosa_loop(paths[:1], config)
        extract_features(paths[:1], config, warm, progress=False)
    baseline, t_base = timed(lambda: standardised(librosa_loop(paths, config)))
    with tempfile.TemporaryDirectory() as cache:
        ours_raw, t_cold = timed(lambda: extract_features(paths, config, cache, progress=False))
        ours, t_norm = timed(lambda: standardised(ours_raw))
        reruns = sorted(timed(lambda: standardised(extract_features(paths, config, cache,
                                                                  progress=False)))[1]
                        for _ in range(5))
        t_cached = reruns[2]
    diff = float(np.abs(ours - baseline).max())
    result = {
        "files": len(paths), "machine": f"{platform.machine()} CPU x{torch.get_num_threads()} threads",
        "librosa_loop_s": round(t_base, 2), "emogan_first_s": round(t_cold + t_norm, 2),
        "emogan_cached_s": round(t_cached, 3),
        "emogan_cached_runs_s": [round(t, 3) for t in reruns],
        "speedup_first": round(t_base / (t_cold + t_norm), 1),
        "speedup_cached": round(t_base / t_cached, 1),
        "max_abs_diff_normalised": diff,
    }
    print(f"{len(paths)} files: librosa loop {t_base:.1f} s | emogan first {t_cold + t_norm:.1f} s "
          f"({result['speedup_first']}x) | cached {t_cached:.3f} s, median of 5 "
          f"({result['speedup_cached']}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
