"""Benchmark: neutral -> each other emotion on RAVDESS actors the models never trained on.

    python benchmarks/translation_ravdess.py [--data DIR] [--quick] [--epochs N]
        [--train-actors 1-16] [--test-actors 17-20]
        [--paths contours world griffin_lim generator_only] [--generator GAN] [--converter CKPT]
        [--converter-epochs N] [--paired-weight W] [--cls-weight W] [--paired-cepstra K]
        [--envelope-scale S] [--envelope-cepstra K] [--max-sources N] [--out DIR] [--resume]
        [--classifier CKPT ...] [--judges 3] [--seed S]

Trains (or takes) the conditional GAN and the contour converter on the training actors, then
judges conversions of the test actors' neutral recordings with two judges of different model
families, both trained on the training actors only:

- ``classifier``: classifiers with ``train-classifier``'s settings (three, seeded apart,
  probabilities averaged, because one classifier's verdicts swing with its training run);
- ``egemaps``: an SVM on per-speaker standardised eGeMAPS functionals
  (:mod:`emogan_utils.egemaps`).

The conversion paths:

- ``contours``: the contour converter: WORLD analysis of the source, its log-F0, energy and
  envelope shape changed frame by frame and its frames retimed by the converter
  (:class:`~emogan_utils.inference.ContourTranslator`), WORLD synthesis;
- ``world``: WORLD analysis of the source, the generator's mel change on its envelope, the
  target's log-F0 mean and range on its F0 contour, its frames stretched to the target's tempo;
- ``griffin_lim``: the generator's mel stretched to the target's tempo, Griffin-Lim, then a
  phase-vocoder pitch shift;
- ``generator_only``: Griffin-Lim of the generator's mel, no prosody change.

Each path reports, per emotion and on average, every measure of
:func:`emogan_utils.evaluate.evaluate_translation` (accuracy and emotion transfer by each
judge, level change, DNSMOS, speaker similarity, filterbank and WORLD MCD, F0 error) and the
time per clip, and whether each target below is met.

Targets, for the default path on the test actors: emotion transfer >= 0.6 by both judges and
> 0.25 for every emotion by both; no emotion judged as the target more than 15 points above
its real recordings, each emotion's mean level change within 3 dB of the real recordings'
(no overshoot); filterbank and WORLD MCD to the real target below no-conversion in the mean
and for at least 5 of the 7 emotions; DNSMOS OVRL at most 0.2 below the source's; speaker
similarity at least the real target's; a clip converted in at most 1.5 s.

**The rule that picks the default path**, written before any comparison and applied to a run
on validation actors (``--train-actors 1-12 --test-actors 13-16``), never the test actors: the
contour converter becomes the default of ``translate``, the CLI and the widget if, against the
``world`` path, (a) its mean emotion transfer is higher by both judges, (b) its mean DNSMOS
OVRL is at most 0.1 lower, and (c) its mean speaker similarity to the source is at most 0.02
lower. Otherwise the ``world`` path stays the default.

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

from emogan_utils.cli import _actors
from emogan_utils.config import Paths, real_ravdess
from emogan_utils.data import load_corpus
from emogan_utils.converter_training import (ConverterTrainConfig, save_converter,
                                             train_converter)
from emogan_utils.evaluate import (classifier_judge, egemaps_judge, evaluate_translation,
                                   fit_egemaps_judge, translation_table)
from emogan_utils.gan_training import GANTrainConfig, train_gan
from emogan_utils.inference import ContourTranslator, Translator, load_classifier
from emogan_utils.train import train_judge
from emogan_utils.runtime import pick_device
from emogan_utils.synth import default_corpus
from emogan_utils.world import EnvelopeEdit

PATHS = {"contours": None,
         "world": {"prosody": True, "vocoder": "world"},
         "griffin_lim": {"prosody": True, "vocoder": "griffin-lim"},
         "generator_only": {"prosody": False, "vocoder": "griffin-lim"}}
"""The conversion paths judged: the contour converter, or :class:`Translator` options."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="corpus folder (default: shared RAVDESS, else configured)")
    parser.add_argument("--quick", action="store_true", help="quick GAN and converter settings")
    parser.add_argument("--epochs", type=int, help="override the number of GAN epochs")
    parser.add_argument("--converter-epochs", type=int, help="override the converter's epochs")
    parser.add_argument("--paired-weight", type=float, help="override w_paired (0 = unpaired)")
    parser.add_argument("--cls-weight", type=float, help="override w_cls (emotion classification)")
    parser.add_argument("--paired-cepstra", type=int,
                        help="override paired_cepstra (0 = the paired L1 on every mel bin)")
    parser.add_argument("--train-actors", default="1-16")
    parser.add_argument("--test-actors", default="17-20")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS)[:3],
                        help="conversion paths to judge (default: contours world griffin_lim)")
    parser.add_argument("--generator", help="an existing GAN checkpoint (else one is trained)")
    parser.add_argument("--converter", help="an existing converter checkpoint (else trained)")
    parser.add_argument("--envelope-scale", type=float,
                        help="the WORLD path's factor on the generator's envelope change "
                             "(EnvelopeEdit.scale; default: its default)")
    parser.add_argument("--envelope-cepstra", type=int,
                        help="the WORLD path's smoothing of that change (EnvelopeEdit.n_cepstra)")
    parser.add_argument("--max-sources", type=int, help="neutral recordings to convert (all)")
    parser.add_argument("--out", help="folder for the trained models (default: work/benchmarks)")
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
    times = {}
    gan_paths = [p for p in args.paths if p != "contours"]
    if gan_paths:
        generator, times["gan_train_seconds"] = (
            (Path(args.generator), None) if args.generator else
            train_generator(args, data, out, train_actors, test_actors, paths.cache))
    if "contours" in args.paths:
        converter, times["converter_train_seconds"] = (
            (Path(args.converter), None) if args.converter else
            train_contour_converter(args, data, out, train_actors, test_actors, paths.cache))
    classifiers = args.classifier or [
        train_judge(out / f"judge-seed{seed}.pt", data, train_actors, paths.cache, seed)
        for seed in range(args.seed, args.seed + args.judges)]

    corpus = load_corpus(data)
    table = corpus[corpus["actor"].isin(test_actors)]
    edit = {"scale": args.envelope_scale, "n_cepstra": args.envelope_cepstra}
    envelope = EnvelopeEdit(**given(edit))
    translators = {name: (ContourTranslator(converter) if name == "contours" else
                          Translator(generator, **PATHS[name], envelope=envelope))
                   for name in args.paths}
    audio = next(iter(translators.values())).audio
    start = time.perf_counter()
    egemaps = fit_egemaps_judge(corpus[corpus["actor"].isin(train_actors)], audio,
                                paths.cache / "egemaps")
    times["egemaps_judge_seconds"] = round(time.perf_counter() - start, 1)
    judges = {"classifier": classifier_judge([load_classifier(c) for c in classifiers],
                                             audio.sample_rate, reference=table),
              "egemaps": egemaps_judge(egemaps, audio.sample_rate, table, audio,
                                       paths.cache / "egemaps")}
    figures = {}
    for name, translator in translators.items():
        start = time.perf_counter()
        result = evaluate_translation(translator, judges, table, max_sources=args.max_sources)
        print(f"\n{name}:\n{translation_table(result).T.to_string()}", flush=True)
        figures[name] = summary(result, time.perf_counter() - start)
    print(json.dumps({
        "data": str(data), "train_actors": train_actors, "test_actors": test_actors,
        "envelope": dataclasses.asdict(envelope), **figures, **times,
        "n_sources": result["n_sources"], "device": str(pick_device()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"torch threads {torch.get_num_threads()}"}, sort_keys=True))


def train_generator(args: argparse.Namespace, data: Path, out: Path, train_actors: list[int],
                    val_actors: list[int], cache: Path) -> tuple[Path, float]:
    """Train (or resume) the GAN with the options given; its path and training time."""
    config = GANTrainConfig.quick() if args.quick else GANTrainConfig()
    changes = {"epochs": args.epochs, "w_paired": args.paired_weight, "w_cls": args.cls_weight}
    config = dataclasses.replace(config, seed=args.seed, **given(changes))
    if args.paired_cepstra is not None:
        config = dataclasses.replace(config, paired_cepstra=args.paired_cepstra or None)
    start = time.perf_counter()
    train_gan(data, out / "gan.pt", config, train_actors, val_actors=val_actors,
              cache_dir=cache, resume=args.resume)
    return out / "gan.pt", round(time.perf_counter() - start, 1)


def train_contour_converter(args: argparse.Namespace, data: Path, out: Path,
                            train_actors: list[int], val_actors: list[int],
                            cache: Path) -> tuple[Path, float]:
    """Train the contour converter with the options given; its path and training time."""
    config = ConverterTrainConfig.quick() if args.quick else ConverterTrainConfig()
    config = dataclasses.replace(config, seed=args.seed,
                                 **given({"epochs": args.converter_epochs}))
    start = time.perf_counter()
    trained = train_converter(data, config, train_actors, val_actors,
                              cache_dir=cache / "contours")
    save_converter(out / "converter.pt", trained)
    return out / "converter.pt", round(time.perf_counter() - start, 1)


def given(options: dict) -> dict:
    """The options the command line set (those not None)."""
    return {k: v for k, v in options.items() if v is not None}


def summary(result: dict, seconds: float) -> dict:
    """The mean figures of one evaluation, per-emotion accuracy and transfer by each judge,
    the emotions that miss a per-emotion target, and whether each target is met."""
    mean, per = result["mean"], result["emotions"]
    judges = [k.removeprefix("transfer_") for k in mean if k.startswith("transfer_")]
    keys = [k for k in mean if not k.startswith(("f0_range", "dnsmos_sig", "dnsmos_bak"))]
    figures = {k: round(mean[k], 4) for k in keys}
    for measure in [*(f"accuracy_converted_{j}" for j in judges), "accuracy_target_classifier",
                    *(f"transfer_{j}" for j in judges), "level_change_db_converted",
                    "level_change_db_target"]:
        figures[f"{measure}_per_emotion"] = {e: round(s[measure], 4) for e, s in per.items()}
    above = {name: sorted(e for e, s in per.items() if s[f"{name}_converted"] >= s[f"{name}_source"])
             for name in ("mcd", "mcd_world")}
    overshoot = sorted(e for e, s in per.items() for j in judges
                       if s[f"accuracy_converted_{j}"] > s[f"accuracy_target_{j}"] + 0.15)
    level_off = sorted(e for e, s in per.items()
                       if abs(s["level_change_db_converted"] - s["level_change_db_target"]) > 3)
    figures.update({"mcd_above_source_for": above["mcd"],
                    "mcd_world_above_source_for": above["mcd_world"],
                    "overshoot_for": sorted(set(overshoot)), "level_off_by_3_db_for": level_off,
                    "eval_seconds": round(seconds, 1)})
    figures["targets_met"] = {
        **{f"transfer_{j} >= 0.6": mean[f"transfer_{j}"] >= 0.6 for j in judges},
        **{f"every emotion's transfer_{j} > 0.25": min(s[f"transfer_{j}"] for s in per.values())
           > 0.25 for j in judges},
        "no overshoot of 15 points": not overshoot,
        "level change within 3 dB of the real one": not level_off,
        **{f"{name} below source (mean, >= 5 of 7)":
           mean[f"{name}_converted"] < mean[f"{name}_source"] and len(per) - len(above[name]) >= 5
           for name in ("mcd", "mcd_world")},
        "dnsmos_ovrl_converted >= source - 0.2": (mean["dnsmos_ovrl_converted"]
                                                  >= mean["dnsmos_ovrl_source"] - 0.2),
        "speaker_similarity_converted >= target": (mean["speaker_similarity_converted"]
                                                   >= mean["speaker_similarity_target"]),
        "seconds_per_clip_converted <= 1.5": mean["seconds_per_clip_converted"] <= 1.5}
    return figures


if __name__ == "__main__":
    main()
