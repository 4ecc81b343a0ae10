"""Benchmark: speaker-independent emotion recognition, k-fold by actor.

    python benchmarks/classifier_ravdess.py [--data DIR] [--folds N] [--epochs E] [--quick|--plain]
                                            [--norm speaker|global] [--amp] [--seed S]
                                            [--model-seed S] [--[no-]prosody] [--speeds 0.9,1,1.1]
                                            [--ensemble N] [--channels C] [--blocks B]
                                            [--kernel K] [--lr LR] [--adversary W] [--tune]
                                            [--single-clip SHARE] [--cross DIR] [--joint DIR]
                                            [--egemaps]
                                            [--save FILE.npz]

Each fold's actors are the test set, two of the others validate (early stopping, learning rate)
and the rest train; no actor is in two of them. With ``--tune`` each fold's test actors are left
out altogether and two of its training actors are scored instead: the score for choosing
settings, which never sees a test actor (each fold then trains on 12 actors instead of 14).
Every fold goes through the real path: train, save a checkpoint, load it, score the unseen
actors. Prints a table of folds and a final JSON
line with mean ± std accuracy and UAR, training time and the machine. Each test actor is
standardised with the statistics of all their clips, as ``evaluate-classifier`` does;
``single_clip_accuracy`` scores each file alone through ``predict`` (the training split's
statistics, the clip scaled to the training clips' speech level, whole-clip windows), as for
one file of an unknown speaker; ``single_clip_raw_accuracy`` the same without the level
matching; ``enrolled_accuracy`` each clip with the statistics of ``--enrol`` other unlabelled
clips of its speaker, averaged with its verdict alone for a model trained on single clips, as
``predict --reference`` judges (``enrolled_statistics_accuracy``: the statistics alone); and
``own_clip_accuracy`` with each clip's own statistics (each clip taken as a speaker of its
own). Default data: real RAVDESS
(``EMOGAN_RAVDESS``, default ../shared/ravdess/16k), else the configured corpus. Default
settings: ``train-classifier``'s (``ClassifierTrainConfig``'s defaults); ``--plain`` is the
earlier baseline (:data:`PLAIN`) and the ingredient flags change either.

Other corpora: ``--cross DIR`` also scores each fold's model on every clip of another corpus it
never heard (``cross_single_accuracy`` through ``predict``, ``cross_speaker_accuracy`` with each
speaker's statistics of all their clips). ``--joint DIR`` trains each fold on that corpus too,
its utterances (TESS's words) split into the same number of folds: fold ``k`` holds out the
``k``-th share of the words, of every speaker, and scores them (``joint_*``), while the RAVDESS
figures stay comparable with a run without it.

``--egemaps`` trains the classifier's eGeMAPS branch too (``train-classifier --egemaps``):
``accuracy`` and ``enrolled_accuracy`` are then the CNN's and the branch's verdicts averaged,
as ``evaluate-classifier`` and ``predict --reference`` judge, and ``cnn_accuracy`` and
``egemaps_accuracy`` each alone, with all the speaker's clips (single clips are the CNN's
alone); :func:`branch_study` adds two other ways to build the branch.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emogan_utils.classifier_training import (ClassifierTrainConfig, save_classifier,
                                              train_classifier)
from emogan_utils.config import Paths, real_ravdess
from emogan_utils.data import Split, fold_split, load_corpus, split_actors, write_manifest
from emogan_utils.evaluate import accuracy, classification_report
from emogan_utils.egemaps import EgemapsJudge, centred, corpus_egemaps, per_speaker
from emogan_utils.features import Normalizer
from emogan_utils.inference import Classifier, load_classifier, predict
from emogan_utils.inputs import level_matched
from emogan_utils.models import ClassifierConfig
from emogan_utils.runtime import pick_device
from emogan_utils.synth import default_corpus

K = 5
PLAIN = {"epochs": 40, "early_stopping": 10, "prosody": False, "speeds": (1.0,),
         "speaker_adversary": 0.0, "ensemble": 1,
         "model": ClassifierConfig(channels=128, n_blocks=3)}
"""The baseline the defaults improved on: one larger model on log-mels alone, early stopping."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="corpus folder (default: shared RAVDESS, else configured)")
    parser.add_argument("--folds", type=int, default=K, help=f"how many of the {K} folds to run")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument("--quick", action="store_true", help="the quick training settings")
    parser.add_argument("--plain", action="store_true",
                        help="the baseline: one larger model on log-mels alone, early stopping "
                             "(default: train-classifier's settings)")
    parser.add_argument("--norm", choices=("speaker", "global"), help="override normalisation")
    parser.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU)")
    parser.add_argument("--seed", type=int, default=0, help="folds and model seed")
    parser.add_argument("--model-seed", type=int, help="the models' seed alone (default: --seed), "
                        "to train more ensemble members on the same folds")
    parser.add_argument("--prosody", action=argparse.BooleanOptionalAction,
                        help="log-F0, voicing and energy tracks as extra input channels")
    parser.add_argument("--speeds", help="speed perturbation factors of the training clips, "
                        "e.g. 0.9,1,1.1 (1 for none)")
    parser.add_argument("--ensemble", type=int, help="models (seeds) averaged per fold")
    parser.add_argument("--channels", type=int, help="override the model's width")
    parser.add_argument("--blocks", type=int, help="override the model's residual blocks")
    parser.add_argument("--kernel", type=int, help="override the model's kernel size")
    parser.add_argument("--lr", type=float, help="override the learning rate")
    parser.add_argument("--adversary", type=float,
                        help="weight of the adversarial speaker head (0 for none)")
    parser.add_argument("--tune", action="store_true",
                        help="score two of each fold's training actors, never its test actors "
                             "(for choosing settings)")
    parser.add_argument("--enrol", type=int, default=4,
                        help="unlabelled clips of the speaker for enrolled_accuracy (default 4)")
    parser.add_argument("--single-clip", type=float, dest="single_clip",
                        help="share of training examples standardised as a single clip")
    parser.add_argument("--cross", help="another corpus to score each fold's model on, unseen")
    parser.add_argument("--joint", help="another corpus to train on too, by held-out utterances")
    parser.add_argument("--egemaps", action="store_true",
                        help="train the eGeMAPS branch beside the CNN")
    parser.add_argument("--save", help="write each fold's test probabilities here (.npz), so "
                        "that ensembles of runs can be scored without retraining")
    args = parser.parse_args()

    data = Path(args.data) if args.data else (
        real_ravdess() if real_ravdess().is_dir() else default_corpus())
    changes = {k: v for k, v in (("epochs", args.epochs), ("norm_mode", args.norm),
                                 ("ensemble", args.ensemble), ("lr", args.lr),
                                 ("speaker_adversary", args.adversary),
                                 ("single_clip", args.single_clip)) if v is not None}
    if args.prosody is not None:
        changes["prosody"] = args.prosody
    if args.speeds:
        changes["speeds"] = tuple(float(s) for s in args.speeds.split(","))
    changes.update(seed=args.seed if args.model_seed is None else args.model_seed, amp=args.amp,
                   progress=False, **({"egemaps": True} if args.egemaps else {}))
    if args.plain:
        changes = {**PLAIN, **changes}
    config = (ClassifierTrainConfig.quick if args.quick else ClassifierTrainConfig)(**changes)
    shape = {k: v for k, v in (("channels", args.channels), ("n_blocks", args.blocks),
                               ("kernel_size", args.kernel)) if v}
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, **shape))
    table = load_corpus(data)
    actors = sorted(table["actor"].unique().tolist())
    cross = load_corpus(args.cross) if args.cross else None
    joint = load_corpus(args.joint) if args.joint else None
    held_words = utterance_folds(joint, K, args.seed) if joint is not None else None
    cache = Paths.from_env().cache

    rows, saved = [], {}
    scored = "scored actors" if args.tune else "test actors"
    print(f"{'fold':>4} {scored:<16} {'acc':>6} {'uar':>6} {'single':>6} {'enrol':>6} "
          f"{'epochs':>7} "
          f"{'best':>5} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for fold in range(min(args.folds, K)):
            split = fold_split(actors, K, fold, n_val=2, seed=args.seed)
            if args.tune:
                split = tuning_split(split, seed=args.seed + fold)
            sources, train_speakers = data, list(split.train)
            if joint is not None:
                held = joint["utterance"].isin(held_words[fold])
                sources = [data, write_manifest(joint[~held], Path(tmp) / f"joint{fold}.csv")]
                train_speakers += sorted(f"{c}/{s}" for c, s in set(
                    zip(joint["corpus"], joint["speaker"])))
            start = time.perf_counter()
            trained = train_classifier(sources, split.val, train_speakers, config,
                                       cache_dir=cache)
            seconds = time.perf_counter() - start
            path = save_classifier(Path(tmp) / f"fold{fold}.pt", trained)
            classifier = load_classifier(path)
            mel, test = classifier.corpus_inputs(split.select(table, "test"), cache,
                                                 progress=False)
            labels, speakers = (test[k].to_numpy(np.int64) for k in ("label", "actor"))
            cnn = classifier.probabilities(mel, speakers)
            features = (None if classifier.functionals is None else corpus_egemaps(
                test, classifier.audio, cache / "egemaps", progress=False))
            # as evaluate-classifier judges (inference.corpus_probabilities)
            probs = (cnn if features is None
                     else classifier.with_functionals(cnn, centred(features, speakers)))
            report = classification_report(labels, probs.argmax(1))
            single, raw = (accuracy(labels, [classifier.labels.index(_top(
                predict(file, classifier, level=level))) for file in test["path"]])
                for level in (True, False))
            statistics, enrolled = enrolled_probabilities(classifier, mel, test["actor"],
                                                          args.enrol, args.seed + fold, features)
            enrolled = accuracy(labels, enrolled.argmax(1))
            own = accuracy(labels, classifier.probabilities(mel, np.arange(len(mel))).argmax(1))
            saved.update({f"probs{fold}": probs, f"labels{fold}": labels})
            members = getattr(classifier.model, "members", [])
            for k, member in enumerate(members):  # each seed alone, for free
                alone = dataclasses.replace(classifier, model=member)
                saved[f"member{k}_probs{fold}"] = alone.probabilities(
                    mel, speakers)
            member_acc = [accuracy(labels, saved[f"member{k}_probs{fold}"].argmax(1))
                          for k in range(len(members))]
            other = {}
            if features is not None:
                other.update(branch_study(classifier, cnn, test, features,
                                          split.select(table, "train"), cache))
            if cross is not None:
                other.update(other_corpus(classifier, cross, cache, "cross"))
            if joint is not None:
                other.update(other_corpus(classifier, joint[joint["utterance"].isin(
                    held_words[fold])], cache, "joint"))
            rows.append({"fold": fold, "test_actors": list(split.test),
                         "accuracy": report["accuracy"], "uar": report["uar"],
                         "single_clip_accuracy": single, "single_clip_raw_accuracy": raw,
                         "enrolled_accuracy": enrolled,
                         "enrolled_statistics_accuracy": accuracy(labels,
                                                                  statistics.argmax(1)),
                         "own_clip_accuracy": own,
                         "epochs_run": len(trained.history["epoch"]),
                         "best_epoch": trained.history["best_epoch"], "seconds": seconds,
                         "member_accuracy": member_acc, **other})
            print(f"{fold:>4} {','.join(map(str, split.test)):<16} {report['accuracy']:6.3f} "
                  f"{report['uar']:6.3f} {single:6.3f} {enrolled:6.3f} {rows[-1]['epochs_run']:>7} "
                  f"{rows[-1]['best_epoch']:>5} {seconds:8.1f}"
                  + "".join(f" {k} {v:.3f}" for k, v in other.items() if k.endswith("accuracy")),
                  flush=True)

    if args.save:
        np.savez_compressed(args.save, **saved)
    pooled = classification_report(
        np.concatenate([v for k, v in saved.items() if k.startswith("labels")]),
        np.concatenate([v.argmax(1) for k, v in saved.items() if k.startswith("probs")]))
    if rows[0]["member_accuracy"]:
        alone = np.array([r["member_accuracy"] for r in rows])  # (folds, members)
        print("members alone: " + ", ".join(f"{m:.3f}" for m in alone.mean(0))
              + f" (mean {alone.mean():.3f})", file=sys.stderr)
    print("recall over all folds: " + ", ".join(f"{name} {r:.2f}"
                                                for name, r in pooled["recall"].items()),
          file=sys.stderr)
    acc, uar, single, raw, enrolled, own = (np.array([r[k] for r in rows]) for k in (
        "accuracy", "uar", "single_clip_accuracy", "single_clip_raw_accuracy",
        "enrolled_accuracy", "own_clip_accuracy"))
    seconds = np.array([r["seconds"] for r in rows])
    print(f"mean accuracy {acc.mean():.3f} ± {acc.std():.3f}, UAR {uar.mean():.3f} ± "
          f"{uar.std():.3f}; single clips {single.mean():.3f} ± {single.std():.3f} "
          f"({raw.mean():.3f} without level matching); enrolled with {args.enrol} clips "
          f"{enrolled.mean():.3f} ± {enrolled.std():.3f}; "
          f"{seconds.mean():.0f} s per training run", file=sys.stderr)
    print(json.dumps({
        "benchmark": "classifier_ravdess", "data": str(data), "tune": args.tune, "folds": rows,
        "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
        "uar_mean": float(uar.mean()), "uar_std": float(uar.std()),
        "single_clip_accuracy_mean": float(single.mean()),
        "single_clip_accuracy_std": float(single.std()),
        "single_clip_raw_accuracy_mean": float(raw.mean()),
        "enrolled_accuracy_mean": float(enrolled.mean()),
        "enrolled_accuracy_std": float(enrolled.std()), "enrol_clips": args.enrol,
        "own_clip_accuracy_mean": float(own.mean()),
        "train_seconds_mean": float(seconds.mean()), "recall": pooled["recall"],
        **{f"{k}_mean": float(np.mean([r[k] for r in rows])) for k in rows[0]
           if k.startswith(("cross_", "joint_")) and k.endswith("accuracy")},
        "config": {k: v for k, v in config.to_dict().items() if k != "progress"},
        "device": str(pick_device(config.device)), "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}))


def _top(probabilities: dict[str, float]) -> str:
    """The most probable emotion."""
    return max(probabilities, key=probabilities.get)


def other_corpus(classifier: Classifier, table, cache: Path, name: str) -> dict:
    """Accuracy on another corpus's clips: each clip alone through ``predict``
    (``<name>_single_accuracy``), and with each speaker's statistics of all the clips given
    (``<name>_speaker_accuracy``), with the per-emotion recall of the single clips. A clip of
    an emotion the model lacks counts as wrong."""
    truth = np.array([classifier.labels.index(e) if e in classifier.labels else -1
                      for e in table["emotion"]])
    single = np.array([classifier.labels.index(_top(predict(file, classifier)))
                       for file in table["path"]])
    mel, kept = classifier.corpus_inputs(table, cache, progress=False)
    kept_truth = np.array([classifier.labels.index(e) if e in classifier.labels else -1
                           for e in kept["emotion"]])
    speaker = classifier.probabilities(mel, kept["actor"].to_numpy(np.int64)).argmax(1)
    recall = {e: float(np.mean(single[truth == k] == k)) for k, e in enumerate(classifier.labels)
              if (truth == k).any()}
    return {f"{name}_single_accuracy": float(np.mean(single == truth)),
            f"{name}_speaker_accuracy": float(np.mean(speaker == kept_truth)),
            f"{name}_single_recall": recall, f"{name}_clips": int(len(table))}


def branch_study(classifier: Classifier, cnn: np.ndarray, test, features: np.ndarray, train,
                 cache: Path) -> dict:
    """With all the speaker's clips (the CNN's probabilities ``cnn``): the CNN alone
    (``cnn_accuracy``), the eGeMAPS branch alone
    (``egemaps_accuracy``), and two other ways to build the branch, each averaged with the CNN
    as the package averages its branch: without its temperature (``untempered_fused_accuracy``)
    and an RBF SVM on functionals standardised per speaker, its scores calibrated
    (``svm_accuracy``, ``svm_fused_accuracy``; the translation judge's model)."""
    labels = test["label"].to_numpy(np.int64)
    speakers = test["actor"].to_numpy(np.int64)
    branch = classifier.functional_probabilities(centred(features, speakers))
    untempered = dataclasses.replace(classifier, functionals=copy.deepcopy(classifier.functionals))
    untempered.functionals.temperature.fill_(1.0)
    svm = EgemapsJudge.fit(corpus_egemaps(train, classifier.audio, cache / "egemaps",
                                          progress=False), train["actor"].to_numpy(),
                           train["emotion"], classifier.labels, probability=True)
    svm = svm.probabilities(features, speakers, per_speaker(features, speakers))
    untempered = untempered.functional_probabilities(centred(features, speakers))
    return {"cnn_accuracy": accuracy(labels, cnn.argmax(1)),
            "egemaps_accuracy": accuracy(labels, branch.argmax(1)),
            "untempered_fused_accuracy": accuracy(labels, (cnn + untempered).argmax(1)),
            "svm_accuracy": accuracy(labels, svm.argmax(1)),
            "svm_fused_accuracy": accuracy(labels, (cnn + svm).argmax(1))}


def utterance_folds(table, k: int, seed: int) -> list[list[str]]:
    """A corpus's utterances (e.g. TESS's words) shuffled and dealt into ``k`` folds."""
    words = sorted(table["utterance"].astype(str).unique())
    order = np.random.default_rng(seed).permutation(len(words))
    return [[words[i] for i in part] for part in np.array_split(order, k)]


def enrolled_probabilities(classifier: Classifier, mel: np.ndarray, actors: np.ndarray,
                           clips: int, seed: int, features: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Each clip judged with ``clips`` other clips of its speaker, drawn at random (unlabelled:
    any emotion): the probabilities with their statistics alone, and as ``predict
    --reference`` judges (averaged with the clip alone for a model trained on single clips,
    then with the eGeMAPS branch on ``features`` centred on the clips' mean, if it has one)."""
    rng = np.random.default_rng(seed)
    actors = np.asarray(actors)
    statistics = np.empty((len(mel), len(classifier.labels)))
    centred_features = np.zeros((len(mel), 0 if features is None else features.shape[1]))
    for i in range(len(mel)):
        others = np.flatnonzero((actors == actors[i]) & (np.arange(len(mel)) != i))
        chosen = rng.choice(others, size=min(clips, len(others)), replace=False)
        speaker = Normalizer.fit_standard(mel[chosen], classifier.audio.db_floor)
        statistics[i] = classifier.probabilities(mel[i:i + 1], [0], {0: speaker})[0]
        if features is not None:
            centred_features[i] = features[i] - features[chosen].mean(axis=0)
    judged = statistics
    if classifier.knows_single_clips:
        judged = (judged + classifier.probabilities(
            level_matched(mel, classifier.speech_level_db, classifier.audio))) / 2
    return statistics, (judged if features is None
                        else classifier.with_functionals(judged, centred_features))


def tuning_split(split: Split, seed: int) -> Split:
    """The fold with its test actors left out: two gender-balanced training actors are scored
    in their place, and the fold's validation actors still validate."""
    inner = split_actors(split.train, n_val=0, n_test=2, seed=seed)
    return Split(inner.train, split.val, inner.test)


if __name__ == "__main__":
    main()
