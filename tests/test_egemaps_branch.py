"""The classifier's eGeMAPS branch: trained on functionals centred per speaker, saved and loaded
with the CNN, and averaged into the verdict only where the clip's speaker is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emogan_utils.classifier_training import (ClassifierTrainConfig, fit_functionals,
                                              fit_temperature, save_classifier,
                                              train_classifier)
from emogan_utils.checkpoint import CheckpointError
from emogan_utils.data import load_corpus
from emogan_utils.egemaps import N_FUNCTIONALS, centred, corpus_egemaps
from emogan_utils.evaluate import evaluate_classifier
from emogan_utils.inference import (corpus_probabilities, load_classifier, predict,
                                    reference_statistics)
from emogan_utils.models import ClassifierConfig, FunctionalsConfig


def test_functionals_centred_per_speaker_separate_emotions_whatever_the_speakers_voice():
    rng = np.random.default_rng(0)
    emotions = np.tile(np.repeat([0, 1, 2], 10), 4)
    speakers = np.repeat([0, 1, 2, 3], 30)
    voices = rng.normal(0, 5, (4, N_FUNCTIONALS))  # each speaker far from the others
    features = (voices[speakers] + rng.normal(0, 1, (3, N_FUNCTIONALS))[emotions]
                + rng.normal(0, 0.3, (len(emotions), N_FUNCTIONALS)))
    x = centred(features, speakers)
    assert np.abs(x[speakers == 2].mean(axis=0)).max() < 1e-9
    train, val, test = speakers < 2, speakers == 2, speakers == 3
    before = torch.get_rng_state()
    config = FunctionalsConfig(n_classes=3, hidden=16)
    branch = fit_functionals(x[train], emotions[train], x[val], emotions[val], config, epochs=60)
    assert torch.equal(torch.get_rng_state(), before)  # seeds its own generator
    with torch.no_grad():
        predicted = branch(torch.as_tensor(x[test], dtype=torch.float32)).argmax(1).numpy()
    assert np.mean(predicted == emotions[test]) > 0.9  # an unseen speaker
    again = fit_functionals(x[train], emotions[train], x[val], emotions[val], config, epochs=60)
    for name, tensor in branch.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    with pytest.raises(ValueError, match="training and validation"):
        fit_functionals(x[:0], emotions[:0], x[val], emotions[val], config)


@pytest.mark.slow
def test_the_egemaps_branch_is_saved_and_joins_the_verdict_only_where_the_speaker_is_known(
        tiny_corpus, tmp_path):
    config = ClassifierTrainConfig.quick(
        epochs=1, batch_size=8, progress=False, egemaps=True,
        model=ClassifierConfig(channels=8, n_blocks=1, attention_dim=8))
    cache = tmp_path / "cache"
    trained = train_classifier(tiny_corpus, val_actors=[2], train_actors=[1], config=config,
                               cache_dir=cache)
    assert trained.functionals is not None and any((cache / "egemaps").iterdir())
    classifier = load_classifier(save_classifier(tmp_path / "classifier.pt", trained))
    for name, tensor in trained.functionals.state_dict().items():
        assert torch.equal(tensor, classifier.functionals.state_dict()[name]), name
    cnn_alone = dataclasses.replace(classifier, functionals=None)
    with pytest.raises(ValueError, match="no eGeMAPS branch"):
        cnn_alone.functional_probabilities(np.zeros((1, N_FUNCTIONALS)))

    table = load_corpus(tiny_corpus)
    fused, kept = corpus_probabilities(classifier, table, cache, progress=False)
    alone, _ = corpus_probabilities(cnn_alone, table, cache, progress=False)
    features = centred(corpus_egemaps(kept, classifier.audio, cache / "egemaps", progress=False),
                       kept["actor"].to_numpy())
    np.testing.assert_allclose(fused, (alone + classifier.functional_probabilities(features)) / 2,
                               atol=1e-6)
    report = evaluate_classifier(classifier, table, cache, progress=False)
    truth = np.array([classifier.labels.index(e) for e in kept["emotion"]])
    assert report["accuracy"] == pytest.approx(np.mean(fused.argmax(1) == truth))

    clips = list(kept[kept["actor"] == 1]["path"])
    # one clip of a stranger: no speaker mean to centre on, the CNN alone
    assert predict(clips[0], classifier) == predict(clips[0], cnn_alone)
    speaker = reference_statistics(clips[1:5], classifier)
    assert speaker.functionals.shape == (N_FUNCTIONALS,)
    enrolled = predict(clips[0], classifier, reference=speaker)
    assert enrolled != pytest.approx(predict(clips[0], cnn_alone, reference=clips[1:5]),
                                     abs=1e-4)
    assert sum(enrolled.values()) == pytest.approx(1.0, abs=1e-5)

    payload = torch.load(classifier.path, weights_only=True)
    payload["state"]["functionals"]["temperature"] = torch.zeros(())
    torch.save(payload, tmp_path / "cold.pt")
    with pytest.raises(CheckpointError, match="cold.pt.*temperature"):
        load_classifier(tmp_path / "cold.pt")


def test_temperature_scaling_softens_an_overconfident_model_without_changing_its_verdicts():
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    logits = 20.0 * torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 1, 0]), 3)
    temperature = fit_temperature(logits, targets)  # 6 of 8 right, each with certainty
    assert temperature > 2.0
    nll = [torch.nn.functional.cross_entropy(logits / t, targets).item()
           for t in (temperature * 0.8, temperature, temperature * 1.25)]
    assert nll[1] < nll[0] and nll[1] < nll[2]
    assert torch.equal((logits / temperature).argmax(1), logits.argmax(1))
    right = 5.0 * torch.nn.functional.one_hot(targets, 3)
    assert fit_temperature(right, targets) < 1.0  # always right: sharper
