"""Faults of the environment: a full disk (``os.write`` failing with ENOSPC part-way), outputs
that are folders or inside files, a work folder that is a file or read-only, and SIGTERM
during training. Each ends with one line naming the path and the problem, exit 2 (143 for
SIGTERM), no partial file, and nothing trained before a problem that can be checked first."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emogan_utils import classifier_training, cli, gan_training, storage
from emogan_utils.checkpoint import save_checkpoint
from emogan_utils.features import AudioConfig, FeatureCache, Normalizer
from emogan_utils.models import DiscriminatorConfig, GeneratorConfig, UNetGenerator

from conftest import tone

CFG = AudioConfig()
TINY_G = GeneratorConfig(channels=4, depth=2, n_res_blocks=1)
TINY_D = DiscriminatorConfig(channels=4, depth=2)


def tiny_gan(path: Path) -> Path:
    """An untrained tiny GAN checkpoint at ``path``."""
    torch.manual_seed(0)
    return save_checkpoint(path, kind="gan", audio=CFG,
                           model_config={"generator": asdict(TINY_G),
                                         "discriminator": asdict(TINY_D)},
                           state={"generator": UNetGenerator(TINY_G).state_dict()},
                           normalizer=Normalizer(np.array([-50.0]), np.array([50.0]), clip=True))


@pytest.fixture
def full_disk(monkeypatch):
    """``os.write`` writes at most 100 bytes of a call, then reports no space left (ENOSPC)
    on every later call, as a file system that fills up mid-write does."""
    real_write, state = os.write, {"written": 0}

    def write(fd: int, data) -> int:
        if state["written"] >= 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:100 - state["written"]]))
        state["written"] += n
        return n

    monkeypatch.setattr(os, "write", write)
    return state


def never_called(*args, **kwargs):
    raise AssertionError("training started although a problem could be found first")


def error_line(capsys) -> str:
    """The one line a command wrote to stderr (fails on a traceback or several lines)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def leftovers(folder: Path) -> list[str]:
    """Names of the files in ``folder`` (temporary files of atomic writes included)."""
    return sorted(p.name for p in folder.iterdir())


# --- a full disk ------------------------------------------------------------------------------

def test_a_full_disk_while_saving_a_checkpoint_keeps_the_old_one(tmp_path, full_disk):
    path = tmp_path / "gan.pt"
    path.write_bytes(b"the previous checkpoint")
    with pytest.raises(storage.OutputError, match="gan.pt: cannot write it: no space left"):
        tiny_gan(path)
    assert full_disk["written"] == 100  # the write did start, and failed part-way
    assert path.read_bytes() == b"the previous checkpoint"
    assert leftovers(tmp_path) == ["gan.pt"]


def test_a_full_disk_while_training_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys,
                                                           full_disk):
    def trains_then_saves(data, out, *args, **kwargs):
        tiny_gan(Path(out))

    monkeypatch.setattr(gan_training, "train_gan", trains_then_saves)
    out = tmp_path / "gan.pt"
    assert cli.main(["train-gan", "--data", str(tmp_path), "--out", str(out)]) == 2
    err = error_line(capsys)
    assert str(out) in err and "no space left on device" in err
    assert leftovers(tmp_path) == []


def test_a_full_disk_while_caching_features_leaves_no_shard(tmp_path, full_disk):
    cache = FeatureCache(tmp_path / "cache", CFG)
    cache.dir.mkdir(parents=True)
    (cache.dir / "config.json").write_text("{}")  # written before the disk filled up
    with pytest.raises(storage.OutputError, match=r"shard-\w+\.npy: cannot write it: no space"):
        cache.write(["a|1|1"], np.zeros((1, CFG.n_mels, 40), np.float32))
    assert leftovers(cache.dir) == ["config.json"]


def test_a_full_disk_while_writing_a_translation_is_one_line_and_exit_2(tmp_path, capsys,
                                                                       request):
    generator = tiny_gan(tmp_path / "gan.pt")
    source = tmp_path / "in.wav"
    sf.write(source, tone(200, 1.0, CFG.sample_rate), CFG.sample_rate)
    out = tmp_path / "out.wav"
    out.write_bytes(b"an older output")
    request.getfixturevalue("full_disk")
    assert cli.main(["translate", "--generator", str(generator), "--input", str(source),
                     "--to", "angry", "--output", str(out), "--vocoder", "griffin-lim"]) == 2
    err = error_line(capsys)
    assert str(out) in err and "no space left on device" in err
    assert out.read_bytes() == b"an older output"
    assert leftovers(tmp_path) == ["gan.pt", "in.wav", "out.wav"]


# --- outputs and work folders that cannot be written ------------------------------------------

@pytest.mark.parametrize("command, module, function", [
    ("train-classifier", classifier_training, "train_classifier"),
    ("train-gan", gan_training, "train_gan")])
@pytest.mark.parametrize("where, problem", [
    (lambda tmp: tmp, "is a folder"),
    (lambda tmp: tmp / "afile" / "x.pt", "afile is not a folder")])
def test_an_output_that_cannot_be_a_file_is_refused_before_training(
        tmp_path, monkeypatch, capsys, command, module, function, where, problem):
    (tmp_path / "afile").write_text("notes")
    monkeypatch.setattr(module, function, never_called)
    out = where(tmp_path)
    assert cli.main([command, "--data", str(tmp_path), "--out", str(out)]) == 2
    err = error_line(capsys)
    assert str(out) in err and problem in err
    assert (tmp_path / "afile").read_text() == "notes"


@pytest.mark.parametrize("command, module, function", [
    ("train-classifier", classifier_training, "train_classifier"),
    ("train-gan", gan_training, "train_gan")])
def test_a_work_folder_that_is_a_file_is_refused_before_training(
        tmp_path, monkeypatch, capsys, command, module, function):
    work = tmp_path / "work"
    work.write_text("not a folder")
    monkeypatch.setenv("EMOGAN_WORK", str(work))
    monkeypatch.setattr(module, function, never_called)
    assert cli.main([command, "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 2
    err = error_line(capsys)
    assert str(work) in err and "is not a folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_a_read_only_work_folder_is_refused_before_training(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir(mode=0o500)
    monkeypatch.setenv("EMOGAN_WORK", str(work))
    monkeypatch.setattr(gan_training, "train_gan", never_called)
    assert cli.main(["train-gan", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 2
    err = error_line(capsys)
    assert str(work) in err and "is not writable" in err


def test_a_read_only_work_folder_is_refused_as_root_sees_it(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    real_access = os.access

    def read_only(path, mode, **kwargs):  # what a read-only mount answers, even to root
        if Path(path) == work and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", read_only)
    monkeypatch.setenv("EMOGAN_WORK", str(work))
    monkeypatch.setattr(classifier_training, "train_classifier", never_called)
    assert cli.main(["train-classifier", "--data", str(tmp_path),
                     "--out", str(tmp_path / "m.pt")]) == 2
    err = error_line(capsys)
    assert str(work) in err and "is not writable" in err


# --- SIGTERM -----------------------------------------------------------------------------------

SLOW_TRAINING = """
import sys, time
from emogan_utils import cli, {module}

def slow(*args, **kwargs):
    print("training", flush=True)
    time.sleep(60)

{module}.{function} = slow
raise SystemExit(cli.main(["{command}", "--data", sys.argv[1], "--out", sys.argv[2]]))
"""


@pytest.mark.parametrize("command, module, function", [
    ("train-classifier", "classifier_training", "train_classifier"),
    ("train-gan", "gan_training", "train_gan")])
def test_sigterm_during_training_says_how_to_resume_and_exits_143(tmp_path, command, module,
                                                                  function):
    script = SLOW_TRAINING.format(module=module, function=function, command=command)
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path), str(tmp_path / "m.pt")],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert process.stdout.readline().strip() == "training"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143
    assert time.monotonic() - started < 10  # at once, not after the 60 s of "training"
    assert f"emogan {command}: terminated (SIGTERM)" in err and "--resume" in err
    assert "Traceback" not in err
