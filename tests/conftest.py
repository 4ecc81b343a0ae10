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
from emogan_utils.layouts import LABELS

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


# --- tiny corpora in each layout ---------------------------------------------------------

LAYOUT_RATE = 16000
"""The sample rate of :func:`make_layout`'s corpora."""
SPEAKERS = (1, 2, 3, 4)
UTTERANCES = (1, 2)
# each corpus's own names of the package's emotions (neutral happy sad angry fearful disgust
# surprised), as its documentation gives them
PACKAGE_ORDER = EMOTIONS[:1] + EMOTIONS[2:]
CREMA = dict(zip(PACKAGE_ORDER, "NEU HAP SAD ANG FEA DIS".split()))
TESS = dict(zip(PACKAGE_ORDER, "neutral happy sad angry fear disgust ps".split()))
SAVEE = dict(zip(PACKAGE_ORDER, "n h sa a f d su".split()))
ESD = dict(zip(("neutral", "happy", "sad", "angry", "surprised"),
               "Neutral Happy Sad Angry Surprise".split()))
ESD_ORDER = ("neutral", "angry", "happy", "sad", "surprised")  # ESD's numbering blocks
SPEAKER_IDS = {"ravdess": ("01", "02", "03", "04"), "crema-d": ("1001", "1002", "1003", "1004"),
               "tess": ("OAF", "YAF", "MAF", "KAF"), "savee": ("DC", "JE", "JK", "KL"),
               "esd": ("0011", "0012", "0013", "0014")}
UTTERANCE_IDS = {"ravdess": ("01", "02"), "crema-d": ("DFA", "IEO"), "tess": ("back", "bar"),
                 "esd": ("001", "002")}


def layout_name(layout: str, speaker: int, emotion: str, utterance: int) -> str:
    """Where a recording lies in a corpus of ``layout`` (speaker 1-4, utterance 1-2)."""
    if layout == "ravdess":
        return (f"Actor_{speaker:02d}/"
                + ravdess_name(EMOTIONS.index(emotion) + 1, 1, utterance, 1, speaker))
    if layout == "crema-d":
        return f"{1000 + speaker}_{('DFA', 'IEO')[utterance - 1]}_{CREMA[emotion]}_XX.wav"
    if layout == "tess":
        who = SPEAKER_IDS["tess"][speaker - 1]
        return f"{who}_{emotion}/{who}_{('back', 'bar')[utterance - 1]}_{TESS[emotion]}.wav"
    if layout == "savee":  # both of SAVEE's forms: a speaker folder, or the speaker in the name
        who = SPEAKER_IDS["savee"][speaker - 1]
        name = f"{SAVEE[emotion]}{utterance:02d}.wav"
        return f"{who}/{name}" if speaker % 2 else f"flat/{who}_{name}"
    number = ESD_ORDER.index(emotion) * 350 + utterance
    return f"{speaker + 10:04d}/{ESD[emotion]}/{speaker + 10:04d}_{number:06d}.wav"


def make_layout(root: Path, layout: str) -> Path:
    """Four speakers saying two utterances in each of the layout's emotions: a tone per
    emotion, each speaker a little higher than the last."""
    labels = EMOTIONS if layout == "ravdess" else LABELS[layout]
    for speaker in SPEAKERS:
        for k, emotion in enumerate(labels):
            for utterance in UTTERANCES:
                path = root / layout_name(layout, speaker, emotion, utterance)
                path.parent.mkdir(parents=True, exist_ok=True)
                freq = 180.0 * (k + 1) * (1 + 0.02 * speaker)
                sf.write(path, tone(freq, 0.6 + 0.1 * utterance, LAYOUT_RATE, lead=0.1),
                         LAYOUT_RATE)
    return root
