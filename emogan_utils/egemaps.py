"""The 88 eGeMAPS functionals (openSMILE's Geneva minimalistic acoustic parameter set,
extended) of a clip, cached per corpus and centred per speaker for the classifier's eGeMAPS
branch; and a second emotion judge, of another model family than the CNN: a support-vector
machine on the functionals standardised per speaker.

A conversion trained to please the package's own classifier can learn cues only that
classifier hears; a judge that sees hand-made acoustic statistics through a different model
checks that the emotion is really there.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emogan_utils import storage
from emogan_utils.features import AudioConfig, load_audio, trim_silence

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

N_FUNCTIONALS = 88


@functools.lru_cache(maxsize=1)
def _smile():
    """openSMILE's eGeMAPS v02 functionals extractor (its binary and configs ship in the wheel)."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


TRIM_DB = 40.0
"""Leading and trailing audio this far below the peak (or the zeros a fixed-length clip is
padded with) is cut before the functionals, so padding never counts as a pause."""


def egemaps(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The 88 eGeMAPS functionals of a mono clip's speech (trimmed at :data:`TRIM_DB`),
    float64; NaN (a silent clip has no pitch statistics) become 0."""
    wave = trim_silence(np.asarray(wave, np.float32), TRIM_DB)
    if wave.ndim != 1 or wave.size < sample_rate // 10:
        raise ValueError(f"eGeMAPS needs a 1-D clip of at least 0.1 s, got shape {wave.shape}")
    values = _smile().process_signal(wave, sample_rate).to_numpy(np.float64)[0]
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def corpus_egemaps(table: pd.DataFrame, audio: AudioConfig,
                   cache_dir: str | os.PathLike | None = None,
                   progress: bool = True) -> np.ndarray:
    """``(N, 88)`` functionals of each recording of ``table`` (loaded as in training: trimmed,
    full length), kept in ``cache_dir`` under a hash of the samples."""
    found = []
    for path in tqdm(table["path"], desc="eGeMAPS", unit="clip", disable=not progress):
        wave = load_audio(path, audio, fixed_length=False)
        found.append(_cached(wave, audio.sample_rate, cache_dir))
    return np.stack(found)


def _cached(wave: np.ndarray, sample_rate: int, cache_dir: str | os.PathLike | None) -> np.ndarray:
    if cache_dir is None:
        return egemaps(wave, sample_rate)
    key = hashlib.sha1(np.ascontiguousarray(wave, np.float32).tobytes()
                       + f"egemaps-v02:{sample_rate}:{TRIM_DB}".encode()).hexdigest()
    return storage.cached_npy(Path(cache_dir) / f"{key}.npy",
                              lambda: egemaps(wave, sample_rate), (N_FUNCTIONALS,))


@dataclass(frozen=True)
class SpeakerStats:
    """Mean and spread of each functional over one speaker's clips."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> "SpeakerStats":
        return cls(features.mean(axis=0), features.std(axis=0) + 1e-8)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std


def per_speaker(features: np.ndarray, speakers: Sequence) -> dict:
    """:class:`SpeakerStats` of each speaker's rows of ``features``."""
    speakers = np.asarray(speakers)
    return {s: SpeakerStats.fit(features[speakers == s]) for s in np.unique(speakers)}


def standardised(features: np.ndarray, speakers: Sequence, stats: dict) -> np.ndarray:
    """Each row standardised with its speaker's statistics."""
    return np.stack([stats[s](row) for row, s in zip(features, speakers)])


def speaker_means(features: np.ndarray, speakers: Sequence) -> dict:
    """Each speaker's mean functionals over their rows of ``features``."""
    speakers = np.asarray(speakers)
    return {s: features[speakers == s].mean(axis=0) for s in np.unique(speakers)}


def centred(features: np.ndarray, speakers: Sequence, means: dict | None = None) -> np.ndarray:
    """Each row minus its speaker's mean functionals (``means``, by default the mean of the
    speaker's rows here): what the classifier's eGeMAPS branch reads. Unlike a
    standardisation, a mean is steady over the four clips a speaker may be enrolled with."""
    means = speaker_means(features, speakers) if means is None else means
    return np.asarray(features, np.float64) - np.stack([means[s] for s in speakers])


@dataclass
class EgemapsJudge:
    """An RBF support-vector machine on per-speaker standardised eGeMAPS functionals."""

    model: "Pipeline"
    labels: tuple[str, ...]

    @classmethod
    def fit(cls, features: np.ndarray, speakers: Sequence, emotions: Sequence[str],
            labels: Sequence[str], seed: int = 0,
            probability: bool = False) -> "EgemapsJudge":
        """Train on ``features`` ``(N, 88)`` of clips of ``speakers`` with ``emotions``; each
        speaker is standardised with the statistics of their own clips. ``probability``
        calibrates the SVM's scores into probabilities (sigmoid, cross-validated), for
        :meth:`probabilities`; it trains slower and predicts by the calibrated scores."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        x = standardised(features, speakers, per_speaker(features, speakers))
        y = np.array([list(labels).index(e) for e in emotions])
        if len(set(y.tolist())) < 2:
            raise ValueError("the eGeMAPS judge needs clips of at least two emotions")
        svm = SVC(C=1.0, kernel="rbf", class_weight="balanced", random_state=seed)
        model = make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, ensemble=False)
                              if probability else svm)
        return cls(model.fit(x, y), tuple(labels))

    def predict(self, features: np.ndarray, speakers: Sequence, stats: dict) -> np.ndarray:
        """Label indices of clips whose speakers' statistics are ``stats``
        (:func:`per_speaker` of unlabelled clips of the same speakers)."""
        return self.model.predict(standardised(features, speakers, stats))

    def probabilities(self, features: np.ndarray, speakers: Sequence, stats: dict) -> np.ndarray:
        """``(N, len(labels))`` emotion probabilities, as :meth:`predict` standardises; needs a
        judge fitted with ``probability``."""
        proba = self.model.predict_proba(standardised(features, speakers, stats))
        out = np.zeros((len(proba), len(self.labels)))
        out[:, self.model.classes_] = proba
        return out
