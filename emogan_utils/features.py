"""Audio in, log-mel out: one loader, one mel transform, normalisation and an on-disk cache.

:class:`AudioConfig` holds every audio parameter once; training, caching and Griffin-Lim
inversion all take the same object, so a model can never be paired with the wrong features.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import time
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import BinaryIO

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio
from tqdm.auto import tqdm

from emogan_utils import storage
from emogan_utils.config import EmoganError
from emogan_utils.threads import torch_threads


class AudioError(EmoganError):
    """An audio file that cannot be used; the message names the file and the problem."""


class NoSpeechError(AudioError):
    """A clip that holds no speech to judge: silence, or sound shorter than a syllable."""


MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
"""Sample rates (Hz) accepted from files and waveforms: a header outside them is refused."""
MAX_SECONDS = 300.0
"""Longest audio accepted, checked on the header before anything is decoded or resampled."""
MAX_VALUES = 2 ** 25
"""Most samples over all channels decoded from one file (128 MiB as float32): five minutes of
48 kHz stereo fit; a compressed file cannot claim more and have it allocated."""
MIN_SPEECH_SECONDS = 0.1
"""Shortest sound, above :data:`SILENCE_DBFS`, that :func:`require_speech` takes as speech."""
SILENCE_DBFS = -60.0
"""Samples below this level (dB of full scale) count as silence."""


@dataclass(frozen=True)
class AudioConfig:
    """Every audio and mel parameter, shared by features, models and inversion."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    db_floor: float = -100.0
    """Power below 10**(db_floor/10) is clamped: silence sits at this level."""
    trim_db: float | None = 40.0
    """Trim leading/trailing audio quieter than this many dB below the peak; None keeps all."""
    duration: float | None = 3.0
    """Crop or zero-pad every clip to this many seconds after trimming; None keeps lengths."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(f"invalid audio parameters: {'; '.join(problems)}")

    def problems(self) -> list[str]:
        """What makes these parameters unusable (empty when they are usable)."""
        counts = {"sample_rate": self.sample_rate, "n_fft": self.n_fft,
                  "hop_length": self.hop_length, "n_mels": self.n_mels}
        found = [f"{k} must be a positive integer, got {v!r}" for k, v in counts.items()
                 if isinstance(v, bool) or not isinstance(v, int) or v <= 0]
        reals = {"f_min": self.f_min, "f_max": self.f_max, "db_floor": self.db_floor,
                 "trim_db": self.trim_db, "duration": self.duration}
        found += [f"{k} must be a finite number, got {v!r}" for k, v in reals.items()
                  if (v is not None or k in ("f_min", "f_max", "db_floor"))
                  and (isinstance(v, bool) or not isinstance(v, (int, float))
                       or not np.isfinite(v))]
        if found:
            return found
        if self.hop_length > self.n_fft:
            found.append(f"hop_length {self.hop_length} is longer than n_fft {self.n_fft}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            found.append(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min {self.f_min}, "
                         f"f_max {self.f_max}, sample_rate {self.sample_rate}")
        if self.duration is not None and self.duration <= 0:
            found.append(f"duration must be positive or None, got {self.duration}")
        return found

    @property
    def n_samples(self) -> int | None:
        return None if self.duration is None else int(round(self.duration * self.sample_rate))

    @property
    def n_frames(self) -> int | None:
        """Frames of a fixed-length clip (centred STFT)."""
        return None if self.n_samples is None else self.frames(self.n_samples)

    def frames(self, samples: int) -> int:
        """Frames that the centred STFT (and so the log-mel) gives for ``samples`` samples."""
        return 1 + samples // self.hop_length

    def sound_stop(self, end: int, samples: int) -> int:
        """Samples of a ``samples``-long row that the centred STFT must see when every sample
        from ``end`` on is zero: half a window more. Frames after those see only zeros."""
        return min(samples, end + self.n_fft // 2)

    def key(self) -> str:
        """A short hash of all parameters, used to key caches and check checkpoints."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "AudioConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown audio parameters {sorted(unknown)}")
        return cls(**values)

    def differences(self, other: "AudioConfig") -> list[str]:
        """Human-readable list of parameters that differ from ``other``."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


# ------------------------------------------------------------------------------ loading

def read_audio(source: str | os.PathLike | BinaryIO, name: str | None = None) -> tuple[np.ndarray, int]:
    """Read a file (or an open binary file such as an upload) as float32 mono, channels averaged.

    Raises :class:`AudioError` naming ``name`` (default: the path) and the problem, also for a
    header outside the accepted rates and lengths (:func:`check_bounds`), before decoding.
    """
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if not source.is_file():
            raise AudioError(f"{source}: no such audio file")
    label = name or source
    try:
        file = sf.SoundFile(source)
    except Exception as err:  # soundfile raises several types for corrupt files
        raise _unreadable(label, err) from err
    with file:
        check_bounds(label, file.samplerate, file.frames, file.channels)
        try:
            # 16-bit PCM (WAV or FLAC) is read as integers and scaled here: the same float32
            # values as libsndfile's own conversion (an int16 times 2**-15 is exact), which cost
            # more than decoding a WAV; ``sf.read`` also seeks to the start first. A 2.6-s WAV
            # of the embedded corpus: 0.19 ms this way, 0.34 ms with ``sf.read`` as float32.
            data = file.read(dtype="int16" if file.subtype == "PCM_16" else "float32",
                             always_2d=True)
        except Exception as err:
            raise _unreadable(label, err) from err
        rate = file.samplerate
    if data.shape[0] == 0:
        raise AudioError(f"{label}: file holds no samples")
    if data.dtype == np.int16:
        data = np.multiply(data, np.float32(2.0 ** -15), dtype=np.float32)
    elif not np.all(np.isfinite(data)):  # only float files can hold NaN
        raise AudioError(f"{label}: audio contains NaN or infinite samples")
    wave = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)  # mean() of one column: 0.1 ms
    return wave, int(rate)


def _unreadable(label: object, err: Exception) -> AudioError:
    """The error for a file that soundfile cannot open or decode, with libsndfile's reason."""
    reason = getattr(err, "error_string", err)  # libsndfile's reason, not the buffer's repr
    return AudioError(f"{label}: cannot read audio ({reason})")


def check_bounds(label: object, rate: int, frames: int, channels: int = 1) -> None:
    """Raise :class:`AudioError` naming ``label`` unless ``frames`` samples of ``channels``
    channels at ``rate`` Hz lie within the accepted rates, length and size."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{label}: sample rate {rate} Hz is outside the accepted "
                         f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    if frames > MAX_SECONDS * rate:
        raise AudioError(f"{label}: {frames / rate:.0f} s of audio is longer than the "
                         f"{MAX_SECONDS:.0f} s accepted; cut it into shorter clips")
    if frames * channels > MAX_VALUES:
        raise AudioError(f"{label}: {frames} samples x {channels} channels exceed the "
                         f"{MAX_VALUES} samples accepted from one file")


def check_sample_rate(sample_rate: float) -> None:
    """Raise ``ValueError`` unless ``sample_rate`` is a positive number of Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.number)) \
            or not sample_rate > 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")


def as_float_samples(wave: np.ndarray) -> np.ndarray:
    """Float32 samples of a waveform; integer PCM scaled to [-1, 1) as soundfile reads it
    (int16 / 2**15, int32 / 2**31; uint8 is 8-bit WAV, centred on 128)."""
    if wave.dtype.kind == "f":
        return wave.astype(np.float32, copy=False)
    if wave.dtype == np.uint8:
        return (wave.astype(np.float32) - np.float32(128.0)) * np.float32(2.0 ** -7)
    if wave.dtype in (np.int8, np.int16, np.int32):  # scaling by a power of two is exact
        return wave.astype(np.float32) * np.float32(2.0 ** (1 - 8 * wave.dtype.itemsize))
    raise ValueError(f"waveform of dtype {wave.dtype}: pass float samples in [-1, 1] or "
                     "int8, int16, int32 or uint8 PCM")


def check_analysable(wave: np.ndarray, config: AudioConfig, label: object) -> None:
    """Raise :class:`AudioError` naming ``label`` if ``wave`` (at ``config.sample_rate``) is
    shorter than two hops: the fewest samples that give the two frames translation needs."""
    needed = 2 * config.hop_length
    if wave.shape[-1] < needed:
        raise AudioError(f"{label}: {wave.shape[-1]} samples at {config.sample_rate} Hz is too "
                         f"short; at least {needed} ({1000 * needed / config.sample_rate:.0f} ms)"
                         " are needed")


def require_speech(wave: np.ndarray, config: AudioConfig, label: object) -> None:
    """Raise :class:`NoSpeechError` naming ``label`` if ``wave`` (at ``config.sample_rate``)
    holds less than :data:`MIN_SPEECH_SECONDS` from its first to its last sample above
    :data:`SILENCE_DBFS`: silence, or a click shorter than a syllable."""
    loud = np.flatnonzero(np.abs(wave) > 10.0 ** (SILENCE_DBFS / 20.0))
    seconds = (loud[-1] - loud[0] + 1) / config.sample_rate if loud.size else 0.0
    if seconds < MIN_SPEECH_SECONDS:
        raise NoSpeechError(f"{label}: no speech found ({seconds:.3f} s above "
                            f"{SILENCE_DBFS:.0f} dBFS; at least {MIN_SPEECH_SECONDS} s needed)")


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample with soxr (high quality); a no-op when the rates match."""
    if orig_rate == target_rate:
        return wave
    return librosa.resample(wave, orig_sr=orig_rate, target_sr=target_rate,
                            res_type="soxr_hq").astype(np.float32)


def loud_span(wave: np.ndarray, top_db: float | None, frame_length: int = 1024,
              hop_length: int = 256) -> tuple[int, int]:
    """``(start, stop)`` samples of a mono ``wave`` that :func:`trim_silence` keeps: the
    leading and trailing audio quieter than ``top_db`` below the peak lies outside them.

    The same cut as ``librosa.effects.trim`` (centred frames zero-padded at both ends, frame mean
    square against the loudest frame's, both floored at 1e-10), which the tests check sample for
    sample. Its frame energies come from running sums over ``hop_length`` blocks instead of
    framing the signal, 0.1 ms a 2-s clip against librosa's 0.3 ms, most of which was Python
    overhead per call. ``frame_length`` must be a multiple of ``hop_length``.
    """
    n = wave.shape[-1]
    if top_db is None or not np.any(wave):
        return 0, n
    if frame_length % hop_length:
        raise ValueError(f"frame_length {frame_length} is not a multiple of hop_length "
                         f"{hop_length}")
    padded = np.zeros((-(-n // hop_length)) * hop_length + frame_length, dtype=np.float64)
    padded[frame_length // 2:frame_length // 2 + n] = wave
    block_sums = np.square(padded).reshape(-1, hop_length).sum(axis=1)
    running = np.concatenate(([0.0], np.cumsum(block_sums)))
    frames, span = 1 + n // hop_length, frame_length // hop_length
    mean_square = np.maximum((running[span:span + frames] - running[:frames]) / frame_length, 1e-10)
    loud = np.flatnonzero(mean_square > mean_square.max() * 10.0 ** (-top_db / 10.0))
    if not loud.size:  # top_db <= 0: nothing is loud enough, keep everything
        return 0, n
    return int(loud[0] * hop_length), int(min(n, (loud[-1] + 1) * hop_length))


def trim_silence(wave: np.ndarray, top_db: float | None, frame_length: int = 1024,
                 hop_length: int = 256) -> np.ndarray:
    """Cut leading and trailing audio of a mono ``wave`` quieter than ``top_db`` below the peak
    (:func:`loud_span`); ``wave`` itself when nothing is cut."""
    start, stop = loud_span(wave, top_db, frame_length, hop_length)
    if (start, stop) == (0, wave.shape[-1]):
        return wave
    return wave[..., start:stop]


def fix_length(wave: np.ndarray, n_samples: int | None) -> np.ndarray:
    """Crop the end or zero-pad the end to exactly ``n_samples`` (no-op when None)."""
    if n_samples is None:
        return wave
    if wave.shape[-1] >= n_samples:
        return wave[..., :n_samples]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, n_samples - wave.shape[-1])]
    return np.pad(wave, pad)


def speed_perturb(wave: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """``wave`` played ``factor`` times faster, at the same rate: tempo and pitch both change,
    as in the speed perturbation of speech-recognition recipes (a resampling; 1 is a no-op)."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return resample(wave, int(round(sample_rate * factor)), sample_rate)


def stack_fixed_length(waves: Sequence[np.ndarray], n_samples: int) -> np.ndarray:
    """Mono waves cropped or zero-padded at the end to ``n_samples`` (as :func:`fix_length`),
    written straight into one ``(N, n_samples)`` float32 batch."""
    rows = np.zeros((len(waves), n_samples), dtype=np.float32)
    for row, wave in zip(rows, waves):
        row[:wave.size] = wave[:n_samples]
    return rows


def load_audio(path: str | os.PathLike, config: AudioConfig = AudioConfig(),
               trim: bool = True, fixed_length: bool = True, speed: float = 1.0) -> np.ndarray:
    """Read, downmix, resample, trim and crop/pad one file as ``config`` says; ``speed`` other
    than 1 speeds it up (:func:`speed_perturb`) before the crop."""
    wave, rate = read_audio(path)
    wave = resample(wave, rate, config.sample_rate)
    check_analysable(wave, config, path)
    if trim:
        wave = trim_silence(wave, config.trim_db)
    wave = speed_perturb(wave, speed, config.sample_rate)
    if fixed_length:
        wave = fix_length(wave, config.n_samples)
    return np.ascontiguousarray(wave, dtype=np.float32)


def prepare_waveform(wave: np.ndarray | torch.Tensor, sample_rate: int,
                     config: AudioConfig = AudioConfig(), fixed_length: bool = True) -> np.ndarray:
    """Apply the loader's steps (downmix, resample, trim, crop/pad) to an in-memory waveform.

    Integer arrays are PCM (:func:`as_float_samples`); rates and lengths are bounded as for
    files (:func:`check_bounds`).
    """
    check_sample_rate(sample_rate)
    wave = as_float_samples(np.asarray(wave.detach().cpu() if isinstance(wave, torch.Tensor)
                                       else wave))
    if wave.ndim not in (1, 2):
        raise AudioError(f"waveform of shape {wave.shape}: expected (samples,) or "
                         "(channels, samples)")
    if wave.ndim == 2:
        wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
    if wave.size == 0 or not np.all(np.isfinite(wave)):
        raise AudioError("waveform is empty or contains NaN/infinite samples")
    check_bounds("waveform", sample_rate, wave.size)
    wave = resample(wave, sample_rate, config.sample_rate)
    check_analysable(wave, config, "waveform")
    wave = trim_silence(wave, config.trim_db)
    return fix_length(wave, config.n_samples if fixed_length else None)


# ------------------------------------------------------------------------------ log-mel

def stft(wave: torch.Tensor, config: AudioConfig = AudioConfig(),
         window: torch.Tensor | None = None) -> torch.Tensor:
    """Complex STFT ``(..., n_fft // 2 + 1, frames)``: Hann window, centred with zero padding.

    The one framing that features, inversion and their metrics share.
    """
    if window is None:
        window = torch.hann_window(config.n_fft, device=wave.device)
    shape = wave.shape
    spec = torch.stft(wave.reshape(-1, shape[-1]), config.n_fft, config.hop_length,
                      window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.reshape(shape[:-1] + spec.shape[-2:])


class MelFilterbank(torch.nn.Module):
    """The Slaney mel filterbank of ``config``, applied in blocks on the last axis.

    ``forward`` maps power ``(..., n_fft // 2 + 1)`` to mel power ``(..., n_mels)``;
    :meth:`transpose` maps back through the same weights. Each block of ``block`` mels is
    multiplied only with the frequency bins its filters cover: a fifth of a dense matmul's work
    for the default 80 mels (0.8 ms against 2.3 ms for sixteen 2.3-s clips, one thread of the
    2-core development CPU; 16 mels a block was the fastest of 8, 16, 20 and 40). The sums
    differ from the dense product by float rounding only.
    """

    def __init__(self, config: AudioConfig = AudioConfig(), block: int = 16):
        super().__init__()
        weights = torchaudio.functional.melscale_fbanks(  # (n_freqs, n_mels)
            n_freqs=config.n_fft // 2 + 1, f_min=config.f_min, f_max=config.f_max,
            n_mels=config.n_mels, sample_rate=config.sample_rate, norm="slaney",
            mel_scale="slaney")
        self.register_buffer("weights", weights, persistent=False)
        # (mels, bins) of each block: its mels and the frequency bins their filters cover
        self.blocks = [(slice(m, m + block), _nonzero_span(weights[:, m:m + block]))
                       for m in range(0, config.n_mels, block)]

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return torch.cat([power[..., bins] @ self.weights[bins, mels]
                          for mels, bins in self.blocks], dim=-1)

    def transpose(self, mel: torch.Tensor) -> torch.Tensor:
        """``(..., n_mels)`` to ``(..., n_fft // 2 + 1)``: ``mel @ weights.T``."""
        out = mel.new_zeros(mel.shape[:-1] + self.weights.shape[:1])
        for mels, bins in self.blocks:
            out[..., bins] += mel[..., mels] @ self.weights[bins, mels].T
        return out


def _nonzero_span(weights: torch.Tensor) -> slice:
    """The rows of ``(rows, columns)`` weights from the first to the last that is non-zero."""
    rows = weights.ne(0).any(dim=1).nonzero()
    return slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)


class LogMel(torch.nn.Module):
    """Waveform ``(..., samples)`` to log-mel power in dB ``(..., n_mels, frames)``.

    Slaney mel scale and filter norm, centred STFT with zero padding: the same as
    ``librosa.feature.melspectrogram`` with its defaults, then ``10 log10`` with a floor.
    What makes it fast on a CPU:

    - the filterbank (:class:`MelFilterbank`) is applied in the memory order that
      ``torch.stft`` returns (frames, then frequencies): ``re^2 + im^2`` over contiguous memory.
      ``MelSpectrogram``'s complex ``abs().pow(2)`` and transposed matmul took 70 % of its time;
    - frames that see only trailing zeros (the padding of clips cut to one length) have no
      power, so the STFT stops half a window after the batch's last non-zero sample and those
      frames are set to the floor, as they would be anyway.
    """

    def __init__(self, config: AudioConfig = AudioConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.filterbank = MelFilterbank(config)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = self.config.frames(wave.shape[-1])
        sound = wave.reshape(-1, wave.shape[-1]).abs().amax(0).ne(0).nonzero()
        end = int(sound[-1]) + 1 if len(sound) else 0
        wave = wave[..., :self.config.sound_stop(end, wave.shape[-1])]
        parts = torch.view_as_real(stft(wave, self.config, self.window).transpose(-1, -2))
        power = parts[..., 0].square().addcmul_(parts[..., 1], parts[..., 1])  # (..., frames, freq)
        mel = torch.nn.functional.pad(self.filterbank(power), (0, 0, 0, frames - power.shape[-2]))
        floor = 10.0 ** (self.config.db_floor / 10.0)
        return (10.0 * torch.log10(mel.clamp_min(floor))).transpose(-1, -2).contiguous()


def db_to_power(mel_db: torch.Tensor) -> torch.Tensor:
    """Inverse of the dB step of :class:`LogMel`."""
    return torch.pow(10.0, mel_db / 10.0)


def log_mel(wave: np.ndarray | torch.Tensor, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Log-mel of one waveform or a batch, as a float32 numpy array."""
    tensor = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    with torch.no_grad():
        return LogMel(config)(tensor).numpy()


# ------------------------------------------------------------------------------ normalisation

@dataclass
class Normalizer:
    """An affine map ``(x - shift) / scale`` per mel bin, optionally clipped to [-1, 1].

    ``fit_standard`` gives zero mean / unit variance per bin (for the classifier);
    ``fit_range`` maps the training range onto [-1, 1] (a bounded target for a tanh generator).
    Statistics come from the training split only and travel inside checkpoints.
    """

    shift: np.ndarray
    scale: np.ndarray
    clip: bool = False

    def __call__(self, mel_db: np.ndarray | torch.Tensor):
        shift, scale = self._broadcast(mel_db)
        if isinstance(mel_db, torch.Tensor):
            out = (mel_db - shift) / scale
            return out.clamp(-1.0, 1.0) if self.clip else out
        # one new float32 array, then in place: a second 87 MB temporary for a whole corpus
        # cost more in page faults (0.15 s) than the arithmetic (0.02 s)
        out = np.subtract(mel_db, shift, dtype=np.float32)
        out /= scale
        return np.clip(out, -1.0, 1.0, out=out) if self.clip else out

    def inverse(self, normed: np.ndarray | torch.Tensor):
        """Back to dB."""
        shift, scale = self._broadcast(normed)
        return normed * scale + shift

    def _broadcast(self, like):
        shift = self.shift.reshape(-1, 1).astype(np.float32)
        scale = self.scale.reshape(-1, 1).astype(np.float32)
        if isinstance(like, torch.Tensor):
            return (torch.as_tensor(shift, device=like.device),
                    torch.as_tensor(scale, device=like.device))
        return shift, scale

    @classmethod
    def fit_standard(cls, mel_db: np.ndarray, db_floor: float = AudioConfig.db_floor,
                     chunk: int = 32) -> "Normalizer":
        """Per-bin mean and std over the speech frames of ``(N, n_mels, T)`` features."""
        mel_db = np.asarray(mel_db, dtype=np.float32)
        # ``chunk`` clips at a time (about 2 MB, in cache for all three steps), chunks shared by
        # threads (numpy releases the GIL): per-clip sums over speech frames as batched
        # matrix-vector products in float32, then over clips in float64. Within 1e-6 dB of
        # accumulating everything in float64; 1,440 clips on the 2-core CPU: 32 ms for one
        # einsum over the whole array, 13-34 ms chunked, 20 ms chunked on both cores.
        parts = (mel_db[start:start + chunk] for start in range(0, len(mel_db), chunk))
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            sums = list(pool.map(functools.partial(_speech_sums, db_floor=db_floor), parts))
        count, total, square = (sum(column) for column in zip(*sums)) if sums else (0.0, 0.0, 0.0)
        if count == 0:
            raise ValueError(NO_SPEECH)
        mean = total / count
        std = np.sqrt(np.maximum(square / count - mean ** 2, 0.0))
        return cls(mean, std + 1e-5, clip=False)

    @classmethod
    def fit_range(cls, mel_db: np.ndarray, db_floor: float = AudioConfig.db_floor,
                  low_pct: float = 1.0, high_pct: float = 99.9) -> "Normalizer":
        """One global range [low, high] (percentiles of speech frames) mapped onto [-1, 1]."""
        frames = _speech_frames(mel_db, db_floor)
        lo, hi = np.percentile(frames, [low_pct, high_pct])
        lo = max(lo, db_floor)
        return cls(np.array([(hi + lo) / 2.0]), np.array([(hi - lo) / 2.0]), clip=True)

    def state_dict(self) -> dict:
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist(), "clip": self.clip}

    @classmethod
    def from_state(cls, state: dict) -> "Normalizer":
        return cls(np.asarray(state["shift"], np.float32), np.asarray(state["scale"], np.float32),
                   bool(state["clip"]))


def _speech_sums(part: np.ndarray, db_floor: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Speech-frame count, per-bin sum and per-bin sum of squares of ``(N, n_mels, T)`` clips."""
    speech = speech_mask(part, db_floor).astype(np.float32)[:, :, None]
    return (speech.sum(dtype=np.float64), np.matmul(part, speech)[..., 0].sum(0, dtype=np.float64),
            np.matmul(np.square(part), speech)[..., 0].sum(0, dtype=np.float64))


NO_SPEECH = "No speech frames to fit normalisation on (all frames are at the floor)"


def speech_mask(mel_db: np.ndarray, db_floor: float = AudioConfig.db_floor) -> np.ndarray:
    """``(N, T)`` True where a frame holds sound, False for the zero padding at the floor."""
    return np.asarray(mel_db).max(axis=-2) > db_floor + 1.0


def _speech_frames(mel_db: np.ndarray, db_floor: float) -> np.ndarray:
    """``(frames, n_mels)`` of all frames that are not padding."""
    mel_db = np.asarray(mel_db)
    frames = np.moveaxis(mel_db, -2, -1)[speech_mask(mel_db, db_floor)]
    if not len(frames):
        raise ValueError(NO_SPEECH)
    return frames


def fit_per_speaker(mel_db: np.ndarray, actors: Sequence[int],
                    db_floor: float = AudioConfig.db_floor) -> dict[int, Normalizer]:
    """One standardising :class:`Normalizer` per actor, from that actor's own frames."""
    actors = np.asarray(actors)
    return {int(a): Normalizer.fit_standard(mel_db[actors == a], db_floor) for a in np.unique(actors)}


def normalize_per_speaker(mel_db: np.ndarray, actors: Sequence[int],
                          normalizers: dict[int, Normalizer]) -> np.ndarray:
    """Apply each actor's own normaliser to its rows."""
    out = np.empty_like(mel_db, dtype=np.float32)
    for i, actor in enumerate(actors):
        out[i] = normalizers[int(actor)](mel_db[i])
    return out


ACTIVE_DB = 30.0
"""Frames within this many dB of a clip's loudest frame count as active speech."""


def frame_energy_db(mel_db: np.ndarray, db_floor: float = AudioConfig.db_floor) -> np.ndarray:
    """``(..., T)`` total mel power of each frame of log-mels ``(..., n_mels, T)``, in dB."""
    power = np.power(10.0, np.asarray(mel_db, np.float64) / 10.0).sum(axis=-2)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), db_floor)


def active_frames(mel_db: np.ndarray, loudest_db: float | np.ndarray | None = None,
                  below_db: float = ACTIVE_DB,
                  db_floor: float = AudioConfig.db_floor) -> np.ndarray:
    """``(..., T)`` True for the frames of log-mels ``(..., n_mels, T)`` within ``below_db`` of
    ``loudest_db`` (default: each clip's own loudest frame) and above the padding."""
    energy = frame_energy_db(mel_db, db_floor)
    if loudest_db is None:
        loudest_db = energy.max(axis=-1, keepdims=True)
    return (energy >= np.asarray(loudest_db) - below_db) & speech_mask(mel_db, db_floor)


def speech_level_db(mel_db: np.ndarray, db_floor: float = AudioConfig.db_floor) -> np.ndarray:
    """Active-speech level of log-mels ``(..., n_mels, T)``: the mean dB over the mel bins and
    :func:`active_frames` of each clip (a float array of the leading shape). A gain of ``g`` dB
    on the waveform raises it by ``g`` while no band reaches the floor."""
    mel_db = np.asarray(mel_db, np.float64)
    active = active_frames(mel_db, db_floor=db_floor)[..., None, :]
    count = np.maximum(active.sum(axis=(-2, -1)) * mel_db.shape[-2], 1)
    return (mel_db * active).sum(axis=(-2, -1)) / count


def match_level(wave: np.ndarray, target_db: float, config: AudioConfig = AudioConfig()
                ) -> np.ndarray:
    """``wave`` scaled so that the active-speech level of its log-mel (:func:`speech_level_db`)
    is ``target_db``: how loud it was recorded no longer shows."""
    level = float(speech_level_db(log_mel(wave, config), config.db_floor))
    return (wave * np.float32(10.0 ** ((target_db - level) / 20.0))).astype(np.float32)


def speech_segments(active: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` frame spans of the runs of ``active`` frames, runs separated by fewer
    than ``max_gap`` inactive frames joined into one; empty when no frame is active."""
    frames = np.flatnonzero(np.asarray(active, bool))
    if not frames.size:
        return []
    breaks = np.flatnonzero(np.diff(frames) > max_gap)
    starts = np.concatenate(([frames[0]], frames[breaks + 1]))
    stops = np.concatenate((frames[breaks], [frames[-1]])) + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def window_starts(samples: int, window: int, hop: int) -> list[int]:
    """Starts of ``window``-sample windows every ``hop`` samples over ``samples`` samples, the
    last one ending at the end; one window at 0 when the clip is no longer than a window."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if samples <= window:
        return [0]
    starts = list(range(0, samples - window + 1, hop))
    if starts[-1] + window < samples:
        starts.append(samples - window)
    return starts


# ------------------------------------------------------------------------------ cache and batch

BATCH_SIZE = 8
"""Clips per log-mel batch: batches of 16 allocated and freed so much memory between them that
page faults made them slower (docs/performance.md; ``benchmarks/feature_extraction.py
--batch-size N``)."""

SORT_CHUNK = 256
"""Files decoded before they are sorted by length into batches: batches of 8 from chunks of 256
leave 69 % of the frames to compute on the embedded corpus and 72 % on RAVDESS (68 % and 71 %
sorting a whole corpus, 82 % and 87 % in file order), and the decoded chunks in flight hold only
a few tens of MB."""


FEATURES_VERSION = 2
"""Version of the code that turns audio into log-mels, part of every cache folder's name beside
the parameters' key. Bump it with any change that gives other features for the same audio and
:class:`AudioConfig` (more than float rounding): caches of older code are then never read, and
are deleted at the next write. Version 1 is the folders named ``logmel-<key>`` alone."""


class FeatureCache:
    """Log-mels on disk in shards, under a folder named by the feature code's version and the
    audio parameters' key: ``logmel-v<FEATURES_VERSION>-<key>``.

    Each extraction writes the features it had to compute as one shard: ``shard-<id>.npy``
    ``(N, n_mels, frames)``, then ``shard-<id>.json``, the N files' identities (absolute path,
    size and the SHA-1 of the content: :meth:`identity`) and the CRC-32 of each row. The index is written last, so an
    index always has its data, and a shard found damaged (unreadable, or a row that no longer
    matches its CRC: 40 ms over the 87 MB of RAVDESS's features) is dropped, with a warning
    when its data changed, and its files recomputed.
    An edited file has a new identity and is recomputed, even when its size and modification
    time were put back (``cp -p``, ``rsync -a``); features made with other parameters
    live in another folder, so they are never reused. Reading memory-maps the shards and copies
    the rows asked for: a re-run over the same files is one sequential read, any subset is
    served, and nothing is stored twice. Each write then deletes what no read can serve any more
    (:meth:`prune`); a shard that still serves any of its rows is kept whole.
    """

    def __init__(self, root: str | os.PathLike, config: AudioConfig, variant: str = ""):
        """``variant`` names other features of the same files, stored apart: e.g. ``speed1.1``
        (sped-up audio) or ``prosody`` (:mod:`emogan_utils.inputs`)."""
        if variant and not re.fullmatch(r"[a-z0-9.]+(?:-[a-z0-9.]+)*", variant):
            raise ValueError(f"cache variant must be lower-case words joined by '-', got "
                             f"{variant!r}")
        self.config = config
        self.root = Path(root)
        self.dir = self.root / (f"logmel-v{FEATURES_VERSION}-{config.key()}"
                                + (f"-{variant}" if variant else ""))
        self.digests = FileDigests(self.root / DIGESTS)

    def identity(self, path: str | os.PathLike) -> str:
        """``path|size|SHA-1 of the content`` (:meth:`FileDigests.digest`); raises OSError
        when the file is missing."""
        path = os.path.abspath(path)
        return f"{path}|{os.path.getsize(path)}|{self.digests.digest(path)}"

    def shard(self, identities: Sequence[str]) -> Path:
        """Where the features of these files, extracted together, are stored."""
        digest = hashlib.sha1("\n".join(identities).encode()).hexdigest()[:20]
        return self.dir / f"shard-{digest}.npy"

    def index(self) -> dict[str, tuple[Path, int, int]]:
        """``identity -> (shard, row, CRC-32)`` over every readable index; newer shards win."""
        found: dict[str, tuple[Path, int, int]] = {}
        indexes = sorted(self.dir.glob("shard-*.json"), key=lambda p: p.stat().st_mtime_ns)
        for path in indexes:
            try:
                entry = json.loads(path.read_text())
                rows = list(zip(entry["files"], entry["crc32"], strict=True))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # unreadable, or of older code without checksums: recomputed
            found.update((ident, (path.with_suffix(".npy"), row, crc))
                         for row, (ident, crc) in enumerate(rows))
        return found

    def read(self, identities: Sequence[str], out: np.ndarray) -> np.ndarray:
        """Fill the rows of ``out`` whose files are cached; return the mask of those rows."""
        index = self.index()
        by_shard: dict[Path, list[tuple[int, int, int]]] = {}
        for i, ident in enumerate(identities):
            if ident in index:
                shard, row, crc = index[ident]
                by_shard.setdefault(shard, []).append((i, row, crc))
        hits = np.zeros(len(identities), dtype=bool)
        for shard, triples in by_shard.items():
            dst, src, crcs = (np.array(column) for column in zip(*triples))
            try:
                stored = np.load(shard, mmap_mode="r")
                if stored.shape[1:] != out.shape[1:] or src.max() >= len(stored):
                    raise ValueError(f"shape {stored.shape}")
            except (OSError, ValueError):  # damaged: dropped, and its files recomputed
                _drop_shard(shard)
                continue
            if len(dst) == len(out) == len(stored) and np.array_equal(src, np.arange(len(out))) \
                    and np.array_equal(dst, src):
                out[:] = stored  # the same list again: one sequential read
            else:
                out[dst] = stored[src]
            in_order = np.array_equal(dst, np.arange(len(out)))
            if row_checksums(out if in_order else out[dst]) != crcs.tolist():
                warnings.warn(f"{shard}: cached features do not match their checksums (edited "
                              "or damaged); dropped, and their files are computed again",
                              stacklevel=2)
                _drop_shard(shard)
                continue
            hits[dst] = True
        return hits

    def write(self, identities: Sequence[str], mel_db: np.ndarray) -> None:
        """Store the features ``(N, n_mels, frames)`` of the files ``identities`` as one shard."""
        if not identities:
            return
        if not (self.dir / "config.json").exists():
            storage.write_json(self.dir / "config.json", self.config.to_dict())
        shard = self.shard(identities)
        mel_db = np.asarray(mel_db, dtype=np.float32)
        storage.write_npy(shard, mel_db)
        storage.write_json(shard.with_suffix(".json"),
                           {"files": list(identities), "crc32": row_checksums(mel_db)})
        self.prune()

    def prune(self) -> list[Path]:
        """Delete what no read can serve any more, and return it:

        - folders of older feature code (:data:`FEATURES_VERSION`) under the same root;
        - shards none of whose rows is the newest entry of a file as it is now: each file was
          extracted again into a newer shard, or edited since. A missing file keeps its rows
          (a disk not mounted now may come back);
        - shard data without an index and temporary files of writes that were killed, once
          older than :data:`~emogan_utils.storage.STALE_SECONDS` (a younger one may be a
          write in progress).

        Another process reading a deleted shard finds it gone and recomputes its files.
        """
        removed = [folder for folder in self.root.glob("logmel-*")
                   if folder.is_dir() and _cache_version(folder.name) < FEATURES_VERSION]
        for folder in removed:
            shutil.rmtree(folder, ignore_errors=True)
        serves: dict[Path, list[str]] = {}
        for ident, (shard, *_) in self.index().items():
            serves.setdefault(shard, []).append(ident)
        # a shard is live once one of its files is unedited: one stat for most shards
        live = {shard for shard, idents in serves.items() if not all(map(self.edited, idents))}
        for index in sorted(self.dir.glob("shard-*.json")):
            shard = index.with_suffix(".npy")
            if shard not in live:
                index.unlink(missing_ok=True)  # the index first: no index without its data
                shard.unlink(missing_ok=True)
                removed += [index, shard]
        orphans = [shard for shard in self.dir.glob("shard-*.npy")
                   if not shard.with_suffix(".json").exists()]
        removed += storage.remove_stale([*orphans, *self.dir.glob(".shard-*.tmp")])
        self.digests.save()
        return removed

    def edited(self, identity: str) -> bool:
        """Whether the file of a cache identity now has other content (or size); a missing
        file is not edited: it may come back."""
        path = identity.rsplit("|", 2)[0]
        try:
            return self.identity(path) != identity
        except OSError:
            return False


DIGESTS = "file-digests.json"
"""The file, in a feature cache's root, of :class:`FileDigests`."""

RECENT_NS = 2_000_000_000
"""A file whose status changed less than this long ago (ns) is hashed at every use, its digest
not kept: the kernel's file times step by a clock tick, so a write in the same tick as the
hash would leave all four times as they were."""


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's whole content, in hex."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FileDigests:
    """Content digests of files (:func:`file_digest`), each kept with the file's size,
    modification and status-change times and inode, and reused while all four are unchanged:
    writing a file sets its status-change time to the clock's time, and neither ``cp -p``,
    ``rsync -a`` nor ``os.utime`` can set it back, so a re-run over unchanged files reads no
    audio and an edited one is hashed again (a file changed within :data:`RECENT_NS` is hashed
    at every use). Kept in a JSON file
    ``{absolute path: [size, mtime_ns, ctime_ns, inode, sha1]}``, read at the first digest and
    written by :meth:`save`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._known: dict[str, list] | None = None
        self._changed = False

    def digest(self, path: str) -> str:
        """The content digest of the file at the absolute ``path``; OSError if it is missing."""
        stat = os.stat(path)
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        known = self._load()
        entry = known.get(path)
        if isinstance(entry, list) and entry[:-1] == key:
            return entry[-1]
        digest = file_digest(path)
        if time.time_ns() - stat.st_ctime_ns >= RECENT_NS:
            known[path] = [*key, digest]
            self._changed = True
        return digest

    def save(self) -> None:
        """Write the digests computed since the last save, beside those of files that still
        exist; skipped (the digests are computed again next time) where the file cannot be
        written."""
        if not self._changed:
            return
        kept = {path: entry for path, entry in self._load().items() if os.path.exists(path)}
        try:
            storage.write_json(self.path, kept)
        except (OSError, storage.OutputError):
            return
        self._changed = False

    def _load(self) -> dict[str, list]:
        """The digests on disk, read once; none where the file is missing or unreadable."""
        if self._known is None:
            try:
                known = json.loads(self.path.read_text())
            except (OSError, ValueError):
                known = {}
            self._known = known if isinstance(known, dict) else {}
        return self._known


def row_checksums(rows: np.ndarray) -> list[int]:
    """The CRC-32 of each row of a C-ordered array, as the cache index records them."""
    return [zlib.crc32(np.ascontiguousarray(row)) for row in rows]


def _drop_shard(shard: Path) -> None:
    """Delete a cache shard, its index first (no index without its data)."""
    shard.with_suffix(".json").unlink(missing_ok=True)
    shard.unlink(missing_ok=True)


def _cache_version(name: str) -> int:
    """Feature-code version of a cache folder's name; a name not of a cache folder is the
    current version, so that it is left alone."""
    match = re.fullmatch(r"logmel-(?:v(\d+)-)?[0-9a-f]{12}(?:-[a-z0-9.-]+)?", name)
    if match is None:
        return FEATURES_VERSION
    return int(match.group(1) or 1)


def extract_features(paths: Sequence[str | os.PathLike], config: AudioConfig = AudioConfig(),
                     cache_dir: str | os.PathLike | None = None, batch_size: int = BATCH_SIZE,
                     workers: int | None = None, progress: bool = True) -> np.ndarray:
    """Log-mels ``(N, n_mels, frames)`` of many files: cached, loaded in threads, batched mels.

    Needs a fixed ``config.duration`` so that the clips stack. A file that cannot be used raises
    :class:`AudioError` naming it (all such files are listed); see :func:`corpus_features` to
    skip them instead.
    """
    out, failures = _extract(paths, config, cache_dir, batch_size, workers, progress)
    if failures:
        raise AudioError(_failure_report(failures))
    return out


def corpus_features(table: pd.DataFrame, config: AudioConfig = AudioConfig(),
                    cache_dir: str | os.PathLike | None = None,
                    progress: bool = True, speed: float = 1.0) -> tuple[np.ndarray, pd.DataFrame]:
    """Features of every usable file in a corpus table, and the table of those files.

    Unusable files (corrupt, empty, NaN...) are left out with a warning that names each one,
    so one bad file does not stop a whole corpus. ``speed`` other than 1 gives the features of
    the files sped up by that factor (:func:`speed_perturb`), cached apart.
    """
    paths = list(table["path"])
    out, failures = _extract(paths, config, cache_dir, BATCH_SIZE, None, progress, speed)
    if not failures:
        return out, table.reset_index(drop=True)
    warnings.warn(_failure_report(failures) + " (left out)", stacklevel=2)
    keep = np.array([i not in failures for i in range(len(paths))])
    if not keep.any():
        raise AudioError(_failure_report(failures))
    return out[keep], table[keep].reset_index(drop=True)


def _failure_report(failures: dict[int, str]) -> str:
    lines = list(failures.values())
    more = f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
    return f"{len(lines)} unusable audio file(s):\n  " + "\n  ".join(lines[:10]) + more


def speed_variant(speed: float) -> str:
    """The cache variant of features of audio sped up by ``speed`` ("" for 1)."""
    return "" if speed == 1.0 else f"speed{speed:g}"


def _extract(paths: Sequence[str | os.PathLike], config: AudioConfig,
             cache_dir: str | os.PathLike | None, batch_size: int, workers: int | None,
             progress: bool, speed: float = 1.0) -> tuple[np.ndarray, dict[int, str]]:
    """Fill a feature array from the cache and from audio; return it with {index: error}."""
    if config.duration is None:
        raise ValueError("extracting a batch needs AudioConfig.duration set so clips stack")
    cache = (FeatureCache(cache_dir, config, speed_variant(speed)) if cache_dir is not None
             else None)
    out = np.empty((len(paths), config.n_mels, config.n_frames), dtype=np.float32)
    failures: dict[int, str] = {}
    identities: list[str] = []
    for i, path in enumerate(paths if cache else ()):
        try:
            identities.append(cache.identity(path))
        except OSError as err:  # a missing file
            failures[i] = f"{path}: {err.strerror or err}"
            identities.append("")
    if cache:
        cache.digests.save()
    cached = cache.read(identities, out) if cache else np.zeros(len(paths), dtype=bool)
    todo = [i for i in range(len(paths)) if not cached[i] and i not in failures]
    if todo:
        _compute(paths, todo, out, failures, config, batch_size, workers, progress, speed)
        if cache:
            done = [i for i in todo if i not in failures]
            rows = out if len(done) == len(out) else out[done]  # no 87 MB copy for a whole corpus
            cache.write([identities[i] for i in done], rows)
    return out, dict(sorted(failures.items()))


def batches_by_length(sizes: Sequence[int], batch_size: int) -> list[list[int]]:
    """Positions of ``sizes`` sorted by size (ties in order) and cut into batches of
    ``batch_size``: clips of similar length, so that a batch padded to its longest wastes little."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _compute(paths: Sequence[str | os.PathLike], todo: list[int], out: np.ndarray,
             failures: dict[int, str], config: AudioConfig, batch_size: int,
             workers: int | None, progress: bool, speed: float = 1.0) -> None:
    """Log-mels of ``paths[todo]`` into ``out``, unusable files into ``failures``.

    Threads decode the files ``SORT_CHUNK`` at a time, ``batch_size`` files a task; each chunk
    is then sorted by trimmed length into batches (:func:`batches_by_length`), so that the clips
    of a batch end close together and :class:`LogMel` skips most of their zero padding. The
    next chunk decodes while this one's mels are computed. Tasks run on one torch thread each,
    so that the cores are not oversubscribed (torch's thread count is one meanwhile, and
    restored afterwards).
    """
    transform = LogMel(config)

    def load(files: list[int]) -> list[tuple[int, np.ndarray]]:
        waves = []
        for i in files:
            try:
                waves.append((i, load_audio(paths[i], config, fixed_length=False,
                                            speed=speed)))
            except AudioError as err:
                failures[i] = str(err)
        return waves

    def mels(waves: list[tuple[int, np.ndarray]]) -> int:
        rows = stack_fixed_length([wave for _, wave in waves], config.n_samples)
        with torch.no_grad():
            out[[i for i, _ in waves]] = transform(torch.from_numpy(rows)).numpy()
        return len(waves)

    def decode(pool: ThreadPoolExecutor, chunk: list[int]) -> list[Future]:
        return [pool.submit(load, chunk[start:start + batch_size])
                for start in range(0, len(chunk), batch_size)]

    chunks = [todo[start:start + SORT_CHUNK] for start in range(0, len(todo), SORT_CHUNK)]
    with torch_threads(1), ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool, \
            tqdm(total=len(todo), desc="log-mel", unit="file", disable=not progress) as bar:
        decoding, computing = decode(pool, chunks[0]), []
        for k, chunk in enumerate(chunks):
            waves = [pair for task in decoding for pair in task.result()]
            bar.update(len(chunk) - len(waves))  # unusable files are done too
            # queued ahead of this chunk's mels, so that the workers never wait for it
            decoding = decode(pool, chunks[k + 1]) if k + 1 < len(chunks) else []
            for task in computing:
                bar.update(task.result())
            batches = batches_by_length([wave.size for _, wave in waves], batch_size)
            computing = [pool.submit(mels, [waves[j] for j in batch]) for batch in batches]
        for task in computing:
            bar.update(task.result())
