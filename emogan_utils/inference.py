"""Using trained models: emotion probabilities of a clip, and emotion translation."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emogan_utils.checkpoint import CheckpointError, load_checkpoint
from emogan_utils.data import EMOTIONS, emotion_id
from emogan_utils.features import (AudioConfig, LogMel, Normalizer, corpus_features,
                                   fit_per_speaker, load_audio, log_mel, prepare_waveform)
from emogan_utils.inversion import griffin_lim
from emogan_utils.models import (ClassifierConfig, EmotionClassifier, GeneratorConfig,
                                 UNetGenerator)
from emogan_utils.prosody import (EmotionProsody, ProsodyShift, apply_prosody,
                                  clip_prosody, remaining_semitones, stretch_mel)
from emogan_utils.train import batched_logits, pick_device, standardize

# --- emotion classifier ------------------------------------------------------------------


@dataclass
class Classifier:
    """A loaded classifier checkpoint: the model in eval mode and how to feed it."""

    model: EmotionClassifier
    audio: AudioConfig
    normalizer: Normalizer
    norm_mode: str
    device: torch.device
    path: Path
    extra: dict = field(default_factory=dict)

    def probabilities(self, mel_db: np.ndarray, actors: Sequence[int] | None = None,
                      speakers: dict[int, Normalizer] | None = None) -> np.ndarray:
        """Emotion probabilities ``(N, 8)`` of log-mels ``(N, n_mels, T)`` in dB.

        In ``speaker`` mode, giving each clip's actor standardises every actor with the
        statistics of their own clips (all of them should be passed together), or with
        ``speakers`` (per-actor statistics fitted elsewhere); without ``actors`` the training
        actors' global statistics stand in, which is what a single clip of an unknown speaker
        gets.
        """
        x = standardize(np.asarray(mel_db, np.float32), actors, self.norm_mode, self.normalizer,
                        speakers)
        return torch.softmax(batched_logits(self.model, x, self.device), dim=1).numpy()


def load_classifier(path: str | os.PathLike, device: str | torch.device | None = None,
                    audio: AudioConfig | None = None) -> Classifier:
    """Load a ``classifier`` checkpoint (checking its audio parameters against ``audio``)."""
    payload = load_checkpoint(path, kind="classifier", audio=audio)
    device = pick_device(str(device) if device is not None else None)
    model = EmotionClassifier(ClassifierConfig(**payload["model_config"]))
    model.load_state_dict(payload["state"]["model"])
    extra = payload["extra"]
    return Classifier(model.to(device).eval(), payload["audio"], payload["normalizer"],
                      extra.get("norm_mode", "global"), device, Path(path), extra)


def predict(audio: str | os.PathLike | np.ndarray | torch.Tensor,
            checkpoint: str | os.PathLike | Classifier,
            sample_rate: int | None = None) -> dict[str, float]:
    """Per-emotion probabilities (in ``EMOTIONS`` order, summing to 1) of one clip.

    ``audio`` is a file path or a waveform (then ``sample_rate`` is required); ``checkpoint``
    a path or a :class:`Classifier` from :func:`load_classifier`, to avoid reloading.
    """
    classifier = checkpoint if isinstance(checkpoint, Classifier) else load_classifier(checkpoint)
    if isinstance(audio, (str, os.PathLike)):
        wave = load_audio(audio, classifier.audio)
    elif sample_rate is None:
        raise ValueError("predict needs sample_rate when given a waveform instead of a file")
    else:
        wave = prepare_waveform(audio, sample_rate, classifier.audio)
    probs = classifier.probabilities(log_mel(wave, classifier.audio)[None])[0]
    return {name: float(p) for name, p in zip(EMOTIONS, probs)}


# --- emotion translation ---------------------------------------------------------------------


class Translator:
    """A trained conditional-GAN generator, loaded once, with each translation step exposed.

    ``mel`` (audio -> dB log-mel), ``translate_mel`` (dB -> dB in another emotion) and
    ``speech`` (Griffin-Lim, then the target's pitch and tempo) can be called separately so a
    widget can cache the source mel and its inversion; calling the object runs all three.
    """

    def __init__(self, checkpoint: str | os.PathLike, audio: AudioConfig | None = None,
                 device: str | None = None, n_iter: int = 64, prosody: bool = True,
                 min_pitch_shift: float = 1.0):
        """Load ``checkpoint``; if ``audio`` is given, refuse one made with other parameters.

        ``prosody=False`` leaves out the pitch and tempo change measured at training time
        (:mod:`emogan_utils.prosody`), as do checkpoints made before it existed. Pitch shifts
        smaller than ``min_pitch_shift`` semitones are skipped: the shift's phase vocoder costs
        more than a small correction gains (on RAVDESS validation actors, MCD of calm
        conversions, a -0.8 semitone shift, 2.39 dB with it and 2.29 without; README).
        """
        payload = load_checkpoint(checkpoint, kind="gan", audio=audio)
        self.path = Path(checkpoint)
        self.audio: AudioConfig = payload["audio"]
        self.normalizer: Normalizer = payload["normalizer"]
        saved = payload["extra"].get("prosody")
        self.prosody = EmotionProsody.from_state(saved) if prosody and saved else None
        self.n_iter = n_iter
        self.min_pitch_shift = min_pitch_shift
        self.device = pick_device(device)
        self.generator = UNetGenerator(GeneratorConfig(**payload["model_config"]["generator"]))
        self.generator.load_state_dict(payload["state"]["generator"])
        self.generator.to(self.device).eval()
        self._log_mel = LogMel(self.audio)

    def waveform(self, audio: str | os.PathLike | np.ndarray | torch.Tensor,
                 sample_rate: int | None = None) -> np.ndarray:
        """Mono float32 at the model's rate, untrimmed and at full length."""
        if isinstance(audio, (str, os.PathLike)):
            return load_audio(audio, self.audio, trim=False, fixed_length=False)
        untrimmed = dataclasses.replace(self.audio, trim_db=None)
        return prepare_waveform(audio, sample_rate or self.audio.sample_rate, untrimmed,
                                fixed_length=False)

    def mel(self, audio: str | os.PathLike | np.ndarray | torch.Tensor,
            sample_rate: int | None = None) -> np.ndarray:
        """Log-mel in dB ``(n_mels, frames)`` of a file or waveform."""
        with torch.no_grad():
            return self._log_mel(torch.from_numpy(self.waveform(audio, sample_rate))).numpy()

    def code(self, target: str, strength: float = 1.0, source: str = "neutral") -> torch.Tensor:
        """Conditioning ``(1, n_emotions)``: the source one-hot blended towards the target's."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        n = self.generator.config.n_emotions
        code = torch.zeros(1, n)
        code[0, emotion_id(source) - 1] += 1.0 - strength
        code[0, emotion_id(target) - 1] += strength
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

    def speech(self, mel_db: np.ndarray, target: str, strength: float = 1.0,
               source: str = "neutral", length: int | None = None,
               source_wave: np.ndarray | None = None) -> np.ndarray:
        """Waveform of a converted log-mel with ``target``'s pitch and tempo.

        The prosody change from ``source`` to ``target`` (times ``strength``), pitch and tempo
        only, since the generator already set the level: the mel is stretched to the new
        tempo (:func:`~emogan_utils.prosody.stretch_mel`), turned into ``length / rate``
        samples by Griffin-Lim, then shifted in pitch (unless by less than
        ``min_pitch_shift``). Given the ``source_wave`` the mel came
        from, the pitch shift is only what the generator left undone
        (:func:`~emogan_utils.prosody.remaining_semitones`), so a generator that raises the
        pitch itself is not shifted twice.
        """
        if self.prosody is None:
            return self.to_audio(mel_db, length)
        shift = self.prosody.shift(source, target, strength)
        if length is None:
            samples, frames = None, max(2, round(mel_db.shape[-1] / shift.rate))
        else:  # Griffin-Lim needs the frame count that its own STFT gives for that length
            samples = round(length / shift.rate)
            frames = self.audio.frames(samples)
        wave = self.to_audio(stretch_mel(mel_db, frames), samples)
        semitones = shift.semitones
        if source_wave is not None and semitones:
            pitch = [clip_prosody(w, self.audio)["semitones"] for w in (source_wave, wave)]
            semitones = remaining_semitones(semitones, *pitch)
        if abs(semitones) < self.min_pitch_shift:
            semitones = 0.0
        return apply_prosody(wave, ProsodyShift(semitones), self.audio)

    def __call__(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, target: str,
                 strength: float = 1.0, source: str = "neutral",
                 sample_rate: int | None = None) -> np.ndarray:
        """Waveform in ``target`` emotion at the model's rate (as long as the input, over the
        target's tempo ratio)."""
        wave = self.waveform(audio, sample_rate)
        converted = self.translate_mel(self.mel(wave), target, strength, source)
        return self.speech(converted, target, strength, source, len(wave), wave)


@functools.lru_cache(maxsize=4)
def _cached_translator(path: str, modified_ns: int) -> Translator:
    """One :class:`Translator` per checkpoint file version (reloaded when the file changes)."""
    return Translator(path)


def load_translator(checkpoint: str | os.PathLike) -> Translator:
    """A cached :class:`Translator` for ``checkpoint``."""
    path = Path(checkpoint).resolve()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    return _cached_translator(str(path), path.stat().st_mtime_ns)


def translate(waveform_or_path: str | os.PathLike | np.ndarray | torch.Tensor,
              target_emotion: str, checkpoint: str | os.PathLike, strength: float = 1.0,
              source_emotion: str = "neutral", sample_rate: int | None = None) -> np.ndarray:
    """Speech converted to ``target_emotion`` by the GAN in ``checkpoint``.

    Returns a float32 waveform at the checkpoint's ``AudioConfig.sample_rate``, as long as the
    input over the target's tempo ratio (0.73-1.0 for RAVDESS: emotional speech is slower).
    ``strength`` in [0, 1] blends the conditioning and the prosody change from
    ``source_emotion`` (0) to ``target_emotion`` (1); ``sample_rate`` is the rate of an
    in-memory waveform (default: the model's).
    """
    emotion_id(target_emotion)
    emotion_id(source_emotion)
    return load_translator(checkpoint)(waveform_or_path, target_emotion, strength,
                                       source_emotion, sample_rate)


def classifier_judge(classifiers: Classifier | Sequence[Classifier], sample_rate: int,
                     reference: pd.DataFrame | None = None,
                     ) -> Callable[[Sequence[np.ndarray], Sequence[int]], np.ndarray]:
    """A ``classify(waveforms, actors) -> labels`` for :func:`evaluate_translation`.

    Several classifiers judge together: their probabilities are averaged, which steadies a
    verdict that one training run alone would sway. With a ``reference`` corpus table, a
    ``speaker``-mode classifier standardises each actor with the statistics of all their
    recordings there (unlabelled, as in its speaker-independent evaluation); otherwise every
    clip gets the training split's global statistics, as a single clip of an unknown speaker
    does in :func:`predict`.
    """
    judges = [classifiers] if isinstance(classifiers, Classifier) else list(classifiers)
    speakers: dict[AudioConfig, dict[int, Normalizer]] = {}  # per audio config, not per judge
    if reference is not None:
        for audio in {c.audio for c in judges if c.norm_mode == "speaker"}:
            mel, rows = corpus_features(reference, audio, progress=False)
            speakers[audio] = fit_per_speaker(mel, rows["actor"].to_numpy())

    def classify(waves: Sequence[np.ndarray], actors: Sequence[int]) -> np.ndarray:
        mels = {audio: log_mel(np.stack([prepare_waveform(w, sample_rate, audio) for w in waves]),
                               audio)
                for audio in {c.audio for c in judges}}
        total = np.zeros((len(waves), len(EMOTIONS)))
        for classifier in judges:
            known = speakers.get(classifier.audio) if classifier.norm_mode == "speaker" else None
            # without reference statistics, clips get the global ones (actors=None)
            total += classifier.probabilities(mels[classifier.audio], actors if known else None,
                                              known)
        return total.argmax(1)
    return classify
