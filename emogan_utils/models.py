"""Neural network models: the speech emotion classifier (and running it over many log-mels in
batches), its eGeMAPS branch, and the conditional GAN (and its one-hot emotion conditioning)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from emogan_utils.data import EMOTIONS
from emogan_utils.egemaps import N_FUNCTIONALS
from emogan_utils.features import AudioConfig
from emogan_utils.runtime import autocast

# The shapes' defaults come from the features (n_mels) and the corpus (the emotions), so that
# they are set in one place; a checkpoint stores its own values and is built from those.

# --- emotion classifier


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of :class:`EmotionClassifier`; stored in checkpoints as its constructor arguments."""

    n_mels: int = AudioConfig.n_mels
    n_classes: int = len(EMOTIONS)
    channels: int = 64
    n_blocks: int = 2
    kernel_size: int = 5
    stride: int = 2
    """Time downsampling in the stem: every later layer costs ``1/stride`` as much."""
    dropout: float = 0.2
    attention_dim: int = 64
    n_speakers: int = 0
    """Outputs of the adversarial speaker head (training speakers); 0: no head."""

    def to_dict(self) -> dict:
        return asdict(self)


class GradientReversal(torch.autograd.Function):
    """The identity going forward; going back, the gradient times ``-weight``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


class ResidualBlock1d(nn.Module):
    """Two dilated 1-D convolutions over time with batch norm, plus an identity shortcut."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(channels), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(channels))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over time: ``(B, C, T)`` to ``(B, 2C)``.

    The weights let the model ignore padding and silence, and make the output independent of
    clip length.
    """

    def __init__(self, channels: int, attention_dim: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, attention_dim, 1), nn.Tanh(), nn.Conv1d(attention_dim, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.attention(x), dim=-1)
        mean = (weights * x).sum(-1)
        var = (weights * x.pow(2)).sum(-1) - mean.pow(2)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)


class EmotionClassifier(nn.Module):
    """Normalised log-mel ``(B, n_mels, T)`` to emotion logits ``(B, n_classes)``, any ``T``.

    A 1-D CNN over time with the mel bins as channels (an order of magnitude cheaper on a CPU
    than a 2-D CNN over the mel image), residual blocks with growing dilation for a wide
    receptive field, and attentive statistics pooling. With ``n_speakers`` it also has a
    speaker head behind a gradient reversal, which training uses to push speaker identity out
    of the pooled statistics; the emotion logits never depend on it.
    """

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.stem = nn.Sequential(
            nn.Conv1d(config.n_mels, c, config.kernel_size, stride=config.stride,
                      padding=config.kernel_size // 2, bias=False),
            nn.BatchNorm1d(c), nn.ReLU())
        self.blocks = nn.Sequential(*(
            ResidualBlock1d(c, config.kernel_size, 2 ** i, config.dropout)
            for i in range(config.n_blocks)))
        self.pool = AttentiveStatsPool(c, config.attention_dim)
        self.head = nn.Sequential(nn.BatchNorm1d(2 * c), nn.Dropout(config.dropout),
                                  nn.Linear(2 * c, config.n_classes))
        self.speaker_head = (nn.Sequential(nn.Linear(2 * c, c), nn.ReLU(),
                                           nn.Linear(c, config.n_speakers))
                             if config.n_speakers else None)

    def forward(self, mel: torch.Tensor, reversal: float | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Emotion logits; with ``reversal``, also the speaker head's logits, whose gradient
        reaches the rest of the model reversed and scaled by ``reversal``."""
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"expected log-mels of shape (batch, {self.config.n_mels}, frames), "
                             f"got {tuple(mel.shape)}")
        pooled = self.pool(self.blocks(self.stem(mel)))
        if reversal is None:
            return self.head(pooled)
        if self.speaker_head is None:
            raise ValueError("this classifier has no speaker head (n_speakers is 0)")
        return self.head(pooled), self.speaker_head(GradientReversal.apply(pooled, reversal))


class EnsembleClassifier(nn.Module):
    """Classifiers of one shape (trained with different seeds) whose probabilities are averaged.

    Its outputs are the logarithms of the mean probabilities, so it stands in for one
    :class:`EmotionClassifier` anywhere: a softmax of them is that mean.
    """

    def __init__(self, members: Sequence[EmotionClassifier]):
        super().__init__()
        if not members or len({m.config for m in members}) != 1:
            raise ValueError("an ensemble needs one or more classifiers of the same shape")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(mel).float(), dim=1) for m in self.members])
        return probs.mean(0).clamp_min(torch.finfo(torch.float32).tiny).log()


@dataclass(frozen=True)
class FunctionalsConfig:
    """Shape of :class:`FunctionalsClassifier`; stored in checkpoints as its constructor
    arguments."""

    n_features: int = N_FUNCTIONALS
    n_classes: int = len(EMOTIONS)
    hidden: int = 128
    dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


class FunctionalsClassifier(nn.Module):
    """The eGeMAPS branch: a one-hidden-layer perceptron on a clip's functionals minus its
    speaker's mean, each functional first scaled by the training rows' spread; its logits are
    divided by a temperature so that its probabilities are calibrated (``shift``, ``scale`` and
    ``temperature`` are buffers set by training)."""

    def __init__(self, config: FunctionalsConfig = FunctionalsConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("shift", torch.zeros(config.n_features))
        self.register_buffer("scale", torch.ones(config.n_features))
        self.register_buffer("temperature", torch.ones(()))
        self.net = nn.Sequential(nn.Linear(config.n_features, config.hidden), nn.GELU(),
                                 nn.Dropout(config.dropout),
                                 nn.Linear(config.hidden, config.n_classes))

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        return self.net((centred - self.shift) / self.scale) / self.temperature


def batched_logits(model: nn.Module, mel: np.ndarray | torch.Tensor, device: torch.device,
                   batch_size: int = 128, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits of the model in eval mode for many normalised log-mels, on the CPU."""
    model.eval()
    mel = torch.as_tensor(mel, dtype=torch.float32)
    outs = []
    with torch.no_grad(), autocast(device, dtype):
        for start in range(0, len(mel), batch_size):
            outs.append(model(mel[start:start + batch_size].to(device)).float().cpu())
    return torch.cat(outs)


# --- conditional GAN

@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the conditional UNet generator (saved in GAN checkpoints)."""

    n_mels: int = AudioConfig.n_mels
    n_emotions: int = len(EMOTIONS)
    channels: int = 16
    """Width after the stem; doubles with each downsampling."""
    depth: int = 3
    """Strided downsamplings; each halves mel bins and frames, so n_mels must divide by 2**depth."""
    n_res_blocks: int = 3
    """Emotion-conditioned residual blocks at the bottleneck."""

    @property
    def factor(self) -> int:
        """Frames are padded to a multiple of this internally."""
        return 2 ** self.depth


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Shape of the PatchGAN discriminator (saved in GAN checkpoints)."""

    n_mels: int = AudioConfig.n_mels
    n_emotions: int = len(EMOTIONS)
    channels: int = 16
    depth: int = 4


def emotion_maps(code: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast ``(B, n_emotions)`` codes to constant maps the size of ``like`` ``(B, C, F, T)``."""
    return code[:, :, None, None].expand(-1, -1, *like.shape[-2:]).to(like.dtype)


def emotion_code(labels: torch.Tensor, n_emotions: int) -> torch.Tensor:
    """One-hot conditioning vectors ``(B, n_emotions)``."""
    return nn.functional.one_hot(labels, n_emotions).float()


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift come from the emotion code (StarGAN-VC2's CIN)."""

    def __init__(self, channels: int, n_emotions: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.film = nn.Linear(n_emotions, 2 * channels)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(code).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class ConditionalResBlock(nn.Module):
    """Two 3x3 convolutions, each after a conditional instance norm, added to the input."""

    def __init__(self, channels: int, n_emotions: int):
        super().__init__()
        self.norm1 = ConditionalInstanceNorm(channels, n_emotions)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = ConditionalInstanceNorm(channels, n_emotions)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.leaky_relu(self.norm1(x, code), 0.2))
        return x + self.conv2(nn.functional.leaky_relu(self.norm2(h, code), 0.2))


def _down(c_in: int, c_out: int) -> nn.Sequential:
    """Strided 4x4 convolution halving both axes, instance norm, leaky ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                         nn.InstanceNorm2d(c_out, affine=True), nn.LeakyReLU(0.2))


class UpBlock(nn.Module):
    """Nearest upsampling and a 3x3 convolution, then merge the skip connection."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                nn.Conv2d(c_in, c_out, 3, padding=1),
                                nn.InstanceNorm2d(c_out, affine=True), nn.LeakyReLU(0.2))
        self.merge = nn.Sequential(nn.Conv2d(2 * c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([self.up(x), skip], dim=1))


class UNetGenerator(nn.Module):
    """Conditional 2-D UNet on range-normalised log-mels ``(B, n_mels, T)`` in [-1, 1].

    The target emotion code (a one-hot, or a blend of two for partial strength) enters as
    constant maps at the input and the bottleneck and through conditional instance norms.
    The network predicts a residual on top of the source, so words and speaker survive by
    default; the last layer starts at zero, making the untrained generator the identity.
    Any number of frames works: the input is padded to a multiple of ``config.factor``
    with silence (-1) and the output cropped back.
    """

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        if config.n_mels % config.factor:
            raise ValueError(f"n_mels={config.n_mels} must divide by 2**depth={config.factor}")
        self.config = config
        c, e = config.channels, config.n_emotions
        widths = [c * 2 ** i for i in range(config.depth)]
        # Full resolution is touched only by the strided stem and the head: the costly
        # convolutions all run at 1/4 or less of the mel-frame grid.
        self.stem = nn.Sequential(nn.Conv2d(1 + e, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(_down(a, b) for a, b in zip(widths, widths[1:]))
        self.inject = nn.Conv2d(widths[-1] + e, widths[-1], 1)
        self.res = nn.ModuleList(ConditionalResBlock(widths[-1], e)
                                 for _ in range(config.n_res_blocks))
        self.up = nn.ModuleList(UpBlock(b, a) for a, b in reversed(list(zip(widths, widths[1:]))))
        self.head = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                  nn.Conv2d(c, c // 2, 3, padding=1), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(c // 2 + 1, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, mel: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        frames = mel.shape[-1]
        x = nn.functional.pad(mel, (0, -frames % self.config.factor), value=-1.0).unsqueeze(1)
        h = self.stem(torch.cat([x, emotion_maps(code, x)], dim=1))
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()
        h = self.inject(torch.cat([h, emotion_maps(code, h)], dim=1))
        for block in self.res:
            h = block(h, code)
        for up in self.up:
            h = up(h, skips.pop())
        residual = self.out(torch.cat([self.head(h), x], dim=1))
        out = (x + residual).clamp(-1.0, 1.0)
        return out[:, 0, :, :frames]


class PatchDiscriminator(nn.Module):
    """Spectrally normalised PatchGAN with an auxiliary emotion classifier (StarGAN-style).

    Returns per-patch real/fake scores ``(B, patches)`` and emotion logits ``(B, n_emotions)``
    (class scores averaged over patches), for log-mels ``(B, n_mels, T)`` of any length.
    """

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        sn = nn.utils.parametrizations.spectral_norm
        widths = [1] + [config.channels * 2 ** i for i in range(config.depth)]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [sn(nn.Conv2d(a, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.adv = sn(nn.Conv2d(widths[-1], 1, 3, padding=1))
        # No spectral norm on the class head: bounding it keeps the logits too small for the
        # cross-entropy to fall below chance (d_cls stayed at ln 8 on RAVDESS).
        self.cls = nn.Conv2d(widths[-1], config.n_emotions, 3, padding=1)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(mel.unsqueeze(1))
        return self.adv(h).flatten(1), self.cls(h).mean(dim=(2, 3))


# --- contour converter


@dataclass(frozen=True)
class ConverterConfig:
    """Shape of :class:`ContourConverter`; stored in checkpoints as its constructor arguments.

    The conditioning is the source emotion's one-hot, the target's, and the intensity (0 for
    normal, 1 for strong): ``2 * n_emotions + 1`` numbers."""

    n_inputs: int = 33
    n_outputs: int = 27
    n_emotions: int = len(EMOTIONS)
    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    kernel_size: int = 5

    def __post_init__(self) -> None:
        if not (isinstance(self.dilations, tuple) and self.dilations
                and all(isinstance(d, int) and 1 <= d <= 256 for d in self.dilations)):
            raise ValueError(f"dilations must be a non-empty tuple of integers from 1 to 256, "
                             f"got {self.dilations!r}")
        if not (isinstance(self.kernel_size, int) and 1 <= self.kernel_size <= 31
                and self.kernel_size % 2):
            raise ValueError(f"kernel_size must be an odd integer up to 31, got "
                             f"{self.kernel_size!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "dilations": list(self.dilations)}


class FiLMBlock1d(nn.Module):
    """A dilated convolution whose output is scaled and shifted by the conditioning (FiLM),
    then a pointwise convolution, added to the input."""

    def __init__(self, channels: int, n_code: int, kernel_size: int, dilation: int):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation)
        self.film = nn.Linear(n_code, 2 * channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(code).chunk(2, dim=1)
        h = self.conv(x) * (1 + gamma[:, :, None]) + beta[:, :, None]
        return x + self.mix(nn.functional.gelu(h))


class ContourConverter(nn.Module):
    """Frame-by-frame changes of a clip's contours towards a target emotion.

    Takes the source's contour features ``(B, n_inputs, T)`` (:func:`emogan_utils.contours
    .converter_inputs`) and the conditioning ``(B, 2 * n_emotions + 1)``; returns ``(B,
    n_outputs, T)`` in the units of :func:`emogan_utils.contours.converted_contours`: the
    change of log-F0, of energy, the log of each frame's duration and the change of each
    mel-cepstrum. Dilated convolutions see about 1.3 s of context each way at 10-ms frames,
    enough for a phrase's pitch and energy shape."""

    def __init__(self, config: ConverterConfig = ConverterConfig()):
        super().__init__()
        self.config = config
        n_code = 2 * config.n_emotions + 1
        self.inp = nn.Conv1d(config.n_inputs, config.channels, 1)
        self.blocks = nn.ModuleList(FiLMBlock1d(config.channels, n_code, config.kernel_size, d)
                                    for d in config.dilations)
        self.out = nn.Conv1d(config.channels, config.n_outputs, 1)
        nn.init.zeros_(self.out.weight)  # training starts from "no change"
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, code)
        return self.out(nn.functional.gelu(h))


def converter_code(source: torch.Tensor, target: torch.Tensor, intensity: torch.Tensor,
                   n_emotions: int) -> torch.Tensor:
    """Conditioning ``(B, 2 * n_emotions + 1)`` of source and target labels and intensities."""
    return torch.cat([emotion_code(source, n_emotions), emotion_code(target, n_emotions),
                      intensity.float()[:, None]], dim=1)


class ChangeClassifier(nn.Module):
    """Which emotion a change of contours leads to: reads a clip's contour features, a change
    of them (``(B, n_changes, T)``, the converter's output units) and the source emotion, and
    returns logits over the target emotions. Trained on real parallel pairs, it is the
    emotion head whose verdict on converted changes the converter learns to satisfy."""

    def __init__(self, n_inputs: int, n_changes: int, n_emotions: int, channels: int = 64):
        super().__init__()
        self.n_emotions = n_emotions
        self.inp = nn.Conv1d(n_inputs + n_changes + n_emotions, channels, 5, padding=2)
        self.blocks = nn.ModuleList(
            nn.Conv1d(channels, channels, 5, padding=2 * d, dilation=d) for d in (1, 2, 4, 8))
        self.out = nn.Linear(2 * channels, n_emotions)

    def forward(self, x: torch.Tensor, change: torch.Tensor, source: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_emotions)``; ``source`` one-hot ``(B, n_emotions)``, ``mask``
        ``(B, T)`` 1 on the frames that exist."""
        maps = source[:, :, None].expand(-1, -1, x.shape[-1])
        h = nn.functional.gelu(self.inp(torch.cat([x, change, maps], dim=1)))
        for block in self.blocks:
            h = h + nn.functional.gelu(block(h))
        weight = mask[:, None] / mask.sum(1).clamp_min(1.0)[:, None, None]
        mean = (h * weight).sum(-1)
        std = (((h - mean[..., None]) ** 2 * weight).sum(-1) + 1e-5).sqrt()
        return self.out(torch.cat([mean, std], dim=1))
