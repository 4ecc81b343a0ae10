import librosa
import numpy as np
import pytest

from conftest import tone
from emogan_utils.evaluate import f0_stats, mcd_dtw, mel_cepstrum
from emogan_utils.features import AudioConfig, log_mel

CONFIG = AudioConfig()
RATE = CONFIG.sample_rate

# Three "phones", each a different chord; an utterance is a sequence of them.
PHONES = {"a": (220.0, 660.0, 1500.0), "i": (180.0, 2300.0, 3100.0), "u": (300.0, 800.0, 4200.0),
          "s": (5200.0, 6100.0, 7000.0)}


def utterance(phones: str, seconds: list[float]) -> np.ndarray:
    """Concatenated chords with 10 ms fades, a stand-in for speech with distinct segments."""
    parts = []
    for phone, length in zip(phones, seconds):
        chord = sum(tone(f, length, RATE, amplitude=0.1) for f in PHONES[phone])
        fade = np.minimum(1.0, np.minimum(np.arange(chord.size), np.arange(chord.size)[::-1]) / 160)
        parts.append(chord * fade)
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return utterance("aius", [0.3, 0.4, 0.3, 0.2])


def test_mel_cepstrum_shape_and_input_forms(speech):
    cep = mel_cepstrum(speech, CONFIG)
    mel_db = log_mel(speech, CONFIG)
    assert cep.shape == (12, mel_db.shape[-1])
    np.testing.assert_allclose(mel_cepstrum(mel_db, CONFIG), cep)
    assert mel_cepstrum(speech, CONFIG, n_coeffs=25).shape[0] == 24


def test_mel_cepstrum_is_librosa_mfcc_rescaled(speech):
    # librosa's MFCC: orthonormal DCT of power_to_db with an 80 dB dynamic range.
    mfcc = librosa.feature.mfcc(y=speech, sr=RATE, n_mfcc=13, n_fft=CONFIG.n_fft,
                                hop_length=CONFIG.hop_length, n_mels=CONFIG.n_mels,
                                fmin=CONFIG.f_min, fmax=CONFIG.f_max)
    ours = mel_cepstrum(speech, CONFIG, dynamic_range_db=80.0)
    scale = 20.0 / np.log(10.0) * np.sqrt(2 * CONFIG.n_mels)
    np.testing.assert_allclose(ours, mfcc[1:] / scale, atol=1e-3)


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 10)), np.zeros((64, 10))])
def test_mel_cepstrum_rejects_other_shapes(bad):
    with pytest.raises(ValueError, match="n_mels"):
        mel_cepstrum(bad, CONFIG)


def test_mel_cepstrum_rejects_bad_n_coeffs(speech):
    with pytest.raises(ValueError, match="n_coeffs"):
        mel_cepstrum(speech, CONFIG, n_coeffs=1)


def test_mcd_of_a_signal_with_itself_is_zero(speech):
    assert mcd_dtw(speech, speech, CONFIG) == pytest.approx(0.0, abs=1e-9)


def test_mcd_grows_with_noise(speech):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(speech.size).astype(np.float32)
    scores = [mcd_dtw(speech, speech + level * noise, CONFIG) for level in (0.001, 0.01, 0.1)]
    assert 0.0 < scores[0] < scores[1] < scores[2]


def test_mcd_is_symmetric(speech):
    other = utterance("uais", [0.2, 0.5, 0.3, 0.3])
    assert mcd_dtw(speech, other, CONFIG) == pytest.approx(mcd_dtw(other, speech, CONFIG), rel=0.05)


def test_dtw_aligns_a_time_stretched_copy(speech):
    stretched = utterance("aius", [0.5, 0.3, 0.45, 0.25])
    unrelated = utterance("usai", [0.3, 0.4, 0.3, 0.2])
    near, far = mcd_dtw(speech, stretched, CONFIG), mcd_dtw(speech, unrelated, CONFIG)
    assert near < 0.5 * far


def test_mcd_accepts_log_mels(speech):
    stretched = utterance("aius", [0.5, 0.3, 0.45, 0.25])
    assert mcd_dtw(log_mel(speech, CONFIG), log_mel(stretched, CONFIG), CONFIG) == pytest.approx(
        mcd_dtw(speech, stretched, CONFIG))


def test_f0_of_a_steady_tone():
    stats = f0_stats(tone(220.0, 1.0, RATE), RATE)
    assert stats["mean_hz"] == pytest.approx(220.0, rel=0.02)
    assert stats["range_hz"] < 3.0
    assert stats["voiced_fraction"] > 0.9


def test_f0_of_a_chirp():
    t = np.arange(RATE) / RATE
    chirp = 0.3 * np.sin(2 * np.pi * (150.0 * t + 75.0 * t ** 2))  # 150 -> 300 Hz linearly
    stats = f0_stats(chirp, RATE)
    assert stats["mean_hz"] == pytest.approx(225.0, rel=0.03)
    assert stats["range_hz"] == pytest.approx(0.9 * 150.0, rel=0.15)  # 5th to 95th percentile


def test_f0_of_silence_is_unvoiced():
    stats = f0_stats(np.zeros(RATE, np.float32), RATE)
    assert stats["voiced_fraction"] == 0.0
    assert np.isnan(stats["mean_hz"]) and np.isnan(stats["range_hz"])


def test_f0_rejects_non_waveforms():
    with pytest.raises(ValueError, match="1-D"):
        f0_stats(np.zeros((2, 100)), RATE)
