"""Speech as contours in WORLD's domain, the representation the emotion converter works in:
frame by frame the log-F0, the voicing, the energy and the shape of the spectral envelope
(mel-cepstra without the level), plus the edits that put converted contours and new timing
back into WORLD frames for synthesis.

Emotion lives mostly in the energy contour, the F0 contour and the timing (docs/conversion.md
measures it), so these are what a conversion changes; the source's own envelope detail,
aperiodicity and voicing stay, and keep the speaker's voice.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import librosa
import numpy as np
from scipy.ndimage import gaussian_filter1d

from emogan_utils import storage
from emogan_utils.world import WorldConfig, WorldFrames, analyze, resample_frames, pyworld

CONTOUR_WORLD = WorldConfig(frame_period_ms=5.0, f0_method="dio")
"""WORLD analysis of the converter: 5-ms frames, dio with stonemask (at 10-ms frames, dio
loses enough of a high, moving pitch that judges no longer hear surprise in the real
recordings: docs/conversion.md)."""
MODEL_STRIDE = 2
"""The converter reads and writes every second WORLD frame (10 ms): twice the context for the
same network; its output is interpolated back to every frame (:func:`upsampled`)."""
N_CEPSTRA = 24
"""Mel-cepstral coefficients c1..c24 describe the envelope's shape."""
SCALES = (2.0, 8.0, 32.0)
"""Gaussian widths (frames at the converter's rate) of the multi-scale views of the F0 and
energy contours: 20, 80 and 320 ms at 10-ms frames, from syllable to phrase."""
QUIET_DB = 40.0
"""Frames more than this below a clip's loudest count as silence."""


@dataclass(frozen=True)
class Contours:
    """Frame-by-frame contours of one clip ``(T,)``, ``cepstra`` ``(T, N_CEPSTRA)``.

    ``log_f0`` is continuous: unvoiced stretches are filled by linear interpolation between
    their voiced neighbours (held at the ends), so a model can move it smoothly; ``voiced``
    says where the speech really has a pitch."""

    log_f0: np.ndarray
    voiced: np.ndarray
    energy_db: np.ndarray
    cepstra: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.log_f0)

    def loud(self, quiet_db: float = QUIET_DB) -> np.ndarray:
        """Frames within ``quiet_db`` of the loudest: speech rather than silence."""
        return self.energy_db >= self.energy_db.max() - quiet_db

    def stacked(self) -> np.ndarray:
        """Float32 ``(T, 3 + N_CEPSTRA)``: log-F0, voicing, energy, cepstra (a cacheable array)."""
        return np.column_stack([self.log_f0, self.voiced, self.energy_db,
                                self.cepstra]).astype(np.float32)

    @classmethod
    def unstacked(cls, array: np.ndarray) -> "Contours":
        """The inverse of :meth:`stacked`."""
        array = np.asarray(array, np.float64)
        return cls(array[:, 0], array[:, 1] > 0.5, array[:, 2], array[:, 3:])


def frame_energy_db(envelope: np.ndarray) -> np.ndarray:
    """Power in dB of each frame of a WORLD envelope ``(T, bins)``."""
    return 10.0 * np.log10(np.sum(envelope, axis=1) + 1e-20)


def decimated(c: Contours, stride: int = MODEL_STRIDE) -> Contours:
    """Every ``stride``-th frame of ``c``: the contours at the converter's frame rate."""
    return Contours(c.log_f0[::stride], c.voiced[::stride], c.energy_db[::stride],
                    c.cepstra[::stride])


def upsampled(output: np.ndarray, n_frames: int, stride: int = MODEL_STRIDE) -> np.ndarray:
    """A converter's output ``(channels, T)`` at every ``stride``-th frame, linearly
    interpolated to ``n_frames`` frames (ends held)."""
    at = np.arange(n_frames) / stride
    known = np.arange(output.shape[1])
    return np.stack([np.interp(at, known, row) for row in np.asarray(output, np.float64)])


def fill_unvoiced(log_f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """``log_f0`` with unvoiced frames linearly interpolated from the voiced ones (ends held);
    a contour with no voiced frame becomes flat at log(100 Hz)."""
    frames = np.arange(len(log_f0))
    if not voiced.any():
        return np.full(len(log_f0), np.log(100.0))
    return np.interp(frames, frames[voiced], log_f0[voiced])


def contours(frames: WorldFrames, n_cepstra: int = N_CEPSTRA) -> Contours:
    """The contours of WORLD frames (:func:`~emogan_utils.world.analyze`)."""
    voiced = frames.f0 > 0
    log_f0 = fill_unvoiced(np.log(np.where(voiced, frames.f0, 1.0)), voiced)
    coded = pyworld.code_spectral_envelope(np.ascontiguousarray(frames.envelope, np.float64),
                                           frames.sample_rate, n_cepstra + 1)
    return Contours(log_f0, voiced, frame_energy_db(frames.envelope), coded[:, 1:])


def multiscale(track: np.ndarray, scales: tuple[float, ...] = SCALES) -> np.ndarray:
    """``(1 + len(scales), T)``: the track and its Gaussian-smoothed versions, from fine to
    coarse: a contour seen at syllable, word and phrase scale, as a continuous wavelet
    decomposition would split it."""
    track = np.asarray(track, np.float64)
    return np.stack([track] + [gaussian_filter1d(track, s, mode="nearest") for s in scales])


def apply_contours(frames: WorldFrames, source: Contours, converted: Contours) -> WorldFrames:
    """WORLD frames of ``frames`` (whose contours are ``source``) changed to ``converted``:
    F0 set where the source is voiced, the envelope's shape moved by the change of
    mel-cepstra (decoded to a gain per bin, so the source's fine detail stays) and each frame
    scaled to the converted energy."""
    if not (source.n_frames == converted.n_frames == frames.n_frames):
        raise ValueError(f"contours of {source.n_frames} and {converted.n_frames} frames for "
                         f"{frames.n_frames} WORLD frames")
    fft_size = 2 * (frames.envelope.shape[1] - 1)
    change = np.column_stack([np.zeros(frames.n_frames), converted.cepstra - source.cepstra])
    gain = pyworld.decode_spectral_envelope(np.ascontiguousarray(change), frames.sample_rate,
                                            fft_size)
    envelope = frames.envelope * gain
    level = converted.energy_db - frame_energy_db(envelope)
    envelope = envelope * 10.0 ** (np.clip(level, -60.0, 60.0) / 10.0)[:, None]
    f0 = np.where(source.voiced, np.exp(converted.log_f0), 0.0)
    return replace(frames, f0=f0, envelope=envelope)


def retime(frames: WorldFrames, durations: np.ndarray) -> WorldFrames:
    """``frames`` with frame ``i`` lasting ``durations[i]`` frames (positive; 1 keeps the
    timing): the output has ``round(sum(durations))`` frames (at least 2), read from the
    input where its cumulative duration says (:func:`~emogan_utils.world.resample_frames`)."""
    durations = np.asarray(durations, np.float64)
    if durations.shape != (frames.n_frames,) or not np.all(durations > 0):
        raise ValueError(f"need {frames.n_frames} positive durations, got shape "
                         f"{durations.shape}")
    if np.all(durations == 1.0):
        return frames
    edges = np.concatenate([[0.0], np.cumsum(durations)])
    n_out = max(2, int(round(edges[-1])))
    centres = (np.arange(n_out) + 0.5) * (edges[-1] / n_out)
    position = np.interp(centres, edges, np.arange(frames.n_frames + 1)) - 0.5
    return resample_frames(frames, position)


def clip_contours(wave: np.ndarray, sample_rate: int, config: WorldConfig = CONTOUR_WORLD,
                  cache_dir: str | os.PathLike | None = None) -> Contours:
    """The contours of a waveform, kept in ``cache_dir`` (if given) under a hash of its samples
    and the analysis settings, so a corpus is analysed once."""
    if cache_dir is None:
        return contours(analyze(wave, sample_rate, config))
    samples = np.ascontiguousarray(wave, np.float32)
    key = hashlib.sha1(samples.tobytes() + repr((sample_rate, config, N_CEPSTRA)).encode())
    return Contours.unstacked(storage.cached_npy(
        Path(cache_dir) / f"{key.hexdigest()}.npy",
        lambda: contours(analyze(samples, sample_rate, config)).stacked()))


# --- the converter's inputs and outputs

F0_UNIT = 0.25
"""Log-F0 (about 4 semitones) per unit of model input."""
ENERGY_UNIT_DB = 20.0
"""Decibels per unit of model input."""
OUTPUT_UNITS = {"log_f0": 0.2, "energy_db": 10.0, "log_duration": 0.5}
"""What one unit of the converter's first three outputs means; the cepstral outputs are in
units of each coefficient's spread over the training frames."""
N_INPUTS = 2 * (1 + len(SCALES)) + 1 + N_CEPSTRA
N_OUTPUTS = 3 + N_CEPSTRA
MAX_DURATION_RATIO = 4.0
"""A frame is never stretched or squeezed by more than this."""


@dataclass(frozen=True)
class CepstralStats:
    """Mean and spread of each mel-cepstrum over the loud frames of the training clips."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, clips: list[Contours]) -> "CepstralStats":
        frames = np.concatenate([c.cepstra[c.loud()] for c in clips])
        return cls(frames.mean(axis=0), frames.std(axis=0) + 1e-6)

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> "CepstralStats":
        mean, std = (np.asarray(state[k], np.float64) for k in ("mean", "std"))
        if mean.shape != (N_CEPSTRA,) or std.shape != (N_CEPSTRA,) or not np.all(std > 0):
            raise ValueError(f"cepstral statistics must be {N_CEPSTRA} means and positive "
                             f"spreads, got shapes {mean.shape} and {std.shape}")
        return cls(mean, std)


def relative_log_f0(c: Contours) -> np.ndarray:
    """Log-F0 minus its mean over voiced frames: the contour without the speaker's pitch."""
    mean = c.log_f0[c.voiced].mean() if c.voiced.any() else c.log_f0.mean()
    return c.log_f0 - mean


def converter_inputs(c: Contours, stats: CepstralStats) -> np.ndarray:
    """Float32 ``(N_INPUTS, T)``: what :class:`~emogan_utils.models.ContourConverter` reads.
    Pitch relative to the clip's mean and energy relative to its loudest frame, each at
    several scales (:func:`multiscale`), voicing, and standardised mel-cepstra; nothing that
    depends on the speaker's pitch or the recording's gain."""
    pitch = multiscale(relative_log_f0(c)) / F0_UNIT
    energy = multiscale(c.energy_db - c.energy_db.max()) / ENERGY_UNIT_DB
    cepstra = ((c.cepstra - stats.mean) / stats.std).T
    return np.concatenate([pitch, energy, c.voiced[None].astype(np.float64),
                           cepstra]).astype(np.float32)


def converted_contours(source: Contours, output: np.ndarray, stats: CepstralStats,
                       strength: float = 1.0) -> tuple[Contours, np.ndarray]:
    """The source's contours changed by a converter's ``output`` ``(N_OUTPUTS, T)`` taken
    ``strength`` of the way (0: the source exactly), and each frame's duration.

    Silence before the first and after the last loud frame keeps its level, shape and
    length; pauses inside the speech take the converter's durations."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    output = np.asarray(output, np.float64)
    if output.shape != (N_OUTPUTS, source.n_frames):
        raise ValueError(f"expected converter output of shape {(N_OUTPUTS, source.n_frames)}, "
                         f"got {output.shape}")
    loud = np.flatnonzero(source.loud())
    inside = np.zeros(source.n_frames, bool)
    inside[loud[0]:loud[-1] + 1] = True
    scale = strength * inside
    log_duration = np.clip(output[2] * OUTPUT_UNITS["log_duration"], -np.log(MAX_DURATION_RATIO),
                           np.log(MAX_DURATION_RATIO))
    converted = Contours(
        log_f0=source.log_f0 + scale * output[0] * OUTPUT_UNITS["log_f0"],
        voiced=source.voiced,
        energy_db=source.energy_db + scale * output[1] * OUTPUT_UNITS["energy_db"],
        cepstra=source.cepstra + scale[:, None] * output[3:].T * stats.std)
    return converted, np.exp(scale * log_duration)


SLOPES = np.array([[1, 1], [1, 2], [2, 1]])
"""DTW steps of :func:`aligned_positions`: one frame against one, two or half a frame, so a
stretch of speech is never matched to a single frame of the other recording."""


def aligned_positions(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each frame of ``source`` ``(dims, T_s)``, the (fractional) frame of ``target``
    ``(dims, T_t)`` it corresponds to: the DTW path with local slopes between 1/2 and 2
    (:data:`SLOPES`), interpolated between the frames the path visits; a plain DTW path where
    the lengths differ more than twofold."""
    ratio = target.shape[1] / max(1, source.shape[1])
    steps = SLOPES if 0.5 < ratio < 2.0 else None
    kwargs = {} if steps is None else {"step_sizes_sigma": steps,
                                       "weights_add": np.zeros(3), "weights_mul": np.ones(3)}
    _, path = librosa.sequence.dtw(X=source, Y=target, **kwargs)
    path = path[::-1]
    first = np.unique(path[:, 0], return_index=True)[1]  # one target frame per source frame
    return np.interp(np.arange(source.shape[1]), path[first, 0], path[first, 1])


def training_targets(source: Contours, target: Contours, position: np.ndarray,
                     stats: CepstralStats) -> tuple[np.ndarray, np.ndarray]:
    """What the converter should output for ``source`` to become ``target``, in
    :func:`converted_contours`' units, ``(N_OUTPUTS, T)``, and a weight per output and frame
    (1 where the output is defined: log-F0 where both are voiced, energy and cepstra on the
    source's loud frames, durations everywhere).

    ``position[i]`` is the (fractional) target frame matched to source frame ``i``
    (:func:`aligned_positions`); the duration of a source frame is the slope of that mapping,
    smoothed over about a syllable (80 ms at 10-ms frames)."""
    index = np.clip(np.rint(position).astype(int), 0, target.n_frames - 1)
    aligned = Contours(target.log_f0[index], target.voiced[index], target.energy_db[index],
                       target.cepstra[index])
    slope = gaussian_filter1d(np.gradient(np.asarray(position, np.float64)), 8.0, mode="nearest")
    log_duration = np.log(np.clip(slope, 1 / MAX_DURATION_RATIO, MAX_DURATION_RATIO))
    values = np.concatenate([
        [(aligned.log_f0 - source.log_f0) / OUTPUT_UNITS["log_f0"],
         (aligned.energy_db - source.energy_db) / OUTPUT_UNITS["energy_db"],
         log_duration / OUTPUT_UNITS["log_duration"]],
        ((aligned.cepstra - source.cepstra) / stats.std).T])
    loud = source.loud().astype(np.float64)
    weights = np.concatenate([[source.voiced & aligned.voiced, loud, np.ones(source.n_frames)],
                              np.repeat(loud[None], N_CEPSTRA, axis=0)])
    return values.astype(np.float32), weights.astype(np.float32)
