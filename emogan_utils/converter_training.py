"""Training the contour converter (:class:`~emogan_utils.models.ContourConverter`) on
parallel recordings: each pair of one speaker's sentence in two emotions is analysed by WORLD
(:mod:`emogan_utils.contours`), aligned by DTW on its mel-cepstra, and the converter learns
the frame-by-frame change of log-F0, energy, envelope shape and duration that takes the one
to the other."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from emogan_utils.checkpoint import run_data, save_checkpoint
from emogan_utils.config import check_settings
from emogan_utils.contours import (CepstralStats, Contours, aligned_positions, clip_contours,
                                   converter_inputs, decimated, training_targets)
from emogan_utils.data import (Sources, corpus_labels, held_out_split, load_corpus, source_label,
                               training_speakers)
from emogan_utils.features import AudioConfig, load_audio
from emogan_utils.losses import check_finite, converter_loss
from emogan_utils.models import (ChangeClassifier, ContourConverter, ConverterConfig,
                                 converter_code)
from emogan_utils.runtime import seed_everything

log = logging.getLogger(__name__)
PAIRINGS = ("reference", "all")


@dataclass(frozen=True)
class ConverterTrainConfig:
    """How :func:`train_converter` trains; the defaults are what ``train-converter`` runs."""

    epochs: int = 30
    batch_size: int = 16
    crop: int = 240
    """Frames (10 ms each) of each pair seen per step."""
    learning_rate: float = 2e-3
    variance_weight: float = 1.0
    """Weight of matching each clip's spread of log-F0 and energy to the real target's, which
    keeps an L1-trained contour from flattening towards the average."""
    emotion_weight: float = 0.3
    """Weight of the emotion head's verdict (:class:`~emogan_utils.models.ChangeClassifier`,
    trained alongside on real pairs): by how much its cross-entropy on the converted change
    exceeds that on the real change, so the converter is pushed until the head hears the
    target as surely as in the real recording, never further; 0 trains on the distances to
    the real targets alone."""
    pairing: str = "reference"
    """``reference``: pairs to and from the reference emotion (neutral); ``all``: every two
    emotions of one sentence."""
    reference: str = "neutral"
    seed: int = 0
    model: ConverterConfig = ConverterConfig()

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        check_settings({"epochs": (self.epochs, 1), "batch_size": (self.batch_size, 1),
                        "crop": (self.crop, 1), "learning_rate": (self.learning_rate, 1e-12),
                        "variance_weight": (self.variance_weight, 0),
                        "emotion_weight": (self.emotion_weight, 0)}, "converter training: ")

    @classmethod
    def quick(cls, **overrides) -> "ConverterTrainConfig":
        """A short run for notebooks and tests."""
        return cls(**{"epochs": 5, **overrides})

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "model": self.model.to_dict()}


@dataclass
class ContourSet:
    """The converter's training material: each clip's inputs, and per pair the clip indices,
    the conditioning and the targets with their weights (:func:`training_targets`)."""

    inputs: list[np.ndarray]
    pairs: np.ndarray
    codes: torch.Tensor
    targets: list[np.ndarray]
    weights: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, index: Sequence[int], crop: int,
              rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """(inputs, codes, targets, weights) of pairs ``index``, each a random ``crop`` frames
        (shorter clips are padded with zero weight)."""
        n = len(index)
        x = np.zeros((n, self.inputs[0].shape[0], crop), np.float32)
        y = np.zeros((n, self.targets[0].shape[0], crop), np.float32)
        w = np.zeros_like(y)
        for row, k in enumerate(index):
            source = self.inputs[self.pairs[k, 0]]
            frames = source.shape[1]
            start = int(rng.integers(0, frames - crop + 1)) if frames > crop else 0
            stop = min(frames, start + crop)
            x[row, :, :stop - start] = source[:, start:stop]
            y[row, :, :stop - start] = self.targets[k][:, start:stop]
            w[row, :, :stop - start] = self.weights[k][:, start:stop]
        return (torch.from_numpy(x), self.codes[list(index)], torch.from_numpy(y),
                torch.from_numpy(w))


def clip_pairs(table: pd.DataFrame, pairing: str = "reference",
               reference: str = "neutral") -> pd.DataFrame:
    """Ordered pairs (row positions ``source``, ``target``) of one speaker's utterance and
    repetition in two emotions: to and from ``reference`` only, or ``all``."""
    rows = table.reset_index(drop=True)
    found = []
    for _, group in rows.groupby(["actor", "statement_id", "repetition"], sort=True):
        for a in group.index:
            for b in group.index:
                ea, eb = rows.at[a, "emotion"], rows.at[b, "emotion"]
                if ea != eb and (pairing == "all" or reference in (ea, eb)):
                    found.append((a, b))
    return pd.DataFrame(found, columns=["source", "target"])


def corpus_contours(table: pd.DataFrame, audio: AudioConfig,
                    cache_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> list[Contours]:
    """The contours of each recording of ``table`` (trimmed as in training) at the converter's
    frame rate (:func:`~emogan_utils.contours.decimated`), cached."""
    return [decimated(clip_contours(load_audio(p, audio, fixed_length=False), audio.sample_rate,
                                    cache_dir=cache_dir))
            for p in tqdm(table["path"], desc="WORLD contours", unit="clip", disable=not progress)]


def contour_set(table: pd.DataFrame, clips: list[Contours], stats: CepstralStats,
                labels: Sequence[str], pairing: str = "reference", reference: str = "neutral",
                progress: bool = True) -> ContourSet:
    """DTW-align every pair of ``table``'s recordings (:func:`clip_pairs`) on standardised
    mel-cepstra and compute the converter's targets."""
    table = table.reset_index(drop=True)
    pairs = clip_pairs(table, pairing, reference)
    if pairs.empty:
        raise ValueError("No parallel pairs: the converter needs one speaker's utterance "
                         "recorded in two emotions")
    standard = [((c.cepstra - stats.mean) / stats.std).T for c in clips]
    targets, weights = [], []
    for a, b in tqdm(pairs.itertuples(index=False), total=len(pairs), desc="DTW", unit="pair",
                     disable=not progress):
        values, weight = training_targets(clips[a], clips[b],
                                          aligned_positions(standard[a], standard[b]), stats)
        targets.append(values)
        weights.append(weight)
    label = [list(labels).index(e) for e in table["emotion"]]
    source = torch.tensor([label[a] for a in pairs["source"]])
    target = torch.tensor([label[b] for b in pairs["target"]])
    strong = torch.tensor([float(table.at[b, "intensity"] >= 2) for b in pairs["target"]])
    return ContourSet([converter_inputs(c, stats) for c in clips], pairs.to_numpy(),
                      converter_code(source, target, strong, len(labels)), targets, weights)


@dataclass
class TrainedConverter:
    """A trained converter with what using it needs, and its losses per epoch."""

    model: ContourConverter
    stats: CepstralStats
    labels: tuple[str, ...]
    history: dict[str, list[float]]
    data: dict


def fit_converter(train: ContourSet, config: ConverterTrainConfig,
                  val: ContourSet | None = None,
                  progress: bool = True) -> tuple[ContourConverter, dict[str, list[float]]]:
    """Train a converter on ``train`` with Adam and a cosine learning-rate decay; the history
    holds the mean training loss and, with ``val``, the validation loss of each epoch."""
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    model = ContourConverter(config.model)
    n = config.model.n_emotions
    head = ChangeClassifier(config.model.n_inputs, config.model.n_outputs, n)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    head_optimiser = torch.optim.Adam(head.parameters(), lr=config.learning_rate)
    steps = config.epochs * max(1, len(train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    history: dict[str, list[float]] = {"train": [], "val": []}
    for epoch in tqdm(range(config.epochs), desc="converter", unit="epoch", disable=not progress):
        model.train()
        order, losses = rng.permutation(len(train)), []
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            x, code, y, w = train.batch(order[start:start + config.batch_size], config.crop, rng)
            output = model(x, code)
            loss, _ = converter_loss(output, x, y, w, config.variance_weight)
            source, target, mask = code[:, :n], code[:, n:2 * n].argmax(1), w[:, 2]
            if config.emotion_weight:  # as sure of the target as the real change, not surer
                converted, real = (nn.functional.cross_entropy(head(x, change, source, mask),
                                                               target, reduction="none")
                                   for change in (output, y))
                loss = loss + config.emotion_weight * (converted - real.detach()).relu().mean()
            check_finite({"converter": loss.item()}, epoch + 1)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            if config.emotion_weight:  # the head learns from real changes only
                head_optimiser.zero_grad()
                nn.functional.cross_entropy(head(x, y, source, mask), target).backward()
                head_optimiser.step()
            losses.append(loss.item())
        history["train"].append(float(np.mean(losses)) if losses else float("nan"))
        if val is not None:
            history["val"].append(evaluate_converter(model, val, config))
        log.info("converter epoch %d: train %.4f val %s", epoch + 1, history["train"][-1],
                 history["val"][-1] if history["val"] else "-")
    return model.eval(), history


def evaluate_converter(model: ContourConverter, data: ContourSet,
                       config: ConverterTrainConfig) -> float:
    """The mean loss over every pair of ``data``, each whole clip at once."""
    model.eval()
    losses = []
    with torch.no_grad():
        for k in range(len(data)):
            frames = data.inputs[data.pairs[k, 0]].shape[1]
            x, code, y, w = data.batch([k], frames, np.random.default_rng(0))
            losses.append(float(converter_loss(model(x, code), x, y, w,
                                               config.variance_weight)[0]))
    return float(np.mean(losses))


def train_converter(data: Sources,
                    config: ConverterTrainConfig = ConverterTrainConfig(),
                    train_actors: Sequence[int | str] | None = None,
                    val_actors: Sequence[int | str] = (),
                    audio: AudioConfig = AudioConfig(), cache_dir: str | os.PathLike | None = None,
                    progress: bool = True, allow_new_emotions: bool = False) -> TrainedConverter:
    """Train the contour converter on a parallel corpus (folder or manifest).

    ``val_actors`` defaults to a manifest's ``val`` speakers; ``train_actors`` to its ``train``
    speakers, else every actor neither in ``val_actors`` nor a manifest's ``test`` speakers
    (actor numbers or speaker names: :func:`~emogan_utils.data.select_actors`). The cepstral
    statistics come from the training actors only. ``allow_new_emotions`` keeps a manifest's
    emotions outside the known names as classes of their own."""
    table = load_corpus(data, allow_new_emotions=allow_new_emotions)
    labels, source = corpus_labels(table), source_label(data)
    if config.reference not in labels:
        raise ValueError(f"{source}: no {config.reference} recordings to pair with (the corpus "
                         f"has {', '.join(labels)})")
    train_actors, val_actors = held_out_split(table, val_actors, train_actors, source)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                   n_emotions=len(labels)))
    parts = {}
    for name, chosen in (("train", train_actors), ("val", val_actors)):
        rows = table[table["actor"].isin(chosen)].reset_index(drop=True)
        parts[name] = (rows, corpus_contours(rows, audio, cache_dir, progress))
    stats = CepstralStats.fit(parts["train"][1])
    sets = {name: contour_set(rows, clips, stats, labels, config.pairing, config.reference,
                              progress) if len(rows) else None
            for name, (rows, clips) in parts.items()}
    model, history = fit_converter(sets["train"], config, sets["val"], progress)
    provenance = {**run_data(table, data, train_actors, val_actors, labels),
                  **training_speakers(table, train_actors, val_actors),
                  "train_config": config.to_dict()}
    return TrainedConverter(model, stats, tuple(labels), history, provenance)


def save_converter(path: str | os.PathLike, trained: TrainedConverter,
                   audio: AudioConfig = AudioConfig()) -> Path:
    """Write a ``converter`` checkpoint (atomically)."""
    return save_checkpoint(path, kind="converter", model_config=trained.model.config.to_dict(),
                           state={"converter": trained.model.state_dict()}, audio=audio,
                           labels=trained.labels,
                           extra={"cepstral_stats": trained.stats.state_dict(),
                                  "history": trained.history, **trained.data})
