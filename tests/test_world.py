"""The WORLD vocoder: round trips, frame edits, the F0 transform and the metrics built on WORLD."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import voiced
from emogan_utils.data import EMOTIONS
from emogan_utils.evaluate import (dnsmos, f0_correlation, f0_rmse_cents, mcd_dtw,
                                   speaker_similarity, world_distances)
from emogan_utils.features import AudioConfig, log_mel
from emogan_utils.prosody import EmotionProsody, ProsodyShift, convert_f0
from emogan_utils.synth import render, utterance
from emogan_utils.world import (EnvelopeEdit, WorldConfig, analyze, coded_mel_cepstra, f0_contour,
                                mel_gain_to_envelope, stretch_frames, synthesize)

AUDIO = AudioConfig()
RATE = AUDIO.sample_rate


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return voiced()


@pytest.fixture(scope="module")
def spoken() -> dict[int, np.ndarray]:
    """One sentence of two embedded-corpus actors (espeak-ng voices), neutral."""
    return {actor: render(utterance(actor, 1, 1, 1, 1)) for actor in (1, 2)}


@pytest.mark.parametrize("method", ["harvest", "dio"])
def test_round_trip_without_conversion_keeps_spectrum_and_pitch(speech, method):
    config = WorldConfig(f0_method=method)
    frames = analyze(speech, RATE, config)
    assert frames.envelope.shape == frames.aperiodicity.shape == (frames.n_frames, 513)
    out = synthesize(frames, len(speech))
    assert out.shape == speech.shape and out.dtype == np.float32
    # the filterbank MCD of a clip against itself is 0; against another pitch it is > 1 dB
    assert mcd_dtw(out, speech, AUDIO) < 1.0
    assert mcd_dtw(voiced(f0=200.0), speech, AUDIO) > 1.0
    before, after = (f0_contour(w, RATE, config) for w in (speech, out))
    assert f0_rmse_cents(after, before) < 50.0  # within half a semitone
    assert (after > 0).mean() == pytest.approx((before > 0).mean(), abs=0.05)


def test_identical_audio_gives_zero_distances_and_similarity_one(speech, spoken):
    same = world_distances(speech, speech, RATE)
    assert same["mcd_world"] == 0.0 and same["f0_rmse_cents"] == 0.0
    assert same["f0_corr"] == pytest.approx(1.0)
    assert mcd_dtw(speech, speech, AUDIO) == 0.0
    # unit d-vectors: float32 rounding of a 256-term dot product stays far below 1e-5
    assert speaker_similarity(spoken[1], spoken[1], RATE) == pytest.approx(1.0, abs=1e-5)
    assert speaker_similarity(spoken[1], spoken[2], RATE) < 0.99


def test_a_known_pitch_shift_gives_its_f0_error_in_cents(speech):
    contour = f0_contour(speech, RATE, WorldConfig(f0_method="dio"))
    assert f0_rmse_cents(contour * 2 ** (3 / 12), contour) == pytest.approx(300.0, abs=1e-6)
    assert f0_correlation(contour * 2 ** (3 / 12), contour) == pytest.approx(1.0)
    # end to end: a steady buzz and the same two semitones up, analysed and aligned
    steady, higher = (voiced(f0=f, vibrato=0.0) for f in (140.0, 140.0 * 2 ** (2 / 12)))
    assert world_distances(higher, steady, RATE)["f0_rmse_cents"] == pytest.approx(200.0, abs=25.0)
    with pytest.raises(ValueError, match="aligned"):
        f0_rmse_cents(contour, contour[:-1])


def test_coded_mel_cepstra_follow_the_mcd_convention():
    # log amplitude = c0 + 2 sum c_k cos(k w): a cepstrum of c2 = 0.5 is a cosine ripple of
    # amplitude 1 in log amplitude, 2 in log power; coding its envelope gives c2 = 0.5 back
    import pyworld

    coded = np.zeros((1, 25))
    coded[0, 2] = 0.5 * 2.0 * np.sqrt(2.0)  # the same envelope in WORLD's own coding
    envelope = pyworld.decode_spectral_envelope(coded, RATE, 1024)
    log_power = np.log(envelope[0])
    assert (log_power.max() - log_power.min()) / 2 == pytest.approx(2.0, rel=1e-3)
    cepstra = coded_mel_cepstra(envelope, RATE)
    assert cepstra[0, 1] == pytest.approx(0.5, rel=1e-3)
    assert np.abs(np.delete(cepstra[0], 1)).max() < 1e-3


def test_silent_and_unvoiced_input_give_nan_not_a_crash(speech):
    silence = np.zeros(RATE, np.float32)
    noise = (0.05 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    assert all(np.isnan(v) for v in world_distances(silence, speech, RATE).values())
    assert all(np.isnan(v) or np.isfinite(v) for v in world_distances(noise, speech, RATE).values())
    assert np.isnan(speaker_similarity(silence, speech, RATE))
    assert all(np.isnan(v) for v in dnsmos(silence, RATE).values())
    assert np.array_equal(convert_f0(np.zeros(10), ProsodyShift(3.0, range_ratio=2.0)),
                          np.zeros(10))
    assert np.all(np.isfinite(synthesize(analyze(silence, RATE), RATE)))
    with pytest.raises(ValueError, match="NaN"):
        analyze(np.full(100, np.nan), RATE)


def test_dnsmos_rates_speech_like_sound_above_noise(speech):
    noise = (0.1 * np.random.default_rng(1).standard_normal(2 * RATE)).astype(np.float32)
    clean = dnsmos(speech, RATE)
    assert set(clean) == {"ovrl", "sig", "bak"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    assert clean["bak"] > dnsmos(noise, RATE)["bak"]


def test_f0_transform_maps_source_statistics_onto_the_target(speech):
    prosody = EmotionProsody({e: ProsodyShift() for e in EMOTIONS}
                             | {"sad": ProsodyShift(-2.0, 0.8, -4.0, 0.7),
                                "angry": ProsodyShift(5.0, 1.1, 8.0, 1.6)}, {})
    contour = f0_contour(speech, RATE)
    for source, target in (("neutral", "angry"), ("sad", "angry"), ("angry", "neutral")):
        shift = prosody.shift(source, target)
        moved = convert_f0(contour, shift)
        assert np.array_equal(moved > 0, contour > 0)
        before, after = (12 * np.log2(c[c > 0]) for c in (contour, moved))
        expected_step = prosody.offsets[target].semitones - prosody.offsets[source].semitones
        expected_ratio = prosody.offsets[target].range_ratio / prosody.offsets[source].range_ratio
        assert after.mean() - before.mean() == pytest.approx(expected_step, abs=1e-9)
        assert after.std() / before.std() == pytest.approx(expected_ratio, rel=1e-9)
    half = convert_f0(contour, prosody.shift("neutral", "angry", strength=0.5))
    assert (12 * np.log2(half[half > 0])).mean() - before.mean() == pytest.approx(2.5, abs=1e-9)


def test_stretch_frames_changes_tempo_and_keeps_voicing(speech):
    frames = analyze(speech, RATE, WorldConfig(f0_method="dio"))
    slower = stretch_frames(frames, round(frames.n_frames / 0.8))
    assert slower.n_frames == round(frames.n_frames / 0.8)
    assert (slower.f0 > 0).mean() == pytest.approx((frames.f0 > 0).mean(), abs=0.03)
    assert slower.f0[slower.f0 > 0].min() >= frames.f0[frames.f0 > 0].min() - 1e-6
    assert np.all(slower.aperiodicity <= 1.0) and np.all(slower.envelope > 0)
    assert stretch_frames(frames, frames.n_frames) is frames
    with pytest.raises(ValueError, match="at least 2"):
        stretch_frames(frames, 1)


def test_a_flat_mel_gain_scales_the_envelope_and_the_level(speech):
    frames = analyze(speech, RATE, WorldConfig(f0_method="dio"))
    mel = log_mel(speech, AUDIO)
    gain = mel_gain_to_envelope(np.full_like(mel, 6.0), AUDIO, frames, EnvelopeEdit(scale=1.0))
    assert gain.shape == frames.envelope.shape
    np.testing.assert_allclose(gain, 10 ** 0.6, rtol=1e-9)
    louder = synthesize(type(frames)(frames.f0, frames.envelope * gain, frames.aperiodicity,
                                     RATE, frames.frame_period_ms), len(speech))
    plain = synthesize(frames, len(speech))
    level = 20 * np.log10(np.sqrt(np.mean(louder ** 2) / np.mean(plain ** 2)))
    assert level == pytest.approx(6.0, abs=0.5)
    np.testing.assert_allclose(mel_gain_to_envelope(np.full_like(mel, 3.0), AUDIO, frames,
                                                    EnvelopeEdit(scale=2.0)), gain, rtol=1e-9)
    assert np.abs(mel_gain_to_envelope(np.full_like(mel, 90.0), AUDIO, frames)).max() \
        == pytest.approx(10 ** 2.4)  # clipped at +24 dB
    with pytest.raises(ValueError, match="n_mels"):
        mel_gain_to_envelope(mel[:10], AUDIO, frames)


@pytest.mark.parametrize("bad", [{"scale": -1.0}, {"scale": float("nan")}, {"n_cepstra": -2},
                                 {"max_db": 0.0}])
def test_an_impossible_envelope_edit_is_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        EnvelopeEdit(**bad)
