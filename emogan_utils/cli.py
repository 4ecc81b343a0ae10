"""The ``emogan`` command (also ``python -m emogan_utils``): one sub-command per task.

Each sub-command is a ``_cmd_*`` function taking the parsed arguments; ``build_parser`` wires
them up. Commands that report results end with one JSON line on standard output.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from emogan_utils import __version__
from emogan_utils.config import VOCODERS, EmoganError, Paths
from emogan_utils.layouts import LAYOUTS


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a message comes (tests and notebooks swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _show_library_messages() -> None:
    """Show the package's log messages (INFO and up) on stderr; the library itself never
    configures logging, so in a notebook they stay quiet unless the user asks for them."""
    log = logging.getLogger("emogan_utils")
    log.setLevel(logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())


MAX_ACTORS = 10_000
"""The most actors one ``--actors`` option may name (RAVDESS has 24, the largest corpora a few
thousand speakers)."""
class _SettingsHelp(argparse.HelpFormatter):
    """Fills ``{classifier.X}``, ``{classifier_quick.X}``, ``{gan.X}`` and ``{gan_quick.X}`` in
    an option's help with the training settings' field ``X`` (the dataclass default and the
    ``quick()`` preset), importing the training modules only when help is shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action) or ""
        return text.format(**_settings()) if "{" in text else text


def _settings() -> dict[str, object]:
    """The training settings the CLI trains, by the names :class:`_SettingsHelp` fills in."""
    from emogan_utils.classifier_training import ClassifierTrainConfig
    from emogan_utils.gan_training import GANTrainConfig

    return {"classifier": ClassifierTrainConfig(),
            "classifier_quick": ClassifierTrainConfig.quick(),
            "gan": GANTrainConfig(), "gan_quick": GANTrainConfig.quick()}


def _actors(text: str) -> list[int]:
    """Parse '1,2,5-8' into [1, 2, 5, 6, 7, 8]; ValueError for text that is not such a list,
    a range running backwards, or more than :data:`MAX_ACTORS` actors, before any is listed."""
    bounds: list[tuple[int, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            bounds.append((int(lo), int(hi or lo)))
        except ValueError:
            raise ValueError(f"actors {text!r}: {part!r} is not an actor number or a range "
                             "like 1-20") from None
        if bounds[-1][1] < bounds[-1][0]:
            raise ValueError(f"actors {text!r}: the range {part!r} runs backwards")
    count = sum(hi - lo + 1 for lo, hi in bounds)
    if count > MAX_ACTORS:
        raise ValueError(f"actors {text!r}: {count} actors, more than the {MAX_ACTORS} a "
                         "corpus can sensibly hold; name the actors of your corpus")
    return [actor for lo, hi in bounds for actor in range(lo, hi + 1)]


def _speakers(text: str) -> list[str]:
    """Speakers named by an option: 'OAF,YAF' or RAVDESS's '19,20' and '21-24' (ranges of
    numbers, bounded as :func:`_actors` bounds them); matched to a corpus's speakers by
    :func:`~emogan_utils.data.select_actors`."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    numeric = [p for p in parts if p.replace("-", "").isdigit()]
    return [*map(str, _actors(",".join(numeric))), *(p for p in parts if p not in numeric)]


def _data_dir(value: str | Sequence[str] | None) -> Path | list[Path]:
    """The corpus folder or manifest: the option, else EMOGAN_DATA / data/RAVDESS / the
    embedded corpus; a repeated option gives the list of them (read as one table)."""
    if isinstance(value, str):
        return Path(value)
    if value:
        return Path(value[0]) if len(value) == 1 else [Path(v) for v in value]
    from emogan_utils.synth import default_corpus

    return default_corpus()


def _cache() -> Path:
    """The feature cache folder (under ``EMOGAN_WORK``); :class:`OutputError` unless it is, or
    can be made, a writable folder."""
    from emogan_utils import storage

    cache = Paths.from_env().cache
    storage.check_writable_folder(cache)
    return cache


def _checked_outputs(*paths: Path) -> None:
    """:class:`OutputError` unless each of ``paths`` can be written as a file (before any
    long work)."""
    from emogan_utils import storage

    for path in paths:
        storage.check_output_file(path)


def _check_overwrite(path: Path, kind: str, force: bool) -> None:
    """:class:`OutputError` if ``path`` is a file other than a ``kind`` checkpoint (another
    kind of model, or not a checkpoint) and ``force`` is off: training would replace it."""
    from emogan_utils.checkpoint import checkpoint_kind
    from emogan_utils.storage import OutputError

    if force or not path.is_file():
        return
    found = checkpoint_kind(path)
    if found != kind:
        what = f"a {found} checkpoint" if found else "not an emogan checkpoint"
        raise OutputError(f"{path}: exists and is {what}; refusing to replace it with a {kind} "
                          "checkpoint (choose another --out, or pass --force)")


def _print_json(obj: dict) -> None:
    """One line of strict JSON: NaN (no F0 in an unvoiced clip, no second take) becomes null."""
    print(json.dumps(_finite_or_none(obj), sort_keys=True, allow_nan=False))


def _finite_or_none(obj):
    """``obj`` with every non-finite float, at any depth of dicts and lists, replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(value) for value in obj]
    return obj


def _cmd_make_corpus(args: argparse.Namespace) -> int:
    from emogan_utils.synth import make_corpus

    dest = Path(args.dest) if args.dest else Paths.from_env().embedded
    start = time.perf_counter()
    make_corpus(dest, actors=_actors(args.actors), seed=args.seed)
    _print_json({"corpus": str(dest), "seconds": round(time.perf_counter() - start, 2)})
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from emogan_utils.download import download_ravdess, resampled_copy

    root = download_ravdess(Path(args.dest))
    print(f"RAVDESS is in {root}; use it with EMOGAN_DATA={root}", file=sys.stderr)
    if args.rate is None:
        _print_json({"corpus": str(root)})
        return 0
    copies = resampled_copy(root, root.with_name(f"{root.name}-{args.rate}"), args.rate)
    print(f"{args.rate} Hz copies are in {copies}; the benchmarks read them with "
          f"EMOGAN_RAVDESS={copies}", file=sys.stderr)
    _print_json({"corpus": str(root), "copies": str(copies)})
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from emogan_utils.data import load_corpus
    from emogan_utils.features import AudioConfig, corpus_features, extract_features

    data = _data_dir(args.data)
    table = load_corpus(data, allow_new_emotions=args.allow_new_emotions)
    start = time.perf_counter()
    if args.strict:
        feats, kept = extract_features(list(table["path"]), AudioConfig(),
                                       _cache()), table
    else:  # unusable files are left out with a warning, as evaluate-classifier does
        feats, kept = corpus_features(table, AudioConfig(), _cache())
    skipped = sorted(set(map(str, table["path"])) - set(map(str, kept["path"])))
    _print_json({"files": len(kept), "skipped": skipped, "shape": list(feats.shape),
                 "seconds": round(time.perf_counter() - start, 2)})
    return 0


def _cmd_manifest(args: argparse.Namespace) -> int:
    import warnings

    from emogan_utils.data import corpus_labels, load_corpora, speaker_ids, write_manifest

    skipped: list[tuple[Path, str]] = []
    with warnings.catch_warnings():  # the skipped files are in the report below
        warnings.simplefilter("ignore")
        table = load_corpora([Path(f) for f in args.folder], layout=args.layout,
                             skipped=skipped, rename=True)
    write_manifest(table, args.out)
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    _print_json({"manifest": str(args.out), "layout": table.attrs["layout"],
                 "files": len(table), "speakers": len(set(speaker_ids(table))),
                 "corpora": list(dict.fromkeys(table["corpus"])),
                 "emotions": list(corpus_labels(table)),
                 "skipped": [{"path": str(p), "reason": why} for p, why in skipped]})
    return 0


class _Terminated(BaseException):
    """SIGTERM arrived (a scheduler ending the job): unwinds like Ctrl-C."""


def _terminate(signum: int, frame) -> None:
    raise _Terminated


def _resumable(command):
    """A training command that, stopped with Ctrl-C or SIGTERM, says how to continue and
    exits 130 or 143 (128 + the signal)."""
    def run(args: argparse.Namespace) -> int:
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
        try:
            return command(args)
        except (KeyboardInterrupt, _Terminated) as stop:
            how = "interrupted" if isinstance(stop, KeyboardInterrupt) else "terminated (SIGTERM)"
            print(f"emogan {args.command}: {how}; every finished epoch is saved: run the "
                  "same command with --resume to continue", file=sys.stderr)
            return 130 if isinstance(stop, KeyboardInterrupt) else 128 + signal.SIGTERM
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    return run


@_resumable
def _cmd_train_gan(args: argparse.Namespace) -> int:
    from emogan_utils import distributed
    from emogan_utils.gan_training import GANTrainConfig, train_gan

    _checked_outputs(Path(args.out))
    _check_overwrite(Path(args.out), "gan", args.force)
    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed),
                                 ("w_cls", args.cls_weight), ("batch_size", args.batch_size))
               if v is not None}
    config = (GANTrainConfig.quick if args.quick else GANTrainConfig)(**changes)
    start = time.perf_counter()
    history = train_gan(_data_dir(args.data), args.out, config,
                        train_actors=_speakers(args.actors) if args.actors else None,
                        val_actors=_speakers(args.val_actors) if args.val_actors else (),
                        cache_dir=_cache(), resume=args.resume,
                        allow_new_emotions=args.allow_new_emotions)
    if not distributed.is_main():  # under torchrun rank 0 wrote the checkpoint and reports
        distributed.stop()
        return 0
    distributed.stop()
    _print_json({"checkpoint": str(args.out), "epochs": config.epochs,
                 "final": {k: round(v[-1], 4) for k, v in history.items()},
                 "seconds": round(time.perf_counter() - start, 2)})
    return 0


def _translator(args: argparse.Namespace):
    """The converter of ``--converter`` or the GAN translator of ``--generator``."""
    from emogan_utils.inference import ContourTranslator, Translator

    if bool(args.converter) == bool(args.generator):
        raise ValueError("give one of --converter (the contour converter, from train-converter)"
                         " and --generator (the GAN, from train-gan)")
    if args.converter:
        return ContourTranslator(args.converter)
    return Translator(args.generator, prosody=not args.no_prosody, vocoder=args.vocoder)


def _cmd_translate(args: argparse.Namespace) -> int:
    from emogan_utils import storage

    source, output = Path(args.input), Path(args.output)
    storage.check_audio_output(output, [source])  # before the translation, not after it
    translator = _translator(args)
    wave = translator(source, args.to, args.strength, args.source)
    storage.write_audio(output, wave, translator.audio.sample_rate)
    _print_json({"output": str(output), "emotion": args.to, "strength": args.strength,
                 "path": translator.vocoder,
                 "seconds_of_audio": round(len(wave) / translator.audio.sample_rate, 3)})
    return 0


def _actors_to_score(table, option: str | None, seen: dict[str, set[int]],
                     data: Path | list[Path]) -> tuple[list[int], list[str]]:
    """The actors an evaluation scores, and the speakers (``corpus/name``) among them that a
    model saw: ``option``'s speakers, else every actor of ``table`` that none of the models
    (``seen``: model -> actors) trained or validated on. Warns on stderr, per model, about
    scored speakers it saw."""
    from emogan_utils.data import select_actors, source_label, speaker_ids

    data = source_label(data)
    saw = set().union(*seen.values())
    actors = (select_actors(table, _speakers(option), data) if option
              else sorted(set(table["actor"]) - saw))
    if not actors:
        raise ValueError(f"{data}: every actor was used to train or validate "
                         f"{' or '.join(seen)}; pass --actors to score some anyway (not "
                         "speaker-independent), or train with --actors leaving some out")
    names = dict(zip(table["actor"], speaker_ids(table)))
    for model, actors_seen in seen.items():
        overlap = [names[a] for a in sorted(actors_seen & set(actors))]
        if overlap:
            print(f"warning: speakers {overlap} were used in training or validation of {model};"
                  " their scores are not speaker-independent", file=sys.stderr)
    return actors, [names[a] for a in sorted(saw & set(actors))]


def _cmd_evaluate_translation(args: argparse.Namespace) -> int:
    from emogan_utils.data import load_corpus, seen_actors, select_actors, source_label
    from emogan_utils.evaluate import (classifier_judge, egemaps_judge, evaluate_translation,
                                       fit_egemaps_judge)
    from emogan_utils.inference import load_classifier

    data = _data_dir(args.data)
    corpus = load_corpus(data, allow_new_emotions=args.allow_new_emotions)
    translator = _translator(args)
    classifiers = [load_classifier(c) for c in args.classifier]
    seen = {str(translator.path): set(seen_actors(translator.extra, corpus)),
            **{str(c.path): set(c.seen_actors(corpus)) for c in classifiers}}
    actors, seen_scored = _actors_to_score(corpus, args.actors, seen, data)
    table = corpus[corpus["actor"].isin(actors)]
    if table.empty:
        raise ValueError(f"{source_label(data)}: no clips of actors {actors} to evaluate "
                         "(pass --actors)")
    rate, cache = translator.audio.sample_rate, Paths.from_env().cache / "egemaps"
    judges = {"classifier": classifier_judge(classifiers, rate, reference=table)}
    judge_actors = (select_actors(corpus, _speakers(args.egemaps_actors),
                                  source_label(data))
                    if args.egemaps_actors
                    else sorted(set(corpus["actor"]) - set(actors)))
    judge_table = corpus[corpus["actor"].isin(judge_actors)]
    if judge_table["emotion"].nunique() >= 2:
        judges["egemaps"] = egemaps_judge(fit_egemaps_judge(judge_table, translator.audio, cache),
                                          rate, table, translator.audio, cache)
    else:
        print("warning: no actors left to train the eGeMAPS judge on (pass --egemaps-actors); "
              "only the classifier judges", file=sys.stderr)
    result = evaluate_translation(translator, judges, table, source=args.source)
    _print_json({**result, "actors": actors, "seen_in_training": seen_scored})
    return 0


@_resumable
def _cmd_train_converter(args: argparse.Namespace) -> int:
    from emogan_utils.converter_training import (ConverterTrainConfig, save_converter,
                                                 train_converter)

    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    config = (ConverterTrainConfig.quick if args.quick else ConverterTrainConfig)(**changes)
    _checked_outputs(Path(args.out))
    _check_overwrite(Path(args.out), "converter", args.force)
    start = time.perf_counter()
    trained = train_converter(_data_dir(args.data), config,
                              train_actors=_speakers(args.actors) if args.actors else None,
                              val_actors=_speakers(args.val_actors) if args.val_actors else (),
                              cache_dir=_cache() / "contours",
                              allow_new_emotions=args.allow_new_emotions)
    save_converter(args.out, trained)
    _print_json({"checkpoint": str(args.out), "epochs": config.epochs,
                 "final": {k: round(v[-1], 4) for k, v in trained.history.items() if v},
                 "seconds": round(time.perf_counter() - start, 2)})
    return 0


@_resumable
def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from emogan_utils import distributed
    from emogan_utils.classifier_training import (ClassifierTrainConfig, save_classifier,
                                                  train_classifier)

    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed),
                                 ("norm_mode", args.norm), ("batch_size", args.batch_size),
                                 ("ensemble", args.ensemble), ("prosody", args.prosody),
                                 ("speaker_adversary", args.speaker_adversary),
                                 ("single_clip", args.single_clip), ("egemaps", args.egemaps))
               if v is not None}
    config = (ClassifierTrainConfig.quick if args.quick else ClassifierTrainConfig)(**changes)
    out = Path(args.out)
    run_state = out.with_name(out.name + ".run")  # the interrupted run --resume continues
    _checked_outputs(out, run_state)
    _check_overwrite(out, "classifier", args.force)
    start = time.perf_counter()
    trained = train_classifier(_data_dir(args.data),
                               val_actors=_speakers(args.val_actors) if args.val_actors else None,
                               train_actors=_speakers(args.actors) if args.actors else None,
                               config=config, cache_dir=_cache(),
                               checkpoint=run_state, resume=args.resume,
                               allow_new_emotions=args.allow_new_emotions)
    if not distributed.is_main():  # under torchrun rank 0 writes the model and reports
        distributed.stop()
        return 0
    distributed.stop()
    save_classifier(out, trained)
    run_state.unlink(missing_ok=True)
    history = trained.history
    best = history["epoch"].index(history["best_epoch"])
    _print_json({"checkpoint": str(args.out), "norm_mode": config.norm_mode,
                 "train_actors": list(trained.train_actors),
                 "val_actors": list(trained.val_actors),
                 "train_speakers": list(trained.train_speakers),
                 "val_speakers": list(trained.val_speakers), "epochs_run": len(history["epoch"]),
                 "best_epoch": history["best_epoch"],
                 "val_accuracy": round(history["val_acc"][best], 4),
                 "seconds": round(time.perf_counter() - start, 2)})
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from emogan_utils import storage
    from emogan_utils.inference import judge, load_classifier, reference_statistics

    classifier = load_classifier(args.classifier)
    speaker = reference_statistics(args.reference, classifier) if args.reference else ()
    predictions, timeline = [], []
    for path in args.audio:  # each whole clip, of an unknown speaker or the reference's
        try:
            verdict = judge(path, classifier, reference=speaker)
        except (EmoganError, ValueError, OSError) as err:
            if args.strict:
                raise
            print(f"emogan predict: {path}: skipped: {err}", file=sys.stderr)
            predictions.append({"file": path, "error": str(err)})
            continue
        predictions.append({"file": path, "emotion": verdict.emotion,
                            "probabilities": {k: round(v, 4)
                                              for k, v in verdict.probabilities.items()}})
        timeline.append({"file": path, "windows": [w.to_dict() for w in verdict.windows]})
    if args.timeline:
        storage.write_json(args.timeline, {"classifier": str(args.classifier),
                                           "clips": timeline})
    _print_json({"classifier": str(args.classifier), "predictions": predictions})
    return 1 if any("error" in p for p in predictions) else 0


def _cmd_evaluate_classifier(args: argparse.Namespace) -> int:
    from emogan_utils.data import load_corpus, source_label
    from emogan_utils.evaluate import evaluate_classifier
    from emogan_utils.inference import load_classifier

    classifier = load_classifier(args.checkpoint)
    data = _data_dir(args.data)
    table = load_corpus(data, allow_new_emotions=args.allow_new_emotions)
    actors, seen_scored = _actors_to_score(
        table, args.actors, {str(args.checkpoint): set(classifier.seen_actors(table))}, data)
    table = table[table["actor"].isin(actors)].reset_index(drop=True)
    if table.empty:
        raise ValueError(f"{source_label(data)}: no clips of actors {actors} to evaluate "
                         "(pass --actors)")
    report = evaluate_classifier(classifier, table, _cache())
    report.update(checkpoint=str(args.checkpoint), seen_in_training=seen_scored)
    _print_json(report)
    return 0


def _data_option(parser: argparse.ArgumentParser, several: bool = True) -> None:
    """``--data`` (repeated: several corpora read as one table) and ``--allow-new-emotions``:
    whether a manifest may name emotions the package does not know."""
    if several:
        parser.add_argument("--data", action="append", metavar="CORPUS",
                            help="corpus folder or manifest CSV (default: configured corpus); "
                                 "repeat it to use several corpora together")
    else:
        parser.add_argument("--data", help="corpus folder or manifest CSV (default: configured "
                                           "corpus)")
    parser.add_argument("--allow-new-emotions", action="store_true",
                        help="let a manifest name emotions outside the known ones (the "
                             "package's and other corpora's names), each its own class "
                             "(default: refuse them, naming the closest known one)")


def _vocoder_option(parser: argparse.ArgumentParser) -> None:
    """``--vocoder``: the GAN's path to sound."""
    parser.add_argument("--vocoder", choices=[v for v in VOCODERS if v != "contours"],
                        help="with --generator, how the GAN's conversion becomes sound: 'world' "
                             "(WORLD analysis and synthesis of the source, its envelope and "
                             "pitch contour converted; the default) or 'griffin-lim' (phases "
                             "from the converted mel)")


def _model_options(parser: argparse.ArgumentParser) -> None:
    """``--converter`` or ``--generator``: what converts."""
    parser.add_argument("--converter", help="contour converter checkpoint from train-converter")
    parser.add_argument("--generator", help="GAN checkpoint from train-gan (its vocoder: "
                                            "--vocoder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emogan", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-corpus", help="make the embedded (synthetic) RAVDESS-format corpus")
    p.add_argument("--dest", help="target folder (default: data/embedded)")
    p.add_argument("--actors", default="1-24", help="actor ids, e.g. 1-24 or 1,2")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_make_corpus)

    p = sub.add_parser("download", help="download and extract RAVDESS speech from Zenodo")
    p.add_argument("--dest", required=True, help="folder to download into")
    p.add_argument("--rate", type=int, metavar="HZ",
                   help="also make FLAC copies at this sample rate in DEST/RAVDESS-HZ "
                        "(e.g. 16000, what the benchmarks read)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("manifest", help="list corpus folders' recordings in one manifest CSV")
    p.add_argument("folder", nargs="+", help="corpus folder(s); each corpus is named in the "
                                             "manifest's corpus column")
    p.add_argument("--layout", choices=LAYOUTS,
                   help="how their files are named (default: for each folder, the layout most "
                        "names fit)")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("features", help="extract (and cache) log-mels of a whole corpus")
    _data_option(p, several=False)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unusable audio file (default: warn and skip it)")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("train-gan", help="train the conditional GAN for emotion translation",
                       formatter_class=_SettingsHelp)
    _data_option(p)
    p.add_argument("--out", required=True, help="checkpoint to write (updated every epoch)")
    p.add_argument("--quick", action="store_true", help="a few minutes on a laptop CPU")
    p.add_argument("--epochs", type=int,
                   help="override the number of epochs (default {gan.epochs}, "
                        "--quick {gan_quick.epochs})")
    p.add_argument("--seed", type=int, help="override the random seed (default {gan.seed})")
    p.add_argument("--cls-weight", type=float,
                   help="override w_cls: higher converts more strongly, lower keeps closer to "
                        "how the speaker really sounds (default {gan.w_cls}; docs/results.md)")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is another kind of model or not a checkpoint")
    p.add_argument("--batch-size", type=int,
                   help="override the batch size (global: split over torchrun's processes; "
                        "default {gan.batch_size})")
    p.add_argument("--actors", help="training speakers, e.g. 1-20 or OAF (default: all but "
                                    "--val-actors)")
    p.add_argument("--val-actors", help="speakers held out for validation losses, e.g. 19,20")
    p.set_defaults(func=_cmd_train_gan)

    p = sub.add_parser("train-converter",
                       help="train the contour converter (pitch, energy, envelope, timing)")
    _data_option(p)
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--quick", action="store_true", help="a short run, for a first look")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is another kind of model or not a checkpoint")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--seed", type=int, help="override the random seed")
    p.add_argument("--actors", help="training actors, e.g. 1-20 (default: all but --val-actors)")
    p.add_argument("--val-actors", help="actors held out for validation losses, e.g. 19,20")
    p.set_defaults(func=_cmd_train_converter)

    p = sub.add_parser("translate", help="convert a recording to another emotion")
    _model_options(p)
    p.add_argument("--input", required=True, help="audio file to convert")
    p.add_argument("--to", required=True, help="target emotion, e.g. angry")
    p.add_argument("--output", required=True, help="audio file to write (WAV or FLAC)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="0 = source emotion, 1 = target emotion (default 1)")
    p.add_argument("--source", default="neutral", help="emotion of the input (default neutral)")
    p.add_argument("--no-prosody", action="store_true",
                   help="the generator alone: keep the source's pitch and tempo")
    _vocoder_option(p)
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser("evaluate-translation",
                       help="judge conversions with a classifier and an eGeMAPS judge")
    _model_options(p)
    p.add_argument("--classifier", required=True, nargs="+",
                   help="classifier checkpoint(s), trained apart from the translator: the "
                        "first judge (several average their probabilities)")
    p.add_argument("--egemaps-actors",
                   help="actors of --data the eGeMAPS judge trains on (default: every actor "
                        "not evaluated)")
    _data_option(p)
    p.add_argument("--actors", help="speakers to score, numbers or names, e.g. 21-24 (default: "
                                    "all that neither the model nor a judge trained or "
                                    "validated on)")
    p.add_argument("--source", default="neutral", help="emotion to convert from")
    p.add_argument("--no-prosody", action="store_true",
                   help="the generator alone: keep the source's pitch and tempo")
    _vocoder_option(p)
    p.set_defaults(func=_cmd_evaluate_translation)

    p = sub.add_parser("train-classifier", help="train the speech emotion classifier",
                       formatter_class=_SettingsHelp)
    _data_option(p)
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--quick", action="store_true",
                   help="one small model on log-mels alone, a minute or two on a CPU")
    p.add_argument("--epochs", type=int,
                   help="override the number of epochs (default {classifier.epochs}, "
                        "--quick {classifier_quick.epochs})")
    p.add_argument("--seed", type=int,
                   help="override the random seed (default {classifier.seed})")
    p.add_argument("--norm", choices=("speaker", "global"),
                   help="standardise per actor (speaker) or with training-split statistics "
                        "(global) (default {classifier.norm_mode})")
    p.add_argument("--ensemble", type=int,
                   help="train this many models (seeds) into one checkpoint; their "
                        "probabilities are averaged (default {classifier.ensemble}, "
                        "--quick {classifier_quick.ensemble})")
    p.add_argument("--prosody", action=argparse.BooleanOptionalAction,
                   help="read log-F0, voicing and energy tracks beside the log-mels "
                        "(default {classifier.prosody}, --quick {classifier_quick.prosody})")
    p.add_argument("--speaker-adversary", type=float, metavar="WEIGHT",
                   help="weight of the adversarial speaker head that pushes speaker identity "
                        "out of the model, 0 for none (default {classifier.speaker_adversary}, "
                        "--quick {classifier_quick.speaker_adversary})")
    p.add_argument("--single-clip", type=float, metavar="SHARE",
                   help="share of training examples shown as a single clip of an unknown "
                        "speaker is judged (level-matched, training statistics), 0 for none "
                        "(default {classifier.single_clip})")
    p.add_argument("--egemaps", action=argparse.BooleanOptionalAction,
                   help="also train an eGeMAPS branch, averaged with the CNN where the speaker "
                        "is known (evaluate-classifier, predict --reference); about 0.1 s a "
                        "clip more, once (default {classifier.egemaps})")
    p.add_argument("--actors", help="training speakers, e.g. 1-18 or YAF,OAF (default: all but "
                                    "--val-actors)")
    p.add_argument("--val-actors", help="validation speakers, e.g. 1,2 or OAF (default: two, "
                                        "balanced)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (its state is kept in OUT.run)")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is another kind of model or not a checkpoint")
    p.add_argument("--batch-size", type=int,
                   help="override the batch size (global: split over torchrun's processes; "
                        "default {classifier.batch_size})")
    p.set_defaults(func=_cmd_train_classifier)

    p = sub.add_parser("predict", help="the emotion heard in audio files, each judged alone")
    p.add_argument("--classifier", required=True, help="classifier checkpoint")
    p.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, ...), each read whole")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unusable file, exit 2 (default: report its error "
                        "beside the other files' results, exit 1)")
    p.add_argument("--reference", nargs="+", metavar="CLIP",
                   help="a few unlabelled clips of the same speaker, whose statistics "
                        "standardise theirs (after the audio files, or before '--')")
    p.add_argument("--timeline", metavar="JSON",
                   help="write each window's start and end (s) and probabilities here")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate-classifier",
                       help="accuracy, UAR and confusion matrix on held-out actors")
    p.add_argument("--checkpoint", required=True, help="classifier checkpoint")
    _data_option(p)
    p.add_argument("--actors", help="speakers to score, e.g. 21-24 or OAF (default: all the "
                                    "checkpoint neither trained nor validated on)")
    p.set_defaults(func=_cmd_evaluate_classifier)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    _show_library_messages()
    try:
        return args.func(args)
    except (EmoganError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"emogan {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file-system problem no check caught: one line, no traceback
        print(f"emogan {args.command}: error: {err.filename or ''}: {err.strerror or err}",
              file=sys.stderr)
        return 2
