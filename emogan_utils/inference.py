"""Using trained models: emotion probabilities of a clip, and emotion translation."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emogan_utils.checkpoint import CheckpointError, build_model, load_checkpoint
from emogan_utils.config import DEFAULT_VOCODER, VOCODERS
from emogan_utils.data import EMOTIONS, emotion_name, seen_actors
from emogan_utils.egemaps import centred, corpus_egemaps, egemaps
from emogan_utils.features import (AudioConfig, LogMel, Normalizer, active_frames,
                                   frame_energy_db, load_audio, log_mel,
                                   match_level, prepare_waveform, require_speech,
                                   speech_segments, stack_fixed_length, window_starts)
from emogan_utils.inputs import corpus_inputs, standardize, waveform_inputs
from emogan_utils.inversion import griffin_lim
from emogan_utils.contours import (CONTOUR_WORLD, CepstralStats, Contours, apply_contours,
                                   contours, converted_contours, converter_inputs, decimated,
                                   retime, upsampled)
from emogan_utils.models import (ClassifierConfig, ContourConverter, ConverterConfig,
                                 EmotionClassifier, EnsembleClassifier, FunctionalsClassifier,
                                 FunctionalsConfig, GeneratorConfig, UNetGenerator,
                                 batched_logits, converter_code)
from emogan_utils.prosody import (EmotionProsody, ProsodyShift, apply_prosody,
                                  clip_prosody, convert_f0, remaining_semitones, stretch_mel)
from emogan_utils.runtime import pick_device
from emogan_utils.world import (EnvelopeEdit, WorldConfig, WorldFrames, analyze,
                                mel_gain_to_envelope, stretch_frames, synthesize)

# --- emotion classifier ------------------------------------------------------------------


@dataclass
class Classifier:
    """A loaded classifier checkpoint: the model (one, or an ensemble) in eval mode and how to
    feed it."""

    model: EmotionClassifier | EnsembleClassifier
    audio: AudioConfig
    normalizer: Normalizer
    norm_mode: str
    device: torch.device
    path: Path
    extra: dict = field(default_factory=dict)
    labels: tuple[str, ...] = EMOTIONS
    """The emotions of the outputs, in order (the training corpus's label set)."""
    prosody: bool = False
    """Whether the model reads the prosody tracks under the log-mels (:mod:`emogan_utils.inputs`)."""
    functionals: FunctionalsClassifier | None = None
    """The eGeMAPS branch, if it was trained (``ClassifierTrainConfig.egemaps``): where a clip's
    speaker is known its verdict is averaged with the CNN's (:func:`judge`,
    :func:`corpus_probabilities`)."""

    def inputs(self, waves: np.ndarray) -> np.ndarray:
        """What :meth:`probabilities` takes, of model-rate waveforms ``(N, samples)``."""
        return waveform_inputs(waves, self.audio, self.prosody)

    def corpus_inputs(self, table: pd.DataFrame, cache_dir: str | os.PathLike | None = None,
                      progress: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
        """What :meth:`probabilities` takes, of a corpus table's usable files (cached), and the
        table of those files."""
        return corpus_inputs(table, self.audio, cache_dir, progress, self.prosody)

    def probabilities(self, mel_db: np.ndarray, actors: Sequence[int] | None = None,
                      speakers: dict[int, Normalizer] | None = None) -> np.ndarray:
        """Emotion probabilities ``(N, len(labels))`` of log-mels ``(N, n_mels, T)`` in dB,
        with the prosody tracks under them for a model that reads them (:meth:`inputs`).

        In ``speaker`` mode, giving each clip's actor standardises every actor with the
        statistics of their own clips (all of them should be passed together), or with
        ``speakers`` (per-actor statistics fitted elsewhere); without ``actors`` the training
        actors' global statistics stand in, which is what a single clip of an unknown speaker
        gets.
        """
        x = standardize(np.asarray(mel_db, np.float32), actors, self.norm_mode, self.normalizer,
                        speakers, self.audio)
        return torch.softmax(batched_logits(self.model, x, self.device), dim=1).numpy()

    def functional_probabilities(self, centred_functionals: np.ndarray) -> np.ndarray:
        """Emotion probabilities ``(N, len(labels))`` of the eGeMAPS branch, of functionals
        ``(N, 88)`` minus their speaker's mean (:func:`~emogan_utils.egemaps.centred`)."""
        if self.functionals is None:
            raise ValueError(f"{self.path}: has no eGeMAPS branch (train it with --egemaps)")
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(centred_functionals), dtype=torch.float32)
            return torch.softmax(self.functionals.eval()(x), dim=1).numpy()

    def with_functionals(self, probs: np.ndarray, centred_functionals: np.ndarray) -> np.ndarray:
        """``probs`` (the CNN's, of the same clips) averaged with the eGeMAPS branch's
        (:meth:`functional_probabilities`): how the two join where the speaker is known."""
        return (probs + self.functional_probabilities(centred_functionals)) / 2

    def seen_actors(self, table: pd.DataFrame) -> list[int]:
        """The actors of ``table`` this classifier was trained or validated on
        (:func:`~emogan_utils.data.seen_actors`)."""
        return seen_actors(self.extra, table)

    @property
    def knows_single_clips(self) -> bool:
        """Whether training showed it single clips (``ClassifierTrainConfig.single_clip``), so
        that it judges a clip alone, with the training statistics, as well as with its
        speaker's."""
        share = self.extra.get("train_config", {}).get("single_clip", 0.0)
        return isinstance(share, (int, float)) and not isinstance(share, bool) and share > 0

    @property
    def speech_level_db(self) -> float:
        """The training clips' typical active-speech level (median, dB of the log-mel), to
        which a single clip is scaled; for checkpoints that do not record it, the mean level of
        the training statistics' mel bins."""
        saved = self.extra.get("speech_level_db")
        if isinstance(saved, (int, float)) and not isinstance(saved, bool):
            return float(saved)
        return float(np.mean(self.normalizer.shift[:self.audio.n_mels]))


def load_classifier(path: str | os.PathLike, device: str | torch.device | None = None,
                    audio: AudioConfig | None = None) -> Classifier:
    """Load a ``classifier`` checkpoint (checking its audio parameters against ``audio``): one
    model, or an ensemble of them (``extra["ensemble"]`` members) averaged."""
    payload = load_checkpoint(path, kind="classifier", audio=audio)
    device = pick_device(str(device) if device is not None else None)
    extra = payload["extra"]
    members, prosody = extra.get("ensemble", 1), extra.get("prosody", False)
    weights = payload["state"].get("model")
    tensors = len(weights) if isinstance(weights, dict) else 1  # each member has some
    if isinstance(members, bool) or not isinstance(members, int) \
            or not 1 <= members <= max(tensors, 1) or not isinstance(prosody, bool):
        raise CheckpointError(f"{path}: not a readable emogan checkpoint (ensemble {members!r}, "
                              f"prosody {prosody!r})")

    def make(config: ClassifierConfig) -> torch.nn.Module:
        return (EmotionClassifier(config) if members == 1 else
                EnsembleClassifier([EmotionClassifier(config) for _ in range(members)]))

    model = build_model(path, make, ClassifierConfig, payload["model_config"], payload["state"],
                        "model")
    branch = None if extra.get("functionals") is None else build_model(
        path, FunctionalsClassifier, FunctionalsConfig, extra["functionals"], payload["state"],
        "functionals")
    if branch is not None and not branch.temperature.item() > 0:
        raise CheckpointError(f"{path}: not a readable emogan checkpoint (its eGeMAPS branch's "
                              f"temperature is {branch.temperature.item()})")
    for config in (model.config, *([] if branch is None else [branch.config])):
        if config.n_classes != len(payload["labels"]):
            raise CheckpointError(f"{path}: not a readable emogan checkpoint ({config.n_classes} "
                                  f"outputs but {len(payload['labels'])} emotion labels)")
    return Classifier(model.to(device).eval(), payload["audio"], payload["normalizer"],
                      extra.get("norm_mode", "global"), device, Path(path), extra,
                      tuple(payload["labels"]), prosody,
                      None if branch is None else branch.eval())


def corpus_probabilities(classifier: Classifier, table: pd.DataFrame,
                         cache_dir: str | os.PathLike | None = None, progress: bool = True
                         ) -> tuple[np.ndarray, pd.DataFrame]:
    """Emotion probabilities of each usable recording of a corpus table, every actor
    standardised with the statistics of all their recordings there (in ``speaker`` mode), and
    the table of those recordings. With an eGeMAPS branch, its verdict (functionals centred on
    each actor's mean, cached under ``cache_dir/egemaps``) is averaged in."""
    mel, table = classifier.corpus_inputs(table, cache_dir, progress)
    actors = table["actor"].to_numpy(np.int64)
    probs = classifier.probabilities(mel, actors)
    if classifier.functionals is not None:
        features = corpus_egemaps(table, classifier.audio, None if cache_dir is None
                                  else Path(cache_dir) / "egemaps", progress)
        probs = classifier.with_functionals(probs, centred(features, actors))
    return probs, table


Audio = str | os.PathLike | np.ndarray | torch.Tensor
"""A clip: a file path, or a waveform (whose sample rate is passed beside it)."""


@dataclass(frozen=True)
class WindowVerdict:
    """The classifier's view of one window of a clip."""

    start: float
    """Seconds from the start of the audio as given (leading silence included)."""
    end: float
    weight: float
    """Share of the window's frames of audio that are active speech: its weight in the pooled
    verdict."""
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        """The window as plain JSON values."""
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                "weight": round(self.weight, 4),
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class ClipVerdict:
    """A whole clip judged: the pooled probabilities and each window's."""

    probabilities: dict[str, float]
    windows: tuple[WindowVerdict, ...]

    @property
    def emotion(self) -> str:
        """The most probable emotion of the whole clip."""
        return max(self.probabilities, key=self.probabilities.get)


def _model_rate_wave(audio: Audio, classifier: Classifier, sample_rate: int | None
                     ) -> np.ndarray:
    """The clip as mono float32 at the model's rate, untrimmed and at full length."""
    if isinstance(audio, (str, os.PathLike)):
        wave = load_audio(audio, classifier.audio, trim=False, fixed_length=False)
    elif sample_rate is None:
        raise ValueError("predict needs sample_rate when given a waveform instead of a file")
    else:
        untrimmed = dataclasses.replace(classifier.audio, trim_db=None)
        wave = prepare_waveform(audio, sample_rate, untrimmed, fixed_length=False)
    require_speech(wave, classifier.audio, audio if isinstance(audio, (str, os.PathLike))
                   else "waveform")
    return wave


MAX_PAUSE_SECONDS = 1.0
"""Silence at least this long splits a clip into stretches of speech, windowed apart."""


def _windows(wave: np.ndarray, audio: AudioConfig, hop: float
             ) -> tuple[list[int], list[int], np.ndarray]:
    """The windows of a model-rate clip: their starts and ends (samples) and the ``(N, window)``
    windows zero-padded at the end to the model's clip length.

    The clip is split at pauses of :data:`MAX_PAUSE_SECONDS` into stretches of speech (frames
    within ``audio.trim_db`` of the loudest, as trimming keeps); each stretch gets windows every
    ``hop`` of a window, a stretch shorter than a window one window, so that every window starts
    with speech like a trimmed training clip. Without a clip length the clip is one window.
    """
    if audio.n_samples is None:
        return [0], [len(wave)], wave[None].astype(np.float32)
    window, step = audio.n_samples, max(1, round(hop * audio.n_samples))
    mel = log_mel(wave, audio)
    loudest = frame_energy_db(mel, audio.db_floor).max()
    active = active_frames(mel, loudest, audio.trim_db if audio.trim_db is not None else np.inf,
                           audio.db_floor)
    gap = round(MAX_PAUSE_SECONDS * audio.sample_rate / audio.hop_length)
    starts, stops = [], []
    for first, last in speech_segments(active, gap) or [(0, mel.shape[-1])]:
        begin, end = first * audio.hop_length, min(len(wave), last * audio.hop_length)
        for s in window_starts(end - begin, window, step):
            starts.append(begin + s)
            stops.append(min(end, begin + s + window))
    waves = stack_fixed_length([wave[a:b] for a, b in zip(starts, stops)], window)
    return starts, stops, waves


@dataclass(frozen=True)
class SpeakerStatistics:
    """What a few unlabelled clips tell a classifier about their speaker."""

    inputs: Normalizer
    """Statistics of the model's inputs over all the clips' windows, as training fitted each
    training speaker's."""
    functionals: np.ndarray | None = None
    """The clips' mean eGeMAPS functionals, for a classifier with an eGeMAPS branch."""


def reference_statistics(reference: Sequence[Audio], classifier: Classifier,
                         sample_rate: int | None = None, hop: float = 0.5) -> SpeakerStatistics:
    """Per-speaker statistics of a ``speaker``-mode classifier from a few unlabelled clips of
    one speaker."""
    if classifier.norm_mode != "speaker":
        raise ValueError(f"{classifier.path}: standardises every clip with its training "
                         "statistics (norm_mode global), so reference clips cannot be used")
    if not len(reference):
        raise ValueError("reference needs at least one clip of the speaker")
    inputs, functionals = [], []
    for clip in reference:
        wave = _model_rate_wave(clip, classifier, sample_rate)
        inputs.append(classifier.inputs(_windows(wave, classifier.audio, hop)[2]))
        if classifier.functionals is not None:
            functionals.append(egemaps(wave, classifier.audio.sample_rate))
    return SpeakerStatistics(Normalizer.fit_standard(np.concatenate(inputs),
                                                     classifier.audio.db_floor),
                             np.mean(functionals, axis=0) if functionals else None)


def _with_functionals(probs: np.ndarray, windows: np.ndarray, classifier: Classifier,
                      mean: np.ndarray) -> np.ndarray:
    """Each window's probabilities averaged with the eGeMAPS branch's on the window's
    functionals minus the speaker's ``mean``; a window with under 0.1 s of sound above the
    functionals' trimming threshold keeps the CNN's alone."""
    out = probs.copy()
    for i, window in enumerate(windows):
        try:
            features = egemaps(window, classifier.audio.sample_rate)
        except ValueError:
            continue
        out[i] = classifier.with_functionals(probs[i:i + 1], (features - mean)[None])[0]
    return out


def judge(audio: Audio, checkpoint: str | os.PathLike | Classifier,
          sample_rate: int | None = None, reference: Sequence[Audio] | SpeakerStatistics = (),
          hop: float = 0.5, level: bool = True) -> ClipVerdict:
    """The emotion of a whole clip, window by window.

    The clip's stretches of speech are cut into windows of the model's clip length every
    ``hop`` of a window (:func:`_windows`); the clip's probabilities are the mean of its
    windows', each weighted by its share of active speech (frames within
    :data:`~emogan_utils.features.ACTIVE_DB` of the loudest).

    With ``reference`` (clips of the same speaker, or their :func:`reference_statistics`) a
    ``speaker``-mode classifier standardises with that speaker's statistics; one that
    :attr:`~Classifier.knows_single_clips` averages that with its verdict on the clip alone
    (a few clips give noisy statistics: on RAVDESS's tuning actors the average scored 68 %
    against 63 % for the statistics alone); a classifier with an eGeMAPS branch then averages
    in that branch's verdict on each window's functionals, centred on the speaker's. Without
    ``reference``, the training speakers' statistics stand
    in; then, with ``level``, the clip is first scaled to the training clips' typical
    active-speech level (:attr:`Classifier.speech_level_db`), so that how loud it was recorded
    does not decide its emotion.
    """
    classifier = checkpoint if isinstance(checkpoint, Classifier) else load_classifier(checkpoint)
    speaker = reference if isinstance(reference, SpeakerStatistics) or not len(reference) else \
        reference_statistics(reference, classifier, sample_rate, hop)
    wave = _model_rate_wave(audio, classifier, sample_rate)
    alone = wave if not level else match_level(wave, classifier.speech_level_db,
                                               classifier.audio)
    if not isinstance(speaker, SpeakerStatistics):
        wave = alone
    starts, stops, windows = _windows(wave, classifier.audio, hop)
    x = classifier.inputs(windows)
    if isinstance(speaker, SpeakerStatistics):
        probs = classifier.probabilities(x, [0] * len(x), {0: speaker.inputs})
        if classifier.knows_single_clips:
            by_itself = classifier.inputs(stack_fixed_length(
                [alone[a:b] for a, b in zip(starts, stops)], windows.shape[-1]))
            probs = (probs + classifier.probabilities(by_itself)) / 2
        if classifier.functionals is not None and speaker.functionals is not None:
            probs = _with_functionals(probs, windows, classifier, speaker.functionals)
    else:
        probs = classifier.probabilities(x)
    mel = x[:, :classifier.audio.n_mels]
    loudest = frame_energy_db(mel, classifier.audio.db_floor).max()
    active = active_frames(mel, loudest, db_floor=classifier.audio.db_floor)
    frames = np.array([classifier.audio.frames(b - a) for a, b in zip(starts, stops)])
    weights = active.sum(axis=1) / np.minimum(frames, active.shape[1])
    pooled = (weights[:, None] * probs).sum(axis=0) / max(weights.sum(), 1e-12)
    rate = classifier.audio.sample_rate
    verdicts = tuple(WindowVerdict(a / rate, b / rate, float(w),
                                   dict(zip(classifier.labels, map(float, p))))
                     for a, b, w, p in zip(starts, stops, weights, probs))
    return ClipVerdict(dict(zip(classifier.labels, map(float, pooled))), verdicts)


def predict(audio: Audio, checkpoint: str | os.PathLike | Classifier,
            sample_rate: int | None = None, reference: Sequence[Audio] | SpeakerStatistics = (),
            hop: float = 0.5, level: bool = True) -> dict[str, float]:
    """Per-emotion probabilities (the checkpoint's emotions in order, summing to 1) of one whole
    clip (:func:`judge`).

    ``audio`` is a file path or a waveform (then ``sample_rate`` is required); ``checkpoint``
    a path or a :class:`Classifier` from :func:`load_classifier`, to avoid reloading;
    ``reference`` a few unlabelled clips of the same speaker (at ``sample_rate`` if waveforms).
    """
    return judge(audio, checkpoint, sample_rate, reference, hop, level).probabilities


# --- emotion translation ---------------------------------------------------------------------


def checked_vocoder(name: str) -> str:
    """``name`` if it is one of :data:`~emogan_utils.config.VOCODERS`, else ValueError."""
    if name not in VOCODERS:
        raise ValueError(f"vocoder must be one of {VOCODERS}, got {name!r}")
    return name


@dataclass(frozen=True)
class Conversion:
    """One translation: the source at the model's rate and its log-mel, the generator's
    converted log-mel (on the source's frames, in dB) and the speech that is heard."""

    source_wave: np.ndarray
    source_mel: np.ndarray
    converted_mel: np.ndarray
    wave: np.ndarray


class SpeechModel:
    """What every translator shares: reading audio at the model's rate, its log-mel, and a
    WORLD analysis kept for the last few waveforms seen (a widget converting one clip into
    several emotions analyses it once). Subclasses set ``audio``, ``world``, ``_log_mel`` and
    ``_analyses``."""

    audio: AudioConfig
    world: WorldConfig
    _log_mel: LogMel
    _analyses: dict[str, WorldFrames]

    def waveform(self, audio: str | os.PathLike | np.ndarray | torch.Tensor,
                 sample_rate: int | None = None) -> np.ndarray:
        """Mono float32 at the model's rate, untrimmed and at full length."""
        if isinstance(audio, (str, os.PathLike)):
            return load_audio(audio, self.audio, trim=False, fixed_length=False)
        untrimmed = dataclasses.replace(self.audio, trim_db=None)
        rate = self.audio.sample_rate if sample_rate is None else sample_rate
        return prepare_waveform(audio, rate, untrimmed, fixed_length=False)

    def mel(self, audio: str | os.PathLike | np.ndarray | torch.Tensor,
            sample_rate: int | None = None) -> np.ndarray:
        """Log-mel in dB ``(n_mels, frames)`` of a file or waveform."""
        with torch.no_grad():
            return self._log_mel(torch.from_numpy(self.waveform(audio, sample_rate))).numpy()

    def analysis(self, wave: np.ndarray) -> WorldFrames:
        """WORLD analysis of a model-rate waveform (cached for the last four)."""
        key = hashlib.sha1(np.ascontiguousarray(wave, np.float32).tobytes()).hexdigest()
        if key not in self._analyses:
            if len(self._analyses) >= 4:
                self._analyses.pop(next(iter(self._analyses)))
            self._analyses[key] = analyze(wave, self.audio.sample_rate, self.world)
        return self._analyses[key]


class Translator(SpeechModel):
    """A trained conditional-GAN generator, loaded once, with each translation step exposed.

    ``mel`` (audio -> dB log-mel), ``translate_mel`` (dB -> dB in another emotion) and
    ``speech`` (the vocoder: the converted mel and the target's prosody back to a waveform) can
    be called separately; :meth:`convert` runs them in turn and returns every stage, and calling
    the object returns the waveform alone.

    Three paths (``vocoder``):

    - ``"contours"``: the contour converter given as ``converter``
      (:class:`ContourTranslator`), which does not use the generator;
    - ``"world"``: WORLD analysis of the source; its spectral envelope takes the generator's
      mel change (smoothed across frequency), its F0 contour takes the target's log-F0 mean and
      spread (:func:`~emogan_utils.prosody.convert_f0`), its frames the target's tempo; the
      aperiodicity is the source's, resampled to the new tempo.
    - ``"griffin-lim"``: the converted mel is stretched to the target's tempo and inverted by
      Griffin-Lim, then shifted in pitch by a formant-preserving phase vocoder.
    """

    def __init__(self, checkpoint: str | os.PathLike, audio: AudioConfig | None = None,
                 device: str | None = None, n_iter: int = 64, prosody: bool = True,
                 min_pitch_shift: float = 1.0, vocoder: str | None = None,
                 world: WorldConfig = WorldConfig(), envelope: EnvelopeEdit = EnvelopeEdit(),
                 converter: str | os.PathLike | ContourTranslator | None = None):
        """Load ``checkpoint``; if ``audio`` is given, refuse one made with other parameters.

        ``prosody=False`` leaves out the pitch, pitch-range and tempo change measured at
        training time (:mod:`emogan_utils.prosody`), as do checkpoints made before it existed.
        On the Griffin-Lim path, pitch shifts smaller than ``min_pitch_shift`` semitones are
        skipped (the phase vocoder costs more than a small correction gains: docs/results.md).
        ``converter`` (a checkpoint from ``train-converter``, or a loaded
        :class:`ContourTranslator`) makes the ``"contours"`` path available; ``vocoder`` is the
        default path (None: :data:`~emogan_utils.config.DEFAULT_VOCODER` where available, else
        ``"world"``). ``world`` and ``envelope`` set the WORLD path's analysis and how the generator's change
        becomes a change of the envelope (:class:`~emogan_utils.world.EnvelopeEdit`).
        """
        payload = load_checkpoint(checkpoint, kind="gan", audio=audio)
        self.path = Path(checkpoint)
        self.audio: AudioConfig = payload["audio"]
        self.normalizer: Normalizer = payload["normalizer"]
        self.extra: dict = payload["extra"]
        """What the checkpoint records beside the weights (its training actors, history)."""
        self.labels: tuple[str, ...] = tuple(payload["labels"])
        """The emotions the generator converts between (the training corpus's)."""
        saved = payload["extra"].get("prosody")
        self.prosody = EmotionProsody.from_state(saved) if prosody and saved else None
        self.n_iter = n_iter
        self.min_pitch_shift = min_pitch_shift
        self.converter = (converter if isinstance(converter, ContourTranslator) or converter is None
                          else ContourTranslator(converter, device))
        if self.converter is not None and self.converter.labels != self.labels:
            raise CheckpointError(f"{self.converter.path} converts between "
                                  f"{', '.join(self.converter.labels)}, but {checkpoint} between "
                                  f"{', '.join(self.labels)}; use models of one corpus")
        self.vocoder = vocoder or (DEFAULT_VOCODER if DEFAULT_VOCODER in self.vocoders
                                   else "world")
        self.world = world
        self.envelope = envelope
        self.device = pick_device(device)
        model_config = payload["model_config"]
        generator = model_config.get("generator") if isinstance(model_config, dict) else None
        self.generator = build_model(checkpoint, UNetGenerator, GeneratorConfig, generator,
                                     payload["state"], "generator")
        if self.generator.config.n_emotions != len(self.labels):
            raise CheckpointError(f"{checkpoint}: not a readable emogan checkpoint (the generator "
                                  f"takes {self.generator.config.n_emotions} emotions but the "
                                  f"checkpoint names {len(self.labels)})")
        self.generator.to(self.device).eval()
        self._log_mel = LogMel(self.audio)
        self._analyses: dict[str, WorldFrames] = {}

    @property
    def vocoders(self) -> tuple[str, ...]:
        """The paths this translator can take: ``"contours"`` only with a converter."""
        return tuple(v for v in VOCODERS if v != "contours" or self.converter is not None)

    @property
    def vocoder(self) -> str:
        """The default path, one of :attr:`vocoders`; each call that makes sound can name
        another."""
        return self._vocoder

    @vocoder.setter
    def vocoder(self, name: str) -> None:
        self._vocoder = self.check_vocoder(name)

    def check_vocoder(self, name: str) -> str:
        """``name`` if this translator can take that path, else ValueError."""
        if checked_vocoder(name) not in self.vocoders:
            raise ValueError(f"vocoder {name!r} needs a contour converter (train-converter; "
                             "Translator(..., converter=...))")
        return name

    def _vocoder_or_default(self, name: str | None) -> str:
        """``name`` checked, or the default vocoder when it is None."""
        return self._vocoder if name is None else self.check_vocoder(name)

    def code(self, target: str, strength: float = 1.0, source: str = "neutral") -> torch.Tensor:
        """Conditioning ``(1, n_emotions)``: the source one-hot blended towards the target's."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        n = self.generator.config.n_emotions
        code = torch.zeros(1, n)
        code[0, self.labels.index(emotion_name(source, self.labels))] += 1.0 - strength
        code[0, self.labels.index(emotion_name(target, self.labels))] += strength
        return code

    def translate_mel(self, mel_db: np.ndarray, target: str, strength: float = 1.0,
                      source: str = "neutral") -> np.ndarray:
        """Convert a dB log-mel ``(n_mels, frames)`` towards ``target``; same shape, in dB."""
        code = self.code(target, strength, source).to(self.device)
        normed = torch.as_tensor(self.normalizer(np.asarray(mel_db, np.float32)))[None]
        with torch.no_grad():
            out = self.generator(normed.to(self.device), code)[0].cpu().numpy()
        converted = self.normalizer.inverse(out)
        # The range normaliser clips silence to -1; where the output stays there, keep the
        # source's own (quieter) level instead of lifting it to the range floor.
        floor = self.normalizer.inverse(np.full_like(out, -1.0))
        at_floor = out <= -1.0 + 1e-4
        converted[at_floor] = np.minimum(mel_db, floor)[at_floor]
        return converted.astype(np.float32)

    def to_audio(self, mel_db: np.ndarray, length: int | None = None) -> np.ndarray:
        """Griffin-Lim waveform of a dB log-mel (``length`` samples if given)."""
        wave = griffin_lim(mel_db, self.audio, n_iter=self.n_iter, length=length)
        return wave.cpu().numpy().astype(np.float32)

    def resynthesize(self, wave: np.ndarray, mel_db: np.ndarray | None = None,
                     vocoder: str | None = None) -> np.ndarray:
        """The source through ``vocoder`` (default: :attr:`vocoder`) with no conversion: what the
        vocoder alone does to the sound."""
        vocoder = self._vocoder_or_default(vocoder)
        if vocoder == "contours":
            return self.converter.resynthesize(wave)
        if vocoder == "world":
            return synthesize(self.analysis(wave), len(wave))
        return self.to_audio(self.mel(wave) if mel_db is None else mel_db, len(wave))

    def shift(self, target: str, strength: float = 1.0, source: str = "neutral") -> ProsodyShift:
        """The fitted prosody change from ``source`` to ``target`` (none without prosody)."""
        if self.prosody is None:
            return ProsodyShift()
        return self.prosody.shift(source, target, strength)

    def speech(self, converted_mel: np.ndarray, source_wave: np.ndarray, target: str,
               strength: float = 1.0, source: str = "neutral",
               source_mel: np.ndarray | None = None, vocoder: str | None = None) -> np.ndarray:
        """The waveform of a conversion of ``source_wave`` whose generator output is
        ``converted_mel``, with ``target``'s prosody (times ``strength``), through ``vocoder``
        (default: :attr:`vocoder`). It lasts ``len(source_wave)`` samples over the target's
        tempo ratio."""
        vocoder = self._vocoder_or_default(vocoder)
        if vocoder == "contours":
            return self.converter.speech(source_wave, target, strength, source)
        shift = self.shift(target, strength, source)
        if vocoder == "world":
            source_mel = self.mel(source_wave) if source_mel is None else source_mel
            return self._world_speech(converted_mel - source_mel, source_wave, shift)
        return self._griffin_lim_speech(converted_mel, source_wave, shift)

    def _world_speech(self, gain_db: np.ndarray, source_wave: np.ndarray,
                      shift: ProsodyShift) -> np.ndarray:
        """WORLD path: envelope times the generator's gain, F0 converted, frames stretched."""
        frames = self.analysis(source_wave)
        gain = mel_gain_to_envelope(gain_db, self.audio, frames, self.envelope)
        edited = dataclasses.replace(frames, f0=convert_f0(frames.f0, shift),
                                     envelope=frames.envelope * gain)
        stretched = stretch_frames(edited, max(2, round(frames.n_frames / shift.rate)))
        return synthesize(stretched, round(len(source_wave) / shift.rate))

    def _griffin_lim_speech(self, mel_db: np.ndarray, source_wave: np.ndarray,
                            shift: ProsodyShift) -> np.ndarray:
        """Griffin-Lim path: the mel stretched to the new tempo (:func:`stretch_mel`), inverted,
        then shifted in pitch by what the generator left undone
        (:func:`~emogan_utils.prosody.remaining_semitones`), unless by less than
        ``min_pitch_shift``."""
        if shift == ProsodyShift():
            return self.to_audio(mel_db, len(source_wave))
        # Griffin-Lim needs the frame count that its own STFT gives for that length
        samples = round(len(source_wave) / shift.rate)
        wave = self.to_audio(stretch_mel(mel_db, self.audio.frames(samples)), samples)
        semitones = shift.semitones
        if semitones:
            pitch = [clip_prosody(w, self.audio)["semitones"] for w in (source_wave, wave)]
            semitones = remaining_semitones(semitones, *pitch)
        if abs(semitones) < self.min_pitch_shift:
            semitones = 0.0
        return apply_prosody(wave, ProsodyShift(semitones), self.audio)

    def convert(self, wave: np.ndarray, target: str, strength: float = 1.0,
                source: str = "neutral", mel: np.ndarray | None = None,
                vocoder: str | None = None) -> Conversion:
        """Every stage of translating a model-rate waveform (from :meth:`waveform`) into
        ``target`` through ``vocoder`` (default: :attr:`vocoder`); ``mel`` is its log-mel if
        already computed."""
        if self._vocoder_or_default(vocoder) == "contours":
            return self.converter.convert(wave, target, strength, source, mel)
        mel = self.mel(wave) if mel is None else mel
        converted = self.translate_mel(mel, target, strength, source)
        return Conversion(wave, mel, converted,
                          self.speech(converted, wave, target, strength, source, mel, vocoder))

    def __call__(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, target: str,
                 strength: float = 1.0, source: str = "neutral",
                 sample_rate: int | None = None) -> np.ndarray:
        """Waveform in ``target`` emotion at the model's rate (as long as the input, over the
        target's tempo ratio)."""
        return self.convert(self.waveform(audio, sample_rate), target, strength, source).wave


class ContourTranslator(SpeechModel):
    """A trained contour converter (:class:`~emogan_utils.models.ContourConverter`), loaded
    once: WORLD analysis of the source, the converter's change of its log-F0, energy and
    envelope shape taken ``strength`` of the way, each frame's new duration, WORLD synthesis.
    The source's aperiodicity, voicing and envelope detail stay, so the voice stays.

    It offers the same steps as :class:`Translator` (``waveform``, ``mel``, ``resynthesize``,
    ``convert``, calling it), so evaluation and the emotion switch take either."""

    vocoder = "contours"

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None):
        payload = load_checkpoint(checkpoint, kind="converter")
        self.path = Path(checkpoint)
        self.audio: AudioConfig = payload["audio"]
        self.labels: tuple[str, ...] = tuple(payload["labels"])
        self.n_iter = 64
        self.world = CONTOUR_WORLD
        try:
            self.stats = CepstralStats.from_state(payload["extra"]["cepstral_stats"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{checkpoint}: not a readable converter checkpoint ("
                                  f"cepstral statistics: {err})") from err
        self.extra: dict = payload["extra"]
        self.device = pick_device(device)
        values = payload["model_config"]
        if isinstance(values.get("dilations"), list):
            values = {**values, "dilations": tuple(values["dilations"])}
        self.model = build_model(checkpoint, ContourConverter, ConverterConfig, values,
                                 payload["state"], "converter")
        if self.model.config.n_emotions != len(self.labels):
            raise CheckpointError(f"{checkpoint}: a converter for {self.model.config.n_emotions}"
                                  f" emotions but {len(self.labels)} labels")
        self.model.to(self.device).eval()
        self._log_mel = LogMel(self.audio)
        self._analyses: dict[str, WorldFrames] = {}

    def resynthesize(self, wave: np.ndarray, mel_db: np.ndarray | None = None,
                     vocoder: str | None = None) -> np.ndarray:
        """The source through WORLD with no conversion."""
        return synthesize(self.analysis(wave), len(wave))

    def code(self, target: str, strength: float = 1.0, source: str = "neutral") -> torch.Tensor:
        """Conditioning ``(1, 2 * n_emotions + 1)``: source, target, strong intensity."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        index = [self.labels.index(emotion_name(e, self.labels)) for e in (source, target)]
        return converter_code(torch.tensor([index[0]]), torch.tensor([index[1]]),
                              torch.ones(1), len(self.labels))

    def contours(self, wave: np.ndarray, target: str, strength: float = 1.0,
                 source: str = "neutral") -> tuple[WorldFrames, Contours, Contours, np.ndarray]:
        """The source's WORLD frames and contours, the converted contours and each frame's
        duration."""
        frames = self.analysis(wave)
        before = contours(frames)
        code = self.code(target, strength, source).to(self.device)
        x = torch.from_numpy(converter_inputs(decimated(before), self.stats))[None]
        with torch.no_grad():
            output = self.model(x.to(self.device), code)[0].cpu().numpy()
        after, durations = converted_contours(before, upsampled(output, before.n_frames),
                                              self.stats, strength)
        return frames, before, after, durations

    def speech(self, wave: np.ndarray, target: str, strength: float = 1.0,
               source: str = "neutral") -> np.ndarray:
        """The converted waveform of a model-rate waveform."""
        frames, before, after, durations = self.contours(wave, target, strength, source)
        edited = retime(apply_contours(frames, before, after), durations)
        return synthesize(edited, round(len(wave) * edited.n_frames / frames.n_frames))

    def convert(self, wave: np.ndarray, target: str, strength: float = 1.0,
                source: str = "neutral", mel: np.ndarray | None = None,
                vocoder: str | None = None) -> Conversion:
        """Every stage of converting a model-rate waveform; ``converted_mel`` is the log-mel of
        the converted speech."""
        converted = self.speech(wave, target, strength, source)
        return Conversion(wave, self.mel(wave) if mel is None else mel, self.mel(converted),
                          converted)

    def __call__(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, target: str,
                 strength: float = 1.0, source: str = "neutral",
                 sample_rate: int | None = None) -> np.ndarray:
        """Waveform in ``target`` emotion at the model's rate."""
        return self.speech(self.waveform(audio, sample_rate), target, strength, source)


@functools.lru_cache(maxsize=4)
def _cached_translator(path: str, modified_ns: int,
                       vocoder: str | None) -> Translator | ContourTranslator:
    """One translator per checkpoint file version and vocoder (reloaded when the file
    changes): a :class:`ContourTranslator` for a converter, else a :class:`Translator`."""
    if load_checkpoint(path)["kind"] == "converter":
        return ContourTranslator(path)
    return Translator(path, vocoder=vocoder)


def load_translator(checkpoint: str | os.PathLike,
                    vocoder: str | None = None) -> Translator | ContourTranslator:
    """A cached translator for ``checkpoint``: a contour converter (``train-converter``) or a
    GAN (``train-gan``) with ``vocoder`` as its default path."""
    path = Path(checkpoint).resolve()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    return _cached_translator(str(path), path.stat().st_mtime_ns, vocoder)


def translate(waveform_or_path: str | os.PathLike | np.ndarray | torch.Tensor,
              target_emotion: str, checkpoint: str | os.PathLike, strength: float = 1.0,
              source_emotion: str = "neutral", sample_rate: int | None = None,
              vocoder: str | None = None) -> np.ndarray:
    """Speech converted to ``target_emotion`` by the model in ``checkpoint``: a contour
    converter, or a GAN through ``vocoder`` (one of :data:`~emogan_utils.config.VOCODERS`).

    Returns a float32 waveform at the checkpoint's ``AudioConfig.sample_rate``; its length
    follows the target emotion's timing (emotional speech is mostly slower). ``strength`` in
    [0, 1] takes the change from ``source_emotion`` (0) to ``target_emotion`` (1) part of the
    way; ``sample_rate`` is the rate of an in-memory waveform (default: the model's).
    """
    if vocoder is not None:
        checked_vocoder(vocoder)  # the emotions are checked against the checkpoint's
    return load_translator(checkpoint, vocoder)(waveform_or_path, target_emotion, strength,
                                                source_emotion, sample_rate)
