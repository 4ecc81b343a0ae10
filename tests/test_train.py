"""Training runs: the quick models a checkpoints folder lacks, and what a run records it trains
on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from emogan_utils import train
from emogan_utils.checkpoint import run_data
from emogan_utils.classifier_training import ClassifierTrainConfig
from emogan_utils.converter_training import ConverterTrainConfig
from emogan_utils.data import load_corpus, ravdess_name
from emogan_utils.gan_training import GANTrainConfig


def test_judge_actors_keep_the_held_out_ones_out_and_validate_on_the_last_two_others():
    assert train.judge_actors([6, 1, 2, 3, 4, 5], [5, 6]) == ([3, 4], [1, 2])
    assert train.judge_actors([1, 2, 3, 4, 5], [2]) == ([4, 5], [1, 3])


def _corpus(root: Path, actors: range) -> Path:
    for actor in actors:
        path = root / f"Actor_{actor:02d}" / ravdess_name(1, 1, 1, 1, actor)
        path.parent.mkdir(parents=True)
        sf.write(path, np.zeros(1600, np.float32), 16000)
    return root


def _record_trainings(monkeypatch) -> list[tuple[str, dict]]:
    """Replace the three trainings with ones that write an empty checkpoint and note their
    arguments."""
    calls: list[tuple[str, dict]] = []

    def classifier(data, val_actors=None, train_actors=None, config=None, **kwargs):
        calls.append(("classifier", {"val": val_actors, "train": train_actors, "config": config}))
        return "trained"

    def gan(data, checkpoint, config=None, val_actors=(), progress=True, **kwargs):
        calls.append(("gan", {"val": val_actors, "config": config, "progress": progress}))
        Path(checkpoint).write_bytes(b"")

    def converter(data, config=None, val_actors=(), progress=True, **kwargs):
        calls.append(("converter", {"val": val_actors, "config": config, "progress": progress}))
        return "trained"

    monkeypatch.setattr(train, "train_classifier", classifier)
    monkeypatch.setattr(train, "save_classifier", lambda path, _: Path(path).write_bytes(b""))
    monkeypatch.setattr(train, "train_gan", gan)
    monkeypatch.setattr(train, "train_converter", converter)
    monkeypatch.setattr(train, "save_converter", lambda path, _: Path(path).write_bytes(b""))
    return calls


def test_quick_models_are_trained_only_where_missing_and_never_on_held_out_actors(
        tmp_path, monkeypatch):
    corpus, checkpoints = _corpus(tmp_path / "corpus", range(1, 7)), tmp_path / "checkpoints"
    checkpoints.mkdir()
    calls = _record_trainings(monkeypatch)
    made = train.train_quick_models(corpus, checkpoints, held_out=[5, 6], progress=False)
    assert [p.name for p in made] == ["classifier.pt", "gan.pt", "converter.pt"]
    assert train.missing_models(checkpoints) == []
    (_, judge), (_, gan), (_, converter) = calls
    assert judge["val"] == [3, 4] and judge["train"] == [1, 2]
    assert judge["config"] == ClassifierTrainConfig.quick(progress=False)
    assert gan == {"val": [5, 6], "config": GANTrainConfig.quick(), "progress": False}
    assert converter == {"val": [5, 6], "config": ConverterTrainConfig.quick(), "progress": False}
    assert train.train_quick_models(corpus, checkpoints) == []  # nothing missing: nothing trained
    assert len(calls) == 3


def test_quick_models_without_held_out_actors_leave_the_split_to_the_training(tmp_path,
                                                                             monkeypatch):
    corpus, checkpoints = _corpus(tmp_path / "corpus", range(1, 4)), tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "gan.pt").write_bytes(b"")
    (checkpoints / "converter.pt").write_bytes(b"")
    calls = _record_trainings(monkeypatch)
    settings = ClassifierTrainConfig.quick(epochs=3)
    made = train.train_quick_models(corpus, checkpoints, classifier=settings)
    assert made == [checkpoints / "classifier.pt"]
    assert calls == [("classifier", {"val": None, "train": None, "config": settings})]


def test_run_data_names_the_actors_recordings_and_labels_a_run_trains_on(tmp_path):
    corpus = _corpus(tmp_path / "corpus", range(1, 4))
    table = load_corpus(corpus)
    data = run_data(table, corpus, (1,), [np.int64(2)], ["neutral", "angry"])
    assert {k: data[k] for k in ("train_actors", "val_actors", "labels")} == {
        "train_actors": [1], "val_actors": [2], "labels": ["neutral", "angry"]}
    assert all(type(a) is int for a in data["train_actors"] + data["val_actors"])
    assert run_data(table, corpus, [1, 3], [2], ["neutral"])["corpus"] != data["corpus"]
    moved = tmp_path / "moved"
    corpus.rename(moved)  # the same recordings elsewhere: the same fingerprint
    assert run_data(load_corpus(moved), moved, [1], [2], ["neutral", "angry"]) == data
