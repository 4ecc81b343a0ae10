import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emogan_utils import storage
from emogan_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from emogan_utils.config import Paths
from emogan_utils.features import AudioConfig, Normalizer


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with storage.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_path_refuses_overwrite_when_asked(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("user data")
    with pytest.raises(FileExistsError, match="keep.txt"):
        with storage.atomic_path(target, overwrite=False):
            pass
    assert target.read_text() == "user data"


def test_write_json_and_audio_round_trip(tmp_path):
    storage.write_json(tmp_path / "a" / "x.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"a": [1, 2], "b": 1}
    wave = 0.5 * np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    storage.write_audio(tmp_path / "w.wav", wave, 16000)
    back, rate = sf.read(tmp_path / "w.wav", dtype="float32")
    assert rate == 16000 and np.allclose(back, wave, atol=1e-4)
    with pytest.raises(ValueError, match="bad.wav: waveform contains NaN"):
        storage.write_audio(tmp_path / "bad.wav", np.array([np.nan]), 16000)
    assert not (tmp_path / "bad.wav").exists()


def test_checkpoint_round_trip_and_checks(tmp_path):
    model = torch.nn.Linear(3, 2)
    norm = Normalizer(np.zeros(80), np.ones(80))
    path = save_checkpoint(tmp_path / "m.pt", kind="classifier", model_config={"hidden": 3},
                           state={"model": model.state_dict()}, audio=AudioConfig(),
                           normalizer=norm, extra={"history": [{"loss": 1.0}]})
    ckpt = load_checkpoint(path, kind="classifier", audio=AudioConfig())
    assert ckpt["model_config"] == {"hidden": 3} and ckpt["audio"] == AudioConfig()
    assert torch.equal(ckpt["state"]["model"]["weight"], model.weight)
    assert np.array_equal(ckpt["normalizer"].scale, norm.scale)
    with pytest.raises(CheckpointError, match="'classifier' checkpoint, expected 'gan'"):
        load_checkpoint(path, kind="gan")
    with pytest.raises(CheckpointError, match="n_mels: 80 != 64"):
        load_checkpoint(path, audio=AudioConfig(n_mels=64))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="garbage.pt: not a readable"):
        load_checkpoint(garbage)
    old = torch.load(path, weights_only=True)
    old["format"] = 0
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format 0"):
        load_checkpoint(tmp_path / "old.pt")


def test_paths_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOGAN_DATA", str(tmp_path / "rav"))
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("EMOGAN_FIGURES", str(tmp_path / "figs"))
    paths = Paths.from_env()
    assert paths.corpus == tmp_path / "rav" and not paths.uses_embedded
    assert paths.checkpoints == tmp_path / "work" / "checkpoints"
    assert paths.figures == tmp_path / "figs"
    monkeypatch.delenv("EMOGAN_DATA")
    paths = Paths.from_env()
    if not (paths.root / "data" / "RAVDESS").is_dir():
        assert paths.uses_embedded and paths.corpus == paths.root / "data" / "embedded"
