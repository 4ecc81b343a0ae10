"""Device, seeding and mixed precision: the device to compute on, seeding every random
generator and saving their state for a resumed run, and the autocast dtype, context and
gradient scaler. It imports only torch, NumPy and the standard library, so any module can use it.
"""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA, then Apple MPS, then CPU."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def random_state(data_rng: torch.Generator) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """Everything a resumed run needs to draw the same random numbers: data order, torch's
    global generator (augmentation, dropout) and, where there is one, the GPUs'."""
    state = {"data": data_rng.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(data_rng: torch.Generator, state: dict) -> None:
    """Undo :func:`random_state`."""
    data_rng.set_state(state["data"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype for mixed precision: fp16 on CUDA, bf16 on CPU, None when off."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu":
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, active only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
