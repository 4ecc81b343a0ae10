"""Judging whole clips: windows pooled by their active speech, a timeline, the level of a clip,
and a speaker's reference clips (enrolment), on a small classifier trained on tones."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from emogan_utils import cli
from emogan_utils.classifier_training import (ClassifierTrainConfig, TrainedClassifier,
                                              fit_classifier, save_classifier)
from emogan_utils.features import (AudioConfig, Normalizer, log_mel, speech_level_db,
                                   speech_segments, window_starts)
from emogan_utils.inference import judge, load_classifier, predict, reference_statistics
from emogan_utils.inputs import standardize
from emogan_utils.models import ClassifierConfig

RATE = 16000
LABELS = ("neutral", "angry")
AUDIO = AudioConfig()


def voice(f0: float, seconds: float, amplitude: float, seed: int = 0) -> np.ndarray:
    """A buzz of five harmonics of ``f0`` with a little noise: a stand-in for a voiced vowel."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    noise = np.random.default_rng(seed).normal(0, 0.02, t.size)
    return (amplitude * (wave / 2.3 + noise)).astype(np.float32)


def neutral(seconds: float = 3.0, amplitude: float = 0.05, seed: int = 0) -> np.ndarray:
    return voice(140.0 + 10 * (seed % 5), seconds, amplitude, seed)


def angry(seconds: float = 3.0, amplitude: float = 0.4, seed: int = 0) -> np.ndarray:
    return voice(520.0 + 40 * (seed % 5), seconds, amplitude, seed)


@pytest.fixture(scope="module")
def tone_classifier(tmp_path_factory, one_torch_thread):
    """A ``speaker``-mode classifier trained to tell low quiet buzzes (neutral) from high loud
    ones (angry): like real speech, level and emotion go together in its training clips."""
    waves, labels, actors = [], [], []
    for actor in range(1, 5):
        gain = 0.5 + 0.25 * actor  # each speaker recorded at their own level
        for seed in range(6):
            for label, make in enumerate((neutral, angry)):
                waves.append(gain * make(seed=seed + 10 * actor))
                labels.append(label)
                actors.append(actor)
    mel = log_mel(np.stack(waves), AUDIO)
    y, actors = np.array(labels), np.array(actors)
    normalizer = Normalizer.fit_standard(mel)
    x = standardize(mel, actors, "speaker", normalizer)
    config = ClassifierTrainConfig.quick(epochs=6, batch_size=8, progress=False,
                                         norm_mode="speaker", single_clip=0.0,
                                         model=ClassifierConfig(channels=16, n_blocks=1,
                                                                attention_dim=8, n_classes=2))
    train = actors < 4
    model, history = fit_classifier(x[train], y[train], x[~train], y[~train], config,
                                    labels=LABELS)
    assert history["val_acc"][history["best_epoch"] - 1] == 1.0  # it learnt the task
    level = float(np.median(speech_level_db(mel[train])))
    trained = TrainedClassifier(model, normalizer, config, history, (1, 2, 3), (4,), LABELS,
                                speech_level_db=level)
    return save_classifier(tmp_path_factory.mktemp("tones") / "classifier.pt", trained)


def test_windows_cover_the_clip_and_end_at_its_end():
    assert window_starts(100, 48, 24) == [0, 24, 48, 52]
    assert window_starts(96, 48, 24) == [0, 24, 48]
    assert window_starts(30, 48, 24) == [0]
    with pytest.raises(ValueError, match="positive"):
        window_starts(100, 48, 0)


def test_the_level_of_a_clip_does_not_decide_its_emotion(tone_classifier):
    classifier = load_classifier(tone_classifier)
    for clip, emotion in ((neutral(seed=3), "neutral"), (angry(seed=3), "angry")):
        quiet, loud = (predict(clip * gain, classifier, RATE) for gain in (0.05, 4.0))
        assert max(quiet, key=quiet.get) == max(loud, key=loud.get) == emotion
        assert quiet == pytest.approx(loud, abs=0.02)
    # without matching the level, the same model is swayed by it: the test can tell
    raw = [predict(neutral(seed=3) * gain, classifier, RATE, level=False)["angry"]
           for gain in (0.05, 4.0)]
    assert raw[1] - raw[0] > 0.3


def test_speech_segments_join_short_pauses_and_split_at_long_ones():
    active = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0], bool)
    assert speech_segments(active, 2) == [(1, 5), (8, 10)]
    assert speech_segments(active, 3) == [(1, 5), (8, 10)]
    assert speech_segments(active, 4) == [(1, 10)]
    assert speech_segments(np.zeros(5, bool), 2) == []


def test_a_whole_clip_is_judged_window_by_window(tone_classifier, tmp_path, capsys):
    classifier = load_classifier(tone_classifier)
    silence = np.zeros(int(0.5 * RATE), np.float32)
    # neutral for 2 s, then angry; 4 s of silence; angry again, and a second of neutral
    clip = np.concatenate([silence, neutral(2.0), angry(4.0), np.zeros(4 * RATE, np.float32),
                           angry(3.0, seed=1), neutral(1.0)])
    verdict = judge(clip, classifier, RATE)
    first = verdict.windows[0]
    assert first.start == pytest.approx(0.5, abs=0.05) and first.end - first.start == 3.0
    assert max(first.probabilities, key=first.probabilities.get) == "neutral"
    assert verdict.emotion == "angry"
    # the first seconds alone, as a clip of the model's length, are neutral
    alone = predict(clip[:int(3.5 * RATE)], classifier, RATE)
    assert max(alone, key=alone.get) == "neutral"
    # the silence is not judged: the second stretch of speech starts windows of its own
    starts = [w.start for w in verdict.windows]
    assert not [s for s in starts if 6.6 < s < 10.4]
    assert min(s for s in starts if s > 6.6) == pytest.approx(10.5, abs=0.05)
    assert verdict.windows[-1].end == pytest.approx(len(clip) / RATE, abs=0.05)
    weights = np.array([w.weight for w in verdict.windows])
    probs = np.array([list(w.probabilities.values()) for w in verdict.windows])
    pooled = weights @ probs / weights.sum()
    assert list(verdict.probabilities.values()) == pytest.approx(list(pooled), abs=1e-6)

    path, timeline = tmp_path / "long.wav", tmp_path / "timeline.json"
    sf.write(path, clip, RATE)
    assert cli.main(["predict", "--classifier", str(tone_classifier), str(path),
                     "--timeline", str(timeline)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["predictions"][0]["emotion"] == "angry"
    windows = json.loads(timeline.read_text())["clips"][0]["windows"]
    assert [w["start"] for w in windows] == pytest.approx(
        [w.start for w in verdict.windows], abs=1e-3)
    assert windows[0]["probabilities"]["neutral"] > 0.5


def test_reference_clips_of_the_speaker_give_their_statistics(tone_classifier, tmp_path,
                                                              capsys):
    classifier = load_classifier(tone_classifier)
    reference = [neutral(seed=7, amplitude=0.02), angry(seed=7, amplitude=0.1)]
    stats = reference_statistics(reference, classifier, RATE)
    mel = log_mel(np.stack(reference), AUDIO)
    assert stats.inputs.shift == pytest.approx(Normalizer.fit_standard(mel).shift, abs=0.05)
    assert np.abs(stats.inputs.shift - classifier.normalizer.shift).max() > 5.0
    assert stats.functionals is None  # no eGeMAPS branch
    clip = neutral(seed=8, amplitude=0.02)
    alone, enrolled = predict(clip, classifier, RATE), predict(clip, classifier, RATE, reference)
    assert alone != pytest.approx(enrolled, abs=1e-3)
    assert enrolled == predict(clip, classifier, RATE, stats)
    assert max(enrolled, key=enrolled.get) == "neutral"
    # the speaker's statistics absorb the level of their recordings
    louder = predict(clip * 8, classifier, RATE, [r * 8 for r in reference])
    assert louder == pytest.approx(enrolled, abs=1e-3)

    paths = []
    for name, wave in (("clip", clip), ("ref1", reference[0]), ("ref2", reference[1])):
        paths.append(tmp_path / f"{name}.wav")
        sf.write(paths[-1], wave, RATE, subtype="FLOAT")
    assert cli.main(["predict", "--classifier", str(tone_classifier), str(paths[0]),
                     "--reference", *map(str, paths[1:])]) == 0
    printed = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]
    assert printed == pytest.approx(enrolled, abs=1e-3)


def test_an_enrolled_clip_is_judged_with_the_statistics_and_alone_by_a_model_that_knows_both(
        tone_classifier):
    plain = load_classifier(tone_classifier)
    settings = {**plain.extra["train_config"], "single_clip": 0.25}
    both = dataclasses.replace(plain, extra={**plain.extra, "train_config": settings})
    assert both.knows_single_clips and not plain.knows_single_clips
    reference = [neutral(seed=7, amplitude=0.02), angry(seed=7, amplitude=0.1)]
    clip = angry(seed=8, amplitude=0.03)
    statistics, alone = predict(clip, plain, RATE, reference), predict(clip, plain, RATE)
    assert max(abs(statistics[e] - alone[e]) for e in LABELS) > 0.05  # the two views differ
    blended = predict(clip, both, RATE, reference)
    assert blended == pytest.approx({e: (statistics[e] + alone[e]) / 2 for e in LABELS},
                                    abs=2e-3)


def test_reference_clips_need_a_speaker_mode_classifier(tone_classifier, tmp_path):
    classifier = dataclasses.replace(load_classifier(tone_classifier), norm_mode="global")
    with pytest.raises(ValueError, match="classifier.pt: standardises every clip"):
        predict(neutral(), classifier, RATE, [neutral(seed=1)])
