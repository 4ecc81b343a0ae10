"""The contour converter: WORLD contours and their edits, the converter's round trip, a converter
that learns a known change of pitch, level and tempo, the eGeMAPS judge and the transfer ratio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import voiced
from emogan_utils import cli
from emogan_utils.checkpoint import CheckpointError, save_checkpoint
from emogan_utils.contours import (CONTOUR_WORLD, N_OUTPUTS, CepstralStats, Contours,
                                   apply_contours, contours, converted_contours,
                                   converter_inputs, fill_unvoiced, retime, training_targets)
from emogan_utils.converter_training import (ConverterTrainConfig, clip_pairs, save_converter,
                                             train_converter)
from emogan_utils.cues import VARIANTS, cue_variants
from emogan_utils.data import load_corpus, ravdess_name
from emogan_utils.egemaps import N_FUNCTIONALS, EgemapsJudge, per_speaker
from emogan_utils.evaluate import active_level_db, egemaps_judge, fit_egemaps_judge, transfer
from emogan_utils.features import AudioConfig
from emogan_utils.inference import ContourTranslator
from emogan_utils.synth import default_corpus
from emogan_utils.world import analyze

RATE = 16000
SEMITONES, GAIN_DB, SLOWER = 4.0, 6.0, 1.25
"""The change from neutral to angry in the synthetic parallel corpus."""


def median_semitones(wave: np.ndarray) -> float:
    f0 = analyze(wave, RATE, CONTOUR_WORLD).f0
    return float(np.median(12 * np.log2(f0[f0 > 0])))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return voiced(1.5, f0=130.0)


def test_contours_round_trip_and_edits(speech):
    frames = analyze(speech, RATE, CONTOUR_WORLD)
    c = contours(frames)
    same = apply_contours(frames, c, c)
    np.testing.assert_allclose(same.envelope, frames.envelope, rtol=1e-9)
    np.testing.assert_allclose(same.f0, frames.f0, rtol=1e-12)
    up = Contours(c.log_f0 + np.log(2) / 12 * 3, c.voiced, c.energy_db + 6.0, c.cepstra)
    moved = contours(apply_contours(frames, c, up))
    voiced_frames = c.voiced
    assert np.median(moved.log_f0[voiced_frames] - c.log_f0[voiced_frames]) == pytest.approx(
        np.log(2) / 4, abs=1e-9)
    np.testing.assert_allclose(moved.energy_db - c.energy_db, 6.0, atol=1e-6)


def test_fill_unvoiced_interpolates_and_holds_the_ends():
    log_f0 = np.array([0.0, 5.0, 0.0, 0.0, 6.0, 0.0])
    voiced_frames = log_f0 > 0
    np.testing.assert_allclose(fill_unvoiced(log_f0, voiced_frames), [5, 5, 5 + 1 / 3, 5 + 2 / 3,
                                                                      6, 6])
    assert np.all(fill_unvoiced(np.zeros(3), np.zeros(3, bool)) == np.log(100.0))


def test_retime_changes_length_as_asked(speech):
    frames = analyze(speech, RATE, CONTOUR_WORLD)
    assert retime(frames, np.full(frames.n_frames, 1.25)).n_frames == round(frames.n_frames * 1.25)
    assert retime(frames, np.ones(frames.n_frames)).n_frames == frames.n_frames
    half = np.ones(frames.n_frames)
    half[: frames.n_frames // 2] = 2.0  # the first half twice as slow, the rest as it was
    slowed = retime(frames, half)
    assert slowed.n_frames == frames.n_frames + frames.n_frames // 2
    # the second half keeps its timing: the last frames are the source's last frames
    np.testing.assert_allclose(slowed.f0[-5:], frames.f0[-5:], rtol=0.05)
    with pytest.raises(ValueError, match="positive durations"):
        retime(frames, np.zeros(frames.n_frames))


def test_converted_contours_at_strength_zero_are_the_source(speech):
    c = contours(analyze(speech, RATE, CONTOUR_WORLD))
    stats = CepstralStats(np.zeros(c.cepstra.shape[1]), np.ones(c.cepstra.shape[1]))
    output = np.random.default_rng(0).normal(size=(N_OUTPUTS, c.n_frames))
    same, durations = converted_contours(c, output, stats, strength=0.0)
    for name in ("log_f0", "energy_db", "cepstra", "voiced"):
        np.testing.assert_array_equal(getattr(same, name), getattr(c, name))
    np.testing.assert_array_equal(durations, 1.0)
    half, _ = converted_contours(c, output, stats, strength=0.5)
    full, _ = converted_contours(c, output, stats, strength=1.0)
    inside = c.loud()
    np.testing.assert_allclose((half.log_f0 - c.log_f0)[inside],
                               0.5 * (full.log_f0 - c.log_f0)[inside], atol=1e-12)
    with pytest.raises(ValueError, match="strength"):
        converted_contours(c, output, stats, strength=1.5)


def test_training_targets_of_a_pair_with_itself_are_zero_change(speech):
    c = contours(analyze(speech, RATE, CONTOUR_WORLD))
    stats = CepstralStats.fit([c])
    values, weights = training_targets(c, c, np.arange(c.n_frames), stats)
    assert values.shape == weights.shape == (N_OUTPUTS, c.n_frames)
    np.testing.assert_allclose(values, 0.0, atol=1e-6)
    assert weights[0].sum() == c.voiced.sum() and weights[2].min() == 1.0
    assert converter_inputs(c, stats).shape[1] == c.n_frames


def sentence(seconds: float, f0: float, stretch: float = 1.0, lead: float = 0.2) -> np.ndarray:
    """A voiced stand-in for a sentence: pitch, two formants and loudness that move in time,
    all ``stretch`` times slower, after ``lead`` seconds of silence."""
    t = np.arange(int(seconds * RATE)) / RATE / stretch
    contour = f0 * 2 ** (2.0 * np.sin(2 * np.pi * 1.5 * t) / 12)
    f1 = 550 + 250 * np.sin(2 * np.pi * 0.9 * t)
    f2 = 1600 + 400 * np.sin(2 * np.pi * 1.3 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(contour) / RATE
    wave = sum(np.sin(k * phase) / k * (1.0 + 4.0 * np.exp(-((k * contour - f1) / 250) ** 2)
                                        + 2.0 * np.exp(-((k * contour - f2) / 350) ** 2))
               for k in range(1, 40) if k * f0 < 7000)
    wave *= 0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t) ** 2
    wave = 0.2 * wave / np.abs(wave).max()
    return np.concatenate([np.zeros(int(lead * RATE)), wave]).astype(np.float32)


def write_parallel_corpus(root, actors=(1, 2, 3), base=(110.0, 150.0, 190.0)) -> None:
    """Actors saying two statements twice, neutral and angry: angry is SEMITONES higher,
    GAIN_DB louder and SLOWER times slower."""
    for actor, f0 in zip(actors, base):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for statement in (1, 2):
            for repetition in (1, 2):
                seconds = 1.0 + 0.2 * statement + 0.05 * repetition
                neutral = sentence(seconds, f0)
                angry = sentence(seconds * SLOWER, f0 * 2 ** (SEMITONES / 12),
                                 SLOWER) * 10 ** (GAIN_DB / 20)
                for emotion, intensity, wave in ((1, 1, neutral), (5, 2, angry)):
                    sf.write(folder / ravdess_name(emotion, intensity, statement, repetition,
                                                   actor), wave, RATE)


@pytest.fixture(scope="module")
def trained_converter(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    write_parallel_corpus(root)
    config = ConverterTrainConfig(epochs=60, batch_size=2, crop=160, learning_rate=1e-2)
    torch.manual_seed(0)
    trained = train_converter(root, config, train_actors=[1, 3], val_actors=[2],
                              cache_dir=root.parent / "cache", progress=False)
    path = save_converter(root.parent / "converter.pt", trained)
    return path, trained


@pytest.mark.slow
def test_converter_learns_a_known_change_of_pitch_level_and_tempo(trained_converter):
    path, trained = trained_converter
    assert trained.history["val"][-1] < trained.history["val"][0]
    translator = ContourTranslator(path)
    source = sentence(1.4, 150.0)  # an unseen speaker's pitch and sentence length
    angry = translator(source, "angry", sample_rate=RATE)
    assert median_semitones(angry) - median_semitones(source) == pytest.approx(SEMITONES, abs=1.0)
    assert active_level_db(angry, RATE) - active_level_db(source, RATE) == pytest.approx(
        GAIN_DB, abs=2.0)
    assert 1.08 < len(angry) / len(source) < SLOWER + 0.1  # slower, as the pairs were
    # strength 0 is the source through WORLD, unchanged (but for float error of the log-F0)
    unchanged = translator(source, "angry", strength=0.0, sample_rate=RATE)
    np.testing.assert_allclose(unchanged, translator.resynthesize(source), atol=1e-3)
    halfway = translator(source, "angry", strength=0.5, sample_rate=RATE)
    assert 0.3 * SEMITONES < median_semitones(halfway) - median_semitones(source) < 0.7 * SEMITONES


@pytest.mark.slow
def test_train_converter_command_and_translate(trained_converter, tmp_path, capsys):
    path, _ = trained_converter
    source = tmp_path / "in.wav"
    sf.write(source, voiced(1.2, 140.0, lead=0.2), RATE)
    out = tmp_path / "out.wav"
    assert cli.main(["translate", "--converter", str(path), "--input", str(source), "--to",
                     "angry", "--output", str(out)]) == 0
    assert sf.info(out).duration > 1.2
    capsys.readouterr()
    assert cli.main(["translate", "--input", str(source), "--to", "angry", "--output",
                     str(tmp_path / "x.wav")]) == 2
    assert "give one of --converter" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_converter_checkpoint_kind_and_pairs_are_checked(tmp_path):
    gan = save_checkpoint(tmp_path / "gan.pt", kind="gan", model_config={}, state={},
                          audio=AudioConfig())
    with pytest.raises(CheckpointError, match="expected 'converter'"):
        ContourTranslator(gan)
    table = load_corpus(_written(tmp_path))
    pairs = clip_pairs(table)
    assert len(pairs) == 2 * 3 * 2 * 2  # both directions, 3 actors x 2 statements x 2 takes
    assert set(zip(table["emotion"][pairs["source"]], table["emotion"][pairs["target"]])) == {
        ("neutral", "angry"), ("angry", "neutral")}


def _written(tmp_path):
    write_parallel_corpus(tmp_path / "corpus")
    return tmp_path / "corpus"


def test_transfer_ratio_is_one_for_the_target_and_zero_for_the_source():
    assert transfer(0.1, 0.8, 0.8) == 1.0
    assert transfer(0.1, 0.1, 0.8) == 0.0
    assert transfer(0.2, 0.5, 0.8) == pytest.approx(0.5)
    assert np.isnan(transfer(0.5, 0.7, 0.5))


def test_active_level_follows_gain_not_silence(speech):
    louder = speech * 10 ** (6 / 20)
    padded = np.concatenate([speech, np.zeros(RATE)])
    assert active_level_db(louder, RATE) - active_level_db(speech, RATE) == pytest.approx(6.0)
    assert active_level_db(padded, RATE) == pytest.approx(active_level_db(speech, RATE), abs=0.1)
    assert np.isnan(active_level_db(np.zeros(RATE), RATE))


@pytest.mark.slow
def test_egemaps_judge_beats_chance_on_held_out_embedded_actors():
    table = load_corpus(default_corpus())
    table = table[(table["statement_id"] == 1) & (table["repetition"] == 1)]
    train, held_out = table[table["actor"].isin(range(1, 9))], table[table["actor"].isin([9, 10])]
    judge = egemaps_judge(fit_egemaps_judge(train, progress=False), RATE, held_out)
    waves = [sf.read(p, dtype="float32")[0] for p in held_out["path"]]
    predicted = judge(waves, held_out["actor"].tolist())
    truth = held_out["emotion_id"].to_numpy() - 1
    assert np.mean(predicted == truth) > 2 / 8  # chance is 1/8


def test_cue_variants_carry_the_component_they_name():
    source = voiced(1.2, 130.0, 2.0, lead=0.1)
    target = voiced(1.5, 130.0 * 2 ** (5 / 12), 2.0, lead=0.1) * 10 ** (8 / 20)
    variants = cue_variants(source, target, RATE)
    assert list(variants) == list(VARIANTS)
    semitones = {name: median_semitones(w) - median_semitones(source)
                 for name, w in variants.items()}
    level = {name: active_level_db(w, RATE) - active_level_db(source, RATE)
             for name, w in variants.items()}
    for name in ("target F0 contour", "target F0 + energy contours", "everything but timing",
                 "target timing + F0, source timbre", "global statistics only"):
        assert semitones[name] == pytest.approx(5.0, abs=0.7), name
    for name in ("source through WORLD", "target envelope", "target aperiodicity"):
        assert abs(semitones[name]) < 0.7, name
    for name in ("target F0 + energy contours", "global statistics only"):
        assert level[name] == pytest.approx(8.0, abs=1.5), name
    assert level["target envelope"] > 4.0  # its level too, as heard through the source's pitch
    for name in ("target F0 contour", "target envelope shape, source level"):
        assert abs(level[name]) < 1.5, name
    # timing: the source's length, except where the target's timing is kept
    assert len(variants["target F0 contour"]) == len(source)
    for name in ("target timing + F0, source timbre", "global statistics only"):
        assert len(variants[name]) == pytest.approx(len(target), rel=0.02), name


def test_egemaps_judge_probabilities_are_calibrated_scores_of_its_emotions():
    rng = np.random.default_rng(0)
    labels = ("neutral", "happy", "angry")
    centres = rng.normal(0, 3, (3, N_FUNCTIONALS))
    emotions = np.repeat([0, 1, 2], 20)
    features = centres[emotions] + rng.normal(0, 1, (60, N_FUNCTIONALS))
    speakers = np.tile([1, 2], 30)
    judge = EgemapsJudge.fit(features, speakers, [labels[e] for e in emotions], labels,
                             probability=True)
    probs = judge.probabilities(features, speakers, per_speaker(features, speakers))
    assert probs.shape == (60, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.mean(probs.argmax(1) == emotions) > 0.9
    with pytest.raises(AttributeError):  # an uncalibrated judge has no probabilities
        EgemapsJudge.fit(features, speakers, [labels[e] for e in emotions], labels
                         ).probabilities(features, speakers, per_speaker(features, speakers))
