"""The WORLD vocoder (``pyworld``): analysis into F0, spectral envelope and aperiodicity, edits
of those frames, and synthesis back to speech.

A second way, beside Griffin-Lim (:mod:`emogan_utils.inversion`), to turn a conversion into
sound. WORLD keeps the source's own excitation and phase, so the speech keeps its naturalness;
a conversion edits the frames: the envelope by the generator's mel change
(:func:`mel_gain_to_envelope`), F0 by a contour transform
(:func:`emogan_utils.prosody.convert_f0`) and the tempo by resampling the frames
(:func:`stretch_frames`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import librosa
import numpy as np
from scipy.fft import dct, idct

from emogan_utils.features import AudioConfig

with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
    warnings.simplefilter("ignore", UserWarning)
    import pyworld

F0_METHODS = ("harvest", "dio")


@dataclass(frozen=True)
class WorldConfig:
    """How WORLD analyses speech."""

    frame_period_ms: float = 5.0
    f0_method: str = "dio"
    """``dio`` with ``stonemask`` refinement, or ``harvest`` (more robust voicing, about five
    times slower); resynthesis sounds the same with either (docs/results.md, WORLD path)."""
    f0_floor: float = 65.0
    f0_ceil: float = 800.0

    def __post_init__(self) -> None:
        if self.f0_method not in F0_METHODS:
            raise ValueError(f"f0_method must be one of {F0_METHODS}, got {self.f0_method!r}")
        if not self.frame_period_ms > 0:
            raise ValueError(f"frame_period_ms must be positive, got {self.frame_period_ms}")


@dataclass(frozen=True)
class WorldFrames:
    """WORLD parameters of one clip: F0 in Hz (0 where unvoiced), the power spectral envelope
    and the aperiodicity, each ``(frames, n_fft // 2 + 1)``."""

    f0: np.ndarray
    envelope: np.ndarray
    aperiodicity: np.ndarray
    sample_rate: int
    frame_period_ms: float

    @property
    def n_frames(self) -> int:
        return len(self.f0)

    @property
    def times(self) -> np.ndarray:
        """Centre of each frame in seconds."""
        return np.arange(self.n_frames) * (self.frame_period_ms / 1000.0)


def analyze(wave: np.ndarray, sample_rate: int, config: WorldConfig = WorldConfig()) -> WorldFrames:
    """WORLD analysis of a mono waveform: F0 (:func:`f0_contour`), CheapTrick envelope and D4C
    aperiodicity."""
    x = _prepared(wave)
    f0, times = _track_f0(x, sample_rate, config)
    envelope = pyworld.cheaptrick(x, f0, times, sample_rate, f0_floor=config.f0_floor)
    aperiodicity = pyworld.d4c(x, f0, times, sample_rate)
    return WorldFrames(f0, envelope, aperiodicity, sample_rate, config.frame_period_ms)


def f0_contour(wave: np.ndarray, sample_rate: int,
               config: WorldConfig = WorldConfig()) -> np.ndarray:
    """F0 in Hz of each WORLD frame, 0 where unvoiced."""
    return _track_f0(_prepared(wave), sample_rate, config)[0]


def _prepared(wave: np.ndarray) -> np.ndarray:
    """Float64 mono with a fixed dither 100 dB below full scale: WORLD takes logs of the
    signal's power, and an exactly zero stretch (a padded clip) would give -inf there."""
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"WORLD analysis expects a non-empty 1-D waveform, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("WORLD analysis got a waveform with NaN or inf samples")
    return x + np.random.default_rng(0).standard_normal(x.size) * 1e-5


def _track_f0(x: np.ndarray, sample_rate: int, config: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """F0 and frame times of a prepared signal with the configured tracker."""
    fp, lo, hi = config.frame_period_ms, config.f0_floor, config.f0_ceil
    if config.f0_method == "harvest":
        return pyworld.harvest(x, sample_rate, f0_floor=lo, f0_ceil=hi, frame_period=fp)
    f0, times = pyworld.dio(x, sample_rate, f0_floor=lo, f0_ceil=hi, frame_period=fp)
    return pyworld.stonemask(x, f0, times, sample_rate), times


def coded_mel_cepstra(envelope: np.ndarray, sample_rate: int, order: int = 24) -> np.ndarray:
    """Mel-cepstra c1..c``order`` ``(frames, order)`` of WORLD envelopes (c0, the level,
    dropped): the spectral features of WORLD-based voice conversion and of its MCD.

    ``pyworld.code_spectral_envelope`` takes an orthonormal DCT of the mel-warped log power;
    its coefficients are divided by 2 sqrt(2) here, to the convention the MCD formula assumes
    (SPTK's: log amplitude = c0 + 2 sum_k c_k cos(k w))."""
    coded = pyworld.code_spectral_envelope(np.ascontiguousarray(envelope, np.float64),
                                           sample_rate, order + 1)
    return coded[:, 1:] / (2.0 * np.sqrt(2.0))


def synthesize(frames: WorldFrames, length: int | None = None) -> np.ndarray:
    """Float32 waveform of WORLD frames, cut or zero-padded to ``length`` samples if given,
    scaled down if its peak would pass 1."""
    wave = pyworld.synthesize(np.ascontiguousarray(frames.f0, np.float64),
                              np.ascontiguousarray(frames.envelope, np.float64),
                              np.ascontiguousarray(frames.aperiodicity, np.float64),
                              frames.sample_rate, frames.frame_period_ms)
    if length is not None:
        wave = np.pad(wave[:length], (0, max(0, length - len(wave))))
    peak = float(np.max(np.abs(wave), initial=0.0))
    return (wave / peak if peak > 1.0 else wave).astype(np.float32)


def stretch_frames(frames: WorldFrames, n_frames: int) -> WorldFrames:
    """The same speech resampled to ``n_frames`` frames (a tempo change of
    ``frames.n_frames / n_frames``), by :func:`resample_frames` at evenly spaced positions."""
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    if n_frames == frames.n_frames:
        return frames
    return resample_frames(frames, np.linspace(0.0, frames.n_frames - 1, n_frames))


def resample_frames(frames: WorldFrames, position: np.ndarray) -> WorldFrames:
    """New frames read at fractional frame ``position``s of ``frames`` (increasing, within
    ``0 .. n_frames - 1``): a tempo change that may vary along the clip. Envelope and
    aperiodicity are interpolated linearly on a log scale; F0 on a log scale between two
    voiced frames, and taken from the nearer frame where either is unvoiced, so voicing
    boundaries stay sharp."""
    position = np.clip(np.asarray(position, np.float64), 0.0, frames.n_frames - 1)
    if frames.n_frames < 2:
        raise ValueError("resampling needs at least 2 frames")
    left = np.minimum(np.floor(position).astype(int), frames.n_frames - 2)
    w = position - left
    weight = w[:, None]

    def lerp(values: np.ndarray) -> np.ndarray:
        return values[left] * (1.0 - weight) + values[left + 1] * weight

    tiny = 1e-12
    envelope = np.exp(lerp(np.log(frames.envelope + tiny)))
    aperiodicity = np.clip(np.exp(lerp(np.log(frames.aperiodicity + tiny))), 0.0, 1.0)
    f0_left, f0_right = frames.f0[left], frames.f0[left + 1]
    both = (f0_left > 0) & (f0_right > 0)
    nearer = np.where(w < 0.5, f0_left, f0_right)
    log_mix = np.exp(np.log(np.where(both, f0_left, 1.0)) * (1 - w)
                     + np.log(np.where(both, f0_right, 1.0)) * w)
    f0 = np.where(both, log_mix, nearer)
    return replace(frames, f0=f0, envelope=envelope, aperiodicity=aperiodicity)


@dataclass(frozen=True)
class EnvelopeEdit:
    """How a generator's log-mel change becomes a gain on WORLD's envelope
    (:func:`mel_gain_to_envelope`)."""

    scale: float = 2.0
    """The change in dB is multiplied by this first. Through WORLD the generator's change is
    heard as weaker than through Griffin-Lim, which renders its whole mel; doubling it was
    chosen on validation actors (docs/results.md, WORLD path)."""
    n_cepstra: int = 20
    """DCT terms across mel bands kept of the change (0: no smoothing)."""
    max_db: float = 24.0
    """The gain is clipped to ``±max_db`` after scaling and smoothing."""

    def __post_init__(self) -> None:
        if not self.scale >= 0 or not np.isfinite(self.scale):
            raise ValueError(f"scale must be a finite number >= 0, got {self.scale}")
        if self.n_cepstra < 0:
            raise ValueError(f"n_cepstra must be >= 0, got {self.n_cepstra}")
        if not self.max_db > 0:
            raise ValueError(f"max_db must be positive, got {self.max_db}")


def mel_gain_to_envelope(gain_db: np.ndarray, audio: AudioConfig, frames: WorldFrames,
                         edit: EnvelopeEdit = EnvelopeEdit()) -> np.ndarray:
    """A power gain ``(frames.n_frames, bins)`` for WORLD's envelope from a dB change of a
    log-mel ``(n_mels, T)`` (converted minus source, on the source's mel frames).

    The change is multiplied by ``edit.scale``; smoothed across mel bands by keeping its first
    ``edit.n_cepstra`` DCT terms, so the harmonic detail a generator leaves in the low bands
    does not ripple the envelope; clipped to ``±edit.max_db``; mapped from mel-band centres to
    the envelope's linear-frequency bins and from mel frames to WORLD frames by linear
    interpolation.
    """
    gain = np.asarray(gain_db, dtype=np.float64)
    if gain.ndim != 2 or gain.shape[0] != audio.n_mels:
        raise ValueError(f"expected an (n_mels={audio.n_mels}, T) gain, got shape {gain.shape}")
    gain = gain * edit.scale
    if 0 < edit.n_cepstra < audio.n_mels:
        coeffs = dct(gain, type=2, axis=0, norm="ortho")
        coeffs[edit.n_cepstra:] = 0.0
        gain = idct(coeffs, type=2, axis=0, norm="ortho")
    gain = np.clip(gain, -edit.max_db, edit.max_db)
    centres = librosa.mel_frequencies(audio.n_mels + 2, fmin=audio.f_min, fmax=audio.f_max)[1:-1]
    bins = np.linspace(0.0, frames.sample_rate / 2, frames.envelope.shape[1])
    mel_times = np.arange(gain.shape[1]) * audio.hop_length / audio.sample_rate
    by_bin = _interpolate(bins, centres, gain)  # (bins, mel frames)
    by_frame = _interpolate(frames.times, mel_times, by_bin.T)  # (WORLD frames, bins)
    by_frame /= 10.0
    return np.power(10.0, by_frame, out=by_frame)


def _interpolate(at: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (rows at the increasing points ``known``) interpolated linearly to the points
    ``at`` (ends held), row by row: ``(len(at), ...)``. Each output row mixes its two
    neighbours, so memory and work grow with ``len(at)`` times the row size, never with
    ``len(at) * len(known)``."""
    at, known = np.asarray(at, np.float64), np.asarray(known, np.float64)
    values = np.asarray(values)
    if len(known) == 1:
        return np.repeat(values[:1], len(at), axis=0)
    left = np.clip(np.searchsorted(known, at, side="right") - 1, 0, len(known) - 2)
    weight = np.clip((at - known[left]) / (known[left + 1] - known[left]), 0.0, 1.0)
    weight = weight.reshape((-1,) + (1,) * (values.ndim - 1))
    result = values[left + 1] - values[left]
    result *= weight
    result += values[left]
    return result
