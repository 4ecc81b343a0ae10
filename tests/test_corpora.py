"""Several corpora read as one table: speakers kept apart by corpus, label sets merged, one
manifest for several folders, validation speakers from each corpus, and a classifier trained on
two corpora that knows which speakers of each it heard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_layout
from emogan_utils import cli
from emogan_utils.data import (EMOTIONS, CorpusError, corpus_fingerprint, corpus_labels,
                               load_corpora, load_corpus, merged_labels, read_manifest,
                               select_actors, speaker_ids, split_actors, validation_actors,
                               write_manifest)
from emogan_utils.inference import load_classifier
from emogan_utils.layouts import LABELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """Two RAVDESS-named corpora whose actors are both numbered 01-04, and ESD and TESS."""
    root = tmp_path_factory.mktemp("several")
    return {"ravdess": make_layout(root / "ravdess", "ravdess"),
            "twin": make_layout(root / "elsewhere" / "twin", "ravdess"),
            "esd": make_layout(root / "esd", "esd"), "tess": make_layout(root / "tess", "tess")}


def _manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A manifest CSV of (file, speaker, emotion, corpus) rows, each its own utterance."""
    lines = ["path,speaker,emotion,utterance,corpus"]
    lines += [f"{f},{speaker},{emotion},u{i},{corpus}"
              for i, (f, speaker, emotion, corpus) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def twin_manifest(corpora, tmp_path_factory) -> Path:
    """The twin corpus as a manifest that names its corpus 'twin'."""
    out = tmp_path_factory.mktemp("twin") / "twin.csv"
    return write_manifest(load_corpus(corpora["twin"]).assign(corpus="twin"), out)


def test_two_corpora_whose_speakers_share_numbers_stay_apart(corpora, twin_manifest):
    with pytest.raises(CorpusError, match="twin: its corpus is named 'ravdess', as is "
                                          ".*ravdess's.*emogan manifest DIR DIR"):
        load_corpus([corpora["ravdess"], corpora["twin"]])
    renamed = load_corpora([corpora["ravdess"], corpora["twin"]], rename=True)
    assert list(dict.fromkeys(renamed["corpus"])) == ["ravdess", "twin"]  # the folder's name
    table = load_corpus([corpora["ravdess"], twin_manifest])
    columns = ["actor", "corpus", "speaker", "emotion", "label", "statement_id"]
    pd.testing.assert_frame_equal(table[columns], renamed[columns])
    actors = table.groupby("corpus")["actor"].unique().map(sorted).to_dict()
    assert actors == {"ravdess": [1, 2, 3, 4], "twin": [101, 102, 103, 104]}
    assert len(set(speaker_ids(table))) == 8
    assert (table.groupby("actor")["corpus"].nunique() == 1).all()
    assert select_actors(table, ["twin/01", "ravdess/01", 3], "both") == [101, 1, 3]
    with pytest.raises(CorpusError, match="both: '01' names ravdess/01 and twin/01"):
        select_actors(table, ["01"], "both")
    alone = load_corpus(corpora["ravdess"])
    first = table[table["corpus"] == "ravdess"].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[alone.columns], alone[alone.columns])


def test_label_sets_merge_in_the_package_order(corpora, tmp_path):
    table = load_corpora([corpora["esd"], corpora["tess"]])
    assert set(LABELS["esd"]) < set(LABELS["tess"])
    labels = corpus_labels(table)
    assert labels == tuple(e for e in EMOTIONS if e != "calm")
    assert (table["label"] == [labels.index(e) for e in table["emotion"]]).all()
    assert (table["emotion_id"] == table["label"] + 1).all()
    assert table.attrs["layout"] == "esd+tess"
    assert set(table.loc[table["corpus"] == "esd", "emotion"]) == set(LABELS["esd"])
    # an emotion the package does not name comes after its own
    files = sorted(str(p) for p in (corpora["ravdess"] / "Actor_01").glob("*.wav"))[:2]
    extra = _manifest(tmp_path / "bored.csv", [(files[0], "A", "boredom", ""),
                                               (files[1], "A", "neutral", "")])
    merged = load_corpus([corpora["esd"], extra], allow_new_emotions=True)
    assert corpus_labels(merged) == (*LABELS["esd"][:1], "happy", "sad", "angry", "surprised",
                                     "boredom")
    assert merged_labels([("sad", "zest"), ("neutral", "calm", "awe")]) == (
        "neutral", "calm", "sad", "awe", "zest")


def test_one_manifest_lists_several_folders_and_reads_back_apart(corpora, tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert cli.main(["manifest", str(corpora["ravdess"]), str(corpora["twin"]),
                     str(corpora["tess"]), "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["corpora"] == ["ravdess", "twin", "tess"] and report["speakers"] == 12
    assert report["layout"] == "ravdess+tess"
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written.groupby("corpus")["speaker"].nunique().to_dict() == {
        "ravdess": 4, "twin": 4, "tess": 4}
    again, direct = read_manifest(out), load_corpora(
        [corpora["ravdess"], corpora["twin"], corpora["tess"]], rename=True)
    columns = ["actor", "corpus", "speaker", "emotion", "label"]
    pd.testing.assert_frame_equal(again[columns], direct[columns])
    assert corpus_labels(again) == corpus_labels(direct) == EMOTIONS


def test_a_manifest_of_two_corpora_numbers_and_splits_each_apart(corpora, tmp_path):
    files = sorted(str(p) for p in (corpora["ravdess"] / "Actor_02").glob("*.wav"))[:4]
    path = tmp_path / "two.csv"
    path.write_text("path,speaker,emotion,utterance,corpus,split\n"
                    f"{files[0]},1,neutral,u,a,train\n{files[1]},1,angry,u,a,train\n"
                    f"{files[2]},1,neutral,u,b,val\n{files[3]},1,angry,u,b,val\n")
    table = read_manifest(path)  # speaker 1 of a trains, speaker 1 of b validates
    assert table.groupby("corpus")["actor"].unique().map(list).to_dict() == {
        "a": [1], "b": [101]}
    assert sorted(set(speaker_ids(table))) == ["a/1", "b/1"]
    path.write_text(path.read_text().replace("angry,u,a,train", "angry,u,a,val"))
    with pytest.raises(CorpusError, match="two.csv: a speaker may be in one split.*a/1"):
        read_manifest(path)


def test_the_fingerprint_follows_each_corpus_wherever_they_lie(corpora, tmp_path):
    one = load_corpus(corpora["ravdess"])
    assert corpus_fingerprint(one, [corpora["ravdess"]]) == corpus_fingerprint(
        one, corpora["ravdess"])
    sources = [corpora["ravdess"], corpora["esd"]]
    both = load_corpus(sources)
    moved = [shutil.copytree(s, tmp_path / f"copy{k}" / s.name) for k, s in enumerate(sources)]
    assert corpus_fingerprint(load_corpus(moved), moved) == corpus_fingerprint(both, sources)
    shutil.rmtree(moved[1] / "0013")
    assert corpus_fingerprint(load_corpus(moved), moved) != corpus_fingerprint(both, sources)


def test_validation_speakers_come_from_each_corpus_that_can_spare_them(corpora, tmp_path):
    ravdess = load_corpus(corpora["ravdess"])
    assert validation_actors(ravdess, seed=3) == split_actors([1, 2, 3, 4], 2, 0, seed=3).val
    files = sorted(str(p) for p in (corpora["twin"] / "Actor_02").glob("*.wav"))[:2]
    lone = _manifest(tmp_path / "lone.csv", [(files[0], "X", "neutral", ""),
                                             (files[1], "X", "angry", "")])
    table = load_corpus([corpora["ravdess"], corpora["esd"], lone])
    chosen = validation_actors(table)
    corpus_of = dict(zip(table["actor"], table["corpus"]))
    assert sorted(corpus_of[a] for a in chosen) == ["esd", "esd", "ravdess", "ravdess"]
    assert validation_actors(load_corpus(lone)) == ()


def test_a_corpus_given_twice_or_a_file_in_two_corpora_is_refused(corpora, tmp_path):
    with pytest.raises(CorpusError, match="ravdess: given twice"):
        load_corpus([corpora["ravdess"], corpora["ravdess"] / "."])
    file = sorted((corpora["ravdess"] / "Actor_01").glob("*.wav"))[0]
    listed = _manifest(tmp_path / "again.csv", [(str(file), "1", "neutral", "")])
    with pytest.raises(CorpusError, match=f"again.csv: {file} is also in .*ravdess"):
        load_corpus([corpora["ravdess"], listed])
    with pytest.raises(CorpusError, match="no corpus given"):
        load_corpora([])


@pytest.mark.slow
def test_a_classifier_trained_on_two_corpora_knows_each_ones_speakers(corpora, twin_manifest,
                                                                      tmp_path, capsys):
    out = tmp_path / "both.pt"
    assert cli.main(["train-classifier", "--data", str(corpora["ravdess"]),
                     "--data", str(twin_manifest), "--out", str(out), "--quick",
                     "--epochs", "1", "--actors", "ravdess/01,ravdess/02,twin/03",
                     "--val-actors", "twin/04"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["train_speakers"] == ["ravdess/01", "ravdess/02", "twin/03"]
    assert report["val_speakers"] == ["twin/04"]
    classifier = load_classifier(out)
    assert classifier.labels == EMOTIONS
    # each corpus alone numbers its actors 1-4: seen are only the speakers of that corpus
    assert classifier.seen_actors(load_corpus(corpora["ravdess"])) == [1, 2]
    assert classifier.seen_actors(load_corpus(twin_manifest)) == [3, 4]
    assert cli.main(["evaluate-classifier", "--checkpoint", str(out),
                     "--data", str(twin_manifest), "--actors", "1-3"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["seen_in_training"] == ["twin/03"]
    assert cli.main(["evaluate-classifier", "--checkpoint", str(out),
                     "--data", str(corpora["ravdess"]), "--data", str(twin_manifest)]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["seen_in_training"] == [] and scored["actors"] == [3, 4, 101, 102]
    assert scored["n"] == 4 * len(EMOTIONS) * 2


@pytest.mark.slow
def test_a_gan_trains_on_two_corpora_with_their_merged_emotions(corpora, tmp_path):
    from emogan_utils.checkpoint import load_checkpoint
    from emogan_utils.gan_training import GANTrainConfig, train_gan
    from emogan_utils.models import DiscriminatorConfig, GeneratorConfig

    config = GANTrainConfig(epochs=1, batch_size=4, pairs_per_epoch=8, crop_frames=16,
                            generator=GeneratorConfig(channels=4, depth=2, n_res_blocks=1),
                            discriminator=DiscriminatorConfig(channels=4, depth=2))
    sources = [corpora["esd"], corpora["tess"]]
    train_gan(sources, tmp_path / "gan.pt", config, train_actors=["0011", "OAF"],
              val_actors=["tess/YAF"], progress=False)
    saved = load_checkpoint(tmp_path / "gan.pt", kind="gan")
    assert saved["labels"] == [e for e in EMOTIONS if e != "calm"]
    assert saved["model_config"]["generator"]["n_emotions"] == 7
    extra = saved["extra"]
    assert extra["train_speakers"] == ["esd/0011", "tess/OAF"]
    assert extra["val_speakers"] == ["tess/YAF"]
    table = load_corpus(sources)
    used = table[table["actor"].isin([*extra["train_actors"], *extra["val_actors"]])]
    assert set(used["corpus"] + "/" + used["speaker"]) == {"esd/0011", "tess/OAF", "tess/YAF"}
    assert extra["corpus"] == corpus_fingerprint(used, sources)
