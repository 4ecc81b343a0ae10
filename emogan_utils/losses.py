"""Training losses: the classifier's cross-entropy (label smoothing, mixup of batch pairs), the
GAN's least-squares adversarial loss and L1 to the time-aligned real target (on mel bins or
mel-cepstra), and the contour converter's L1 and spread matching."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from emogan_utils.config import EmoganError
from emogan_utils.contours import ENERGY_UNIT_DB, F0_UNIT, N_CEPSTRA, OUTPUT_UNITS, SCALES


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


def converter_loss(output: torch.Tensor, inputs: torch.Tensor, target: torch.Tensor,
                   weight: torch.Tensor, variance_weight: float) -> tuple[torch.Tensor, dict]:
    """Weighted L1 to the aligned real target for each contour (log-F0, energy, duration,
    the mel-cepstra together), plus ``variance_weight`` times the L1 between the converted
    and the real spread of log-F0 and energy over each clip's weighted frames."""
    def l1(rows: slice) -> torch.Tensor:
        w = weight[:, rows]
        return (w * (output[:, rows] - target[:, rows]).abs()).sum() / w.sum().clamp_min(1.0)

    parts = {"log_f0": l1(slice(0, 1)), "energy": l1(slice(1, 2)),
             "duration": l1(slice(2, 3)), "cepstra": l1(slice(3, 3 + N_CEPSTRA))}
    # the source's own contours in output units, to compare the spreads of the results
    source = torch.stack([inputs[:, 0] * (F0_UNIT / OUTPUT_UNITS["log_f0"]),
                          inputs[:, 1 + len(SCALES)] * (ENERGY_UNIT_DB / OUTPUT_UNITS["energy_db"])], dim=1)
    spread = torch.zeros((), dtype=output.dtype)
    for k in range(2):
        converted, real = source[:, k] + output[:, k], source[:, k] + target[:, k]
        spread = spread + (_weighted_std(converted, weight[:, k])
                           - _weighted_std(real, weight[:, k])).abs().mean()
    parts["spread"] = spread
    total = sum(v for k, v in parts.items() if k != "spread") + variance_weight * spread
    return total, {k: v.item() for k, v in parts.items()}


def _weighted_std(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per row of ``(B, T)`` values, the standard deviation over frames weighted by ``weight``."""
    total = weight.sum(1).clamp_min(1.0)
    mean = (weight * values).sum(1) / total
    return ((weight * (values - mean[:, None]) ** 2).sum(1) / total + 1e-6).sqrt()
