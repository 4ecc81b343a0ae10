"""The embedded corpus: layout, determinism, safe re-runs, resumption and emotional cues."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from emogan_utils import synth
from emogan_utils.data import EMOTIONS, CorpusError, load_corpus, parse_name, ravdess_name

ACTORS = (1, 2)  # one male, one female


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two actors of the embedded corpus, made once with a process pool."""
    dest = tmp_path_factory.mktemp("embedded") / "corpus"
    assert synth.make_corpus(dest, actors=ACTORS, seed=0, workers=2, progress=False) == dest
    return dest


def _wavs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.wav"))


def _mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_layout_names_and_format(corpus):
    for actor in ACTORS:
        files = sorted((corpus / f"Actor_{actor:02d}").iterdir())
        assert len(files) == 60
        records = [parse_name(p) for p in files]
        assert {r.actor for r in records} == {actor}
        assert {(r.modality, r.vocal_channel) for r in records} == {(3, 1)}
        assert {r.emotion_id for r in records} == set(range(1, 9))
        assert not [r for r in records if r.emotion_id == 1 and r.intensity == 2]
    for path in _wavs(corpus):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 < info.duration < 5.0, path.name
        audio, _ = sf.read(path)
        assert np.sqrt(np.mean(audio ** 2)) > 1e-3, f"{path.name} is silent"
        lead = audio[:int(0.25 * 16000)]
        assert np.abs(lead).max() < 0.01, f"{path.name} has no silence before speech"
    assert len(load_corpus(corpus)) == 120


def test_manifest_records_the_parameters(corpus):
    manifest = json.loads((corpus / synth.MANIFEST).read_text())
    assert manifest["seed"] == 0 and manifest["actors"] == list(ACTORS)
    assert manifest["sample_rate"] == 16000 and manifest["files"] == 120
    assert manifest["generator"] == synth.GENERATOR_VERSION
    assert not (corpus / synth.PARTIAL_MARKER).exists()


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    again = synth.make_corpus(tmp_path / "again", actors=[2], seed=0, workers=1, progress=False)
    other = synth.make_corpus(tmp_path / "other", actors=[2], seed=1, workers=1, progress=False)
    ours = _wavs(corpus / "Actor_02")
    assert [p.name for p in _wavs(again)] == [p.name for p in ours]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(ours, _wavs(again)))
    differ = sum(p.read_bytes() != q.read_bytes() for p, q in zip(ours, _wavs(other)))
    assert differ == len(ours)


def test_rerun_is_a_fast_no_op(corpus):
    before = _mtimes(corpus)
    started = time.perf_counter()
    synth.make_corpus(corpus, actors=ACTORS, seed=0, progress=False)
    assert time.perf_counter() - started < 1.0
    assert _mtimes(corpus) == before


@pytest.mark.parametrize("change, named", [({"seed": 1}, "seed"),
                                           ({"sample_rate": 22050}, "sample_rate"),
                                           ({"actors": [1]}, "actors")])
def test_other_parameters_raise_and_change_nothing(corpus, change, named):
    before = _mtimes(corpus)
    args = {"actors": ACTORS, "seed": 0, "sample_rate": 16000, **change}
    with pytest.raises(CorpusError, match=named) as err:
        synth.make_corpus(corpus, progress=False, **args)
    assert str(corpus) in str(err.value)
    assert _mtimes(corpus) == before


def test_foreign_files_raise_and_are_kept(tmp_path, corpus):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(CorpusError, match="notes.txt"):
        synth.make_corpus(tmp_path, actors=[1], progress=False)
    assert notes.read_text() == "mine"
    # RAVDESS-named files without our record may be the real corpus: never touched
    real = tmp_path / "real" / "Actor_01"
    real.mkdir(parents=True)
    name = ravdess_name(5, 2, 1, 1, 1)
    shutil.copy(corpus / "Actor_01" / name, real / name)
    with pytest.raises(CorpusError, match="real RAVDESS"):
        synth.make_corpus(tmp_path / "real", actors=[1], progress=False)
    assert [p.name for p in real.iterdir()] == [name]
    assert not (tmp_path / "real" / synth.MANIFEST).exists()


def test_interrupted_corpus_is_finished(corpus, tmp_path, monkeypatch):
    dest = tmp_path / "partial"
    real_render, calls = synth._render_job, []

    def interrupted(job):
        if len(calls) == 40:
            raise KeyboardInterrupt
        calls.append(job)
        return real_render(job)

    monkeypatch.setattr(synth, "_render_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        synth.make_corpus(dest, actors=[1], seed=0, workers=1, progress=False)
    monkeypatch.undo()
    assert len(_wavs(dest)) == 40 and not (dest / synth.MANIFEST).exists()
    leftover = dest / "Actor_01" / f".{ravdess_name(8, 2, 2, 2, 1)}.x1y2.tmp"
    leftover.write_bytes(b"half a file")  # what a kill during an atomic write leaves
    kept = _mtimes(dest / "Actor_01")
    with pytest.raises(CorpusError, match="seed"):  # the partial run had other parameters
        synth.make_corpus(dest, actors=[1], seed=3, progress=False)
    synth.make_corpus(dest, actors=[1], seed=0, workers=1, progress=False)
    assert (dest / synth.MANIFEST).exists() and not (dest / synth.PARTIAL_MARKER).exists()
    assert not leftover.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items() if p != leftover)
    ours = _wavs(corpus / "Actor_01")
    assert [p.read_bytes() for p in _wavs(dest)] == [p.read_bytes() for p in ours]


def _speech_stats(path: Path) -> tuple[float, float, float]:
    """RMS (dB) of the speech, its median F0 (Hz) and its duration (s)."""
    audio, rate = sf.read(path)
    speech, _ = librosa.effects.trim(audio, top_db=35)
    f0 = librosa.yin(speech, fmin=60, fmax=600, sr=rate, frame_length=1024, hop_length=160)
    rms = librosa.feature.rms(y=speech, frame_length=1024, hop_length=160)[0]
    n = min(len(f0), len(rms))
    voiced = f0[:n][rms[:n] > 0.1 * rms.max()]
    return 20 * np.log10(np.sqrt(np.mean(speech ** 2))), float(np.median(voiced)), len(speech) / rate


def test_emotions_move_the_cues_in_the_intended_directions(corpus):
    table = load_corpus(corpus)
    stats = {e: np.mean([_speech_stats(p) for p in table.path[table.emotion == e]], axis=0)
             for e in ("neutral", "happy", "sad", "angry", "fearful", "disgust")}
    rms, f0, duration = ({e: s[i] for e, s in stats.items()} for i in range(3))
    assert rms["angry"] > rms["neutral"] + 4 > rms["sad"] + 8
    assert min(f0["happy"], f0["fearful"]) > 1.15 * max(f0["sad"], f0["disgust"])
    assert f0["disgust"] < f0["neutral"]
    assert duration["sad"] > 1.3 * duration["fearful"]
    assert duration["disgust"] > duration["neutral"]


def test_speakers_are_distinct_and_gendered():
    speakers = [synth.speaker(a, seed=0) for a in range(1, 25)]
    assert len({s.voice for s in speakers}) == 24
    assert all(s.voice in synth.MALE_VOICES for s in speakers[0::2])
    assert all(s.voice in synth.FEMALE_VOICES for s in speakers[1::2])
    assert synth.speaker(5, seed=0) == synth.speaker(5, seed=0) != synth.speaker(5, seed=1)


def test_utterance_plan_is_pure_and_checks_arguments():
    assert synth.utterance(3, 5, 2, 1, 1, seed=4) == synth.utterance(3, 5, 2, 1, 1, seed=4)
    assert synth.utterance(3, 5, 2, 1, 1) != synth.utterance(3, 5, 2, 1, 2)
    with pytest.raises(ValueError, match="neutral"):
        synth.utterance(3, 1, 2, 1, 1)
    with pytest.raises(ValueError, match="actors"):
        synth.make_corpus("/nonexistent/never-made", actors=[0, 25])
    with pytest.raises(ValueError, match="seed"):
        synth.make_corpus("/nonexistent/never-made", seed=-1)
    assert not Path("/nonexistent/never-made").exists()


def test_rules_table_lists_every_emotion():
    table = synth.rules_table_markdown()
    assert list(synth.EMOTION_RULES) == list(EMOTIONS)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(EMOTIONS)
    for i, emotion in enumerate(EMOTIONS, start=1):
        assert f"| {emotion} ({i:02d}) |" in table
