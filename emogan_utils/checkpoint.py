"""One checkpoint format for every model: weights plus everything needed to use them.

A checkpoint is a dict of plain types and tensors, so it loads with ``weights_only=True``:
``format`` (version), ``kind`` ("classifier", "gan", ...), ``model_config`` (constructor
arguments), ``state`` (one state dict per network or optimiser), ``audio`` (the
:class:`AudioConfig` as a dict), ``normalizer`` (its state), ``labels`` and ``extra``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from emogan_utils import storage
from emogan_utils.config import EmoganError
from emogan_utils.data import EMOTIONS
from emogan_utils.features import AudioConfig, Normalizer

FORMAT_VERSION = 1


class CheckpointError(EmoganError):
    """A checkpoint that is missing, corrupt, of the wrong kind or made with other parameters."""


def save_checkpoint(path: str | os.PathLike, *, kind: str, model_config: dict[str, Any],
                    state: dict[str, dict], audio: AudioConfig,
                    normalizer: Normalizer | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; returns its path."""
    path = Path(path)
    payload = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "model_config": dict(model_config),
        "state": state,
        "audio": audio.to_dict(),
        "normalizer": normalizer.state_dict() if normalizer is not None else None,
        "labels": list(EMOTIONS),
        "extra": dict(extra or {}),
    }
    with storage.atomic_path(path) as tmp:
        torch.save(payload, tmp)
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
        raise CheckpointError(f"{path}: not a readable emogan checkpoint ({err})") from err
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not an emogan checkpoint (no format version)")
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']} but this emogan "
                              f"reads format {FORMAT_VERSION}; retrain or use a matching version")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path}: a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    if payload.get("labels") != list(EMOTIONS):
        raise CheckpointError(f"{path}: label map {payload.get('labels')} differs from {list(EMOTIONS)}")
    saved_audio = AudioConfig.from_dict(payload["audio"])
    if audio is not None and saved_audio != audio:
        raise CheckpointError(f"{path}: made with other audio parameters ("
                              + "; ".join(saved_audio.differences(audio)) + ")")
    payload["audio"] = saved_audio
    if payload.get("normalizer") is not None:
        payload["normalizer"] = Normalizer.from_state(payload["normalizer"])
    return payload
