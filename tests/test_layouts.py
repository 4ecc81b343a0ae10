"""Other corpora: each layout's names, manifests written and read, bad manifests, and training
on a tiny corpus of each layout with its own label set."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import (SPEAKER_IDS, SPEAKERS, UTTERANCE_IDS, UTTERANCES, layout_name,
                      make_layout)
from emogan_utils import cli
from emogan_utils.checkpoint import CheckpointError, load_checkpoint
from emogan_utils.classifier_training import (ClassifierTrainConfig, save_classifier,
                                              train_classifier)
from emogan_utils.config import real_tess
from emogan_utils.data import (EMOTIONS, LAYOUTS, CorpusError, corpus_labels, load_corpus,
                               read_manifest, select_actors, speaker_ids, translation_items)
from emogan_utils.evaluate import evaluate_classifier
from emogan_utils.features import AudioConfig, load_audio
from emogan_utils.gan_training import GANTrainConfig, train_gan
from emogan_utils.inference import Translator, load_classifier, predict
from emogan_utils.layouts import LABELS, parse_tess
from emogan_utils.models import ClassifierConfig, DiscriminatorConfig, GeneratorConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    return {layout: make_layout(root / layout, layout) for layout in LAYOUTS}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_recognised_and_its_manifest_is_right(layout, corpora, tmp_path, capsys):
    folder = corpora[layout]
    table = load_corpus(folder)
    labels = EMOTIONS if layout == "ravdess" else LABELS[layout]
    assert table.attrs["layout"] == layout and corpus_labels(table) == tuple(labels)
    assert len(table) == len(SPEAKERS) * len(labels) * len(UTTERANCES)
    utterances = len(UTTERANCES) * (len(labels) if layout == "savee" else 1)  # SAVEE: a01, h01
    assert table["actor"].nunique() == 4 and table["statement_id"].nunique() == utterances
    assert (table["label"] == [labels.index(e) for e in table["emotion"]]).all()
    for row in table.itertuples():  # every file says who, what and which emotion
        utterance = (int(row.utterance[-2:]) if layout == "savee"
                     else UTTERANCE_IDS[layout].index(row.utterance) + 1)
        assert Path(row.path).relative_to(folder).as_posix() == layout_name(
            layout, SPEAKER_IDS[layout].index(row.speaker) + 1, row.emotion, utterance)
    out = tmp_path / "manifest.csv"
    assert cli.main(["manifest", "--layout", layout, str(folder), "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["files"] == len(table) and report["skipped"] == []
    assert report["emotions"] == list(labels) and report["speakers"] == 4
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == ["path", "speaker", "emotion", "utterance", "repetition",
                                     "intensity", "gender", "split", "corpus"]
    assert set(written["corpus"]) == {layout}
    again = read_manifest(out)
    columns = ["actor", "emotion", "label", "statement_id", "repetition", "speaker", "utterance"]
    pd.testing.assert_frame_equal(again[columns], table[columns])
    assert [Path(p).resolve() for p in again["path"]] == [Path(p).resolve() for p in table["path"]]
    assert corpus_labels(again) == tuple(labels)


def test_layout_specifics(corpora):
    crema = load_corpus(corpora["crema-d"])
    assert set(crema["actor"]) == {1001, 1002, 1003, 1004} and set(crema["intensity"]) == {0}
    assert "Don't forget a jacket" in set(crema["statement"])
    esd = load_corpus(corpora["esd"])
    assert set(esd["actor"]) == {11, 12, 13, 14} and set(esd["utterance"]) == {"001", "002"}
    assert set(load_corpus(corpora["savee"])["gender"]) == {"male"}
    # ESD is parallel: each speaker's utterance in every emotion pairs with its neutral one
    items = translation_items(esd, "neutral")
    assert len(items) == 4 * 2 * 4 and set(items["target"]) == set(LABELS["esd"]) - {"neutral"}


def test_a_forced_layout_skips_what_does_not_fit_with_reasons(corpora, tmp_path, capsys):
    folder = corpora["crema-d"]
    odd = folder / "1001_XYZ_ANG_XX.wav"
    odd.write_bytes((folder / layout_name("crema-d", 1, "angry", 1)).read_bytes())
    try:
        out = tmp_path / "m.csv"
        assert cli.main(["manifest", str(folder), "--out", str(out)]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["layout"] == "crema-d" and len(report["skipped"]) == 1
        assert "sentence 'XYZ'" in report["skipped"][0]["reason"]
        with pytest.warns(UserWarning, match="(?s)Skipped 49 file.*Not an ESD file name"):
            with pytest.raises(CorpusError, match="holds no ESD files"):
                load_corpus(folder, layout="esd")
    finally:
        odd.unlink()


def test_an_unknown_folder_says_which_layouts_it_knows(tmp_path):
    (tmp_path / "hello.wav").write_bytes(b"")
    with pytest.raises(CorpusError, match="none of its 1 audio file") as err:
        load_corpus(tmp_path)
    assert all(layout in str(err.value) for layout in LAYOUTS)
    assert "manifest" in str(err.value)


# --- bad manifests ---------------------------------------------------------------------------

def _manifest(tmp_path: Path, text: str) -> Path:
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "b.wav").write_bytes(b"")
    path = tmp_path / "corpus.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, problem", [
    ("path,speaker,utterance\na.wav,1,x\n", r"corpus.csv: manifest lacks column\(s\) emotion"),
    ("path,speaker,emotion,utterance\nmissing.wav,1,angry,x\n",
     r"corpus.csv: bad manifest: line 2: .*missing.wav does not exist"),
    ("path,speaker,emotion,utterance,split\na.wav,s1,angry,x,train\nb.wav,s1,sad,x,test\n",
     "corpus.csv: a speaker may be in one split only.*speaker s1 in test and train"),
    ("path,speaker,emotion,utterance,intensity\na.wav,1,angry,x,high\n",
     "line 2: intensity 'high' is not a whole number"),
    ("path,speaker,emotion,utterance\na.wav,1,,x\n", "line 2: empty emotion"),
    ("path,speaker,emotion,utterance\na.wav,1,angry,x\n./a.wav,1,sad,x\n",
     "line 3: .*a.wav is listed again"),
])
def test_bad_manifests_give_clear_errors(tmp_path, text, problem):
    with pytest.raises(CorpusError, match=problem):
        load_corpus(_manifest(tmp_path, text))


def test_manifest_names_map_onto_the_package_and_new_ones_are_kept_when_allowed(tmp_path):
    manifest = _manifest(tmp_path, "path,speaker,emotion,utterance\n"
                                   "a.wav,A,Surprise,x\nb.wav,B,bored,x\n")
    with pytest.raises(CorpusError, match="corpus.csv: line 3: unknown emotion 'bored'"):
        load_corpus(manifest)
    table = load_corpus(manifest, allow_new_emotions=True)
    assert corpus_labels(table) == ("surprised", "bored")
    assert list(table["label"]) == [0, 1] and list(table["actor"]) == [1, 2]


def test_a_misspelt_manifest_emotion_is_refused_with_the_closest_known_one(tmp_path):
    manifest = _manifest(tmp_path, "path,speaker,emotion,utterance\n"
                                   "a.wav,A,angry,x\nb.wav,B,angery,x\n")
    with pytest.raises(CorpusError) as err:
        read_manifest(manifest)
    message = str(err.value)
    assert message.startswith(f"{manifest}: line 3: unknown emotion 'angery'")
    assert "did you mean 'angry'?" in message and "--allow-new-emotions" in message
    table = read_manifest(manifest, allow_new_emotions=True)
    assert corpus_labels(table) == ("angry", "angery")  # its own class
    assert list(table["label"]) == [0, 1]


def test_manifest_aliases_and_layout_names_map_onto_the_package(tmp_path):
    names = ["Anger", "fear", "ps", "pleasant surprise", "Surprise", "HAP", "sadness", "neutral"]
    files = [tmp_path / f"{i}.wav" for i in range(len(names))]
    for file in files:
        file.write_bytes(b"")
    manifest = tmp_path / "aliases.csv"
    manifest.write_text("path,speaker,emotion,utterance\n" + "".join(
        f"{f.name},s{i},{name},u\n" for i, (f, name) in enumerate(zip(files, names))))
    table = read_manifest(manifest)
    assert list(table.sort_values("path")["emotion"]) == [
        "angry", "fearful", "surprised", "surprised", "surprised", "happy", "sad", "neutral"]


def test_the_cli_refuses_a_misspelt_emotion_unless_new_ones_are_allowed(tiny_corpus, tmp_path,
                                                                          capsys):
    files = sorted(tiny_corpus.rglob("*.wav"))[:3]
    manifest = _rows_manifest(tmp_path / "typo.csv", [
        (str(files[0]), "1", "neutral"), (str(files[1]), "1", "angery"),
        (str(files[2]), "2", "angry")])
    assert cli.main(["features", "--data", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}: line 3: unknown emotion 'angery' (did you mean 'angry'?)" in err
    assert cli.main(["features", "--data", str(manifest), "--allow-new-emotions"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"] == 3


# --- training on each layout ------------------------------------------------------------------

TINY_TRAINING = ClassifierTrainConfig.quick(
    epochs=6, batch_size=8, lr=3e-3, progress=False, time_shift=0, freq_masks=0,
    model=ClassifierConfig(channels=16, n_blocks=1, attention_dim=8))


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_classifier_trains_on_each_layout_and_scores_an_unseen_speaker(layout, corpora,
                                                                          tmp_path):
    table = load_corpus(corpora[layout])
    actors = sorted(table["actor"].unique())
    trained = train_classifier(corpora[layout], val_actors=actors[2:3], train_actors=actors[:2],
                               config=TINY_TRAINING)
    labels = corpus_labels(table)
    assert trained.labels == labels and trained.model.config.n_classes == len(labels)
    path = save_classifier(tmp_path / "classifier.pt", trained)
    classifier = load_classifier(path)
    assert load_checkpoint(path)["labels"] == list(labels) and classifier.labels == labels
    report = evaluate_classifier(classifier, table[table["actor"] == actors[3]], progress=False)
    assert report["labels"] == list(labels)
    assert report["accuracy"] > 1.5 / len(labels)  # unseen speaker, well above chance
    assert list(predict(table["path"][0], classifier)) == list(labels)


@pytest.mark.slow
def test_a_checkpoint_refuses_data_with_emotions_it_does_not_know(corpora, tmp_path):
    trained = train_classifier(corpora["esd"], val_actors=[13], train_actors=[11],
                               config=dataclasses.replace(TINY_TRAINING, epochs=1))
    classifier = load_classifier(save_classifier(tmp_path / "esd.pt", trained))
    tess = load_corpus(corpora["tess"])
    with pytest.raises(CheckpointError, match="esd.pt: made for the emotions neutral, happy, "
                                              "sad, angry, surprised, but the data has .*"
                                              r"\(fearful, disgust unknown to it\)"):
        evaluate_classifier(classifier, tess, progress=False)
    # resuming with another label set is refused, naming both
    run = tmp_path / "run.pt"
    train_classifier(corpora["esd"], val_actors=[13], train_actors=[11], checkpoint=run,
                     config=dataclasses.replace(TINY_TRAINING, epochs=1))
    saved = torch.load(run, weights_only=True)
    saved["extra"]["labels"] = list(EMOTIONS)
    torch.save(saved, run)
    with pytest.raises(CheckpointError, match="labels: .*'calm'.* != .*'surprised'"):
        train_classifier(corpora["esd"], val_actors=[13], train_actors=[11], checkpoint=run,
                         resume=True, config=dataclasses.replace(TINY_TRAINING, epochs=1))


@pytest.mark.slow
def test_a_manifest_split_chooses_the_speakers(corpora, tmp_path):
    table = load_corpus(corpora["esd"])
    table = table.assign(split=table["actor"].map({11: "train", 12: "train", 13: "val",
                                                   14: "test"}))
    from emogan_utils.data import write_manifest

    manifest = write_manifest(table, tmp_path / "esd.csv")
    trained = train_classifier(manifest, config=dataclasses.replace(TINY_TRAINING, epochs=1))
    assert (trained.train_actors, trained.val_actors) == ((11, 12), (13,))


@pytest.mark.slow
def test_a_five_emotion_gan_trains_and_translates(corpora, tmp_path):
    config = GANTrainConfig(epochs=1, batch_size=4, pairs_per_epoch=8, crop_frames=16,
                            generator=GeneratorConfig(channels=4, depth=2, n_res_blocks=1),
                            discriminator=DiscriminatorConfig(channels=4, depth=2))
    out = tmp_path / "gan.pt"
    history = train_gan(corpora["esd"], out, config, train_actors=[11, 12], progress=False)
    assert np.isfinite(history["loss_g"][-1])
    saved = load_checkpoint(out, kind="gan")
    assert saved["labels"] == list(LABELS["esd"])
    assert saved["model_config"]["generator"]["n_emotions"] == 5
    translator = Translator(out, vocoder="griffin-lim")
    assert translator.labels == LABELS["esd"]
    code = translator.code("surprise", 0.25, "angry")[0]
    assert code.tolist() == [0, 0, 0, 0.75, 0.25]
    wave = translator(load_corpus(corpora["esd"])["path"][0], "sad")
    assert np.all(np.isfinite(wave)) and len(wave) > 0
    with pytest.raises(ValueError, match="neutral, happy, sad, angry, surprised"):
        translator.code("calm")


# --- speakers are names -------------------------------------------------------------------

def _rows_manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A manifest CSV of (file, speaker, emotion) rows, each its own utterance."""
    lines = ["path,speaker,emotion,utterance"]
    lines += [f"{file},{speaker},{emotion},u{i}" for i, (file, speaker, emotion) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_speakers_1_and_01_of_a_manifest_stay_apart(corpora, tmp_path):
    files = sorted(str(p) for p in (corpora["ravdess"] / "Actor_01").glob("*.wav"))[:4]
    table = load_corpus(_rows_manifest(tmp_path / "mixed.csv", [
        (files[0], "1", "neutral"), (files[1], "01", "angry"), (files[2], "1", "sad"),
        (files[3], "01", "happy")]))
    assert table.groupby("speaker")["actor"].nunique().to_dict() == {"01": 1, "1": 1}
    assert table["actor"].nunique() == 2
    assert speaker_ids(table)[:1] == ["mixed/01"]
    one, zero_one = (select_actors(table, [name], "mixed.csv") for name in ("1", "01"))
    assert one != zero_one
    with pytest.raises(CorpusError, match="mixed.csv: no speaker 'OAF'.*mixed/01, mixed/1"):
        select_actors(table, ["OAF"], "mixed.csv")


def test_speakers_are_chosen_by_name_or_number(corpora):
    tess, esd = load_corpus(corpora["tess"]), load_corpus(corpora["esd"])
    by_name = dict(zip(tess["speaker"], tess["actor"]))
    assert select_actors(tess, ["YAF", "oaf", "tess/KAF"], "tess") == [
        by_name["YAF"], by_name["OAF"], by_name["KAF"]]
    assert select_actors(esd, ["11", "0012", 13], "esd") == [11, 12, 13]
    assert cli._speakers("19,20") == ["19", "20"] and cli._speakers("21-24,OAF") == [
        "21", "22", "23", "24", "OAF"]


def test_two_corpora_whose_speakers_share_numbers_stay_apart(corpora, tmp_path, capsys):
    """A classifier trained on RAVDESS speakers 01-02 has not heard a manifest corpus's
    speakers 1-2 (nor TESS's, whose table numbers them 1-4), and its checkpoint names them."""
    out = tmp_path / "ravdess.pt"
    assert cli.main(["train-classifier", "--data", str(corpora["ravdess"]), "--out", str(out),
                     "--actors", "1,02", "--val-actors", "03", "--quick", "--epochs", "1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["train_speakers"] == ["ravdess/01", "ravdess/02"]
    assert report["train_actors"] == [1, 2] and report["val_speakers"] == ["ravdess/03"]
    classifier = load_classifier(out)
    assert classifier.extra["train_speakers"] == ["ravdess/01", "ravdess/02"]
    ravdess = load_corpus(corpora["ravdess"])
    assert classifier.seen_actors(ravdess) == [1, 2, 3]
    files = sorted(str(p) for p in (corpora["ravdess"] / "Actor_04").glob("*.wav"))[:4]
    other = load_corpus(_rows_manifest(tmp_path / "other.csv", [
        (f, str(1 + i % 2), ("neutral", "angry")[i // 2]) for i, f in enumerate(files)]))
    assert sorted(set(other["actor"])) == [1, 2] and classifier.seen_actors(other) == []
    # without names (a checkpoint from before them), numbers match numerically named speakers
    old = dataclasses.replace(classifier, extra={"train_actors": [1, 2], "val_actors": [3]})
    assert old.seen_actors(other) == [1, 2] and old.seen_actors(load_corpus(corpora["tess"])) == []

    assert cli.main(["evaluate-classifier", "--checkpoint", str(out),
                     "--data", str(corpora["tess"]), "--actors", "OAF"]) == 0
    captured = capsys.readouterr()
    assert "were used in training" not in captured.err
    assert json.loads(captured.out)["seen_in_training"] == []
    assert cli.main(["evaluate-classifier", "--checkpoint", str(out),
                     "--data", str(corpora["ravdess"]), "--actors", "2-4"]) == 0
    captured = capsys.readouterr()
    assert "speakers ['ravdess/02', 'ravdess/03'] were used in training" in captured.err
    assert json.loads(captured.out)["seen_in_training"] == ["ravdess/02", "ravdess/03"]


# --- the real TESS beside the repo --------------------------------------------------------

@pytest.fixture(scope="module")
def shared_tess() -> Path:
    """TESS's older speaker as distributed, or skip when this machine lacks it."""
    if not real_tess().is_dir():
        pytest.skip(f"TESS not found at {real_tess()}")
    return real_tess()


def test_a_shortened_tess_prefix_takes_the_folders_speaker():
    assert parse_tess(Path("OAF_neutral/OA_bite_neutral.wav")).speaker == "OAF"
    assert parse_tess(Path("YAF_fear/yaf_food_fear.wav")).speaker == "YAF"
    with pytest.raises(ValueError, match="OA_bite_neutral.wav.*two letters"):
        parse_tess(Path("misc/OA_bite_neutral.wav"))


@pytest.mark.parametrize("name, rate, subtype", [
    ("OAF_angry/OAF_back_angry.wav", 44100, "FLOAT"),
    ("OAF_fear/OAF_food_fear.wav", 96000, "PCM_16"),
    ("OAF_neutral/OA_bite_neutral.flac", 24414, "PCM_16")])
def test_tess_odd_files_load(shared_tess, name, rate, subtype):
    path = shared_tess / name
    info = sf.info(path)
    assert (info.samplerate, info.subtype) == (rate, subtype)  # the oddity is still there
    wave = load_audio(path)
    assert wave.shape == (AudioConfig().n_samples,) and wave.dtype == np.float32
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0.01


def test_the_whole_tess_folder_is_one_speaker_in_seven_emotions(shared_tess):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no file is skipped
        table = load_corpus(shared_tess)
    assert len(table) == 1400 and set(table["speaker"]) == {"OAF"}
    assert table.groupby("emotion").size().to_dict() == dict.fromkeys(LABELS["tess"], 200)
