import numpy as np
import pytest
import torch

from conftest import sum_rtol, tone
from emogan_utils.features import AudioConfig, log_mel
from emogan_utils.inversion import (MelInverter, griffin_lim, reconstruct, spectral_convergence,
                                    stft_magnitude, waveform_spectral_convergence)
from emogan_utils.threads import torch_threads

CONFIG = AudioConfig()
RATE = CONFIG.sample_rate


def dominant_hz(wave: np.ndarray, rate: int) -> float:
    """Frequency of the largest FFT bin."""
    return float(np.argmax(np.abs(np.fft.rfft(wave)))) * rate / len(wave)


@pytest.mark.parametrize("freq", [440.0, 1000.0])
def test_pure_tone_keeps_its_frequency_and_spectrum(freq):
    wave = tone(freq, 1.0, RATE)
    out = reconstruct(wave, CONFIG).numpy()
    assert out.shape == wave.shape
    assert abs(dominant_hz(out, RATE) - freq) <= 4.0
    # A random-phase inversion of the true magnitude scores ~0.65 and the minimum-norm mel
    # inversion without the NNLS refinement >= 0.43 on these tones; 0.25 needs both steps to work.
    assert waveform_spectral_convergence(wave, out, CONFIG) < 0.25
    assert np.std(out) == pytest.approx(np.std(wave), rel=0.1)


def test_nnls_refinement_lowers_spectral_convergence():
    wave = tone(1000.0, 1.0, RATE)
    mel_db = log_mel(wave, CONFIG)
    plain, refined = (waveform_spectral_convergence(
        wave, griffin_lim(mel_db, CONFIG, length=wave.size, nnls_iter=k), CONFIG) for k in (0, 30))
    assert refined < plain - 0.1


def test_linear_power_reproduces_the_mel_and_stays_non_negative():
    inverter = MelInverter(CONFIG)
    wave = tone(300.0, 0.5, RATE) + tone(2500.0, 0.5, RATE)
    mel_power = torch.pow(10.0, torch.from_numpy(log_mel(wave, CONFIG)) / 10.0)
    power = inverter.linear_power(mel_power)
    assert power.shape == (CONFIG.n_fft // 2 + 1, mel_power.shape[-1])
    assert (power >= 0).all()
    remelled = inverter.inverse_mel.fb.T @ power
    assert torch.linalg.norm(remelled - mel_power) / torch.linalg.norm(mel_power) < 0.05


def test_blocked_nnls_updates_are_the_dense_ones():
    inverter = MelInverter(CONFIG, nnls_iter=5)
    wave = tone(300.0, 0.5, RATE) + tone(2500.0, 0.5, RATE)
    mel_power = torch.pow(10.0, torch.from_numpy(log_mel(np.stack([wave, wave / 3]), CONFIG)) / 10.0)
    fb = inverter.inverse_mel.fb  # (freq, n_mels)
    power = inverter.inverse_mel(mel_power).clamp_min(1e-10)
    for _ in range(5):  # Lee & Seung's update with the dense filterbank
        power = power * (fb @ mel_power) / (fb @ (fb.T @ power)).clamp_min(1e-30)
    # Each update multiplies by a ratio of sums of non-negative terms (no cancellation): a mel
    # filter covers at most 37 bins, a bin lies in at most 2 filters. Products and quotients
    # keep relative errors, so five updates stay within five times one update's (measured:
    # 7 eps32 at most, on one and two threads).
    widest, overlap = int((fb > 0).sum(0).max()), int((fb > 0).sum(1).max())
    per_update = sum_rtol(widest) + sum_rtol(overlap) * 2
    torch.testing.assert_close(inverter.linear_power(mel_power), power, rtol=5 * per_update,
                               atol=1e-30)


def assert_same_inversion(ours: torch.Tensor, theirs: torch.Tensor,
                          originals: np.ndarray) -> None:
    """Two inversions of the same mels agree as audio, clip by clip.

    Griffin-Lim does not keep rounding errors small: it normalises the rebuilt STFT to unit
    phase, and where a bin's rebuilt value nearly cancels, a difference in the last bit of the
    magnitude (1e-9 relative here, from another thread count or batch) turns its phase
    around; the momentum of 0.99 then carries that on. Two runs that differ only in rounding
    gave waveforms 1e-4 apart after one iteration, 2.5e-4 after 8 and 6e-3 after 32 (relative
    L2, one and two threads on an AVX-512 CPU). So they are compared as Griffin-Lim's output is
    judged, by spectral convergence against the clip they invert, equal within 1e-3 (0.32-0.4
    is typical, and another clip's spectrum scores about 1); and as waveforms within 2 % (L2),
    which a mix-up of clips, a missing chunk or another iteration count would exceed.
    """
    assert ours.shape == theirs.shape
    for k, original in enumerate(originals):
        a, b = ours[k], theirs[k]
        assert float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)) < 0.02, k
        scores = [waveform_spectral_convergence(original, x, CONFIG) for x in (a, b)]
        assert scores[0] == pytest.approx(scores[1], abs=1e-3), (k, scores)


def test_batch_matches_single_and_numpy_matches_torch():
    waves = np.stack([tone(440.0, 0.5, RATE), tone(700.0, 0.5, RATE, amplitude=0.1)])
    mel_db = log_mel(waves, CONFIG)
    batch = griffin_lim(mel_db, CONFIG, n_iter=8)
    single = griffin_lim(torch.from_numpy(mel_db[1]), CONFIG, n_iter=8)
    from_numpy = griffin_lim(mel_db[1], CONFIG, n_iter=8)
    assert isinstance(from_numpy, torch.Tensor)
    assert_same_inversion(batch[1:], single[None], waves[1:])
    torch.testing.assert_close(from_numpy, single, rtol=0, atol=0)  # the very same call


def test_a_batch_spread_over_threads_inverts_as_one_call():
    waves = np.stack([tone(200.0 + 100 * k, 0.5, RATE) for k in range(5)])
    mel_db = torch.from_numpy(log_mel(waves, CONFIG)).reshape(5, 1, CONFIG.n_mels, -1)
    inverter = MelInverter(CONFIG, n_iter=4)
    with torch.no_grad(), torch_threads(2):
        spread = inverter(mel_db)
        whole = inverter.invert(mel_db.reshape(5, CONFIG.n_mels, -1))
    assert spread.shape == (5, 1, whole.shape[-1])
    assert_same_inversion(spread.reshape(whole.shape), whole, waves)


def test_output_length():
    mel_db = log_mel(tone(440.0, 0.5, RATE), CONFIG)
    frames = mel_db.shape[-1]
    assert griffin_lim(mel_db, CONFIG, n_iter=2).shape == ((frames - 1) * CONFIG.hop_length,)
    assert griffin_lim(mel_db, CONFIG, n_iter=2, length=8000).shape == (8000,)
    batch = np.stack([tone(440.0, 0.3, RATE)] * 3)
    assert reconstruct(batch, CONFIG, n_iter=2).shape == batch.shape


def test_silence_inverts_to_near_silence():
    out = griffin_lim(np.full((CONFIG.n_mels, 20), CONFIG.db_floor, np.float32), CONFIG, n_iter=4)
    assert torch.isfinite(out).all()
    assert out.abs().max() < 1e-3


@pytest.mark.parametrize("shape", [(CONFIG.n_mels,), (64, 10), (2, 2, CONFIG.n_mels, 10)])
def test_bad_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="n_mels"):
        griffin_lim(np.zeros(shape, np.float32), CONFIG)


def test_spectral_convergence_values():
    ref = np.abs(np.random.default_rng(0).standard_normal((513, 20))) + 0.1
    assert spectral_convergence(ref, ref) == 0.0
    assert spectral_convergence(ref, 2 * ref) == pytest.approx(1.0)
    assert spectral_convergence(ref, np.zeros_like(ref)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        spectral_convergence(ref, ref[:, :10])
    with pytest.raises(ValueError, match="all zeros"):
        spectral_convergence(np.zeros_like(ref), ref)


def test_stft_magnitude_matches_log_mel_framing():
    wave = tone(440.0, 0.5, RATE)
    mag = stft_magnitude(wave, CONFIG)
    assert mag.shape == (CONFIG.n_fft // 2 + 1, log_mel(wave, CONFIG).shape[-1])
    assert stft_magnitude(np.stack([wave, wave]), CONFIG).shape == (2,) + tuple(mag.shape)


def test_waveform_spectral_convergence_cuts_to_the_shorter_wave():
    wave = tone(440.0, 0.5, RATE)
    assert waveform_spectral_convergence(wave, wave[:-100], CONFIG) == 0.0
    assert waveform_spectral_convergence(wave, tone(880.0, 0.5, RATE), CONFIG) > 0.9
