"""Figures for the notebooks and the README: one place for every plot emogan draws.

Every function returns a matplotlib ``Figure`` (it never calls ``plt.show``): notebooks display
it and :func:`save_figure` writes it. Functions are grouped in sections by topic; add new plots
in a section of their own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

if ("MPLBACKEND" not in os.environ and sys.platform.startswith("linux")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
    # Headless scripts and tests: a file backend. Jupyter sets MPLBACKEND, so it keeps inline.
    matplotlib.use("Agg")

import librosa.display  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from emogan_utils.config import Paths  # noqa: E402
from emogan_utils.data import EMOTIONS, INTENSITIES, STATEMENTS, emotion_clips  # noqa: E402
from emogan_utils.features import (AudioConfig, Normalizer, load_audio, log_mel,  # noqa: E402
                                   speech_mask)
from emogan_utils.models import (DiscriminatorConfig, GeneratorConfig,  # noqa: E402
                                 PatchDiscriminator, UNetGenerator)
from emogan_utils.storage import atomic_path  # noqa: E402

FIGURE_DPI = 110
DISPLAY_RANGE_DB = 80.0
"""Colour scales for dB images span this far below their maximum, as librosa's ``top_db``."""
MEL_CMAP = "magma"


# --- saving ------------------------------------------------------------------------------

def save_figure(fig: Figure, name: str, folder: str | os.PathLike | None = None) -> Path:
    """Write ``fig`` as a PNG named ``name`` into ``folder`` (default: the figures folder)."""
    filename = name if name.lower().endswith(".png") else f"{name}.png"
    path = Path(folder or Paths.from_env().figures) / filename
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    return path


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The figure of ``ax``, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


# --- waveforms and mel spectrograms ------------------------------------------------------

def plot_waveform(wave: np.ndarray, sample_rate: int, ax: Axes | None = None,
                  title: str | None = None) -> Figure:
    """Amplitude over time (s) of one mono waveform."""
    fig, ax = _axes(ax, (10, 2.6))
    wave = np.asarray(wave, dtype=np.float32)
    librosa.display.waveshow(wave, sr=sample_rate, ax=ax, color="tab:blue")
    ax.set(xlim=(0, len(wave) / sample_rate), xlabel="time (s)", ylabel="amplitude",
           title=title or "Waveform")
    ax.grid(alpha=0.3)
    return fig


def plot_mel(mel_db: np.ndarray, config: AudioConfig, ax: Axes | None = None,
             title: str | None = None, vmin: float | None = None, vmax: float | None = None,
             colorbar: bool = True, unit: str = "dB") -> Figure:
    """A log-mel image ``(n_mels, frames)``: time in s, mel-spaced frequency in Hz.

    Without ``vmin``/``vmax`` a dB image spans :data:`DISPLAY_RANGE_DB` below its peak; pass
    another ``unit`` (and limits) for normalised values.
    """
    fig, ax = _axes(ax, (10, 3.6))
    mel_db = np.asarray(mel_db)
    if unit == "dB":
        vmax = float(mel_db.max()) if vmax is None else vmax
        vmin = vmax - DISPLAY_RANGE_DB if vmin is None else vmin
    image = librosa.display.specshow(
        mel_db, sr=config.sample_rate, hop_length=config.hop_length, n_fft=config.n_fft,
        x_axis="time", y_axis="mel", fmin=config.f_min, fmax=config.f_max, ax=ax,
        cmap=MEL_CMAP, vmin=vmin, vmax=vmax)
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title or "Log-mel spectrogram")
    if colorbar:
        _colorbar(fig, image, ax, unit)
    return fig


def _colorbar(fig: Figure, image, ax: Axes | Sequence[Axes], unit: str, **kwargs) -> None:
    """A colour bar labelled in ``unit`` (dB values get a ``+N dB`` format)."""
    if unit == "dB":
        fig.colorbar(image, ax=ax, format="%+.0f dB", label="power (dB)", **kwargs)
    else:
        fig.colorbar(image, ax=ax, label=unit, **kwargs)


def plot_waveform_and_mel(wave: np.ndarray, mel_db: np.ndarray, config: AudioConfig,
                          title: str) -> Figure:
    """The same clip stacked: waveform above, log-mel below, on one time axis."""
    fig = plt.figure(figsize=(10, 5.4), layout="constrained")
    # A colour-bar column in the grid keeps both plots the same width so times line up.
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1.6), width_ratios=(1, 0.025))
    ax_wave = fig.add_subplot(grid[0, 0])
    ax_mel = fig.add_subplot(grid[1, 0], sharex=ax_wave)
    plot_waveform(wave, config.sample_rate, ax=ax_wave, title="waveform")
    plot_mel(mel_db, config, ax=ax_mel, title="log-mel spectrogram", colorbar=False)
    _colorbar(fig, ax_mel.collections[0], ax_wave, "dB", cax=fig.add_subplot(grid[1, 1]))
    ax_wave.set_xlabel("")
    ax_wave.tick_params(labelbottom=False)
    ax_wave.set_xlim(0, len(wave) / config.sample_rate)
    fig.suptitle(title)
    return fig


# --- the eight emotions of one utterance -------------------------------------------------

def plot_emotion_grid(table: pd.DataFrame, actor: int, statement_id: int, config: AudioConfig,
                      intensity: int = 2, repetition: int = 1,
                      features: np.ndarray | None = None,
                      normalizer: Normalizer | None = None) -> Figure:
    """Log-mels of one actor saying one statement in all 8 emotions, on one colour scale.

    Audio is loaded from ``table.path`` unless ``features`` (rows aligned with ``table``, e.g.
    from ``extract_features``) is given; ``normalizer`` shows normalised values instead of dB.
    """
    clips = emotion_clips(table, actor, statement_id, intensity, repetition)
    if features is not None:
        mels = features[table.index.get_indexer(clips.index)]
    else:
        mels = np.stack([log_mel(load_audio(path, config), config) for path in clips.path])
    unit = "dB"
    if normalizer is not None:
        mels, unit = normalizer(mels), "normalised value"
    vmax = float(mels.max())
    vmin = vmax - DISPLAY_RANGE_DB if unit == "dB" else float(mels.min())
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.4), sharex=True, sharey=True,
                             layout="constrained")
    for ax, mel, (_, clip) in zip(axes.flat, mels, clips.iterrows()):
        level = "" if clip.emotion_id == 1 else f" ({INTENSITIES[clip.intensity]})"
        plot_mel(mel, config, ax=ax, title=f"{clip.emotion}{level}", vmin=vmin, vmax=vmax,
                 colorbar=False)
        ax.label_outer()
    _colorbar(fig, axes.flat[0].collections[0], axes, unit, shrink=0.8)
    gender = clips.gender.iloc[0]
    fig.suptitle(f'Actor {actor} ({gender}): "{STATEMENTS[statement_id]}", repetition '
                 f'{repetition}', fontsize="x-large")
    return fig


# --- normalisation -----------------------------------------------------------------------

def plot_normalisation(raw_db: np.ndarray, normalized: Mapping[str, np.ndarray],
                       db_floor: float = AudioConfig.db_floor, bins: int = 120) -> Figure:
    """Histograms of raw dB values and of each normalised version (padding frames left out).

    ``normalized`` maps a title (e.g. "global standard") to an array shaped like ``raw_db``.
    """
    mask = speech_mask(raw_db, db_floor)
    panels = {"raw log-mel (dB)": raw_db, **normalized}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6),
                             layout="constrained")
    for ax, (name, values) in zip(np.atleast_1d(axes), panels.items()):
        speech = np.moveaxis(np.asarray(values), -1, -2)[mask].ravel()
        ax.hist(speech, bins=bins, density=True, color="tab:purple", alpha=0.85)
        ax.set_title(f"{name}\nmean {speech.mean():.2f}, std {speech.std():.2f}, "
                     f"range [{speech.min():.1f}, {speech.max():.1f}]")
        ax.set_xlabel("dB" if values is raw_db else "normalised value")
    np.atleast_1d(axes)[0].set_ylabel("density")
    fig.suptitle("Value distributions of speech frames before and after normalisation")
    return fig


def clip_means(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each ``(n_mels, frames)`` image over its speech frames, ``mask`` ``(N, frames)``."""
    weights = np.broadcast_to(mask[:, None, :], values.shape)
    return (values * weights).sum(axis=(1, 2)) / weights.sum(axis=(1, 2))


def explained_variance(values: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of ``values`` explained by the group means (eta squared)."""
    total = ((values - values.mean()) ** 2).sum()
    between = sum((labels == k).sum() * (values[labels == k].mean() - values.mean()) ** 2
                  for k in np.unique(labels))
    return float(between / total)


def plot_loudness_by_emotion(labels: Sequence[int], raw_db: np.ndarray, minmax: np.ndarray,
                             db_floor: float = AudioConfig.db_floor) -> Figure:
    """Mean level per emotion in dB beside the same after per-image min-max scaling.

    Shows what the seed lost: min-max is blind to gain, so the absolute level goes and only the
    contrast within each image is left. Titles give the share of variance emotion explains.
    """
    mask = speech_mask(raw_db, db_floor)
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    for ax, values, what in ((axes[0], raw_db, "absolute log-mel (dB)"),
                             (axes[1], minmax, "per-image min-max (the seed)")):
        per_clip = clip_means(values, mask)
        groups = [per_clip[labels == k] for k in range(len(EMOTIONS))]
        ax.errorbar(EMOTIONS, [g.mean() for g in groups], yerr=[g.std() for g in groups],
                    fmt="o", capsize=4, color="tab:purple")
        share = explained_variance(per_clip, labels)
        ax.set(title=f"{what}\nemotion explains {share:.0%} of the variance",
               ylabel="mean level (dB)" if values is raw_db else "mean pixel value (0-255)")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3)
    fig.suptitle("Mean level of each clip's speech frames, per emotion (mean ± std over clips)")
    return fig


# --- emotion classifier ------------------------------------------------------------------

def plot_history(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss, accuracy and learning rate per epoch from a classifier training history."""
    epochs = history["epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    for ax, metric, title in ((axes[0], "loss", "cross-entropy loss"),
                              (axes[1], "acc", "accuracy")):
        ax.plot(epochs, history[f"train_{metric}"], "o-", label="train (augmented)")
        ax.plot(epochs, history[f"val_{metric}"], "o-", label="validation actors")
        ax.set(title=title, xlabel="epoch")
    axes[2].plot(epochs, history["lr"], "o-", color="tab:green")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    best = history.get("best_epoch")
    for ax in axes:
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].axhline(1 / len(EMOTIONS), color="grey", linestyle=":", label="chance")
    axes[1].legend()
    return fig


def plot_confusion(matrix: np.ndarray, labels: Sequence[str] = EMOTIONS,
                   normalize: bool = True, ax: Axes | None = None) -> Figure:
    """Confusion matrix (rows true, columns predicted), as row shares when ``normalize``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = _axes(ax, (6.5, 5.5))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}" if normalize else f"{value:.0f}", ha="center",
                va="center", fontsize=8,
                color="white" if value > 0.6 * (matrix.max() or 1) else "black")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted",
           ylabel="true", title="confusion matrix" + (" (share of each true emotion)"
                                                       if normalize else ""))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def plot_probabilities(probs: Mapping[str, float], ax: Axes | None = None,
                       title: str = "predicted emotion") -> Figure:
    """Horizontal bars of per-emotion probabilities (as returned by ``inference.predict``)."""
    fig, ax = _axes(ax, (5, 3))
    names = list(probs)
    values = [probs[n] for n in names]
    colors = ["tab:red" if v == max(values) else "tab:blue" for v in values]
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="probability", title=title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def timeline_table(windows: Sequence[Mapping]) -> pd.DataFrame:
    """One row per window of a clip's timeline (``start``, ``end`` in seconds and
    ``probabilities``, as ``emogan predict --timeline`` writes them), indexed by the window's
    centre in seconds, one column per emotion."""
    if not len(windows):
        raise ValueError("the timeline has no windows")
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    frame = pd.DataFrame([dict(w["probabilities"]) for w in windows], index=centres)
    frame.index.name = "seconds"
    return frame


def plot_emotion_timeline(windows: Sequence[Mapping],
                          truth: Sequence[tuple[float, float, str]] = (),
                          ax: Axes | None = None, title: str = "emotion over time") -> Figure:
    """Each emotion's probability per window, at the window's centre (:func:`timeline_table`),
    over shaded spans of what was really said: ``truth`` as (start, end, emotion) in seconds."""
    fig, ax = _axes(ax, (11, 3.6))
    table = timeline_table(windows)
    colours = dict(zip(table.columns, plt.get_cmap("tab10").colors))
    for start, end, emotion in truth:
        ax.axvspan(start, end, color=colours.get(emotion, "grey"), alpha=0.15, linewidth=0)
        ax.text((start + end) / 2, 1.02, emotion, ha="center", va="bottom", fontsize=9,
                color=colours.get(emotion, "grey"), transform=ax.get_xaxis_transform())
    for emotion in table.columns:
        ax.plot(table.index, table[emotion], "o-", markersize=3, color=colours[emotion],
                label=emotion)
    ax.set(ylim=(0, 1), xlabel="time (s)", ylabel="probability")
    ax.set_title(title, pad=16 if truth else None)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return fig


# --- emotion switch ----------------------------------------------------------------------

def plot_mel_comparison(mels: Mapping[str, np.ndarray], config: AudioConfig,
                        figsize: tuple[float, float] = (11, 3.4)) -> Figure:
    """Log-mels side by side on one colour scale, titled by ``mels``' keys."""
    vmax = max(float(np.max(m)) for m in mels.values())
    fig, axes = plt.subplots(1, len(mels), figsize=figsize, layout="constrained", sharey=True,
                             squeeze=False)
    for ax, (title, mel_db) in zip(axes[0], mels.items()):
        plot_mel(mel_db, config, ax=ax, title=title, vmin=vmax - DISPLAY_RANGE_DB, vmax=vmax,
                 colorbar=False)
    for ax in axes[0, 1:]:
        ax.set_ylabel("")
    _colorbar(fig, axes[0, 0].collections[0], axes[0], "dB")
    return fig


def plot_probability_comparison(probs: Mapping[str, Mapping[str, float]],
                                figsize: tuple[float, float] = (11, 2.8)) -> Figure:
    """One :func:`plot_probabilities` panel per entry of ``probs``, titled by its key."""
    # Not sharey: each panel inverts its own y axis, and two inversions of a shared one cancel.
    fig, axes = plt.subplots(1, len(probs), figsize=figsize, layout="constrained", squeeze=False)
    for ax, (title, values) in zip(axes[0], probs.items()):
        plot_probabilities(values, ax=ax, title=title)
    return fig


def plot_cue_map(summary: pd.DataFrame, figsize: tuple[float, float] = (9, 4.2)) -> Figure:
    """How often each judge (columns of ``summary``) hears the target emotion in each variant
    (rows, :func:`emogan_utils.cues.cue_map`): one group of horizontal bars per variant."""
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    judges = list(summary.columns)
    height = 0.8 / max(1, len(judges))
    rows = np.arange(len(summary))
    for k, judge in enumerate(judges):
        ax.barh(rows + (k - (len(judges) - 1) / 2) * height, 100 * summary[judge].to_numpy(),
                height, label=judge)
    ax.set_yticks(rows, summary.index)
    ax.invert_yaxis()
    ax.set_xlabel("heard as the target emotion (%)")
    ax.set_xlim(0, 100)
    ax.legend(title="judge", loc="lower right")
    ax.set_title("Where the emotion lives: one component of the real target at a time")
    return fig


# --- conditional GAN ---------------------------------------------------------------------

def plot_gan_history(history: Mapping[str, Sequence[float]]) -> Figure:
    """Per-epoch GAN losses: discriminator, generator terms, and validation L1 if recorded."""
    groups = [("discriminator", ("loss_d", "d_adv", "d_cls")),
              ("generator", ("loss_g", "g_adv", "g_cls")),
              ("reconstruction terms (L1)", ("cycle", "identity", "paired"))]
    if "val_l1" in history:
        groups.append(("validation actors: L1 to aligned real target",
                       ("val_l1", "val_l1_source")))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.2),
                             layout="constrained", squeeze=False)
    labels = {"val_l1": "converted", "val_l1_source": "unconverted source"}
    for ax, (title, keys) in zip(axes[0], groups):
        for key in keys:
            epochs = range(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], "o-", markersize=3, label=labels.get(key, key))
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# --- GAN architecture ------------------------------------------------------------------------

Stage = tuple[str, tuple[int, int, int]]
"""A network stage's name and output shape ``(channels, mel bins, frames)``."""


def gan_stages(generator: GeneratorConfig = GeneratorConfig(),
               discriminator: DiscriminatorConfig = DiscriminatorConfig(),
               frames: int = 64) -> dict[str, list[Stage]]:
    """Each stage of the generator and the discriminator built from these configs, with the
    shape it outputs for one log-mel of ``frames`` frames (read off a forward pass).

    ``"encoder"``: the input with its emotion maps, the stem and each downsampling (one per
    UNet level); ``"bottleneck"``: the emotion injection and the conditional residual blocks;
    ``"decoder"``: each upsampling (merging the skip of its level), the head and the output;
    ``"discriminator"``: the input, each strided convolution, the real/fake patch head and the
    emotion head (averaged over patches into the logits)."""
    g, d = UNetGenerator(generator).eval(), PatchDiscriminator(discriminator).eval()
    shapes: dict[str, tuple[int, int, int]] = {}

    def keep(name: str):
        def hook(_module, _inputs, output):
            shapes[name] = tuple(output.shape[1:])
        return hook

    res = f"{len(g.res)} conditional res blocks"
    parts = {
        "encoder": {"stem": g.stem, **{f"down {i + 1}": m for i, m in enumerate(g.down)}},
        "bottleneck": {"emotion injection": g.inject, res: g.res[-1] if len(g.res) else g.inject},
        "decoder": {**{f"up {i + 1}": m for i, m in enumerate(g.up)}, "head": g.head,
                    "output": g.out},
        "discriminator": {**{f"conv {i + 1}": m for i, m in enumerate(d.body[::2])},
                          "real/fake per patch": d.adv, "emotion per patch": d.cls}}
    handles = [module.register_forward_hook(keep(name))
               for modules in parts.values() for name, module in modules.items()]
    with torch.no_grad():
        g(torch.zeros(1, generator.n_mels, frames), torch.zeros(1, generator.n_emotions))
        d(torch.zeros(1, discriminator.n_mels, frames))
    for handle in handles:
        handle.remove()
    stages = {part: [(name, shapes[name]) for name in modules] for part, modules in parts.items()}
    padded = frames + -frames % generator.factor  # the generator pads to whole levels
    stages["encoder"].insert(0, ("log-mel + emotion maps",
                                 (1 + generator.n_emotions, generator.n_mels, padded)))
    stages["discriminator"].insert(0, ("log-mel", (1, discriminator.n_mels, frames)))
    return stages


def shape_text(shape: tuple[int, ...]) -> str:
    """``(16, 40, 32)`` as ``16 × 40 × 32``."""
    return " × ".join(str(n) for n in shape)


def plot_gan_architecture(generator: GeneratorConfig = GeneratorConfig(),
                          discriminator: DiscriminatorConfig = DiscriminatorConfig(),
                          frames: int = 64) -> Figure:
    """The conditional UNet generator (encoder down the left, bottleneck, decoder up the right,
    a skip connection per level) and the PatchGAN discriminator with its two heads, each stage
    with its output shape (channels × mel bins × frames) from :func:`gan_stages`."""
    stages = gan_stages(generator, discriminator, frames)
    fig, (ax_g, ax_d) = plt.subplots(1, 2, figsize=(12, 6), width_ratios=(2.2, 1),
                                     layout="constrained")
    box = dict(boxstyle="round,pad=0.4", linewidth=1)
    arrow = dict(arrowstyle="->", color="0.35", linewidth=1)

    def draw(ax: Axes, xy: tuple[float, float], stage: Stage, colour: str) -> Text:
        return ax.text(*xy, f"{stage[0]}\n{shape_text(stage[1])}", ha="center", va="center",
                       fontsize=8.5, bbox={**box, "facecolor": colour, "edgecolor": "0.3"})

    def link(ax: Axes, start: Text, end: Text, style: str = "-") -> None:
        """An arrow from box to box, clipped at their edges."""
        ax.annotate("", end.get_position(), start.get_position(),
                    arrowprops={**arrow, "linestyle": style, "patchA": start.get_bbox_patch(),
                                "patchB": end.get_bbox_patch()})

    encoder, decoder = stages["encoder"], stages["decoder"]
    levels = len(encoder) - 1  # the stem and each downsampling
    enc_xy = [(0.0, 0.0)] + [(0.0, -1.0 - k) for k in range(levels)]
    bottom = -float(levels) - 0.2
    mid_xy = [(1.0, bottom), (2.0, bottom)]
    ups = len(decoder) - 2
    dec_xy = [(3.0, -float(levels) + 1 + k) for k in range(ups)]
    dec_xy += [(3.0, 0.0 if ups else -1.0), (3.0, 1.0)]
    enc = [draw(ax_g, xy, stage, "#dbe8f6") for stage, xy in zip(encoder, enc_xy)]
    mid = [draw(ax_g, xy, stage, "#f6e3c8") for stage, xy in zip(stages["bottleneck"], mid_xy)]
    dec = [draw(ax_g, xy, stage, "#dcefdc") for stage, xy in zip(decoder, dec_xy)]
    path = enc + mid + dec
    for start, end in zip(path, path[1:]):
        link(ax_g, start, end)
    for k in range(ups):  # each level's skip merges into the upsampling that reaches it
        link(ax_g, enc[levels - 1 - k], dec[k], "--")
    link(ax_g, enc[0], dec[-1], ":")  # the source itself: the output is a residual on it
    ax_g.set(xlim=(-0.7, 3.7), ylim=(bottom - 0.6, 1.6),
             title="generator: conditional UNet (dashed: skip connections; dotted: the source "
                   "the residual is added to)")
    disc = stages["discriminator"]
    body_xy = [(0.0, -float(k)) for k in range(len(disc) - 2)]
    heads_xy = [(-0.55, -float(len(body_xy)) - 0.2), (0.55, -float(len(body_xy)) - 0.2)]
    body = [draw(ax_d, xy, stage, "#ead9f2") for stage, xy in zip(disc[:-2], body_xy)]
    heads = [draw(ax_d, xy, stage, "#f3d6d6") for stage, xy in zip(disc[-2:], heads_xy)]
    for start, end in zip(body, body[1:]):
        link(ax_d, start, end)
    for head in heads:
        link(ax_d, body[-1], head)
    ax_d.set(xlim=(-1.3, 1.3), ylim=(heads_xy[0][1] - 0.6, 0.6),
             title=f"discriminator: PatchGAN, {disc[-1][1][0]} emotion logits = the patches' mean")
    for ax in (ax_g, ax_d):
        ax.axis("off")
        ax.title.set_fontsize(9.5)
    fig.suptitle(f"each stage's output: channels × mel bins × frames, for {frames} frames",
                 fontsize=10)
    return fig
