"""Training losses: the classifier's cross-entropy (label smoothing, mixup of batch pairs) and
the GAN's least-squares adversarial loss and L1 to the time-aligned real target (on mel bins or
mel-cepstra)."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


def classifier_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mixup: float,
                    smoothing: float, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and (label-smoothed) cross-entropy, with mixup of batch pairs when ``mixup`` > 0."""
    def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, target, label_smoothing=smoothing)

    if mixup <= 0:
        logits = model(x)
        return logits, ce(logits, y)
    lam = torch.distributions.Beta(mixup, mixup).sample().item()
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    logits = model(lam * x + (1 - lam) * x[perm])
    loss = lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])
    return logits, loss


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of ``scores`` from 1 (``real``) or 0."""
    return ((scores.float() - (1.0 if real else 0.0)) ** 2).mean()


def paired_l1(fake: torch.Tensor, aligned: torch.Tensor, n_cepstra: int | None) -> torch.Tensor:
    """Mean L1 between ``(B, n_mels, T)`` mels, or between their first ``n_cepstra`` cepstra."""
    if n_cepstra is None:
        return (fake - aligned).abs().mean()
    dct = torchaudio.functional.create_dct(n_cepstra, fake.shape[1], "ortho").to(fake.device)
    return (torch.einsum("bft,fk->bkt", fake - aligned, dct)).abs().mean()
