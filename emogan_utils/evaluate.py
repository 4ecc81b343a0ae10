"""Evaluation: metrics as pure functions (classification, then translation), the judges that
hear the emotion in a clip, and the drivers that evaluate a classifier and a translator."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence

import librosa
import numpy as np
import pandas as pd
from scipy.fft import dct
from tqdm.auto import tqdm

from emogan_utils.checkpoint import CheckpointError, check_labels
from emogan_utils.data import EMOTIONS, corpus_labels, emotion_id, translation_items
from emogan_utils.egemaps import EgemapsJudge, corpus_egemaps, egemaps, per_speaker
from emogan_utils.features import (AudioConfig, Normalizer, fit_per_speaker, load_audio, log_mel,
                                   prepare_waveform)
from emogan_utils.inference import (Classifier, ContourTranslator, Translator,
                                    corpus_probabilities)
from emogan_utils.inversion import reconstruct
from emogan_utils.world import WorldConfig, analyze, coded_mel_cepstra


# --- classification metrics ------------------------------------------------------------------


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int],
                     n_classes: int = len(EMOTIONS)) -> np.ndarray:
    """Counts ``(n_classes, n_classes)``: row = true class, column = predicted class."""
    y_true, y_pred = _labels(y_true, y_pred, n_classes)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of predictions equal to the true label."""
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for classes with no true examples."""
    matrix = np.asarray(matrix, dtype=np.float64)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def unweighted_average_recall(y_true: Sequence[int], y_pred: Sequence[int],
                              n_classes: int = len(EMOTIONS)) -> float:
    """UAR: the mean of per-class recalls over the classes present in ``y_true``."""
    return float(np.nanmean(per_class_recall(confusion_matrix(y_true, y_pred, n_classes))))


def classification_report(y_true: Sequence[int], y_pred: Sequence[int],
                          labels: Sequence[str] = EMOTIONS) -> dict:
    """Accuracy, UAR, n, confusion matrix (nested lists) and per-emotion recall, JSON-ready."""
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    recall = per_class_recall(matrix)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "uar": float(np.nanmean(recall)),
        "n": int(matrix.sum()),
        "labels": list(labels),
        "confusion": matrix.tolist(),
        "recall": {name: (None if np.isnan(r) else float(r)) for name, r in zip(labels, recall)},
    }


def evaluate_classifier(classifier: Classifier, table: pd.DataFrame,
                        cache_dir: str | os.PathLike | None = None,
                        progress: bool = True) -> dict:
    """:func:`classification_report` of a classifier on the clips of a corpus table.

    In ``speaker`` mode each actor is standardised with the statistics of their own clips in
    ``table`` (unlabelled, as in speaker-independent evaluation); an eGeMAPS branch's verdict
    is averaged in (:func:`~emogan_utils.inference.corpus_probabilities`).
    """
    if table.empty:
        raise ValueError("no clips to evaluate the classifier on")
    check_labels(classifier.path, classifier.labels, corpus_labels(table))
    probs, table = corpus_probabilities(classifier, table, cache_dir, progress)
    truth = np.array([classifier.labels.index(e) for e in table["emotion"]], np.int64)
    report = classification_report(truth, probs.argmax(axis=1), classifier.labels)
    report["actors"] = sorted(set(table["actor"].astype(int).tolist()))
    return report


def _labels(y_true: Sequence[int], y_pred: Sequence[int],
            n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate two equally long, non-empty integer label vectors (within ``n_classes``)."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("no labels to score")
    if n_classes is not None:
        bad = np.concatenate([y_true, y_pred])
        bad = bad[(bad < 0) | (bad >= n_classes)]
        if bad.size:
            raise ValueError(f"labels {sorted(set(bad.tolist()))} outside 0..{n_classes - 1}")
    return y_true, y_pred


# --- translation metrics ---------------------------------------------------------------------


def mel_cepstrum(signal: np.ndarray, config: AudioConfig = AudioConfig(), n_coeffs: int = 13,
                 dynamic_range_db: float | None = 60.0) -> np.ndarray:
    """Mel-cepstral coefficients c1..c(n_coeffs-1), ``(n_coeffs - 1, T)``, of a waveform or log-mel.

    ``signal`` is a 1-D waveform or an ``(n_mels, T)`` log-mel in dB. The cepstrum is taken of the
    natural-log amplitude mel spectrum and scaled so that ``log|X(w)| = c0 + 2 sum_k c_k cos(k w)``:
    SPTK's mel-cepstrum convention, the one the usual MCD formula assumes (librosa's MFCCs, an
    orthonormal DCT of dB, are ``20 / ln 10 * sqrt(2 n_mels)`` ~ 110 times larger). c0, the
    loudness, is dropped as usual for MCD.

    Bins more than ``dynamic_range_db`` below the loudest are raised to that level (None: kept):
    otherwise near-silent bins at the dB floor dominate, and white noise 60 dB below full scale
    moved the MCD of a RAVDESS clip as much as changing the speaker did (4.1 dB).
    """
    if not 2 <= n_coeffs <= config.n_mels:
        raise ValueError(f"n_coeffs must be in 2..{config.n_mels}, got {n_coeffs}")
    mel_db = _as_log_mel(signal, config)
    if dynamic_range_db is not None:
        mel_db = np.maximum(mel_db, mel_db.max() - dynamic_range_db)
    log_amplitude = mel_db * (np.log(10.0) / 20.0)
    return dct(log_amplitude, type=2, axis=0)[1:n_coeffs] / (2 * config.n_mels)


def mcd_dtw(signal_a: np.ndarray, signal_b: np.ndarray, config: AudioConfig = AudioConfig(),
            n_coeffs: int = 13) -> float:
    """Mel-cepstral distortion in dB between two waveforms (or log-mels), aligned by DTW.

    Per aligned frame pair ``10 / ln 10 * sqrt(2 * sum_k (a_k - b_k)^2)`` over
    :func:`mel_cepstrum`, averaged along the DTW path. Frames more than ``config.trim_db`` below
    a clip's loudest frame (silence, padding) are left out first, so that two stretches of
    silence do not dilute the figure.
    """
    a, b = (mel_cepstrum(_loud_frames(_as_log_mel(s, config), config.trim_db), config, n_coeffs)
            for s in (signal_a, signal_b))
    path = dtw_path(a, b)
    return mel_cepstral_distortion(a[:, path[:, 0]], b[:, path[:, 1]])


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Index pairs ``(steps, 2)``, in time order, of the DTW alignment of two feature sequences
    ``(dims, T_a)`` and ``(dims, T_b)`` (Euclidean frame distance)."""
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    return path[::-1]


def mel_cepstral_distortion(a: np.ndarray, b: np.ndarray) -> float:
    """MCD in dB between aligned mel-cepstra ``(dims, T)`` without c0: the mean over frames of
    ``10 / ln 10 * sqrt(2 * sum_k (a_k - b_k)^2)``."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(10.0 / np.log(10.0) * np.mean(np.sqrt(2.0 * np.sum(diff ** 2, axis=0))))


def f0_rmse_cents(f0_a: np.ndarray, f0_b: np.ndarray) -> float:
    """RMS difference in cents of two aligned F0 contours (Hz, 0 = unvoiced) over the frames
    voiced in both; NaN when there is none."""
    a, b = _both_voiced(f0_a, f0_b)
    return float(np.sqrt(np.mean((1200.0 * np.log2(a / b)) ** 2))) if a.size else float("nan")


def f0_correlation(f0_a: np.ndarray, f0_b: np.ndarray) -> float:
    """Pearson correlation of log-F0 of two aligned contours over the frames voiced in both;
    NaN with fewer than two such frames or a flat contour."""
    a, b = _both_voiced(f0_a, f0_b)
    if a.size < 2 or np.ptp(np.log(a)) == 0 or np.ptp(np.log(b)) == 0:
        return float("nan")
    return float(np.corrcoef(np.log(a), np.log(b))[0, 1])


def _both_voiced(f0_a: np.ndarray, f0_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(f0_a, np.float64), np.asarray(f0_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"F0 contours must be aligned: shapes {a.shape} and {b.shape}")
    voiced = (a > 0) & (b > 0)
    return a[voiced], b[voiced]


METRIC_WORLD = WorldConfig(frame_period_ms=5.0, f0_method="dio")
"""WORLD analysis for the translation metrics (dio with stonemask: every clip of a benchmark)."""
SILENCE_PEAK = 1e-4
"""Clips whose peak stays below this (-80 dBFS) count as silent: no WORLD distances."""
WORLD_MCEP_ORDER = 24
"""Mel-cepstral coefficients c1..c24 in the WORLD MCD, as emotional voice conversion papers use."""


WorldFeatures = tuple[np.ndarray, np.ndarray]
"""Mel-cepstra ``(24, frames)`` and F0 (Hz, 0 where unvoiced) of a clip's loud WORLD frames."""


def world_features(wave: np.ndarray, sample_rate: int,
                   top_db: float = 40.0) -> WorldFeatures | None:
    """What :func:`world_distances` compares of one clip: WORLD's coded mel-cepstra c1..c24
    (:func:`~emogan_utils.world.coded_mel_cepstra`) and F0 of the frames within ``top_db`` of
    its loudest; None for a silent clip (peak below :data:`SILENCE_PEAK`)."""
    if np.max(np.abs(wave), initial=0.0) < SILENCE_PEAK:
        return None
    frames = analyze(wave, sample_rate, METRIC_WORLD)
    power_db = 10.0 * np.log10(frames.envelope.sum(axis=1) + 1e-20)
    loud = power_db >= power_db.max() - top_db
    cepstra = coded_mel_cepstra(frames.envelope[loud], sample_rate, WORLD_MCEP_ORDER)
    return cepstra.T, frames.f0[loud]


def world_distances(wave: np.ndarray, reference: np.ndarray, sample_rate: int,
                    top_db: float = 40.0) -> dict[str, float]:
    """MCD on WORLD mel-cepstra and F0 RMSE (cents) and correlation of ``wave`` against
    ``reference``, along one DTW alignment of their mel-cepstra (:func:`world_features`).

    These MCD figures are on another scale than :func:`mcd_dtw`'s (80-band filterbank
    cepstra): never compare one with the other. All three are NaN for a silent clip, the F0
    figures where no aligned frame is voiced in both.
    """
    return _world_distances(world_features(wave, sample_rate, top_db),
                            world_features(reference, sample_rate, top_db))


def _world_distances(a: WorldFeatures | None, b: WorldFeatures | None) -> dict[str, float]:
    """:func:`world_distances` of two clips' :func:`world_features`."""
    if a is None or b is None:
        return {"mcd_world": float("nan"), "f0_rmse_cents": float("nan"),
                "f0_corr": float("nan")}
    (mcep_a, f0_a), (mcep_b, f0_b) = a, b
    path = dtw_path(mcep_a, mcep_b)
    f0_a, f0_b = f0_a[path[:, 0]], f0_b[path[:, 1]]
    return {"mcd_world": mel_cepstral_distortion(mcep_a[:, path[:, 0]], mcep_b[:, path[:, 1]]),
            "f0_rmse_cents": f0_rmse_cents(f0_a, f0_b), "f0_corr": f0_correlation(f0_a, f0_b)}


DNSMOS_RATE = 16000


def dnsmos(wave: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 predictions (``ovrl``, ``sig``, ``bak``; 1-5) of a clip, from the ONNX
    models that the ``speechmos`` package ships; resampled to 16 kHz first. A silent clip gets
    NaN."""
    from speechmos import dnsmos as model

    wave = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)
    if sample_rate != DNSMOS_RATE:
        wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=DNSMOS_RATE)
    if not np.any(wave):
        return {"ovrl": float("nan"), "sig": float("nan"), "bak": float("nan")}
    scores = model.run(wave, DNSMOS_RATE)
    return {"ovrl": float(scores["ovrl_mos"]), "sig": float(scores["sig_mos"]),
            "bak": float(scores["bak_mos"])}


@functools.lru_cache(maxsize=1)
def _voice_encoder():
    """Resemblyzer's speaker encoder on the CPU (its weights ship in the package)."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(wave: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Resemblyzer d-vector (unit length) of a clip after its voice-activity trimming; None
    when no speech is left."""
    from resemblyzer import preprocess_wav

    speech = preprocess_wav(np.asarray(wave, np.float32), source_sr=sample_rate)
    if speech.size < 1600:  # under 0.1 s of speech: no embedding to speak of
        return None
    return _voice_encoder().embed_utterance(speech)


def speaker_similarity(wave_a: np.ndarray, wave_b: np.ndarray, sample_rate: int) -> float:
    """Cosine similarity of the Resemblyzer d-vectors of two clips (1: the same voice; two
    different RAVDESS actors score about 0.5); NaN if either has no speech."""
    return _cosine(*(speaker_embedding(w, sample_rate) for w in (wave_a, wave_b)))


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine of two vectors; NaN if either is missing."""
    if a is None or b is None:
        return float("nan")
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def f0_stats(wave: np.ndarray, sample_rate: int, fmin: float = 65.0,
             fmax: float = 800.0) -> dict[str, float]:
    """Mean F0, its range (95th - 5th percentile) over voiced frames, and the voiced fraction.

    pYIN at 0.2-semitone resolution with 50 thresholds: ~0.14 s per 3-s clip on a shared 2-core
    CPU, a quarter of librosa's defaults (0.55 s) for the same mean F0 within 0.2 % on speech;
    plain YIN is faster but has no voicing decision. Mean and range are NaN when nothing is voiced.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"f0_stats expects a non-empty 1-D waveform, got shape {wave.shape}")
    frame_length = round(0.064 * sample_rate)  # 64 ms: two periods of the lowest F0 fit easily
    f0, voiced, _ = librosa.pyin(wave, fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=frame_length, hop_length=frame_length // 4,
                                 resolution=0.2, n_thresholds=50)
    f0 = f0[voiced & np.isfinite(f0)]
    if f0.size == 0:
        return {"mean_hz": float("nan"), "range_hz": float("nan"), "voiced_fraction": 0.0}
    low, high = np.percentile(f0, [5, 95])
    return {"mean_hz": float(f0.mean()), "range_hz": float(high - low),
            "voiced_fraction": float(f0.size / voiced.size)}


def _as_log_mel(signal: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(n_mels, T)`` log-mel in dB: computed from a 1-D waveform, passed through if given."""
    array = np.asarray(signal, dtype=np.float32)
    if array.ndim == 1:
        return log_mel(array, config)
    if array.ndim == 2 and array.shape[0] == config.n_mels:
        return array
    raise ValueError(f"expected a 1-D waveform or an (n_mels={config.n_mels}, T) log-mel in dB, "
                     f"got shape {array.shape}")


def _loud_frames(mel_db: np.ndarray, top_db: float | None) -> np.ndarray:
    """The frames whose loudest bin is within ``top_db`` of the clip's loudest (all if None)."""
    if top_db is None:
        return mel_db
    level = mel_db.max(axis=0)
    return mel_db[:, level >= level.max() - top_db]


def transfer(source: float, converted: float, target: float) -> float:
    """How far a conversion moves a judge from the source towards the real target:
    (converted - source) / (target - source); 1 for the real target, 0 for the source, NaN
    when the judge hears the target no more often in the real target than in the source."""
    gap = target - source
    return float((converted - source) / gap) if gap > 1e-9 else float("nan")


def active_level_db(wave: np.ndarray, sample_rate: int, top_db: float = 40.0) -> float:
    """Level in dB (full scale) of the active speech of a clip: the mean power of its 20-ms
    frames within ``top_db`` of the loudest; NaN for a silent clip."""
    wave = np.asarray(wave, np.float64)
    frame = max(1, sample_rate // 50)
    n = len(wave) // frame
    if n == 0:
        return float("nan")
    power = np.mean(wave[:n * frame].reshape(n, frame) ** 2, axis=1)
    if power.max() <= 0:
        return float("nan")
    power_db = 10.0 * np.log10(power + 1e-20)
    return float(10.0 * np.log10(np.mean(power[power_db >= power_db.max() - top_db])))


# --- judges: who hears the emotion in a clip -------------------------------------------------

Judge = Callable[[Sequence[np.ndarray], Sequence[int]], np.ndarray]
"""``classify(waveforms, actors) -> labels``: places in ``EMOTIONS`` (RAVDESS id - 1)."""


def classifier_judge(classifiers: Classifier | Sequence[Classifier], sample_rate: int,
                     reference: pd.DataFrame | None = None) -> Judge:
    """A :data:`Judge` of one or several classifiers, for :func:`evaluate_translation`.

    Several classifiers judge together: their probabilities are averaged, which steadies a
    verdict that one training run alone would sway. With a ``reference`` corpus table, a
    ``speaker``-mode classifier standardises each actor with the statistics of all their
    recordings there (unlabelled, as in its speaker-independent evaluation); otherwise every
    clip gets the training split's global statistics, as a single clip of an unknown speaker
    does in :func:`predict`.

    The labels returned are RAVDESS ids - 1 (places in ``EMOTIONS``), whatever the judges'
    label set, so verdicts compare with ``emotion_id(target) - 1``; judges must share one label
    set, and a ``reference`` corpus with emotions they do not know is refused.
    """
    judges = [classifiers] if isinstance(classifiers, Classifier) else list(classifiers)
    labels = judges[0].labels
    for judge in judges:
        if judge.labels != labels:
            raise CheckpointError(f"{judge.path}: made for the emotions {', '.join(judge.labels)}"
                                  f", but {judges[0].path} for {', '.join(labels)}; judges "
                                  "must share one label set")
        if reference is not None:
            check_labels(judge.path, judge.labels, corpus_labels(reference))
    unknown = [e for e in labels if e not in EMOTIONS]
    if unknown:
        raise ValueError(f"{judges[0].path}: emotions {unknown} are not the package's "
                         f"({', '.join(EMOTIONS)}), so its verdicts cannot be compared with "
                         "translation targets")
    to_package = np.array([EMOTIONS.index(e) for e in labels])
    # per kind of input (audio parameters, prosody tracks or not), not per judge
    speakers: dict[tuple[AudioConfig, bool], dict[int, Normalizer]] = {}
    if reference is not None:
        for c in judges:
            if c.norm_mode == "speaker" and (c.audio, c.prosody) not in speakers:
                x, rows = c.corpus_inputs(reference, progress=False)
                speakers[c.audio, c.prosody] = fit_per_speaker(x, rows["actor"].to_numpy())

    def classify(waves: Sequence[np.ndarray], actors: Sequence[int]) -> np.ndarray:
        inputs: dict[tuple[AudioConfig, bool], np.ndarray] = {}
        for c in judges:
            if (c.audio, c.prosody) not in inputs:
                inputs[c.audio, c.prosody] = c.inputs(
                    np.stack([prepare_waveform(w, sample_rate, c.audio) for w in waves]))
        total = np.zeros((len(waves), len(labels)))
        for classifier in judges:
            kind = classifier.audio, classifier.prosody
            known = speakers.get(kind) if classifier.norm_mode == "speaker" else None
            # without reference statistics, clips get the global ones (actors=None)
            total += classifier.probabilities(inputs[kind], actors if known else None, known)
        return to_package[total.argmax(1)]
    return classify


def fit_egemaps_judge(table: pd.DataFrame, audio: AudioConfig = AudioConfig(),
                      cache_dir: str | os.PathLike | None = None,
                      progress: bool = True) -> EgemapsJudge:
    """An :class:`~emogan_utils.egemaps.EgemapsJudge` trained on every clip of ``table``
    (its speakers standardised with their own clips' statistics)."""
    features = corpus_egemaps(table, audio, cache_dir, progress)
    return EgemapsJudge.fit(features, table["actor"].to_numpy(), table["emotion"],
                            corpus_labels(table))


def egemaps_judge(judge: EgemapsJudge, sample_rate: int, reference: pd.DataFrame,
                  audio: AudioConfig = AudioConfig(),
                  cache_dir: str | os.PathLike | None = None) -> Judge:
    """A :data:`Judge` from an eGeMAPS judge: each clip is standardised with the statistics of
    all its actor's recordings in ``reference`` (unlabelled), as :func:`classifier_judge`
    does for a classifier in ``speaker`` mode."""
    unknown = [e for e in judge.labels if e not in EMOTIONS]
    if unknown:
        raise ValueError(f"the eGeMAPS judge knows emotions {unknown} outside the package's")
    to_package = np.array([EMOTIONS.index(e) for e in judge.labels])
    stats = per_speaker(corpus_egemaps(reference, audio, cache_dir, progress=False),
                        reference["actor"].to_numpy())

    def classify(waves: Sequence[np.ndarray], actors: Sequence[int]) -> np.ndarray:
        missing = sorted(set(actors) - set(stats))
        if missing:
            raise ValueError(f"no reference recordings of actors {missing} to standardise with")
        features = np.stack([egemaps(np.asarray(w, np.float32), sample_rate) for w in waves])
        return to_package[judge.predict(features, list(actors), stats)]
    return classify


# --- translation evaluation ------------------------------------------------------------------


def evaluate_translation(translator: Translator | ContourTranslator,
                         judges: Judge | dict[str, Judge],
                         table: pd.DataFrame, source: str = "neutral",
                         targets: Sequence[str] | None = None, max_sources: int | None = None,
                         progress: bool = True) -> dict[str, dict]:
    """How well ``translator`` converts ``source`` recordings of ``table`` into each target.

    ``judges`` (by name; one alone is called ``classifier``) map waveforms and their actors
    to predicted labels (:func:`classifier_judge`, :func:`egemaps_judge`); they should be
    trained apart from the translator, and of more than one model family: a conversion
    trained to please one judge can learn cues only that judge hears. Per target emotion and
    on average (keys ``<measure>_<audio>``, audio being
    ``converted``, ``source``, ``target`` (the real recording of the same actor and sentence),
    ``source_resynth`` (the source through the translator's vocoder with no conversion: the
    vocoder's own ceiling) or ``target_griffin_lim``):

    - ``accuracy_<audio>_<judge>``: how often the judge hears the target emotion;
    - ``transfer_<judge>``: the emotion transfer, (converted - source) / (target - source)
      of those accuracies (:func:`transfer`; in ``mean``, of the mean accuracies);
    - ``level_change_db_*``: active-speech level minus the source's (:func:`active_level_db`)
      for ``converted`` and ``target``;
    - ``dnsmos_{ovrl,sig,bak}_*``: predicted naturalness (:func:`dnsmos`);
    - ``speaker_similarity_*``: Resemblyzer cosine to the source (:func:`speaker_similarity`);
      for ``target``, the actor's own change of emotion, the reference a conversion should reach;
    - ``mcd_*``: filterbank MCD against the real target (:func:`mcd_dtw`), with
      ``mcd_target_repeat`` the target's other take against it (a conversion can hardly get
      closer);
    - ``mcd_world_*``, ``f0_rmse_cents_*``, ``f0_corr_*``: WORLD mel-cepstral distortion and
      F0 error against the DTW-aligned real target (:func:`world_distances`);
    - ``f0_{mean,range}_hz_*`` (:func:`f0_stats`) and ``seconds_per_clip_converted``.

    All audio is loaded as in training (trimmed, fixed length); converted audio keeps the
    length the translator gives it (the judge crops or pads); ``max_sources`` as in
    :func:`translation_items`.
    """
    audio = translator.audio
    rate = audio.sample_rate
    judges = judges if isinstance(judges, dict) else {"classifier": judges}
    if targets is None:  # the emotions the generator knows (a stand-in may not say)
        targets = getattr(translator, "labels", None)
    items = translation_items(table, source, targets, max_sources)
    sources = sorted(set(items["source_path"]))
    waves = {p: load_audio(p, audio) for p in sources}
    per_source = {p: {"f0": f0_stats(w, rate), "dnsmos": dnsmos(w, rate),
                      "dnsmos_resynth": dnsmos(translator.resynthesize(w), rate),
                      "speaker": speaker_embedding(w, rate), "world": world_features(w, rate)}
                  for p, w in tqdm(waves.items(), desc="sources", unit="clip",
                                   disable=not progress)}
    per_emotion = {}
    for target, rows in tqdm(items.groupby("target", sort=False), desc="evaluate translation",
                             unit="emotion", disable=not progress):
        label = emotion_id(target) - 1
        src = np.stack([waves[p] for p in rows["source_path"]])
        real = np.stack([load_audio(p, audio) for p in rows["target_path"]])
        start = time.perf_counter()
        # the tempo change makes these longer or shorter than their sources
        converted = [translator.convert(w, target, 1.0, source).wave for w in src]
        seconds = (time.perf_counter() - start) / len(converted)
        real_gl = reconstruct(real, audio, n_iter=translator.n_iter).numpy()
        stats = {"n": len(rows), "seconds_per_clip_converted": seconds}
        for judge, classify in judges.items():
            for name, batch in (("source", src), ("converted", converted), ("target", real),
                                ("target_griffin_lim", real_gl)):
                predicted = np.asarray(classify(batch, rows["actor"].to_numpy()))
                stats[f"accuracy_{name}_{judge}"] = float(np.mean(predicted == label))
            stats[f"transfer_{judge}"] = transfer(*(stats[f"accuracy_{name}_{judge}"]
                                                    for name in ("source", "converted", "target")))
        levels = [active_level_db(w, rate) for w in src]
        for name, batch in (("converted", converted), ("target", real)):
            stats[f"level_change_db_{name}"] = _mean_of_known([
                active_level_db(w, rate) - before for w, before in zip(batch, levels)])
        known = [per_source[p] for p in rows["source_path"]]
        scores = {"source": [k["dnsmos"] for k in known],
                  "source_resynth": [k["dnsmos_resynth"] for k in known],
                  "converted": [dnsmos(w, rate) for w in converted],
                  "target": [dnsmos(w, rate) for w in real]}
        for name, found in scores.items():
            for scale in ("ovrl", "sig", "bak"):
                stats[f"dnsmos_{scale}_{name}"] = _mean_of_known([f[scale] for f in found])
        for name, batch in (("converted", converted), ("target", real)):
            stats[f"speaker_similarity_{name}"] = _mean_of_known([
                _cosine(speaker_embedding(w, rate), k["speaker"]) for w, k in zip(batch, known)])
        stats["mcd_converted"] = _mean_of_known([mcd_dtw(c, r, audio)
                                                 for c, r in zip(converted, real)])
        stats["mcd_source"] = _mean_of_known([mcd_dtw(s, r, audio) for s, r in zip(src, real)])
        stats["mcd_target_repeat"] = _mean_of_known([
            mcd_dtw(load_audio(other, audio), r, audio) if pd.notna(other) else np.nan
            for other, r in zip(rows["repeat_path"], real)])
        real_world = [world_features(r, rate) for r in real]
        for name, features in (("converted", [world_features(w, rate) for w in converted]),
                               ("source", [k["world"] for k in known])):
            found = [_world_distances(f, r) for f, r in zip(features, real_world)]
            for key in ("mcd_world", "f0_rmse_cents", "f0_corr"):
                stats[f"{key}_{name}"] = _mean_of_known([f[key] for f in found])
        pitch = {"source": [k["f0"] for k in known],
                 "converted": [f0_stats(w, rate) for w in converted],
                 "target": [f0_stats(w, rate) for w in real]}
        for name, found in pitch.items():
            for stat in ("mean_hz", "range_hz"):
                stats[f"f0_{stat}_{name}"] = _mean_of_known([s[stat] for s in found])
        per_emotion[target] = stats
    mean = {k: _mean_of_known([s[k] for s in per_emotion.values()])
            for k in next(iter(per_emotion.values())) if k != "n"}
    for judge in judges:
        mean[f"transfer_{judge}"] = transfer(*(mean[f"accuracy_{name}_{judge}"]
                                               for name in ("source", "converted", "target")))
    return {"source": source, "n_sources": len(sources), "vocoder": translator.vocoder,
            "emotions": per_emotion, "mean": mean}


def _mean_of_known(values: Sequence[float]) -> float:
    """Mean ignoring NaN (unvoiced clips have no F0); NaN, without a warning, if all are."""
    known = np.asarray(values, dtype=np.float64)
    known = known[~np.isnan(known)]
    return float(known.mean()) if known.size else float("nan")


def translation_table(result: dict[str, dict]) -> pd.DataFrame:
    """The per-emotion results of :func:`evaluate_translation` plus a 'mean' row, as a table."""
    rows = {**result["emotions"], "mean": result["mean"]}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


HEADLINE_MEASURES = ("accuracy_converted_classifier", "accuracy_converted_egemaps",
                     "transfer_classifier", "transfer_egemaps", "level_change_db_converted",
                     "level_change_db_target", "dnsmos_ovrl_converted", "dnsmos_ovrl_source_resynth",
                     "speaker_similarity_converted", "speaker_similarity_target",
                     "mcd_converted", "mcd_source", "mcd_world_converted", "mcd_world_source",
                     "f0_rmse_cents_converted", "f0_rmse_cents_source", "f0_corr_converted",
                     "seconds_per_clip_converted")
"""The measures :func:`translation_comparison` shows, one row each."""


def translation_comparison(results: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """The mean of each headline measure (rows) for several :func:`evaluate_translation`
    results (columns, named by ``results``' keys): vocoders or settings side by side."""
    return pd.DataFrame({name: {k: result["mean"].get(k, np.nan) for k in HEADLINE_MEASURES}
                         for name, result in results.items()}).round(3)
