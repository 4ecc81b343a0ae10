"""Benchmark: where the emotion lives, on RAVDESS speakers the judges never trained on.

    python benchmarks/emotion_cues.py [--data DIR] [--train-actors 1-16] [--actors 17-20]
        [--classifier CKPT ...] [--judges 3] [--max-sources N] [--out DIR]

For every neutral recording of ``--actors`` and each other emotion, the same speaker's real
recording in that emotion is decomposed by WORLD and one component at a time is put on the
neutral recording (:func:`emogan_utils.cues.cue_variants`): the pitch contour, the energy
contour, the envelope with or without its level, the aperiodicity, everything but timing,
timing with pitch, and clip-level statistics only. Two judges of different model families,
trained on ``--train-actors`` only, say how often they hear the target emotion in each:
classifiers with ``train-classifier``'s settings (trained here unless given) and an SVM on
eGeMAPS functionals. Run it on validation actors (``--train-actors 1-12 --actors 13-16``) to
choose, and on the test actors to report.

Prints the table (variant x judge), the per-emotion table, and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from emogan_utils.cli import _actors
from emogan_utils.config import Paths, real_ravdess
from emogan_utils.cues import cue_map
from emogan_utils.data import load_corpus
from emogan_utils.evaluate import classifier_judge, egemaps_judge, fit_egemaps_judge
from emogan_utils.features import AudioConfig
from emogan_utils.inference import load_classifier
from emogan_utils.train import train_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="corpus folder (default: shared RAVDESS)")
    parser.add_argument("--train-actors", default="1-16", help="the judges' training actors")
    parser.add_argument("--actors", default="17-20", help="the actors decomposed and judged")
    parser.add_argument("--classifier", nargs="+", help="existing judging classifiers")
    parser.add_argument("--judges", type=int, default=3, help="classifiers to train (default 3)")
    parser.add_argument("--max-sources", type=int, help="neutral recordings to use (all)")
    parser.add_argument("--out", help="folder for the judges (default: work/benchmarks)")
    args = parser.parse_args()

    paths = Paths.from_env()
    data = Path(args.data) if args.data else real_ravdess()
    out = Path(args.out) if args.out else paths.work / "benchmarks" / "translation"
    train_actors, actors = _actors(args.train_actors), _actors(args.actors)
    classifiers = args.classifier or [
        train_judge(out / f"judge-seed{seed}.pt", data, train_actors, paths.cache, seed)
        for seed in range(args.judges)]
    corpus = load_corpus(data)
    table = corpus[corpus["actor"].isin(actors)]
    audio = AudioConfig()
    cache = paths.cache / "egemaps"
    judges = {"classifier": classifier_judge([load_classifier(c) for c in classifiers],
                                             audio.sample_rate, reference=table),
              "egemaps": egemaps_judge(fit_egemaps_judge(
                  corpus[corpus["actor"].isin(train_actors)], audio, cache),
                  audio.sample_rate, table, audio, cache)}
    start = time.perf_counter()
    summary = cue_map(table, judges, audio, max_sources=args.max_sources)
    seconds = time.perf_counter() - start
    per_emotion = summary.attrs["per_emotion"]
    print((summary * 100).round(1).to_string())
    print()
    print((per_emotion * 100).round(0).unstack("emotion").to_string())
    print(json.dumps({
        "data": str(data), "train_actors": train_actors, "actors": actors,
        "accuracy": {v: {j: round(float(x), 4) for j, x in row.items()}
                     for v, row in summary.iterrows()},
        "seconds": round(seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"},
        sort_keys=True))


if __name__ == "__main__":
    main()
