"""Shared fixtures: the real RAVDESS sample (``EMOGAN_RAVDESS``, skipped when absent), tiny
RAVDESS-named audio made on the fly, and temporary output folders for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emogan_utils.config import real_ravdess
from emogan_utils.data import EMOTIONS, ravdess_name

# Tolerances for comparing two computations of the same thing (a batch and one clip, blocked and
# dense, one thread and two). Another CPU, thread count or batch size may add float32 terms in
# another order (SIMD width, blocking, FMA), so results agree to rounding, not bit for bit.
EPS32 = float(np.finfo(np.float32).eps)
"""float32 machine epsilon, 2**-23 = 1.19e-7 (twice the unit roundoff): the tolerances' unit."""


def sum_rtol(terms: int) -> float:
    """Relative difference allowed between two float32 sums of ``terms`` non-negative terms
    added in different orders: each is within ``(terms - 1) * eps32 / 2`` of the exact sum when
    nothing cancels (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, 4.2), so
    the two within ``(terms - 1) * eps32``; twice that leaves room for the product terms'
    own rounding."""
    return 2 * max(terms - 1, 1) * EPS32


def db_atol(terms: int) -> float:
    """dB difference allowed between two log-powers (``10 log10``) whose powers went through
    sums of up to ``terms`` float32 terms: ``10 / ln 10`` times :func:`sum_rtol`, plus the
    logarithm's own rounding, at most ``eps32`` of |dB| <= 100 dB on either side."""
    return 10.0 / np.log(10.0) * sum_rtol(terms) + 2 * 100.0 * EPS32


def _shared(root: Path, what: str) -> Path:
    """``root``, or skip the test when this machine lacks it."""
    if not root.is_dir():
        pytest.skip(f"{what} not found at {root}")
    return root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the notebooks' cells (run under nbval) slow: the notebooks train models."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def outputs_in_a_temporary_folder(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Point ``EMOGAN_WORK`` and ``EMOGAN_FIGURES`` at temporary folders unless already set;
    yields the variables it set.

    Run directly (``python -m pytest tests/...``), tests would otherwise write checkpoints to
    ``data/`` and figures over the tracked ones in ``SampleImages/``. ``./run.sh tests`` sets
    both (to its own temporary folder), and ``EMOGAN_FIGURES=$PWD/SampleImages`` asks for the
    real figures on purpose; a value that is set is left alone.
    """
    made: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, folder in (("EMOGAN_WORK", "work"), ("EMOGAN_FIGURES", "figures")):
            if not os.environ.get(name):
                made[name] = tmp_path_factory.mktemp(folder)
                patch.setenv(name, str(made[name]))
        yield made


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny networks: on a busy shared CPU, a second thread's spin-waits cost 10x the work."""
    import torch  # here: most tests never load it

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ravdess_16k() -> Path:
    """The 16 kHz FLAC copies of RAVDESS actors 1-20 (:func:`~emogan_utils.config.real_ravdess`)."""
    return _shared(real_ravdess(), "real RAVDESS")


@pytest.fixture(scope="session")
def ravdess_original() -> Path:
    """Actor 01 as distributed (48 kHz WAV, some stereo), in ``original`` beside the 16 kHz
    copies."""
    return _shared(real_ravdess().parent / "original", "real RAVDESS originals")


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.3,
         lead: float = 0.0) -> np.ndarray:
    """A sine burst after ``lead`` seconds of silence."""
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    return np.concatenate([np.zeros(int(lead * rate)), wave]).astype(np.float32)


def voiced(seconds: float = 1.2, f0: float = 140.0, vibrato: float = 2.0, rate: int = 16000,
           lead: float = 0.1) -> np.ndarray:
    """A buzz with a slowly moving pitch and two formant-like resonances: voiced speech's
    stand-in, after ``lead`` seconds of silence."""
    t = np.arange(int(seconds * rate)) / rate
    contour = f0 * 2 ** (vibrato * np.sin(2 * np.pi * 1.5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(contour) / rate
    wave = sum(np.sin(k * phase) / k * (1.0 + 4.0 * np.exp(-((k * contour - 700) / 300) ** 2)
                                        + 2.0 * np.exp(-((k * contour - 1800) / 400) ** 2))
               for k in range(1, 40) if k * f0 < 7000)
    wave = 0.3 * wave / np.abs(wave).max()
    return np.concatenate([np.zeros(int(lead * rate)), wave]).astype(np.float32)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Two actors x 8 emotions of short tones, laid out like RAVDESS at 22.05 kHz."""
    root = tmp_path / "tiny"
    for actor in (1, 2):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in range(1, 9):
            name = ravdess_name(emotion, 1, 1, 1, actor)
            sf.write(folder / name, tone(150.0 * emotion, 1.0, 22050, lead=0.3), 22050)
    return root


def parallel_corpus(frames: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """One actor saying one statement twice in all eight emotions: a band per emotion."""
    rng = np.random.default_rng(seed)
    rows, mels = [], []
    for repetition in (1, 2):
        for label in range(len(EMOTIONS)):
            mel = rng.uniform(-70, -40, (80, frames))
            mel[10 * label:10 * label + 10] += 25.0
            mel[:, -5:] = -100.0  # trailing padding, as in fixed-length clips
            rows.append({"actor": 1, "statement_id": 1, "repetition": repetition, "label": label})
            mels.append(mel)
    return pd.DataFrame(rows), np.stack(mels).astype(np.float32)
