"""Training losses: the classifier's cross-entropy (label smoothing, mixup of batch pairs) and
the GAN's least-squares adversarial loss and L1 to the time-aligned real target (on mel bins or
mel-cepstra)."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from emogan_utils.config import EmoganError


def classifier_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mixup: float,
                    smoothing: float, generator: torch.Generator,
                    speakers: torch.Tensor | None = None, reversal: float = 0.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and (label-smoothed) cross-entropy, with mixup of batch pairs when ``mixup`` > 0.

    With ``speakers`` (each example's training speaker) the model's speaker head is trained too,
    behind a gradient reversal of weight ``reversal``: its cross-entropy is added to the loss.
    """
    lam, perm = 1.0, None
    if mixup > 0:
        lam = torch.distributions.Beta(mixup, mixup).sample().item()
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        x = lam * x + (1 - lam) * x[perm]

    def mixed(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
        loss = nn.functional.cross_entropy(logits, target, label_smoothing=smooth)
        if perm is None:
            return loss
        return lam * loss + (1 - lam) * nn.functional.cross_entropy(
            logits, target[perm], label_smoothing=smooth)

    if speakers is None:
        logits = model(x)
        return logits, mixed(logits, y, smoothing)
    logits, speaker_logits = model(x, reversal=reversal)
    return logits, mixed(logits, y, smoothing) + mixed(speaker_logits, speakers, 0.0)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of ``scores`` from 1 (``real``) or 0."""
    return ((scores.float() - (1.0 if real else 0.0)) ** 2).mean()


def paired_l1(fake: torch.Tensor, aligned: torch.Tensor, n_cepstra: int | None) -> torch.Tensor:
    """Mean L1 between ``(B, n_mels, T)`` mels, or between their first ``n_cepstra`` cepstra."""
    if n_cepstra is None:
        return (fake - aligned).abs().mean()
    dct = torchaudio.functional.create_dct(n_cepstra, fake.shape[1], "ortho").to(fake.device)
    return (torch.einsum("bft,fk->bkt", fake - aligned, dct)).abs().mean()


class DivergedError(EmoganError):
    """Training reached a NaN or infinite loss."""


def check_finite(losses: dict[str, float], epoch: int, checkpoint: object = None) -> None:
    """Raise :class:`DivergedError` naming the first of ``losses`` that is NaN or infinite, the
    epoch, and what ``checkpoint`` (if any) still holds."""
    bad = next((name for name, value in losses.items() if not math.isfinite(value)), None)
    if bad is None:
        return
    kept = (f"{checkpoint} keeps the last finished epoch" if checkpoint is not None
            else "nothing was saved")
    raise DivergedError(f"training stopped in epoch {epoch}: the {bad} loss is "
                        f"{losses[bad]} (training diverged); {kept}; lower the learning rate "
                        "or the loss weights")
