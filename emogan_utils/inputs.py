"""What the emotion classifier reads: log-mels, optionally with prosody tracks under them.

Emotion lives largely in pitch, voicing and energy, which an 80-band log-mel blurs. The
prosody tracks are three more channels on the mel's own frames (WORLD ``dio`` + ``stonemask``
with a frame period of one hop, 16 ms at the defaults, so that frame ``i`` of both is centred
at ``i`` hops):

- ``log_f0``: F0 in semitones above :data:`F0_REFERENCE_HZ`, interpolated across unvoiced
  frames so that the track is continuous;
- ``voicing``: 1 where the tracker found F0, else 0;
- ``energy``: the frame's total mel power in dB.

On the zero padding after a clip (frames whose log-mel is at the floor) all three sit at the
floor too, so the speech frames, and every normalisation fitted on them, are the mel's own
(:func:`~emogan_utils.features.speech_mask`). Per-speaker standardisation
(:func:`standardize`) then makes log-F0 relative to the speaker's own pitch;
:func:`silence_padding` sets the tracks to 0 on the padding afterwards, where the floor would
otherwise be hundreds of standard deviations away.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emogan_utils.features import (AudioConfig, FeatureCache, Normalizer, corpus_features,
                                   fit_per_speaker, load_audio, log_mel, normalize_per_speaker,
                                   speech_level_db, speech_mask, speed_variant)
from emogan_utils.world import WorldConfig, f0_contour

PROSODY_CHANNELS = ("log_f0", "voicing", "energy")
F0_REFERENCE_HZ = 55.0
"""0 semitones on the log-F0 track (A1, below any speaking voice)."""


def input_channels(audio: AudioConfig, prosody: bool) -> int:
    """Channels of the classifier's input: the mel bands, plus the prosody tracks if read."""
    return audio.n_mels + (len(PROSODY_CHANNELS) if prosody else 0)


def prosody_world(audio: AudioConfig) -> WorldConfig:
    """The fast WORLD F0 tracker on the mel's frames (one hop per frame)."""
    return WorldConfig(frame_period_ms=1000.0 * audio.hop_length / audio.sample_rate,
                       f0_method="dio")


def prosody_tracks(wave: np.ndarray, mel_db: np.ndarray,
                   audio: AudioConfig = AudioConfig()) -> np.ndarray:
    """``(3, frames)`` log-F0, voicing and energy of a model-rate waveform and its log-mel."""
    frames = mel_db.shape[-1]
    speech = speech_mask(mel_db, audio.db_floor)
    f0 = np.zeros(frames)
    tracked = f0_contour(wave, audio.sample_rate, prosody_world(audio))[:frames]
    f0[:len(tracked)] = tracked
    voiced = (f0 > 0) & speech
    semitones = np.zeros(frames)
    if voiced.any():
        steps = np.arange(frames)
        semitones = np.interp(steps, steps[voiced],
                              12.0 * np.log2(f0[voiced] / F0_REFERENCE_HZ))
    power = np.power(10.0, np.asarray(mel_db, np.float64) / 10.0).sum(axis=0)
    energy = np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), audio.db_floor)
    tracks = np.stack([semitones, voiced.astype(np.float64), energy])
    tracks[:, ~speech] = audio.db_floor
    return tracks.astype(np.float32)


def silence_padding(x: np.ndarray, raw: np.ndarray, audio: AudioConfig) -> np.ndarray:
    """Set the prosody tracks of standardised inputs ``x`` to 0 on the padding of ``raw``
    (the same inputs before standardisation), in place; mel-only inputs are left as they are."""
    if x.shape[1] > audio.n_mels:
        padding = ~speech_mask(raw[:, :audio.n_mels], audio.db_floor)
        tracks = x[:, audio.n_mels:]
        tracks[np.broadcast_to(padding[:, None, :], tracks.shape)] = 0.0
    return x


def level_matched(inputs: np.ndarray, target_db: float,
                  audio: AudioConfig = AudioConfig()) -> np.ndarray:
    """Classifier inputs ``(N, channels, T)`` in dB as if each clip had been scaled to the
    active-speech level ``target_db`` before analysis (:func:`~emogan_utils.features.match_level`,
    what a single clip gets before it is judged): the mel bands and the energy track of its
    sound frames move by the same number of dB, clamped at the floor; log-F0 and voicing keep
    their values. Exact but for bands that were at the floor, which stay there."""
    inputs = np.asarray(inputs, np.float32)
    mel = inputs[:, :audio.n_mels]
    shift = (target_db - speech_level_db(mel, audio.db_floor)).astype(np.float32)[:, None, None]
    sound = speech_mask(mel, audio.db_floor)[:, None, :]
    out = inputs.copy()
    moved = [slice(0, audio.n_mels)]
    if inputs.shape[1] > audio.n_mels:
        energy = audio.n_mels + PROSODY_CHANNELS.index("energy")
        moved.append(slice(energy, energy + 1))
    for part in moved:
        out[:, part] = np.where(sound, np.maximum(inputs[:, part] + shift, audio.db_floor),
                                inputs[:, part])
    return out


NORM_MODES = ("speaker", "global")
"""How log-mels are standardised: with each actor's own statistics, or the training split's."""


def standardize(mel_db: np.ndarray, actors: Sequence[int] | None, mode: str,
                normalizer: Normalizer,
                speakers: dict[int, Normalizer] | None = None,
                audio: AudioConfig = AudioConfig()) -> np.ndarray:
    """Standardise log-mels (with the prosody tracks under them, if any, which are then 0 on
    the padding: :func:`silence_padding`): per actor (``speaker``) or
    with ``normalizer``.

    In ``speaker`` mode each actor's statistics come from ``speakers`` when given (e.g. all of
    that actor's recordings), else from their clips in ``mel_db``; an actor missing from
    ``speakers``, or clips without ``actors`` (an unknown speaker), get ``normalizer``. On
    held-out RAVDESS actors that costs less than per-clip standardisation, which also removes
    the level and spectral tilt that carry emotion.
    """
    if mode == "speaker" and actors is not None:
        if speakers is None:
            speakers = fit_per_speaker(mel_db, actors)
        lookup = {int(a): speakers.get(int(a), normalizer) for a in actors}
        return silence_padding(normalize_per_speaker(mel_db, actors, lookup), mel_db, audio)
    return silence_padding(np.asarray(normalizer(mel_db), dtype=np.float32), mel_db, audio)


def waveform_inputs(waves: np.ndarray, audio: AudioConfig, prosody: bool) -> np.ndarray:
    """Classifier inputs ``(N, channels, frames)`` of model-rate waveforms ``(N, samples)``."""
    waves = np.atleast_2d(np.asarray(waves, np.float32))
    mel = log_mel(waves, audio)
    if not prosody:
        return mel
    tracks = np.stack([prosody_tracks(w, m, audio) for w, m in zip(waves, mel)])
    return np.concatenate([mel, tracks], axis=1)


def corpus_prosody(table: pd.DataFrame, mel_db: np.ndarray, audio: AudioConfig = AudioConfig(),
                   cache_dir: str | os.PathLike | None = None, progress: bool = True,
                   speed: float = 1.0) -> np.ndarray:
    """Prosody tracks ``(N, 3, frames)`` of a corpus table's files (all usable) whose log-mels
    are ``mel_db``, computed from the same audio and cached like the log-mels."""
    paths = list(table["path"])
    out = np.empty((len(paths), len(PROSODY_CHANNELS), mel_db.shape[-1]), np.float32)
    cache = (FeatureCache(cache_dir, audio, "-".join(filter(None, ["prosody",
                                                                   speed_variant(speed)])))
             if cache_dir is not None else None)
    identities = [cache.identity(p) for p in paths] if cache else []
    if cache:
        cache.digests.save()
    cached = cache.read(identities, out) if cache else np.zeros(len(paths), bool)
    todo = np.flatnonzero(~cached)
    for i in tqdm(todo, desc="prosody", unit="file", disable=not progress or not len(todo)):
        out[i] = prosody_tracks(load_audio(paths[i], audio, speed=speed), mel_db[i], audio)
    if cache and len(todo):
        cache.write([identities[i] for i in todo], out[todo])
    return out


def corpus_inputs(table: pd.DataFrame, audio: AudioConfig = AudioConfig(),
                  cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  prosody: bool = False, speed: float = 1.0) -> tuple[np.ndarray, pd.DataFrame]:
    """Classifier inputs of every usable file of a corpus table, and the table of those files
    (:func:`~emogan_utils.features.corpus_features`, with the prosody tracks if ``prosody``)."""
    mel, table = corpus_features(table, audio, cache_dir, progress, speed)
    if not prosody:
        return mel, table
    tracks = corpus_prosody(table, mel, audio, cache_dir, progress, speed)
    return np.concatenate([mel, tracks], axis=1), table
