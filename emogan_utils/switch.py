"""The emotion switch's engine: sources, one choice's translation and rendering, the caches.

:class:`SwitchEngine` computes everything one choice shows (three audio clips, the two log-mels,
the classifier's probabilities) and caches it, so a choice is never computed twice. Nothing here
imports ipywidgets: scripts, benchmarks and other front ends use the engine without it, and
:mod:`emogan_utils.widgets` is the ipywidgets view over it.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import soundfile as sf
from matplotlib.figure import Figure

from emogan_utils import plots
from emogan_utils.classifier_training import ClassifierTrainConfig
from emogan_utils.config import DEFAULT_VOCODER
from emogan_utils.converter_training import ConverterTrainConfig
from emogan_utils.data import INTENSITIES, STATEMENTS
from emogan_utils.features import AudioConfig, AudioError, read_audio
from emogan_utils.gan_training import GANTrainConfig
from emogan_utils.inference import (Classifier, Translator, load_classifier,
                                    predict)
from emogan_utils.threads import torch_threads
from emogan_utils.train import CLASSIFIER_FILE, CONVERTER_FILE, GAN_FILE

HOW_TO_TRAIN = {CLASSIFIER_FILE: ("notebook 03", "train-classifier"),
                GAN_FILE: ("notebook 04", "train-gan"),
                CONVERTER_FILE: ("notebook 05", "train-converter")}
"""For each checkpoint: the notebook and the CLI command that make it."""
PLAYERS = {"original": "original", "reconstruction": "the vocoder alone (no model)",
           "translation": "translation"}
"""The three audio players, by the :class:`SwitchResult` field each plays."""


@dataclass
class SwitchConfig:
    """Knobs of the emotion switch; the defaults keep one choice of a 4-s clip near 2 s on a CPU."""

    vocoder: str | None = None
    """The path first selected (the widget has a toggle); None: the translator's default."""
    griffin_lim_iters: int = 32
    """Interactive inversion; offline translation uses 64."""
    torch_threads: int | None = 1
    """Threads for torch while computing a choice (None: leave torch's setting). These tensors
    are small: one thread is as fast as two, and on a shared CPU two threads' OpenMP spin-waits
    made one choice 50 times slower (14 s instead of 0.3 s)."""
    strength_step: float = 0.1
    max_seconds: float = 8.0
    """Uploads are cut to this many seconds so that one choice stays interactive."""
    cache_size: int = 64
    """Choices kept (per-clip analyses are kept as many)."""
    figure_dpi: int = 72
    classifier_training: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig.quick)
    gan_training: GANTrainConfig = field(default_factory=GANTrainConfig.quick)
    converter_training: ConverterTrainConfig = field(default_factory=ConverterTrainConfig.quick)


# --- sources ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """A clip to translate; ``key`` names it in caches, ``emotion`` is None when unknown."""

    key: str
    name: str
    wave: np.ndarray = field(compare=False, repr=False)
    sample_rate: int
    emotion: str | None = None


def corpus_source(row: pd.Series) -> Source:
    """A corpus recording as a :class:`Source`, at its full length and own rate."""
    wave, rate = read_audio(row["path"])
    name = (f"actor {row['actor']}, \u201c{STATEMENTS[row['statement_id']]}\u201d, "
            f"{row['emotion']} ({INTENSITIES[row['intensity']]}), repetition {row['repetition']}")
    return Source(f"corpus:{Path(row['path']).resolve()}", name, wave, rate, row["emotion"])


def upload_source(name: str, content: bytes, max_seconds: float) -> Source:
    """An uploaded audio file as a :class:`Source`; :class:`AudioError` if it cannot be used."""
    wave, rate = read_audio(io.BytesIO(content), name=name)
    wave = wave[:int(max_seconds * rate)]
    if wave.size < rate // 10:
        raise AudioError(f"{name}: shorter than 0.1 s; upload a longer recording")
    digest = hashlib.sha1(content).hexdigest()[:16]
    return Source(f"upload:{digest}", f"upload \u201c{name}\u201d", wave, int(rate))


# --- computing one choice --------------------------------------------------------------------

def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """A mono waveform as 16-bit WAV file bytes (clipped, not normalised: loudness is a cue)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def png_bytes(fig: Figure, dpi: int) -> bytes:
    """A figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


@dataclass(frozen=True)
class Analysis:
    """What depends on the source clip only."""

    wave: np.ndarray
    mel_db: np.ndarray
    reconstruction: np.ndarray
    probabilities: dict[str, float]
    emotion: str
    """The known emotion, or for uploads the classifier's top guess."""


@dataclass(eq=False)
class SwitchResult:
    """Everything one choice shows; :meth:`render` adds the WAV and PNG bytes for the widgets."""

    source: str
    source_emotion: str
    target: str
    strength: float
    audio: AudioConfig
    original: np.ndarray
    reconstruction: np.ndarray
    translation: np.ndarray
    source_mel: np.ndarray
    translation_mel: np.ndarray
    original_probabilities: dict[str, float]
    translation_probabilities: dict[str, float]
    vocoder: str = DEFAULT_VOCODER
    seconds: float = 0.0
    """Time it took to compute and render, the first time."""
    wav: dict[str, bytes] = field(default_factory=dict, repr=False)
    png: dict[str, bytes] = field(default_factory=dict, repr=False)

    def spectrogram_figure(self) -> Figure:
        """Source and translated log-mels side by side on one colour scale."""
        return plots.plot_mel_comparison(
            {f"source ({self.source_emotion})": self.source_mel,
             f"translated to {self.target} (strength {self.strength:g})": self.translation_mel},
            self.audio, figsize=(10, 3))

    def probability_figure(self) -> Figure:
        """The classifier's probabilities for the original and the translation."""
        return plots.plot_probability_comparison(
            {"classifier on the original": self.original_probabilities,
             "classifier on the translation": self.translation_probabilities}, figsize=(10, 2.6))

    def render(self, dpi: int) -> None:
        """Encode the three clips as WAV and draw both figures as PNG."""
        rate = self.audio.sample_rate
        self.wav = {name: wav_bytes(getattr(self, name), rate) for name in PLAYERS}
        self.png = {"spectrograms": png_bytes(self.spectrogram_figure(), dpi),
                    "probabilities": png_bytes(self.probability_figure(), dpi)}


class _LRU:
    """A small least-recently-used cache that counts what it computes."""

    def __init__(self, size: int, counter: Counter, name: str):
        self.size, self.counter, self.name = size, counter, name
        self.items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = self.items[key] = compute()
        self.counter[self.name] += 1
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


class SwitchEngine:
    """Translate, invert and classify choices of (source, target, strength), each only once.

    ``computed`` counts the analyses and translations actually run, so callers (and tests) can
    see that a repeated choice costs nothing.
    """

    def __init__(self, translator: Translator, classifier: Classifier,
                 config: SwitchConfig = SwitchConfig()):
        self.translator, self.classifier, self.config = translator, classifier, config
        self.computed: Counter = Counter()
        self._analyses = _LRU(config.cache_size, self.computed, "analysis")
        self._results = _LRU(config.cache_size, self.computed, "translation")

    @property
    def sample_rate(self) -> int:
        return self.translator.audio.sample_rate

    def analyse(self, source: Source, vocoder: str | None = None) -> Analysis:
        """Source mel, its reconstruction by ``vocoder`` (default: the translator's) and the
        classifier's view (cached)."""
        vocoder = vocoder or self.translator.vocoder
        return self._analyses.get((source.key, vocoder), lambda: self._analyse(source, vocoder))

    def _analyse(self, source: Source, vocoder: str) -> Analysis:
        wave = self.translator.waveform(source.wave, source.sample_rate)
        mel_db = self.translator.mel(wave)
        probs = predict(wave, self.classifier, sample_rate=self.sample_rate)
        emotion = source.emotion or max(probs, key=probs.get)
        return Analysis(wave, mel_db, self.translator.resynthesize(wave, mel_db, vocoder), probs,
                        emotion)

    def result(self, source: Source, target: str, strength: float,
               vocoder: str | None = None) -> SwitchResult:
        """Everything the widget shows for one choice (cached by source, target, strength and
        vocoder; default: the translator's)."""
        strength = round(float(strength), 3)
        vocoder = self.translator.check_vocoder(vocoder or self.translator.vocoder)
        return self._results.get((source.key, target, strength, vocoder),
                                 lambda: self._compute(source, target, strength, vocoder))

    def _compute(self, source: Source, target: str, strength: float,
                 vocoder: str) -> SwitchResult:
        start = time.perf_counter()
        with torch_threads(self.config.torch_threads):
            analysis = self.analyse(source, vocoder)
            wave = self.translator.convert(analysis.wave, target, strength, analysis.emotion,
                                           analysis.mel_db, vocoder).wave
            mel_db = self.translator.mel(wave)  # what is heard: with the new pitch and tempo
            probs = predict(wave, self.classifier, sample_rate=self.sample_rate)
        result = SwitchResult(source.name, analysis.emotion, target, strength,
                              self.translator.audio, analysis.wave, analysis.reconstruction, wave,
                              analysis.mel_db, mel_db, analysis.probabilities, probs, vocoder)
        result.render(self.config.figure_dpi)
        result.seconds = time.perf_counter() - start
        return result


# --- models ----------------------------------------------------------------------------------

def load_engine(checkpoints: Path, config: SwitchConfig = SwitchConfig()) -> SwitchEngine:
    """A :class:`SwitchEngine` from ``checkpoints``/classifier.pt, gan.pt and (where it
    exists) converter.pt."""
    classifier = load_classifier(checkpoints / CLASSIFIER_FILE)
    converter = checkpoints / CONVERTER_FILE
    translator = Translator(checkpoints / GAN_FILE, audio=classifier.audio,
                            n_iter=config.griffin_lim_iters, vocoder=config.vocoder,
                            converter=converter if converter.is_file() else None)
    return SwitchEngine(translator, classifier, config)

