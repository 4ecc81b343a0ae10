"""Recognition ingredients: prosody tracks, speed perturbation and ensembles of classifiers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emogan_utils import classifier_training, cli
from emogan_utils.checkpoint import save_checkpoint
from emogan_utils.classifier_training import (ClassifierTrainConfig, TrainedClassifier,
                                              save_classifier, train_classifier)
from emogan_utils.data import load_corpus
from emogan_utils.features import (AudioConfig, Normalizer, log_mel, match_level,
                                   prepare_waveform, speech_level_db, speed_perturb)
from emogan_utils.evaluate import classifier_judge
from emogan_utils.gan_training import GANTrainConfig
from emogan_utils.inference import load_classifier, predict
from emogan_utils.inputs import (F0_REFERENCE_HZ, PROSODY_CHANNELS, corpus_inputs,
                                 level_matched, prosody_tracks, silence_padding,
                                 waveform_inputs)
from emogan_utils.models import ClassifierConfig, EmotionClassifier, EnsembleClassifier

from conftest import tone

AUDIO = AudioConfig()
SMALL = ClassifierConfig(channels=16, n_blocks=1, attention_dim=8)


def _voice(freq: float, seconds: float, rate: int = 16000) -> np.ndarray:
    """A buzz with five harmonics at ``freq`` after 0.2 s of silence (a voiced vowel, roughly)."""
    wave = sum(tone(freq * k, seconds, rate, amplitude=0.3 / k, lead=0.2) for k in range(1, 6))
    return np.asarray(wave, np.float32)


def _tracks(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prepared = prepare_waveform(wave, 16000, AUDIO)
    mel = log_mel(prepared[None], AUDIO)[0]
    return prosody_tracks(prepared, mel, AUDIO), mel


def test_f0_channel_of_a_known_tone_is_its_pitch():
    tracks, mel = _tracks(_voice(200.0, 1.0))
    log_f0, voicing, energy = tracks
    assert tracks.shape == (len(PROSODY_CHANNELS), mel.shape[-1])
    voiced = voicing == 1.0
    assert voiced.sum() > 50  # about 1 s at 16 ms a frame
    expected = 12 * np.log2(200.0 / F0_REFERENCE_HZ)
    assert np.median(log_f0[voiced]) == pytest.approx(expected, abs=0.3)
    # the same frames as the mel: voiced only where the mel has sound, the floor after it
    sound = mel.max(axis=0) > AUDIO.db_floor + 1
    assert not (voiced & ~sound).any()
    assert (tracks[:, ~sound] == AUDIO.db_floor).all() and (~sound).sum() > 100
    assert (energy[sound] > AUDIO.db_floor).all()


def test_f0_channel_follows_an_octave():
    low, _ = _tracks(_voice(150.0, 1.0))
    high, _ = _tracks(_voice(300.0, 1.0))
    difference = np.median(high[0][high[1] == 1]) - np.median(low[0][low[1] == 1])
    assert difference == pytest.approx(12.0, abs=0.3)


def test_standardised_tracks_are_zero_on_padding():
    tracks, mel = _tracks(_voice(200.0, 0.8))
    raw = np.concatenate([mel, tracks])[None]
    x = silence_padding(np.full_like(raw, 5.0), raw, AUDIO)
    sound = mel.max(axis=0) > AUDIO.db_floor + 1
    assert (x[0, AUDIO.n_mels:][:, ~sound] == 0).all()
    assert (x[0, AUDIO.n_mels:][:, sound] == 5).all() and (x[0, :AUDIO.n_mels] == 5).all()


def test_speed_perturbation_changes_tempo_and_pitch():
    wave = _voice(200.0, 1.0)
    faster = speed_perturb(wave, 1.1, 16000)
    assert len(faster) == pytest.approx(len(wave) / 1.1, abs=2)
    tracks, _ = _tracks(faster)
    assert np.median(tracks[0][tracks[1] == 1]) == pytest.approx(
        12 * np.log2(220.0 / F0_REFERENCE_HZ), abs=0.3)
    np.testing.assert_array_equal(speed_perturb(wave, 1.0, 16000), wave)


def test_augmentation_keeps_label_and_speaker(tiny_corpus, tmp_path):
    table = load_corpus(tiny_corpus)
    plain, rows = corpus_inputs(table, AUDIO, tmp_path / "cache", False, prosody=True)
    for speed in (0.9, 1.1):
        sped, sped_rows = corpus_inputs(table, AUDIO, tmp_path / "cache", False, prosody=True,
                                        speed=speed)
        assert sped.shape == plain.shape == (len(table), AUDIO.n_mels + 3, AUDIO.n_frames)
        for column in ("path", "label", "emotion", "actor"):
            assert sped_rows[column].tolist() == rows[column].tolist()
        assert not np.allclose(sped, plain)
        again, _ = corpus_inputs(table, AUDIO, tmp_path / "cache", False, prosody=True,
                                 speed=speed)  # from the cache, kept apart from the others
        np.testing.assert_array_equal(again, sped)
    folders = sorted(p.name.split("-", 3)[-1] for p in (tmp_path / "cache").iterdir()
                     if p.is_dir())
    assert folders == sorted(["prosody", "prosody-speed0.9", "prosody-speed1.1", "speed0.9",
                              "speed1.1"] + [folders[0]])  # the plain log-mels' key


def _ensemble_checkpoint(path, members: int, prosody: bool = False):
    torch.manual_seed(0)
    channels = AUDIO.n_mels + (3 if prosody else 0)
    config = dataclasses.replace(SMALL, n_mels=channels)
    model = EnsembleClassifier([EmotionClassifier(config).eval() for _ in range(members)])
    normalizer = Normalizer(np.full(channels, -50.0, np.float32),
                            np.full(channels, 20.0, np.float32))
    training = ClassifierTrainConfig.quick(norm_mode="global", prosody=prosody, ensemble=members,
                                     model=config)
    return save_classifier(path, TrainedClassifier(model, normalizer, training, {"epoch": [1]},
                                                   (1,), (2,)))


def test_ensemble_checkpoint_round_trips_to_the_mean_of_its_members(tmp_path):
    path = _ensemble_checkpoint(tmp_path / "ensemble.pt", 3)
    loaded = load_classifier(path)
    assert isinstance(loaded.model, EnsembleClassifier) and len(loaded.model.members) == 3
    mel = np.random.default_rng(0).normal(-50, 20, (5, AUDIO.n_mels, 90)).astype(np.float32)
    alone = [dataclasses.replace(loaded, model=m).probabilities(mel) for m in loaded.model.members]
    np.testing.assert_allclose(loaded.probabilities(mel), np.mean(alone, axis=0), atol=1e-6)
    assert not np.allclose(alone[0], alone[1])  # different members
    again = load_classifier(path)
    np.testing.assert_array_equal(again.probabilities(mel), loaded.probabilities(mel))


def test_single_model_checkpoints_of_the_old_format_still_load(tmp_path):
    model = EmotionClassifier(SMALL).eval()
    path = save_checkpoint(tmp_path / "old.pt", kind="classifier", model_config=SMALL.to_dict(),
                           state={"model": model.state_dict()}, audio=AUDIO,
                           normalizer=Normalizer(np.zeros(80, np.float32),
                                                 np.ones(80, np.float32)),
                           extra={"norm_mode": "global"})  # no "ensemble", no "prosody"
    loaded = load_classifier(path)
    assert isinstance(loaded.model, EmotionClassifier) and not loaded.prosody
    assert loaded.inputs(np.zeros((1, AUDIO.n_samples), np.float32)).shape[1] == AUDIO.n_mels


@pytest.mark.slow
def test_training_with_every_ingredient_and_using_the_result(tiny_corpus, tmp_path):
    config = ClassifierTrainConfig.quick(epochs=1, batch_size=8, progress=False, model=SMALL,
                                         prosody=True, speeds=(0.9, 1.0, 1.1), ensemble=2)
    run = tmp_path / "run.pt"
    trained = train_classifier(tiny_corpus, [2], [1], config, cache_dir=tmp_path / "cache",
                               checkpoint=run)
    assert isinstance(trained.model, EnsembleClassifier) and len(trained.model.members) == 2
    assert trained.config.model.n_mels == AUDIO.n_mels + 3
    assert not (tmp_path / "run.pt.member1").exists()  # the members' run states are cleaned up
    path = save_classifier(tmp_path / "clf.pt", trained)
    loaded = load_classifier(path)
    assert loaded.prosody and len(loaded.model.members) == 2
    clip = sorted((tiny_corpus / "Actor_02").iterdir())[3]
    probs = predict(clip, loaded)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    wave, rate = sf.read(clip, dtype="float32")
    judge = classifier_judge(loaded, rate, reference=load_corpus(tiny_corpus))
    assert judge([wave, wave], [2, 2]).shape == (2,)


def test_gradient_reversal_trains_the_speaker_head_and_reverses_what_reaches_the_model():
    torch.manual_seed(0)
    model = EmotionClassifier(dataclasses.replace(SMALL, n_speakers=5)).eval()
    mel, speakers = torch.randn(6, AUDIO.n_mels, 40), torch.tensor([0, 1, 2, 3, 4, 0])

    def grads(head_input):  # the stem's and the speaker head's gradients of the speaker loss
        model.zero_grad()
        torch.nn.functional.cross_entropy(head_input(), speakers).backward()
        return model.stem[0].weight.grad.clone(), model.speaker_head[0].weight.grad.clone()

    plain = grads(lambda: model.speaker_head(model.pool(model.blocks(model.stem(mel)))))
    half = grads(lambda: model(mel, reversal=0.5)[1])
    np.testing.assert_allclose(half[0], -0.5 * plain[0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(half[1], plain[1], rtol=1e-4, atol=1e-7)
    assert plain[0].abs().sum() > 0
    with torch.no_grad():
        np.testing.assert_array_equal(model(mel), model(mel, reversal=0.5)[0])
    with pytest.raises(ValueError, match="no speaker head"):
        EmotionClassifier(SMALL)(mel, reversal=0.5)


@pytest.mark.slow
def test_training_against_a_speaker_adversary_and_using_the_result(tiny_corpus, tmp_path,
                                                                   monkeypatch):
    config = ClassifierTrainConfig.quick(epochs=2, batch_size=8, progress=False, model=SMALL,
                                         speeds=(0.9, 1.0, 1.1), speaker_adversary=0.5)
    fit, seen = classifier_training.fit_classifier, []

    def watched(*args, speakers=None, **kwargs):
        seen.append(speakers)
        return fit(*args, speakers=speakers, **kwargs)

    monkeypatch.setattr(classifier_training, "fit_classifier", watched)
    trained = train_classifier(tiny_corpus, [2], [1], config, cache_dir=tmp_path / "cache")
    assert trained.config.model.n_speakers == 3  # the training actor at each speed
    # 8 clips at speed 1, then 8 at each other speed: one speaker id per copy
    assert len(seen[0]) == 24 and sorted(set(seen[0])) == [0, 1, 2]
    assert all(len(set(seen[0][k:k + 8])) == 1 for k in (0, 8, 16))
    monkeypatch.undo()
    loaded = load_classifier(save_classifier(tmp_path / "clf.pt", trained))
    mel = np.random.default_rng(0).normal(-50, 20, (3, AUDIO.n_mels, 90)).astype(np.float32)
    expected = dataclasses.replace(loaded, model=trained.model).probabilities(mel)
    np.testing.assert_allclose(loaded.probabilities(mel), expected, atol=1e-6)
    with pytest.raises(ValueError, match="each training example's speaker"):
        classifier_training.fit_classifier(
            np.zeros((4, AUDIO.n_mels, 20), np.float32), np.zeros(4, np.int64),
            np.zeros((2, AUDIO.n_mels, 20), np.float32), np.zeros(2, np.int64),
            dataclasses.replace(config, model=dataclasses.replace(SMALL, n_speakers=3)))


@pytest.mark.slow
def test_cli_trains_an_ensemble_with_prosody_that_evaluate_classifier_uses(
        tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    out = tmp_path / "ensemble.pt"
    assert cli.main(["train-classifier", "--data", str(tiny_corpus), "--out", str(out),
                     "--actors", "1", "--val-actors", "2", "--quick", "--epochs", "1",
                     "--ensemble", "2", "--prosody"]) == 0
    capsys.readouterr()
    assert not list(tmp_path.glob("ensemble.pt.run*"))  # every member's run state is gone
    loaded = load_classifier(out)
    assert loaded.prosody and len(loaded.model.members) == 2
    assert cli.main(["evaluate-classifier", "--checkpoint", str(out),
                     "--data", str(tiny_corpus), "--actors", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 8


def test_train_classifier_command_trains_the_field_defaults_and_quick_stays_small(
        tmp_path, monkeypatch, capsys):
    seen = []

    def stop(data, val_actors=None, train_actors=None, config=None, **kwargs):
        seen.append(config)
        raise KeyboardInterrupt  # nothing to train: the settings are all this test wants

    monkeypatch.setattr(classifier_training, "train_classifier", stop)
    for options in ([], ["--quick"], ["--speaker-adversary", "0"]):
        assert cli.main(["train-classifier", "--data", str(tmp_path),
                         "--out", str(tmp_path / "m.pt"), *options]) == 130
    best, quick, unopposed = seen
    assert best == ClassifierTrainConfig()
    assert best.prosody and best.speeds == (0.9, 1.0, 1.1) and best.ensemble == 2
    assert best.epochs == 30 and best.speaker_adversary == 0.3
    assert best.model.channels == 64 and best.model.n_blocks == 2
    assert quick == ClassifierTrainConfig.quick()
    assert not quick.prosody and quick.speeds == (1.0,) and quick.ensemble == 1
    assert quick.epochs == 12 and quick.speaker_adversary == 0 and quick.model == best.model
    assert unopposed == ClassifierTrainConfig(speaker_adversary=0.0)
    assert cli.main(["train-classifier", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"),
                     "--speaker-adversary", "-1"]) == 2
    assert "speaker_adversary must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("command, option, field, value", [
    ("train-classifier", "--ensemble", "ensemble", 7),
    ("train-classifier", "--epochs", "epochs", 7),
    ("train-classifier", "--speaker-adversary", "speaker_adversary", 7.0),
    ("train-classifier", "--single-clip", "single_clip", 0.7),
    ("train-gan", "--epochs", "epochs", 7), ("train-gan", "--cls-weight", "w_cls", 7.0)])
def test_training_help_states_the_settings_dataclasses_defaults(command, option, field, value,
                                                                 monkeypatch, capsys):
    preset = ClassifierTrainConfig if command == "train-classifier" else GANTrainConfig
    changed = {field: value}  # a value no help text hard-codes
    monkeypatch.setattr(preset, "__init__", _with_defaults(preset.__init__, changed))
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    start = help_text.rindex(option + " ")  # its entry, after the usage line
    assert f"(default {value}" in help_text[start:help_text.index("--", start + len(option) + 1)]


def _with_defaults(init, changed: dict):
    """``init`` with some keyword defaults replaced."""
    def patched(self, *args, **kwargs):
        init(self, *args, **{**changed, **kwargs})
    return patched


def test_level_matched_inputs_are_those_of_the_clip_scaled_to_the_level():
    wave = prepare_waveform(_voice(180.0, 1.5), 16000, AUDIO)
    inputs = waveform_inputs(wave[None], AUDIO, prosody=True)
    target = float(speech_level_db(inputs[:, :AUDIO.n_mels])[0]) - 17.0
    matched = level_matched(inputs, target, AUDIO)
    scaled = waveform_inputs(match_level(wave, target, AUDIO)[None], AUDIO, prosody=True)
    assert speech_level_db(matched[:, :AUDIO.n_mels])[0] == pytest.approx(
        speech_level_db(scaled[:, :AUDIO.n_mels])[0], abs=0.05)
    energy = AUDIO.n_mels + PROSODY_CHANNELS.index("energy")
    above = scaled > AUDIO.db_floor + 1.0  # bands the shift left clear of the floor
    for channels in (slice(0, AUDIO.n_mels), slice(energy, energy + 1)):
        np.testing.assert_allclose(matched[:, channels][above[:, channels]],
                                   scaled[:, channels][above[:, channels]], atol=0.05)
    np.testing.assert_array_equal(matched[:, AUDIO.n_mels:energy], inputs[:, AUDIO.n_mels:energy])


@pytest.mark.slow
def test_single_clip_training_shows_clips_level_matched_with_the_training_statistics(
        tiny_corpus, tmp_path, monkeypatch):
    config = ClassifierTrainConfig.quick(epochs=1, batch_size=8, progress=False, model=SMALL,
                                         prosody=True, single_clip=0.5)
    fit, seen = classifier_training.fit_classifier, {}

    def watched(*args, x_single=None, **kwargs):
        seen.update(x_train=args[0], x_single=x_single)
        return fit(*args, x_single=x_single, **kwargs)

    monkeypatch.setattr(classifier_training, "fit_classifier", watched)
    for k, clip in enumerate(sorted((tiny_corpus / "Actor_01").iterdir())):  # levels 0 to -21 dB
        wave, rate = sf.read(clip, dtype="float32")
        sf.write(clip, wave * 10.0 ** (-3.0 * k / 20.0), rate)
    trained = train_classifier(tiny_corpus, [2], [1], config, cache_dir=tmp_path / "cache")
    assert seen["x_single"].shape == seen["x_train"].shape
    raw = trained.normalizer.inverse(seen["x_single"])[:, :AUDIO.n_mels]
    # within a dB of the training level (bands at the floor stay there), from 21 dB apart
    np.testing.assert_allclose(speech_level_db(raw), trained.speech_level_db, atol=1.0)
    assert not np.allclose(seen["x_single"], seen["x_train"])  # not the speaker statistics
    loaded = load_classifier(save_classifier(tmp_path / "clf.pt", trained))
    clip = sorted((tiny_corpus / "Actor_02").iterdir())[3]
    assert sum(predict(clip, loaded).values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="standardised as a single clip"):
        fit(seen["x_train"], np.zeros(len(seen["x_train"]), np.int64), seen["x_train"][:2],
            np.zeros(2, np.int64), trained.config, x_single=seen["x_single"][:, :, :-1])
    with pytest.raises(ValueError, match="single_clip"):
        ClassifierTrainConfig(single_clip=1.5)
