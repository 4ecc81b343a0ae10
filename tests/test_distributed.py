"""Training in two processes (gloo on the CPU, as torchrun would start them): the same weights
as one process with the same global batch, files written by rank 0 only, and a killed run
resumed."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import EPS32, parallel_corpus
from emogan_utils import distributed
from emogan_utils.checkpoint import load_checkpoint
from emogan_utils.classifier_training import ClassifierTrainConfig, fit_classifier
from emogan_utils.features import Normalizer
from emogan_utils.gan_training import GANTrainConfig, fit_gan
from emogan_utils.models import ClassifierConfig, DiscriminatorConfig, GeneratorConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# no dropout, masks, shifts or mixup: their random draws are the only thing that two processes
# make differently from one
CONFIG = ClassifierTrainConfig.quick(
    epochs=3, batch_size=8, lr=3e-3, freq_masks=0, time_masks=0, time_shift=0,
    plateau_patience=None, progress=False,
    model=ClassifierConfig(channels=16, n_blocks=1, attention_dim=8, dropout=0.0))
GAN = GANTrainConfig(epochs=1, batch_size=4, pairs_per_epoch=8, crop_frames=16,
                     generator=GeneratorConfig(channels=4, depth=2, n_res_blocks=1),
                     discriminator=DiscriminatorConfig(channels=4, depth=2))


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised 'log-mels' whose class is a raised band of ten mel bins."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 8
    x = rng.normal(0, 1, (n, 80, 24)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 10 * label:10 * label + 10] += 1.5
    return x, y


def _parallel():
    from emogan_utils.pairs import parallel_set

    table, mels = parallel_corpus(frames=32)
    normalizer = Normalizer.fit_range(mels)
    return parallel_set(table, mels, normalizer, progress=False), normalizer


def _rank(rank: int, port: int, folder: str, kill_after: int | None, gan: bool) -> None:
    """One of two processes, set up as torchrun sets them up."""
    from datetime import timedelta

    from emogan_utils import classifier_training, gan_training

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # a short timeout: a rank whose peer was killed gives up instead of waiting 30 minutes
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    saves = []
    real_save = classifier_training.save_checkpoint

    def counted_save(*args, **kwargs):
        saves.append(args[0])
        real_save(*args, **kwargs)
        if kill_after is not None and len(saves) == kill_after:
            os._exit(9)  # killed just after a checkpoint, no clean-up

    # the training modules write their checkpoints through their own name for save_checkpoint
    classifier_training.save_checkpoint = gan_training.save_checkpoint = counted_save
    folder = Path(folder)
    x, y = _data(48, 0)
    x_val, y_val = _data(16, 1)
    fit_classifier(x, y, x_val, y_val, CONFIG, folder / "run.pt", resume=True)
    if gan:
        data, normalizer = _parallel()
        fit_gan(data, folder / "gan.pt", normalizer, GAN, val=data, progress=False)
    (folder.parent / f"saves-rank{rank}.txt").write_text(str(len(saves)))  # the test's record
    distributed.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_processes(folder: Path, kill_after: int | None = None, gan: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # fork: the children start with torch and emogan already imported (seconds, not tens)
    mp.start_processes(_rank, args=(_free_port(), str(folder), kill_after, gan), nprocs=2,
                       start_method="fork")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path, kind="classifier-run")["state"]["model"]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    _two_processes(root / "out", gan=True)
    return root


@pytest.mark.slow
def test_two_processes_end_with_the_weights_of_one_with_the_same_global_batch(two_process_run,
                                                                               tmp_path):
    x, y = _data(48, 0)
    x_val, y_val = _data(16, 1)
    alone = tmp_path / "run.pt"
    _, history = fit_classifier(x, y, x_val, y_val, CONFIG, alone)
    together = load_checkpoint(two_process_run / "out" / "run.pt", kind="classifier-run")
    assert together["extra"]["run"]["history"]["epoch"] == [1, 2, 3]
    # Both runs do the same arithmetic but sum in other orders: a batch of 8 as 2 x 4 (the
    # batch-norm sums, the averaged gradients) and two processes' float32 sums added by gloo.
    # A gradient then differs by a few float32 roundings relative, and so does each AdamW
    # update (it divides by the gradient's own RMS); the weights (|w| <= ~1) take one rounding
    # of their own per update: over 18 steps, 18 * eps32 * max(1, |w|) (measured: <= 4e-7).
    steps = CONFIG.epochs * 48 // CONFIG.batch_size
    for name, value in _weights(alone).items():
        if name == "pool.attention.2.bias":
            continue  # below
        bound = steps * EPS32 * value.abs().clamp(min=1.0)
        assert ((together["state"]["model"][name] - value).abs() <= bound).all(), name
    # The attention logits' bias has no true gradient (a softmax over time ignores a constant),
    # so AdamW steps it on rounding noise alone: up to lr a step, in either run.
    bias = "pool.attention.2.bias"
    gap = (together["state"]["model"][bias] - _weights(alone)[bias]).abs().max()
    assert gap <= 2 * steps * CONFIG.lr
    assert np.allclose(together["extra"]["run"]["history"]["train_loss"],
                       history["train_loss"], rtol=1e-4)


@pytest.mark.slow
def test_only_rank_0_writes_files(two_process_run):
    assert (two_process_run / "saves-rank0.txt").read_text() == str(CONFIG.epochs + GAN.epochs)
    assert (two_process_run / "saves-rank1.txt").read_text() == "0"
    assert sorted(p.name for p in (two_process_run / "out").iterdir()) == ["gan.pt", "run.pt"]
    gan = load_checkpoint(two_process_run / "out" / "gan.pt", kind="gan")
    assert gan["extra"]["epoch"] == 1 and np.isfinite(gan["extra"]["history"]["val_l1"][0])


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_same_weights(two_process_run, tmp_path):
    with pytest.raises(mp.ProcessExitedException):
        _two_processes(tmp_path / "out", kill_after=1)  # killed after epoch 1's checkpoint
    assert load_checkpoint(tmp_path / "out" / "run.pt")["extra"]["run"]["history"]["epoch"] == [1]
    _two_processes(tmp_path / "out")  # the same command again: resume=True
    resumed = _weights(tmp_path / "out" / "run.pt")
    for name, value in _weights(two_process_run / "out" / "run.pt").items():
        assert torch.equal(resumed[name], value), name  # the same processes: bit for bit


def test_alone_every_helper_does_nothing():
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    order = torch.arange(10)
    assert torch.equal(distributed.shard(order), order) and distributed.per_rank_batch(7) == 7
    assert distributed.broadcast("x") == "x"
    model = torch.nn.BatchNorm1d(3)
    assert distributed.prepare(model, torch.device("cpu")) == (model, model)


def test_global_batch_norm_alone_is_batch_norm():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 1), torch.nn.BatchNorm1d(3))
    converted = distributed.global_batchnorm(copy.deepcopy(plain))
    assert isinstance(converted[1], distributed.GlobalBatchNorm)
    x = torch.randn(5, 2, 7)
    assert torch.equal(converted(x), plain(x))
    assert converted.state_dict().keys() == plain.state_dict().keys()
