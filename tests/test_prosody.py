"""Prosody: measuring each emotion's pitch, tempo and level change, and applying it."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from scipy.signal import lfilter

from emogan_utils.data import EMOTIONS, load_corpus
from emogan_utils.features import AudioConfig
from emogan_utils.prosody import (EmotionProsody, ProsodyShift, apply_prosody, clip_prosody,
                                  fit_emotion_prosody, pitch_shift, remaining_semitones,
                                  spectral_envelope, stretch_mel)

AUDIO = AudioConfig()
RATE = AUDIO.sample_rate


def vowel(f0: float = 140.0, formants: tuple[float, ...] = (700.0, 1800.0),
          seconds: float = 1.5) -> np.ndarray:
    """A pulse train at ``f0`` through two-pole resonators: harmonics under a fixed envelope."""
    pulses = np.zeros(int(seconds * RATE))
    pulses[::int(RATE / f0)] = 1.0
    wave = pulses
    for freq in formants:
        radius = np.exp(-np.pi * 120.0 / RATE)
        wave = lfilter([1.0], [1.0, -2 * radius * np.cos(2 * np.pi * freq / RATE), radius ** 2],
                       wave)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def envelope_peak_hz(wave: np.ndarray) -> float:
    """Frequency of the highest point of the clip's mean spectral envelope."""
    spectrum = librosa.stft(wave, n_fft=AUDIO.n_fft, hop_length=AUDIO.hop_length)
    envelope = spectral_envelope(spectrum, 24).mean(axis=1)
    return float(np.argmax(envelope) * RATE / AUDIO.n_fft)


def test_pitch_shift_moves_the_pitch_and_keeps_the_formants():
    wave = vowel()
    before = clip_prosody(wave, AUDIO)["semitones"]
    kept = pitch_shift(wave, 7.0, AUDIO)
    moved = pitch_shift(wave, 7.0, AUDIO, preserve_formants=False)
    assert len(kept) == len(wave) and kept.dtype == np.float32
    for shifted in (kept, moved):
        assert clip_prosody(shifted, AUDIO)["semitones"] - before == pytest.approx(7.0, abs=0.4)
    peak = envelope_peak_hz(wave)
    assert abs(envelope_peak_hz(kept) - peak) < 0.1 * peak
    assert envelope_peak_hz(moved) > 1.3 * peak  # 7 semitones is a factor 1.5
    assert pitch_shift(wave, 0.0, AUDIO) is wave


@pytest.mark.parametrize("shift, source, converted, left", [
    (7.0, 100.0, 100.0, 7.0),   # the generator kept the pitch: all of the shift is left
    (7.0, 100.0, 104.0, 3.0),   # it went 4 of the 7 semitones
    (7.0, 100.0, 110.0, 0.0),   # it overshot: no shift, never one back down
    (7.0, 100.0, 95.0, 7.0),    # it went the wrong way: never more than the fitted shift
    (-3.0, 100.0, 99.0, -2.0),
    (-3.0, 100.0, 103.0, -3.0),
])
def test_remaining_semitones_stays_between_none_and_the_fitted_shift(shift, source, converted,
                                                                      left):
    assert remaining_semitones(shift, source, converted) == pytest.approx(left)


def test_apply_prosody_changes_length_and_level_and_never_clips():
    wave = vowel(seconds=1.0)
    slower = apply_prosody(wave, ProsodyShift(rate=0.8), AUDIO)
    assert len(slower) == pytest.approx(len(wave) / 0.8, rel=0.02)
    quieter = apply_prosody(wave, ProsodyShift(gain_db=-6.0), AUDIO)
    level = clip_prosody(quieter, AUDIO)["level_db"] - clip_prosody(wave, AUDIO)["level_db"]
    assert level == pytest.approx(-6.0, abs=0.01)
    loud = apply_prosody(wave, ProsodyShift(gain_db=30.0), AUDIO)
    assert np.abs(loud).max() == pytest.approx(1.0)


def test_stretch_mel_resamples_frames_linearly_and_keeps_the_ends():
    ramp = np.tile(np.arange(101, dtype=np.float32), (80, 1))  # frame i holds i
    slower = stretch_mel(ramp, 202)
    assert slower.shape == (80, 202)
    np.testing.assert_allclose(slower[0], np.linspace(0, 100, 202), atol=1e-4)
    assert stretch_mel(ramp, 50).shape == (80, 50)
    np.testing.assert_array_equal(stretch_mel(ramp, 101), ramp)
    with pytest.raises(ValueError, match="frames must be at least 2, got 1"):
        stretch_mel(ramp, 1)


def test_shifts_compose_invert_and_scale():
    prosody = EmotionProsody({"neutral": ProsodyShift(), "sad": ProsodyShift(-2.0, 0.8, -4.0),
                              **{e: ProsodyShift(3.0, 1.25, 6.0) for e in EMOTIONS[2:3]}},
                             {"sad": 4, "happy": 4})
    sad_to_happy = prosody.shift("sad", "happy")
    assert (sad_to_happy.semitones, sad_to_happy.gain_db) == (5.0, 10.0)
    assert sad_to_happy.rate == pytest.approx(1.25 / 0.8)
    assert prosody.shift("sad", "sad") == ProsodyShift(0.0, 1.0, 0.0)
    assert prosody.shift("neutral", "sad", strength=0.0) == ProsodyShift(0.0, 1.0, 0.0)
    half = prosody.shift("neutral", "sad", strength=0.5)
    assert half.semitones == -1.0 and half.rate == pytest.approx(0.8 ** 0.5)
    with pytest.raises(ValueError, match="strength"):
        prosody.shift("neutral", "sad", strength=2.0)
    with pytest.raises(ValueError, match="neutral, calm, happy"):
        prosody.shift("neutral", "grumpy")
    assert EmotionProsody.from_state(prosody.state_dict()) == prosody


def test_fit_recovers_the_pitch_steps_of_the_tiny_corpus(tiny_corpus):
    # emotion k is a tone at 150 k Hz, 12 log2(k) semitones above neutral (pitch is tracked
    # up to 800 Hz, so up to k = 5)
    prosody = fit_emotion_prosody(load_corpus(tiny_corpus), AUDIO, progress=False)
    for k, emotion in enumerate(EMOTIONS[:5], start=1):
        shift = prosody.offsets[emotion]
        assert shift.semitones == pytest.approx(12 * np.log2(k), abs=0.3), emotion
        assert shift.rate == pytest.approx(1.0, abs=0.05)
        assert shift.gain_db == pytest.approx(0.0, abs=0.5)
    assert prosody.n_pairs["angry"] == 2
    assert list(prosody.table().index) == list(EMOTIONS)


def test_fit_without_the_reference_emotion_warns_and_changes_nothing(tiny_corpus):
    table = load_corpus(tiny_corpus)
    with pytest.warns(UserWarning, match="No neutral recordings"):
        prosody = fit_emotion_prosody(table[table["emotion"] != "neutral"], AUDIO, progress=False)
    assert prosody.shift("neutral", "angry") == ProsodyShift(0.0, 1.0, 0.0)


def test_real_ravdess_emotions_move_the_way_the_literature_says(ravdess_16k):
    table = load_corpus(ravdess_16k)
    prosody = fit_emotion_prosody(table[table["actor"].isin([1, 2, 3, 4])], AUDIO,
                                  progress=False).offsets
    for emotion in ("happy", "angry", "fearful", "surprised"):
        assert prosody[emotion].semitones > 3.0 and prosody[emotion].gain_db > 3.0, emotion
    assert prosody["angry"].gain_db > prosody["calm"].gain_db + 10.0
    assert abs(prosody["calm"].semitones) < 2.0
