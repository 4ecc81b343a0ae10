"""Benchmark 1: whole-corpus feature extraction, emogan's batched cached pipeline against the
plain per-file librosa loop a user would otherwise write, in one process on one machine.

    python benchmarks/feature_extraction.py [--data DIR] [--limit N] [--repeats 5] [--stages]
                                            [--batch-size 8] [--workers N]

Each repeat times the librosa loop, emogan's first (cold cache) run and its cached re-run
(median of five; the first re-run in a process pays page faults for fresh memory), one after
the other. Prints every repeat, the fastest of each (the least disturbed by other jobs on a
shared CPU), the speed-ups of the fastest, and the largest difference between the two feature
sets (same parameters). Every figure includes the per-bin standardisation, fitted on the
features. ``--batch-size`` and ``--workers`` are passed to ``extract_features``; each first run
also reports the minor page faults it caused.

``--stages`` first times each step of a first run on its own, one file or batch after another
on one thread (what the threads of ``extract_features`` share out), with librosa's trim beside
the package's and the frames the sorted batches compute.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time

import librosa
import numpy as np
import torch

from emogan_utils.data import load_corpus
from emogan_utils.features import (BATCH_SIZE, SORT_CHUNK, AudioConfig, FeatureCache, LogMel,
                                   Normalizer, batches_by_length, extract_features, read_audio,
                                   resample, stack_fixed_length, trim_silence)
from emogan_utils.synth import default_corpus
from emogan_utils.threads import torch_threads


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


def frame_share(batches: list[list[int]], waves: list[np.ndarray], config: AudioConfig) -> float:
    """Share of all frames that LogMel computes for these batches: in each, the frames up to
    half a window after its longest clip."""
    computed = sum(len(batch) * config.frames(config.sound_stop(
        max(waves[i].size for i in batch), config.n_samples)) for batch in batches)
    return computed / (len(waves) * config.n_frames)


def stage_times(paths, config: AudioConfig) -> tuple[dict[str, float], int, list[float]]:
    """Seconds of each first-run step over ``paths``, one after another on one torch thread; in
    how many files the package's trim cut the same samples as librosa's; and the share of all
    frames that the log-mels compute, for the length-sorted batches and for batches in file
    order."""
    times: dict[str, float] = {}
    decoded, times["decode"] = timed(lambda: [read_audio(path) for path in paths])
    waves, times["resample"] = timed(lambda: [resample(w, rate, config.sample_rate)
                                              for w, rate in decoded])
    theirs, times["trim (librosa.effects.trim, for comparison)"] = timed(lambda: [
        librosa.effects.trim(w, top_db=config.trim_db, frame_length=1024, hop_length=256)[0]
        for w in waves])
    trimmed, times["trim"] = timed(lambda: [trim_silence(w, config.trim_db) for w in waves])
    same = sum(np.array_equal(a, b) for a, b in zip(trimmed, theirs))
    batches = [[start + j for j in batch]  # as extract_features makes them
               for start in range(0, len(trimmed), SORT_CHUNK)
               for batch in batches_by_length([w.size for w in trimmed[start:start + SORT_CHUNK]],
                                              BATCH_SIZE)]
    in_file_order = [list(range(start, min(start + BATCH_SIZE, len(trimmed))))
                     for start in range(0, len(trimmed), BATCH_SIZE)]
    computed = [frame_share(batches, trimmed, config), frame_share(in_file_order, trimmed, config)]
    rows, times["pad into length-sorted batches"] = timed(lambda: [torch.from_numpy(
        stack_fixed_length([trimmed[i] for i in batch], config.n_samples)) for batch in batches])
    transform = LogMel(config)
    with torch.no_grad(), torch_threads(1):
        mels, times["log-mel (STFT, power, filterbank, dB)"] = timed(
            lambda: [transform(batch) for batch in rows])
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder, config)
        order = [i for batch in batches for i in batch]  # the rows of the mels
        _, times["write the cache shard"] = timed(lambda: cache.write(
            [cache.identity(paths[i]) for i in order], torch.cat(mels).numpy()))
    return times, same, computed


def one_repeat(paths, config: AudioConfig, **options) -> tuple[dict[str, float], np.ndarray,
                                                                np.ndarray]:
    """Seconds of the librosa loop, emogan's first run and its cached re-run (median of five),
    the first run's minor page faults, and both feature sets, standardised. ``options`` go to
    ``extract_features``."""
    baseline, t_base = timed(lambda: standardised(librosa_loop(paths, config)))
    with tempfile.TemporaryDirectory() as cache:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        ours, t_first = timed(lambda: standardised(
            extract_features(paths, config, cache, progress=False, **options)))
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        reruns = sorted(timed(lambda: standardised(extract_features(paths, config, cache,
                                                                  progress=False)))[1]
                        for _ in range(5))
    times = {"librosa": t_base, "first": t_first, "cached": reruns[2], "faults": faults}
    return times, baseline, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="corpus folder (default: the configured corpus)")
    parser.add_argument("--limit", type=int, help="use only the first N files")
    parser.add_argument("--repeats", type=int, default=5, help="report the fastest of each")
    parser.add_argument("--stages", action="store_true",
                        help="first time each step of a first run on one thread")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--workers", type=int, help="threads (default: one a core)")
    args = parser.parse_args()
    table = load_corpus(args.data or default_corpus())
    paths = list(table.path)[: args.limit]
    config = AudioConfig()
    if args.stages:
        stage_times(paths[:BATCH_SIZE], config)  # warm-up: lazy imports, first allocations
        times, same, computed = stage_times(paths, config)
        print(f"first-run steps, one thread, {len(paths)} files (trim_silence cut the same "
              f"samples as librosa in {same} of them; the length-sorted batches compute "
              f"{computed[0]:.0%} of the frames, in file order {computed[1]:.0%}):")
        for stage, seconds in times.items():
            print(f"  {stage:<44} {seconds:6.2f} s")
    with tempfile.TemporaryDirectory() as warm:  # first calls pay one-off lazy imports: not timed
        librosa_loop(paths[:1], config)
        extract_features(paths[:1], config, warm, progress=False)
    runs = []
    for repeat in range(args.repeats):
        times, baseline, ours = one_repeat(paths, config, batch_size=args.batch_size,
                                           workers=args.workers)
        runs.append(times)
        print(f"repeat {repeat + 1}: librosa loop {times['librosa']:.2f} s | emogan first "
              f"{times['first']:.2f} s ({times['librosa'] / times['first']:.1f}x, "
              f"{times['faults']} page faults) | cached {times['cached']:.3f} s "
              f"({times['librosa'] / times['cached']:.0f}x)")
    best = {key: min(run[key] for run in runs) for key in runs[0]}
    result = {
        "files": len(paths), "machine": f"{platform.machine()} CPU x{torch.get_num_threads()} threads",
        "repeats": args.repeats, "batch_size": args.batch_size, "workers": args.workers,
        "librosa_loop_s": round(best["librosa"], 2), "emogan_first_s": round(best["first"], 2),
        "emogan_cached_s": round(best["cached"], 3),
        "speedup_first": round(best["librosa"] / best["first"], 1),
        "speedup_cached": round(best["librosa"] / best["cached"], 1),
        "speedup_first_per_repeat": [round(run["librosa"] / run["first"], 1) for run in runs],
        "first_run_page_faults": [run["faults"] for run in runs],
        "max_abs_diff_normalised": float(np.abs(ours - baseline).max()),
    }
    print(f"{len(paths)} files, fastest of {args.repeats}: librosa loop {best['librosa']:.2f} s | "
          f"emogan first {best['first']:.2f} s ({result['speedup_first']}x) | cached "
          f"{best['cached']:.3f} s ({result['speedup_cached']}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
