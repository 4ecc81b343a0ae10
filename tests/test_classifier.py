"""The emotion classifier: shapes, a training step, metrics, checkpoints, prediction, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emogan_utils import cli
from emogan_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from emogan_utils.classifier_training import (ClassifierTrainConfig, TrainedClassifier,
                                              fit_classifier, save_classifier)
from emogan_utils.data import EMOTIONS
from emogan_utils.evaluate import (accuracy, classification_report, confusion_matrix,
                                   per_class_recall, unweighted_average_recall)
from emogan_utils.features import AudioConfig, AudioError, Normalizer, log_mel
from emogan_utils.evaluate import classifier_judge
from emogan_utils.inference import Classifier, load_classifier, predict
from emogan_utils.models import ClassifierConfig, EmotionClassifier

from conftest import tone

SMALL = ClassifierConfig(channels=16, n_blocks=1, attention_dim=8)
TINY_TRAINING = ClassifierTrainConfig.quick(epochs=3, batch_size=8, progress=False, model=SMALL)


def _band_features(n_per_class: int = 4, frames: int = 60, seed: int = 0):
    """Normalised 'log-mels' whose emotion is a raised band of ten mel bins, plus labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(EMOTIONS)), n_per_class)
    x = rng.normal(0, 1, (len(labels), 80, frames)).astype(np.float32)
    for i, label in enumerate(labels):
        x[i, 10 * label:10 * label + 10] += 2.0
    return x, labels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained small classifier saved as a checkpoint."""
    torch.manual_seed(0)
    normalizer = Normalizer(np.full(80, -50.0, np.float32), np.full(80, 20.0, np.float32))
    trained = TrainedClassifier(EmotionClassifier(SMALL).eval(), normalizer,
                                dataclasses.replace(TINY_TRAINING, norm_mode="global"),
                                {"epoch": [1]}, (1, 2), (3,))
    return save_classifier(tmp_path_factory.mktemp("clf") / "classifier.pt", trained)


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "03-01-05-02-01-01-04.wav"
    sf.write(path, tone(220.0, 1.2, 22050, lead=0.2), 22050)
    return path


# --- model --------------------------------------------------------------------------------

@pytest.mark.parametrize("frames", [50, 188, 301])
@pytest.mark.parametrize("batch", [2, 5])
def test_logits_shape_for_any_length_and_batch(frames, batch):
    model = EmotionClassifier(ClassifierConfig())
    logits = model(torch.randn(batch, 80, frames))
    assert logits.shape == (batch, len(EMOTIONS))
    assert torch.isfinite(logits).all()


def test_single_clip_in_eval_mode_and_wrong_bins_rejected():
    model = EmotionClassifier(SMALL).eval()
    assert model(torch.randn(1, 80, 23)).shape == (1, 8)
    with pytest.raises(ValueError, match=r"\(batch, 80, frames\)"):
        model(torch.randn(2, 64, 50))


def test_one_optimisation_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = EmotionClassifier(dataclasses.replace(SMALL, dropout=0.0))
    x, y = (torch.as_tensor(a) for a in _band_features(2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = torch.nn.functional.cross_entropy(model(x), y)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(model(x), y)
    assert after.item() < before.item()


@pytest.mark.slow
def test_seeded_training_is_reproducible_and_learns():
    x, y = _band_features(6)
    x_val, y_val = _band_features(2, seed=1)
    config = dataclasses.replace(TINY_TRAINING, epochs=6, lr=3e-3)
    (model_a, history_a), (model_b, history_b) = (fit_classifier(x, y, x_val, y_val, config)
                                                  for _ in range(2))
    timeless = [{k: v for k, v in h.items() if k != "seconds"} for h in (history_a, history_b)]
    assert timeless[0] == timeless[1]
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(),
                                                 model_b.state_dict().values()))
    assert set(history_a) >= {"train_loss", "val_loss", "train_acc", "val_acc", "lr"}
    assert max(history_a["val_acc"]) > 0.5  # chance is 1/8
    assert history_a["val_acc"][history_a["best_epoch"] - 1] == max(history_a["val_acc"])


@pytest.mark.slow
def test_resume_ends_with_the_same_weights_and_history_as_an_uninterrupted_run(tmp_path):
    x, y = _band_features(3)
    x_val, y_val = _band_features(1, seed=1)
    config = dataclasses.replace(TINY_TRAINING, epochs=4, mixup=0.2)
    straight, history = fit_classifier(x, y, x_val, y_val, config)
    run = tmp_path / "classifier.pt.run"
    _, partial = fit_classifier(x, y, x_val, y_val, config, run, stop_after=2)
    assert partial["epoch"] == [1, 2]
    resumed, resumed_history = fit_classifier(x, y, x_val, y_val, config, run, resume=True)
    timeless = [{k: v for k, v in h.items() if k != "seconds"} for h in (history, resumed_history)]
    assert timeless[0] == timeless[1] and timeless[0]["epoch"] == [1, 2, 3, 4]
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(),
                                                 resumed.state_dict().values()))


@pytest.mark.slow
def test_resume_refuses_a_run_made_with_other_settings(tmp_path):
    x, y = _band_features(1)
    run = tmp_path / "classifier.pt.run"
    fit_classifier(x, y, x, y, TINY_TRAINING, run, stop_after=1)
    with pytest.raises(CheckpointError, match=r"classifier\.pt\.run: cannot resume.*lr: 0\.002 != 0\.01"):
        fit_classifier(x, y, x, y, dataclasses.replace(TINY_TRAINING, lr=0.01), run, resume=True)


@pytest.mark.slow
def test_model_shape_follows_the_features_and_the_emotions(tmp_path):
    assert ClassifierConfig().n_mels == AudioConfig().n_mels
    assert ClassifierConfig().n_classes == len(EMOTIONS)
    x, y = _band_features(1)
    x = np.ascontiguousarray(x[:, :40])  # 40-bin features; the model config keeps its default
    run = tmp_path / "classifier.pt.run"
    model, _ = fit_classifier(x, y, x, y, dataclasses.replace(TINY_TRAINING, epochs=1), run,
                              audio=AudioConfig(n_mels=40))
    assert model.config.n_mels == 40
    saved = load_checkpoint(run, kind="classifier-run", audio=AudioConfig(n_mels=40))
    assert saved["model_config"]["n_mels"] == 40


def test_train_config_rejects_unknown_normalisation():
    with pytest.raises(ValueError, match="norm_mode"):
        ClassifierTrainConfig(norm_mode="utterance")


# --- metrics ------------------------------------------------------------------------------

def test_metrics_on_hand_made_labels():
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 1, 0, 2]
    matrix = confusion_matrix(y_true, y_pred, n_classes=3)
    assert matrix.tolist() == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert accuracy(y_true, y_pred) == pytest.approx(6 / 8)
    assert per_class_recall(matrix) == pytest.approx([0.75, 1.0, 0.5])
    assert unweighted_average_recall(y_true, y_pred, 3) == pytest.approx(0.75)
    report = classification_report(y_true, y_pred)
    assert report["n"] == 8 and report["accuracy"] == pytest.approx(0.75)
    assert report["uar"] == pytest.approx(0.75)  # absent classes do not count
    assert report["recall"]["happy"] == 0.5 and report["recall"]["angry"] is None
    assert np.array(report["confusion"]).shape == (8, 8)


def test_uar_differs_from_accuracy_when_classes_are_unbalanced():
    y_true, y_pred = [0] * 9 + [1], [0] * 10
    assert accuracy(y_true, y_pred) == pytest.approx(0.9)
    assert unweighted_average_recall(y_true, y_pred) == pytest.approx(0.5)


@pytest.mark.parametrize("y_true, y_pred, match", [
    ([0, 1], [0], "2 labels but y_pred has 1"), ([], [], "no labels"), ([0, 9], [0, 1], "9")])
def test_metrics_reject_bad_labels(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred)


# --- checkpoints and prediction -------------------------------------------------------------

def test_checkpoint_round_trip_gives_identical_predictions(checkpoint, clip):
    loaded = load_classifier(checkpoint)
    assert isinstance(loaded, Classifier) and loaded.norm_mode == "global"
    assert loaded.extra["train_actors"] == [1, 2]
    mel = np.random.default_rng(0).uniform(-90, -20, (3, 80, 77)).astype(np.float32)
    again = load_classifier(checkpoint)
    np.testing.assert_array_equal(loaded.probabilities(mel), again.probabilities(mel))
    assert predict(clip, checkpoint) == predict(clip, loaded)


def test_predict_gives_probabilities_in_emotion_order(checkpoint, clip):
    loaded = load_classifier(checkpoint)
    probs = predict(clip, loaded)
    assert list(probs) == list(EMOTIONS)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    wave, rate = sf.read(clip, dtype="float32")
    from_wave = predict(wave, loaded, sample_rate=rate)
    assert from_wave == pytest.approx(probs, abs=1e-4)
    with pytest.raises(ValueError, match="sample_rate"):
        predict(wave, loaded)


def test_prediction_errors_name_the_problem(checkpoint, tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        predict(tmp_path / "missing.wav", checkpoint)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError, match="corrupt.wav: cannot read audio"):
        predict(corrupt, checkpoint)


def test_predict_command_prints_each_files_emotion(checkpoint, clip, tmp_path, capsys):
    assert cli.main(["predict", "--classifier", str(checkpoint), str(clip), str(clip)]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = predict(clip, checkpoint)
    assert [p["file"] for p in printed["predictions"]] == [str(clip)] * 2
    first = printed["predictions"][0]
    assert first["probabilities"] == pytest.approx(expected, abs=1e-4)
    assert first["emotion"] == max(expected, key=expected.get)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    assert cli.main(["predict", "--classifier", str(checkpoint), str(silent)]) != 0
    assert "silent.wav" in capsys.readouterr().err


def test_bad_checkpoints_give_clear_errors(checkpoint, tmp_path):
    gan = save_checkpoint(tmp_path / "gan.pt", kind="gan", model_config={}, state={},
                          audio=AudioConfig())
    with pytest.raises(CheckpointError, match="expected 'classifier'"):
        load_classifier(gan)
    with pytest.raises(CheckpointError, match="n_mels: 80 != 64"):
        load_classifier(checkpoint, audio=AudioConfig(n_mels=64))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt: not a readable"):
        load_classifier(garbage)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_classifier(tmp_path / "nothing.pt")


def test_judges_vote_with_their_mean_probabilities():
    class Fixed:  # a classifier stand-in that gives every clip the same probabilities
        audio, norm_mode, labels, prosody = AudioConfig(), "global", EMOTIONS, False

        def __init__(self, probs):
            self.probs = np.array(probs + [0.0] * (len(EMOTIONS) - len(probs)))

        def inputs(self, waves):
            return log_mel(waves, self.audio)

        def probabilities(self, mel, actors=None, speakers=None):
            assert mel.shape[1:] == (80, 188)
            return np.tile(self.probs, (len(mel), 1))

    sure, split = Fixed([0.6, 0.4]), Fixed([0.0, 0.5, 0.5])
    waves = [tone(220.0, 1.0, 16000), tone(330.0, 2.5, 16000)]
    assert list(classifier_judge([sure], 16000)(waves, [1, 2])) == [0, 0]
    assert list(classifier_judge([sure, split], 16000)(waves, [1, 2])) == [1, 1]  # 0.3/0.45/0.25


# --- training on a corpus, end to end ------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic_corpus(tmp_path_factory):
    """Four actors of the embedded (synthetic) corpus."""
    synth = pytest.importorskip("emogan_utils.synth")
    return synth.make_corpus(tmp_path_factory.mktemp("corpus") / "embedded", actors=range(1, 5),
                             progress=False)


@pytest.mark.slow
def test_cli_trains_and_scores_unseen_actors_above_chance(synthetic_corpus, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    out = tmp_path / "classifier.pt"
    assert cli.main(["train-classifier", "--data", str(synthetic_corpus), "--out", str(out),
                     "--actors", "1,2", "--val-actors", "3", "--quick", "--epochs", "8"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["train_actors"] == [1, 2] and trained["val_actors"] == [3]
    assert not (tmp_path / "classifier.pt.run").exists()  # the run state goes once it is done
    assert cli.main(["evaluate-classifier", "--checkpoint", str(out),
                     "--data", str(synthetic_corpus)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"accuracy", "uar", "n", "confusion"} <= set(result)
    assert result["actors"] == [4] and result["n"] == 60
    assert result["accuracy"] > 0.35  # unseen speaker; chance is 0.125


def test_cli_reports_a_bad_checkpoint(tmp_path, capsys):
    garbage = tmp_path / "bad.pt"
    garbage.write_bytes(b"junk")
    assert cli.main(["evaluate-classifier", "--checkpoint", str(garbage),
                     "--data", str(tmp_path)]) == 2
    assert "bad.pt: not a readable" in capsys.readouterr().err
