"""Benchmark: neutral -> each other emotion on RAVDESS actors the GAN never trained on.

    python benchmarks/translation_ravdess.py [--data DIR] [--quick] [--epochs N]
        [--paired-weight W] [--cls-weight W] [--paired-cepstra K] [--train-actors 1-16]
        [--test-actors 17-20] [--paths generator_only griffin_lim world]
        [--envelope-scale S] [--envelope-cepstra K]
        [--max-sources N] [--out DIR] [--resume] [--classifier CKPT ...] [--judges 3] [--seed S]

Trains (or resumes) the conditional GAN on the training actors, then judges conversions of the
test actors' neutral recordings with classifiers trained separately on the training actors
(never seen by the GAN, never trained on the test actors) with ``train-classifier``'s
settings: three of them, seeded apart, whose probabilities are averaged, because one
classifier's verdicts swing with its training run. Three paths from the
same generator:

- ``generator_only``: Griffin-Lim of the generator's mel, no prosody change;
- ``griffin_lim``: the mel stretched to the target's tempo, Griffin-Lim, then a phase-vocoder
  pitch shift (the prosody stage);
- ``world``: WORLD analysis of the source, the generator's mel change on its envelope, the
  target's log-F0 mean and range on its F0 contour, its frames stretched to the target's tempo.

Each path reports, per emotion and on average, every measure of
:func:`emogan_utils.evaluate.evaluate_translation` (judged accuracy, DNSMOS, speaker
similarity, filterbank and WORLD MCD, F0 RMSE and correlation) and the time per clip.
Targets (for the default path on the test actors): DNSMOS OVRL of conversions
>= 2.7; speaker similarity to the source >= the real target's; mean judged accuracy >= 65 %
and every emotion >= 25 %; filterbank MCD below no-conversion for every emotion.

**The rule that picks the default vocoder**, written before any comparison and applied to a
run on validation actors (``--train-actors 1-12 --test-actors 13-16``), never the test actors:
WORLD becomes the default of ``translate`` and the widget if, against the Griffin-Lim path
with prosody, (a) its mean DNSMOS OVRL is at least 0.2 higher, (b) its mean speaker similarity
to the source is not lower, and (c) its mean judged accuracy is at most 5 points lower.
Otherwise Griffin-Lim stays the default.

Prints the tables and a final JSON line with the figures, times and machine.
``--paired-weight 0`` gives the unpaired StarGAN-VC setting.
Default data: real RAVDESS (``EMOGAN_RAVDESS``, default ../shared/ravdess/16k), else the
configured corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from emogan_utils.classifier_training import (ClassifierTrainConfig, save_classifier,
                                              train_classifier)
from emogan_utils.cli import _actors
from emogan_utils.config import Paths, real_ravdess
from emogan_utils.data import load_corpus
from emogan_utils.evaluate import evaluate_translation, translation_table
from emogan_utils.gan_training import GANTrainConfig, train_gan
from emogan_utils.inference import Translator, classifier_judge, load_classifier
from emogan_utils.runtime import pick_device
from emogan_utils.synth import default_corpus
from emogan_utils.world import EnvelopeEdit

PATHS = {"generator_only": {"prosody": False, "vocoder": "griffin-lim"},
         "griffin_lim": {"prosody": True, "vocoder": "griffin-lim"},
         "world": {"prosody": True, "vocoder": "world"}}
"""The conversion paths judged, as :class:`Translator` options."""


def judge_classifier(path: Path, data: Path, train_actors: list[int], cache: Path,
                     seed: int) -> Path:
    """One judging classifier with ``train-classifier``'s settings, trained on the GAN's
    training actors (two of them validate). Its ensemble members take the seeds from
    ``seed`` × members on, so that no two judges share a member."""
    if not path.exists():
        config = ClassifierTrainConfig(progress=False)
        config = dataclasses.replace(config, seed=seed * config.ensemble)
        trained = train_classifier(data, val_actors=train_actors[-2:],
                                   train_actors=train_actors[:-2], config=config, cache_dir=cache)
        save_classifier(path, trained)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="corpus folder (default: shared RAVDESS, else configured)")
    parser.add_argument("--quick", action="store_true", help="the quick GAN settings")
    parser.add_argument("--epochs", type=int, help="override the number of GAN epochs")
    parser.add_argument("--paired-weight", type=float, help="override w_paired (0 = unpaired)")
    parser.add_argument("--cls-weight", type=float, help="override w_cls (emotion classification)")
    parser.add_argument("--paired-cepstra", type=int,
                        help="override paired_cepstra (0 = the paired L1 on every mel bin)")
    parser.add_argument("--train-actors", default="1-16")
    parser.add_argument("--test-actors", default="17-20")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS),
                        help="conversion paths to judge (default: all three)")
    parser.add_argument("--envelope-scale", type=float,
                        help="the WORLD path's factor on the generator's envelope change "
                             "(EnvelopeEdit.scale; default: its default)")
    parser.add_argument("--envelope-cepstra", type=int,
                        help="the WORLD path's smoothing of that change (EnvelopeEdit.n_cepstra)")
    parser.add_argument("--max-sources", type=int, help="neutral recordings to convert (all)")
    parser.add_argument("--out", help="folder for gan.pt and judge.pt (default: work/benchmarks)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted GAN run")
    parser.add_argument("--classifier", nargs="+", help="existing judging classifier checkpoints")
    parser.add_argument("--judges", type=int, default=3,
                        help="classifiers to train as the judge, seeds S, S+1, ... (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    paths = Paths.from_env()
    data = Path(args.data) if args.data else (
        real_ravdess() if real_ravdess().is_dir() else default_corpus())
    out = Path(args.out) if args.out else paths.work / "benchmarks" / "translation"
    train_actors, test_actors = _actors(args.train_actors), _actors(args.test_actors)
    config = GANTrainConfig.quick() if args.quick else GANTrainConfig()
    changes = {"epochs": args.epochs, "w_paired": args.paired_weight, "w_cls": args.cls_weight}
    config = dataclasses.replace(config, seed=args.seed,
                                 **given(changes))
    if args.paired_cepstra is not None:
        config = dataclasses.replace(config, paired_cepstra=args.paired_cepstra or None)

    start = time.perf_counter()
    history = train_gan(data, out / "gan.pt", config, train_actors, val_actors=test_actors,
                        cache_dir=paths.cache, resume=args.resume)
    train_seconds = time.perf_counter() - start
    classifiers = args.classifier or [
        judge_classifier(out / f"judge-seed{seed}.pt", data, train_actors, paths.cache, seed)
        for seed in range(args.seed, args.seed + args.judges)]

    table = load_corpus(data)
    table = table[table["actor"].isin(test_actors)]
    edit = {"scale": args.envelope_scale, "n_cepstra": args.envelope_cepstra}
    envelope = EnvelopeEdit(**given(edit))
    translators = {name: Translator(out / "gan.pt", **PATHS[name], envelope=envelope)
                   for name in args.paths}
    rate = next(iter(translators.values())).audio.sample_rate
    judge = classifier_judge([load_classifier(c) for c in classifiers], rate, reference=table)
    figures = {}
    for name, translator in translators.items():
        start = time.perf_counter()
        result = evaluate_translation(translator, judge, table, max_sources=args.max_sources)
        print(f"\n{name}:\n{translation_table(result).T.to_string()}", flush=True)
        figures[name] = summary(result, time.perf_counter() - start)
    print(json.dumps({
        "data": str(data), "train_actors": train_actors, "test_actors": test_actors,
        "w_paired": config.w_paired, "w_cls": config.w_cls,
        "paired_cepstra": config.paired_cepstra, "epochs": config.epochs,
        "envelope": dataclasses.asdict(envelope), **figures,
        "final_val_l1": history.get("val_l1", [None])[-1],
        "final_val_l1_source": history.get("val_l1_source", [None])[-1],
        "train_seconds": round(train_seconds, 1), "n_sources": result["n_sources"],
        "device": str(pick_device()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"torch threads {torch.get_num_threads()}"}, sort_keys=True))


def given(options: dict) -> dict:
    """The options the command line set (those not None)."""
    return {k: v for k, v in options.items() if v is not None}


def summary(result: dict, seconds: float) -> dict:
    """The mean figures of one evaluation, the emotions that miss a per-emotion target, and
    whether each target is met."""
    mean, per = result["mean"], result["emotions"]
    keys = [k for k in mean if not k.startswith(("f0_range", "dnsmos_sig", "dnsmos_bak"))]
    figures = {k: round(mean[k], 4) for k in keys}
    figures.update({
        "accuracy_converted_per_emotion": {e: round(s["accuracy_converted"], 4)
                                           for e, s in per.items()},
        "mcd_above_source_for": sorted(e for e, s in per.items()
                                       if s["mcd_converted"] >= s["mcd_source"]),
        "eval_seconds": round(seconds, 1)})
    figures["targets_met"] = {
        "dnsmos_ovrl_converted >= 2.7": mean["dnsmos_ovrl_converted"] >= 2.7,
        "speaker_similarity_converted >= target": (mean["speaker_similarity_converted"]
                                                   >= mean["speaker_similarity_target"]),
        "accuracy_converted >= 0.65": mean["accuracy_converted"] >= 0.65,
        "every emotion >= 0.25": min(s["accuracy_converted"] for s in per.values()) >= 0.25,
        "mcd below source for every emotion": not figures["mcd_above_source_for"]}
    return figures


if __name__ == "__main__":
    main()
