"""Emotional prosody: how pitch, pitch range, tempo and level move between emotions, and
applying that move.

The GAN works on 80-band log-mels aligned to the source's timing, so it can change timbre and
level but hardly pitch (harmonics are a few mel bands apart and an L1 loss blurs rather than
moves them) and not tempo at all. This module measures, on parallel recordings, the median
change from a reference emotion (neutral) to each other one, and applies it:

- on the WORLD path, to the F0 contour (:func:`convert_f0`: log-F0 mean and spread) and to the
  frame rate (:func:`emogan_utils.world.stretch_frames`);
- on the Griffin-Lim path, the tempo to a log-mel before inversion (:func:`stretch_mel`) and
  the pitch to the waveform after it with a formant-preserving shift (:func:`apply_prosody`
  does all of it on a waveform, the tempo with librosa's phase vocoder).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import librosa
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from emogan_utils.data import EMOTIONS, emotion_id, translation_items
from emogan_utils.features import AudioConfig, load_audio
from emogan_utils.world import WorldConfig, f0_contour


@dataclass(frozen=True)
class ProsodyShift:
    """A change of pitch (semitones), tempo (``rate`` > 1 is faster), level (dB) and pitch
    range (``range_ratio``: the factor on the spread of log-F0 around its mean)."""

    semitones: float = 0.0
    rate: float = 1.0
    gain_db: float = 0.0
    range_ratio: float = 1.0

    def scaled(self, strength: float) -> "ProsodyShift":
        """The same change taken ``strength`` of the way (0: none, 1: all of it)."""
        return ProsodyShift(self.semitones * strength, self.rate ** strength,
                            self.gain_db * strength, self.range_ratio ** strength)

    def then(self, other: "ProsodyShift") -> "ProsodyShift":
        """This change followed by ``other``."""
        return ProsodyShift(self.semitones + other.semitones, self.rate * other.rate,
                            self.gain_db + other.gain_db, self.range_ratio * other.range_ratio)

    def inverse(self) -> "ProsodyShift":
        return ProsodyShift(-self.semitones, 1.0 / self.rate, -self.gain_db,
                            1.0 / self.range_ratio)


@dataclass(frozen=True)
class EmotionProsody:
    """Each emotion's median prosody relative to ``reference``, measured on parallel recordings."""

    offsets: dict[str, ProsodyShift]
    n_pairs: dict[str, int]
    reference: str = "neutral"

    def shift(self, source: str, target: str, strength: float = 1.0) -> ProsodyShift:
        """The change that takes speech in ``source`` emotion to ``target``, scaled by strength."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        source_offset, target_offset = (self.offsets[EMOTIONS[emotion_id(e) - 1]]
                                        for e in (source, target))
        return source_offset.inverse().then(target_offset).scaled(strength)

    def table(self) -> pd.DataFrame:
        """One row per emotion: semitones, tempo ratio, level change in dB, pitch-range ratio
        and pairs measured."""
        rows = {e: {**vars(s), "pairs": self.n_pairs.get(e, 0)} for e, s in self.offsets.items()}
        return pd.DataFrame.from_dict(rows, orient="index").round(2)

    def state_dict(self) -> dict:
        """Plain values, for a ``weights_only`` checkpoint."""
        return {"offsets": {e: [s.semitones, s.rate, s.gain_db, s.range_ratio]
                            for e, s in self.offsets.items()},
                "n_pairs": dict(self.n_pairs), "reference": self.reference}

    @classmethod
    def from_state(cls, state: dict) -> "EmotionProsody":
        """The inverse of :meth:`state_dict`; offsets saved without a range ratio keep 1."""
        offsets = {e: ProsodyShift(*map(float, v)) for e, v in state["offsets"].items()}
        return cls(offsets, {e: int(n) for e, n in state["n_pairs"].items()}, state["reference"])


PROSODY_WORLD = WorldConfig(frame_period_ms=10.0, f0_method="dio")
"""F0 tracking for prosody measurement: dio with stonemask, fast enough for every training pair."""


def clip_prosody(wave: np.ndarray, config: AudioConfig = AudioConfig()) -> dict[str, float]:
    """Median pitch (semitones above 1 Hz) and its spread (semitones), duration (s) and RMS
    level (dB) of a trimmed clip.

    Pitch comes from WORLD's F0 over voiced frames (:data:`PROSODY_WORLD`); the spread is the
    scaled median absolute deviation of the semitone contour, which octave errors in a few
    frames barely move. Both are NaN for a clip with no voiced frame.
    """
    f0 = f0_contour(wave, config.sample_rate, PROSODY_WORLD)
    semitones = 12 * np.log2(f0[f0 > 0])
    median = float(np.median(semitones)) if semitones.size else float("nan")
    spread = (float(1.4826 * np.median(np.abs(semitones - median))) if semitones.size
              else float("nan"))
    return {"semitones": median, "spread": spread, "seconds": len(wave) / config.sample_rate,
            "level_db": float(10 * np.log10(np.mean(wave.astype(np.float64) ** 2) + 1e-12))}


def fit_emotion_prosody(table: pd.DataFrame, config: AudioConfig = AudioConfig(),
                        reference: str = "neutral", progress: bool = True) -> EmotionProsody:
    """Median prosody change from ``reference`` to each emotion over the parallel pairs of ``table``.

    Pairs are the same actor, statement and repetition (strong intensity where it exists), so
    speaker and wording cancel. Emotions with no pair keep no change.
    """
    if not (table["emotion"] == reference).any():
        warnings.warn(f"No {reference} recordings to measure prosody against: every emotion "
                      f"keeps the source's pitch and tempo", stacklevel=2)
        return EmotionProsody({e: ProsodyShift() for e in EMOTIONS}, {}, reference)
    items = translation_items(table, reference)
    paths = sorted(set(items["source_path"]) | set(items["target_path"]))
    measured = {p: clip_prosody(load_audio(p, config, fixed_length=False), config)
                for p in tqdm(paths, desc="prosody", unit="file", disable=not progress)}
    offsets, n_pairs = {reference: ProsodyShift()}, {}
    for target, rows in items.groupby("target"):
        src = pd.DataFrame([measured[p] for p in rows["source_path"]])
        tgt = pd.DataFrame([measured[p] for p in rows["target_path"]])
        offsets[target] = ProsodyShift(
            semitones=_median_of_known(tgt["semitones"] - src["semitones"], 0.0),
            rate=float(np.median(src["seconds"] / tgt["seconds"])),
            gain_db=float(np.median(tgt["level_db"] - src["level_db"])),
            range_ratio=_median_of_known(tgt["spread"] / src["spread"], 1.0))
        n_pairs[target] = len(rows)
    offsets = {e: offsets.get(e, ProsodyShift()) for e in EMOTIONS}
    return EmotionProsody(offsets, n_pairs, reference)


def _median_of_known(values: pd.Series, default: float) -> float:
    """Median over the finite values (pairs where both clips are voiced), else ``default``."""
    known = values.to_numpy(np.float64)
    known = known[np.isfinite(known)]
    return float(np.median(known)) if known.size else default


def convert_f0(f0: np.ndarray, shift: ProsodyShift) -> np.ndarray:
    """An F0 contour (Hz, 0 where unvoiced) moved by ``shift``: its log-F0 mean raised by
    ``shift.semitones`` and its spread around that mean scaled by ``shift.range_ratio``.

    The mean is the clip's own, so the transform is relative to the speaker: a log-Gaussian
    transform whose statistics are the fitted emotion offsets (:func:`fit_emotion_prosody`).
    Unvoiced frames stay unvoiced; a contour with no voiced frame comes back unchanged.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    if not voiced.any():
        return f0.copy()
    log_f0 = np.log(f0[voiced])
    mean = log_f0.mean()
    moved = mean + shift.semitones * np.log(2.0) / 12.0 + (log_f0 - mean) * shift.range_ratio
    out = np.zeros_like(f0)
    out[voiced] = np.exp(moved)
    return out


def remaining_semitones(semitones: float, source_pitch: float, converted_pitch: float) -> float:
    """What is left of a pitch change of ``semitones`` once the generator has moved the pitch
    from ``source_pitch`` to ``converted_pitch`` (medians, in semitones), kept between 0 and
    ``semitones``: never past the fitted change, never against it, so a pitch misread on a
    breathy conversion can only mean less shift, not a wrong one; an unmeasurable pitch (no
    voiced frame) leaves the whole change."""
    left = semitones - (converted_pitch - source_pitch)
    if not np.isfinite(left):
        return float(semitones)
    return float(np.clip(left, min(0.0, semitones), max(0.0, semitones)))


def spectral_envelope(spectrum: np.ndarray, n_coeffs: int) -> np.ndarray:
    """Smooth magnitude envelope of an STFT ``(bins, frames)`` by keeping ``n_coeffs`` cepstral terms."""
    cepstrum = np.fft.irfft(np.log(np.abs(spectrum) + 1e-7), axis=0)
    cepstrum[n_coeffs:cepstrum.shape[0] - n_coeffs + 1] = 0.0
    return np.exp(np.fft.rfft(cepstrum, axis=0).real)


def pitch_shift(wave: np.ndarray, semitones: float, config: AudioConfig = AudioConfig(),
                preserve_formants: bool = True, n_coeffs: int = 24) -> np.ndarray:
    """Shift pitch by ``semitones``, keeping the spectral envelope (formants) in place.

    librosa's shift (stretch, then resample) moves the formants with the harmonics, so a
    voice an octave up sounds like a child's; each frame is then rescaled by the ratio of the
    original envelope to the shifted one. ``n_coeffs`` cepstral terms (1.5 ms at 16 kHz) keep
    the envelope smoother than the harmonics of voices up to about 650 Hz.
    """
    if semitones == 0.0:
        return wave
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    shifted = librosa.effects.pitch_shift(wave, sr=sr, n_steps=semitones, n_fft=n_fft,
                                          hop_length=hop)
    if not preserve_formants:
        return shifted
    before, after = (librosa.stft(w, n_fft=n_fft, hop_length=hop) for w in (wave, shifted))
    gain = np.clip(spectral_envelope(before, n_coeffs) / spectral_envelope(after, n_coeffs),
                   0.1, 10.0)  # at most +-20 dB, so a near-silent frame cannot explode
    return librosa.istft(after * gain, hop_length=hop, n_fft=n_fft, length=len(wave))


def stretch_mel(mel_db: np.ndarray, frames: int) -> np.ndarray:
    """A log-mel ``(n_mels, T)`` resampled in time to ``frames`` frames: the same speech at
    ``T / frames`` times the tempo. Frames are linearly interpolated; the first and last stay.

    Stretching before Griffin-Lim lets it make phases for the new timing; a phase vocoder on
    its output smears them a second time, and gave a higher mean MCD to the real target
    recordings in every comparison made (docs/results.md, translation).
    """
    if frames < 2:
        raise ValueError(f"frames must be at least 2, got {frames}")
    mel = np.asarray(mel_db, dtype=np.float32)
    if frames == mel.shape[-1]:
        return mel
    stretched = torch.nn.functional.interpolate(torch.from_numpy(mel)[None], size=frames,
                                                mode="linear", align_corners=True)
    return stretched[0].numpy()


def apply_prosody(wave: np.ndarray, shift: ProsodyShift, config: AudioConfig = AudioConfig(),
                  preserve_formants: bool = True) -> np.ndarray:
    """``wave`` with its pitch, tempo and level changed by ``shift`` (float32, peak at most 1)."""
    wave = np.asarray(wave, dtype=np.float32)
    out = pitch_shift(wave, shift.semitones, config, preserve_formants)
    if shift.rate != 1.0:
        out = librosa.effects.time_stretch(out, rate=shift.rate, n_fft=config.n_fft,
                                           hop_length=config.hop_length)
    out = out * 10.0 ** (shift.gain_db / 20.0)
    peak = float(np.max(np.abs(out), initial=0.0))
    return (out / peak if peak > 1.0 else out).astype(np.float32)

