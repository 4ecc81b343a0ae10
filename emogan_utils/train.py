"""The models of a checkpoints folder: :func:`train_quick_models` trains whichever of the
emotion classifier (``classifier.pt``), the GAN (``gan.pt``) and the contour converter
(``converter.pt``) is missing, so that the translation notebook and the emotion switch also run
on their own. The trainings themselves are :mod:`emogan_utils.classifier_training`,
:mod:`emogan_utils.gan_training` and :mod:`emogan_utils.converter_training`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from emogan_utils.classifier_training import (ClassifierTrainConfig, save_classifier,
                                              train_classifier)
from emogan_utils.converter_training import (ConverterTrainConfig, save_converter,
                                             train_converter)
from emogan_utils.data import load_corpus
from emogan_utils.gan_training import GANTrainConfig, train_gan

CLASSIFIER_FILE = "classifier.pt"
GAN_FILE = "gan.pt"
CONVERTER_FILE = "converter.pt"


def missing_models(checkpoints: Path) -> list[Path]:
    """The classifier, GAN and converter checkpoints in ``checkpoints`` that do not exist yet."""
    return [Path(checkpoints) / name for name in (CLASSIFIER_FILE, GAN_FILE, CONVERTER_FILE)
            if not (Path(checkpoints) / name).is_file()]


def judge_actors(actors: Sequence[int], held_out: Sequence[int]) -> tuple[list[int], list[int]]:
    """The validation and training actors of a classifier that must never hear ``held_out``:
    the last two of the other actors validate, the rest train."""
    others = sorted(set(actors) - set(held_out))
    return others[-2:], others[:-2]


def train_quick_models(corpus: Path, checkpoints: Path, cache_dir: Path | None = None,
                       classifier: ClassifierTrainConfig | None = None,
                       gan: GANTrainConfig | None = None,
                       converter: ConverterTrainConfig | None = None,
                       held_out: Sequence[int] = (), progress: bool = True) -> list[Path]:
    """Train whichever of the classifier, the GAN and the converter is missing from
    ``checkpoints`` (with ``quick()`` settings unless given) and return the checkpoints made.
    The ``held_out`` actors validate the GAN and the converter and are never heard by the
    classifier, so that it can judge their translations."""
    made = []
    for path in missing_models(checkpoints):
        if path.name == CLASSIFIER_FILE:
            config = dataclasses.replace(classifier or ClassifierTrainConfig.quick(),
                                         progress=progress)
            val = train = None  # without held-out actors, train_classifier's own split
            if held_out:
                val, train = judge_actors(load_corpus(corpus)["actor"].tolist(), held_out)
            save_classifier(path, train_classifier(corpus, val, train, config,
                                                   cache_dir=cache_dir))
        elif path.name == GAN_FILE:
            train_gan(corpus, path, gan or GANTrainConfig.quick(), val_actors=held_out,
                      cache_dir=cache_dir, progress=progress)
        else:
            contours_cache = None if cache_dir is None else Path(cache_dir) / "contours"
            save_converter(path, train_converter(corpus, converter or ConverterTrainConfig.quick(),
                                                 val_actors=held_out, cache_dir=contours_cache,
                                                 progress=progress))
        made.append(path)
    return made


def train_judge(path: Path, corpus: Path, actors: Sequence[int], cache_dir: Path | None = None,
                seed: int = 0) -> Path:
    """A judging classifier at ``path`` (trained there unless it exists) with
    ``train-classifier``'s settings on ``actors`` (the last two validate). Its ensemble members
    take the seeds from ``seed`` x members on, so that judges of different seeds share no
    member."""
    if not Path(path).exists():
        config = ClassifierTrainConfig(progress=False)
        config = dataclasses.replace(config, seed=seed * config.ensemble)
        save_classifier(path, train_classifier(corpus, val_actors=list(actors)[-2:],
                                               train_actors=list(actors)[:-2], config=config,
                                               cache_dir=cache_dir))
    return Path(path)

