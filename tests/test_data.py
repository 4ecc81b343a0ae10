from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emogan_utils.data import (
    EMOTIONS, CorpusError, Split, actor_folds, emotion_id, fold_split, load_corpus, parse_name,
    ravdess_name, recording, split_actors, translation_items,
)


def test_parse_name_fields():
    rec = parse_name("/x/Actor_12/03-01-05-02-01-02-12.wav")
    assert (rec.modality, rec.vocal_channel, rec.emotion_id, rec.intensity) == (3, 1, 5, 2)
    assert (rec.statement_id, rec.repetition, rec.actor) == (1, 2, 12)
    assert rec.emotion == "angry" and rec.label == 4
    assert rec.statement == "Kids are talking by the door"
    assert rec.gender == "female" and parse_name("03-01-01-01-01-01-07.wav").gender == "male"
    assert rec.path == Path("/x/Actor_12/03-01-05-02-01-02-12.wav")


@pytest.mark.parametrize("name, problem", [
    ("foo.wav", "expected MM-VV-EE-II-SS-RR-AA"),
    ("03-01-09-01-01-01-01.wav", "emotion 09"),
    ("03-01-01-02-01-01-01.wav", "neutral has no strong intensity"),
    ("03-01-02-01-03-01-01.wav", "statement 03"),
    ("03-01-02-01-01-01-25.wav", "actor 25"),
    ("03-01-02-01-01-1-01.wav", "expected"),
])
def test_parse_name_rejects_with_reason(name, problem):
    with pytest.raises(ValueError) as err:
        parse_name(name)
    assert repr(name) in str(err.value) and problem in str(err.value)


@given(st.integers(1, 8), st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.integers(1, 24))
def test_name_round_trip(emotion, intensity, statement, repetition, actor):
    if emotion == 1:
        intensity = 1
    rec = parse_name(ravdess_name(emotion, intensity, statement, repetition, actor))
    assert (rec.emotion_id, rec.intensity, rec.statement_id, rec.repetition, rec.actor) == (
        emotion, intensity, statement, repetition, actor)


@given(st.text(max_size=30))
def test_parse_name_never_crashes_otherwise(text):
    try:
        parse_name(text + ".wav")
    except ValueError as err:
        assert "RAVDESS" in str(err)


def test_emotion_id_names_and_aliases():
    assert [emotion_id(e) for e in EMOTIONS] == list(range(1, 9))
    assert emotion_id("Anger") == 5 and emotion_id("surprise") == 8
    with pytest.raises(ValueError, match="neutral, calm"):
        emotion_id("bored")


def test_recording_falls_back_for_strong_neutral_and_names_missing_recordings(tiny_corpus):
    table = load_corpus(tiny_corpus)  # normal intensity only
    row = recording(table, 2, 1, "neutral", 2, 1)
    assert (row["emotion"], row["intensity"], row["actor"]) == ("neutral", 1, 2)
    with pytest.raises(CorpusError, match="actor 2, statement 1, angry \\(strong\\), repetition 1"):
        recording(table, 2, 1, "angry", 2, 1)


def test_translation_items_pair_sources_with_strong_targets_and_their_other_take(tmp_path):
    takes = [(1, 1, 1), (1, 1, 2), (5, 1, 1), (5, 1, 2), (5, 2, 1), (5, 2, 2), (2, 2, 1)]
    for emotion, intensity, repetition in takes:  # (emotion, intensity, repetition), actor 3
        (tmp_path / ravdess_name(emotion, intensity, 1, repetition, 3)).write_bytes(b"")
    items = translation_items(load_corpus(tmp_path), "neutral", ["angry", "calm"])
    found = {(row.repetition, row.target): (row.target_path.name, row.repeat_path)
             for row in items.itertuples()}
    assert set(found) == {(1, "angry"), (2, "angry"), (1, "calm")}  # no calm repetition 2
    assert found[1, "angry"] == (ravdess_name(5, 2, 1, 1, 3), tmp_path / ravdess_name(5, 2, 1, 2, 3))
    assert found[2, "angry"] == (ravdess_name(5, 2, 1, 2, 3), tmp_path / ravdess_name(5, 2, 1, 1, 3))
    assert found[1, "calm"][0] == ravdess_name(2, 2, 1, 1, 3)
    assert found[1, "calm"][1] != found[1, "calm"][1]  # NaN: calm has no other take


def test_load_corpus_reports_skipped(tiny_corpus):
    (tiny_corpus / "Actor_01" / "notes.wav").write_bytes(b"")
    (tiny_corpus / "03-02-01-01-01-01-01.wav").write_bytes(b"")  # song, not speech
    skipped = []
    with pytest.warns(UserWarning, match="Skipped 2 file"):
        table = load_corpus(tiny_corpus, skipped=skipped)
    assert len(table) == 16 and sorted(table.actor.unique()) == [1, 2]
    assert {p.name for p, _ in skipped} == {"notes.wav", "03-02-01-01-01-01-01.wav"}
    assert set(table.columns) >= {"path", "emotion", "label", "actor", "gender", "statement"}


def test_load_corpus_flat_and_flac(tmp_path, tiny_corpus):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (tiny_corpus / "Actor_01").iterdir():
        (flat / p.name.replace(".wav", ".flac")).write_bytes(p.read_bytes())
    assert len(load_corpus(flat)) == 8


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_load_corpus_empty_or_missing_says_how_to_get_data(tmp_path, make):
    with pytest.raises(CorpusError, match="make-corpus") as err:
        load_corpus(make(tmp_path))
    assert "download" in str(err.value)


def test_split_is_disjoint_balanced_and_reproducible():
    actors = range(1, 25)
    split = split_actors(actors, n_val=2, n_test=4, seed=3)
    assert split == split_actors(actors, n_val=2, n_test=4, seed=3)
    assert split != split_actors(actors, n_val=2, n_test=4, seed=4)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert set().union(*parts) == set(actors) and sum(map(len, parts)) == 24
    for part in parts[1:]:
        assert sum(a % 2 for a in part) == len(part) // 2  # as many male as female


def test_split_rejects_overlap():
    with pytest.raises(ValueError, match=r"\[3\]"):
        Split(train=(1, 2, 3), val=(3,), test=(4,))


@pytest.mark.parametrize("k", [2, 4, 5])
def test_folds_cover_every_actor_once_and_never_leak(k):
    actors = list(range(1, 21))
    folds = actor_folds(actors, k)
    assert sorted(a for f in folds for a in f) == actors
    for fold in range(k):
        split = fold_split(actors, k, fold, n_val=2)
        assert not set(split.train) & set(split.test) and not set(split.val) & set(split.test)
        assert not set(split.train) & set(split.val)
        assert set(split.test) == set(folds[fold])


def test_split_select_rows(tiny_corpus):
    table = load_corpus(tiny_corpus)
    split = Split(train=(1,), val=(), test=(2,))
    assert set(split.select(table, "train").actor) == {1}
    assert set(split.select(table, "test").actor) == {2}


@pytest.mark.ravdess
def test_real_ravdess_parses_completely(ravdess_16k, ravdess_original):
    flac = load_corpus(ravdess_16k)
    wav = load_corpus(ravdess_original)
    assert len(flac) + len(wav) == 1260
    assert flac.groupby("actor").size().eq(60).all() and sorted(flac.actor.unique()) == list(range(1, 21))
    assert list(wav.actor.unique()) == [1]
    assert flac.groupby("emotion").size()["neutral"] == 80  # normal intensity only
