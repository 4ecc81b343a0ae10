"""One checkpoint format for every model: weights plus everything needed to use them.

A checkpoint is a dict of plain types and tensors, so it loads with ``weights_only=True``:
``format`` (version), ``kind`` ("classifier", "gan", ...), ``model_config`` (constructor
arguments), ``state`` (one state dict per network or optimiser), ``audio`` (the
:class:`AudioConfig` as a dict), ``normalizer`` (its state), ``labels`` and ``extra``. A
training run's checkpoint also keeps its settings and data in ``extra``, and
:func:`check_resumable` refuses to resume it with other ones.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import re
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from emogan_utils import storage
from emogan_utils.config import EmoganError
import pandas as pd

from emogan_utils.data import EMOTIONS, corpus_fingerprint
from emogan_utils.features import AudioConfig, Normalizer

FORMAT_VERSION = 1
FIELDS = {"kind": str, "model_config": dict, "state": dict, "audio": dict, "extra": dict}
"""The entries every checkpoint holds, and their types."""
Config = TypeVar("Config")
SIZE_FLOOR = 1024
"""Integer sizes in a model configuration up to this pass without a tensor that large: laying
out a network that big on the ``meta`` device takes well under a second."""


class CheckpointError(EmoganError):
    """A checkpoint that is missing, corrupt, of the wrong kind or made with other parameters."""


def save_checkpoint(path: str | os.PathLike, *, kind: str, model_config: dict[str, Any],
                    state: dict[str, dict], audio: AudioConfig,
                    normalizer: Normalizer | None = None,
                    extra: dict[str, Any] | None = None,
                    labels: Sequence[str] = EMOTIONS) -> Path:
    """Write a checkpoint atomically; returns its path. ``labels`` are the emotions of the
    model's outputs (or conditioning), in order: the corpus's label set."""
    path = Path(path)
    bad = non_finite(state)
    if bad is not None:
        raise CheckpointError(f"{path}: not saved: {bad} holds NaN or infinite values (training "
                              "diverged); the file was left as it was")
    payload = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "model_config": dict(model_config),
        "state": state,
        "audio": audio.to_dict(),
        "normalizer": normalizer.state_dict() if normalizer is not None else None,
        "labels": list(labels),
        "extra": dict(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    storage.write_bytes(path, buffer.getbuffer())
    storage.remove_stale(storage.stale_temps(path))  # left by saves that were killed
    return path


def load_checkpoint(path: str | os.PathLike, kind: str | None = None,
                    audio: AudioConfig | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint: format version, kind, and (if given) audio parameters."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise _load_error(path, err) from err
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not an emogan checkpoint (no format version)")
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']} but this emogan "
                              f"reads format {FORMAT_VERSION}; retrain or use a matching version")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path}: a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    labels = payload.setdefault("labels", list(EMOTIONS))  # made before label sets: RAVDESS's
    if (not isinstance(labels, list) or not labels or len(set(labels)) != len(labels)
            or not all(isinstance(e, str) for e in labels)):
        raise CheckpointError(f"{path}: not a readable emogan checkpoint (its labels {labels!r} "
                              "are not a list of distinct emotion names)")
    for key, kind in FIELDS.items():
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{path}: not a readable emogan checkpoint ({key!r} is missing "
                                  f"or not a {kind.__name__})")
    try:
        saved_audio = AudioConfig.from_dict(payload["audio"])
        if payload.get("normalizer") is not None:
            payload["normalizer"] = Normalizer.from_state(payload["normalizer"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable emogan checkpoint ({err})") from err
    if audio is not None and saved_audio != audio:
        raise CheckpointError(f"{path}: made with other audio parameters ("
                              + "; ".join(saved_audio.differences(audio)) + ")")
    payload["audio"] = saved_audio
    return payload


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The kind of the emogan checkpoint at ``path`` (``"gan"``, ``"classifier"``, ...); None
    if the file is not a readable one."""
    try:
        return load_checkpoint(path)["kind"]
    except CheckpointError:
        return None


def check_labels(path: str | os.PathLike, labels: Sequence[str],
                 data_labels: Sequence[str]) -> None:
    """Raise :class:`CheckpointError` naming both sets if the data has emotions the checkpoint
    at ``path`` (with ``labels``) does not know."""
    unknown = [e for e in data_labels if e not in labels]
    if unknown:
        raise CheckpointError(f"{path}: made for the emotions {', '.join(labels)}, but the data "
                              f"has {', '.join(data_labels)} ({', '.join(unknown)} unknown to "
                              "it); use a checkpoint trained on this corpus's emotions")


def _load_error(path: Path, err: Exception) -> CheckpointError:
    """The error for a file ``torch.load(weights_only=True)`` refused, without torch's advice
    to load it with ``weights_only=False``: a file that is not weights could run code."""
    found = re.search(r"GLOBAL (\S+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
    if found:
        return CheckpointError(f"{path}: not a readable emogan checkpoint: it holds the Python "
                               f"object {found.group(1)}, which loading could run as code, so "
                               "emogan refused it. Do not load it with torch.load(weights_only="
                               "False) unless you made the file yourself")
    if isinstance(err, pickle.UnpicklingError):
        return CheckpointError(f"{path}: not a readable emogan checkpoint (not a torch file of "
                               "weights, or a damaged one)")
    return CheckpointError(f"{path}: not a readable emogan checkpoint ({err})")


def build_config(path: str | os.PathLike, cls: type[Config], values: Any) -> Config:
    """The ``cls`` dataclass built from a checkpoint's ``values``; :class:`CheckpointError`
    naming ``path`` if they do not fit it (unknown, missing or invalid fields)."""
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable emogan checkpoint ({cls.__name__}: "
                              f"{err})") from err


def build_model(path: str | os.PathLike, make: Callable[[Config], torch.nn.Module],
                cls: type[Config], values: Any, state: dict, name: str) -> torch.nn.Module:
    """The network ``make(config)`` with the weights ``state[name]``, ``config`` the ``cls``
    dataclass of the checkpoint's ``values``; :class:`CheckpointError` naming ``path`` unless
    the configuration fits the tensors the checkpoint holds.

    No configuration is trusted: its integer sizes are first bounded by the state's tensor
    count and largest dimension (or :data:`SIZE_FLOOR`, as a size need not be a dimension:
    the mel bins of a convolution), then the network is laid out on the ``meta`` device (no
    memory) and its tensor names and shapes compared with the state's, before any weight is
    allocated."""
    config = build_config(path, cls, values)
    weights = state.get(name)
    if not isinstance(weights, dict) or not weights \
            or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise CheckpointError(f"{path}: not a readable emogan checkpoint (no {name!r} state)")
    largest = max(max(t.shape, default=1) for t in weights.values())
    limit = max(len(weights), largest, SIZE_FLOOR)
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= limit:
            raise CheckpointError(f"{path}: not a readable emogan checkpoint ({cls.__name__}."
                                  f"{field.name} = {value} cannot fit its {len(weights)} "
                                  f"{name!r} tensors, the largest dimension {largest})")
    try:
        with torch.device("meta"):
            layout = {k: tuple(t.shape) for k, t in make(config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable emogan checkpoint ({cls.__name__}: "
                              f"{err})") from err
    found = {k: tuple(t.shape) for k, t in weights.items()}
    if layout != found:
        key = next(k for k in sorted({*layout, *found}) if layout.get(k) != found.get(k))
        raise CheckpointError(f"{path}: not a readable emogan checkpoint (its model_config "
                              f"does not match its {name!r} weights: {key} is "
                              f"{found.get(key, 'missing')}, the configuration makes it "
                              f"{layout.get(key, 'absent')})")
    model = make(config)
    load_weights(path, model, state, name)
    return model


def load_weights(path: str | os.PathLike, module: Any, state: dict, name: str) -> None:
    """Load ``state[name]`` into ``module`` (a network, optimiser or scheduler);
    :class:`CheckpointError` naming ``path`` if it is missing or does not fit."""
    if not isinstance(state.get(name), dict):
        raise CheckpointError(f"{path}: not a readable emogan checkpoint (no {name!r} state)")
    bad = non_finite(state[name], name)
    if bad is not None:
        raise CheckpointError(f"{path}: unusable checkpoint: {bad} holds NaN or infinite "
                              "values (its training diverged)")
    try:
        module.load_state_dict(state[name])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable emogan checkpoint ({name!r} state does "
                              f"not fit: {err})") from err


def non_finite(state: Any, name: str = "state") -> str | None:
    """The dotted name of the first floating-point tensor in ``state`` (nested dicts, lists
    and tuples) with a NaN or infinite value; None if there is none. Plain floats are not
    looked at: a scheduler's state holds ``inf`` as its best loss before the first epoch."""
    if isinstance(state, torch.Tensor):
        finite = not state.is_floating_point() or bool(torch.isfinite(state).all())
        return None if finite else name
    items = (state.items() if isinstance(state, dict)
             else enumerate(state) if isinstance(state, (list, tuple)) else ())
    for key, value in items:
        found = non_finite(value, f"{name}.{key}")
        if found is not None:
            return found
    return None


# --- resuming an interrupted training run

def resumable_config(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share with the interrupted one: a training config's
    ``to_dict()`` without the progress bar."""
    return {k: v for k, v in settings.items() if k != "progress"}


def run_data(table: pd.DataFrame, source: str | os.PathLike, train_actors: Sequence[int],
             val_actors: Sequence[int], labels: Sequence[str]) -> dict:
    """What a training run trains on, kept in its checkpoints and compared on resume
    (:func:`check_resumable`): its actors, the fingerprint of their recordings in ``table``
    (a corpus read from ``source``) and the label set."""
    train_actors, val_actors = [int(a) for a in train_actors], [int(a) for a in val_actors]
    used = table[table["actor"].isin([*train_actors, *val_actors])]
    return {"train_actors": train_actors, "val_actors": val_actors,
            "corpus": corpus_fingerprint(used, source), "labels": list(labels)}


def check_resumable(path: Path, saved: dict, wanted: dict, what: str,
                    data: dict | None = None) -> None:
    """Raise if the run checkpoint at ``path`` was made with other training settings, or with
    other ``data`` (entries of its ``extra``: actors, corpus fingerprint)."""
    extra = saved["extra"]
    for found, expected, made_with in (
            (extra.get("train_config", {}), wanted, f"another {what} training configuration"),
            (extra, data or {}, "other data (actors or recordings)")):
        differ = [f"{k}: {found.get(k)!r} != {v!r}" for k, v in expected.items()
                  if _plain(found.get(k)) != _plain(v)]
        if differ:
            raise CheckpointError(f"{path}: cannot resume, made with {made_with} "
                                  f"({'; '.join(differ)}); give the same ones, or start "
                                  "afresh without --resume")


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal after a checkpoint round trip."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
