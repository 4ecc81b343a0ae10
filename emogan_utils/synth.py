"""The embedded corpus: RAVDESS-format emotional speech made with espeak-ng, no download needed.

24 synthetic actors (odd ids male, even female) each say the two RAVDESS statements in the 8
emotions, at normal and strong intensity (neutral: normal only), twice: 60 files per actor,
``DEST/Actor_XX/03-01-EE-II-SS-RR-AA.wav``, 16-bit PCM mono.

Each emotion is a row of :data:`EMOTION_RULES`, taken from the acoustic correlates of emotion
(Murray & Arnott 1993, Schröder 2001, Banse & Scherer 1996): F0 level and range, speaking rate and
loudness go to espeak-ng; voice quality (breathiness, tension, tremor, jitter, creak) is added
after synthesis with ordinary DSP. Actors differ in voice, pitch, rate, level and spectral tilt, and
in how expressive they are; every actor interprets every emotion a little differently, and
repetitions vary slightly, so no single cue separates the emotions.

espeak-ng keeps synthesis state (glottal phase, flutter) from one utterance to the next, so the
same text can come out a few samples different. To make a seed give byte-identical files, a
small server process (:mod:`emogan_utils.espeak_worker`) initialises the engine once and speaks
every utterance in a child forked from that fresh state (Linux and macOS).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import json
import multiprocessing
import os
import re
import struct
import subprocess
import sys
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from emogan_utils.config import Paths
from emogan_utils.data import EMOTIONS, STATEMENTS, CorpusError, ravdess_name
from emogan_utils.storage import write_audio, write_json

GENERATOR_VERSION = "emogan-synth-1"
"""Changes whenever the generator would write different audio for the same parameters."""

MANIFEST = "emogan_corpus.json"
"""Written last: its presence marks a complete corpus."""

PARTIAL_MARKER = ".emogan_corpus.partial.json"
"""Written first: marks a corpus in progress, so an interrupted run can be finished."""

ESPEAK_RATE = 22050
ACTORS = tuple(range(1, 25))
STRONG = 1.6
"""Strong intensity moves every cue this many times as far from neutral as normal intensity."""

# ------------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class EmotionStyle:
    """How an emotion departs from the same speaker's neutral speech, at normal intensity."""

    pitch: float        # F0 level: espeak pitch units (about 1.4 % each) added to the actor's
    pitch_range: float  # F0 range: factor on the actor's espeak pitch range
    rate: float         # speaking rate: factor on the actor's words per minute
    loudness_db: float  # level change, in espeak volume and in the waveform
    breathiness: float  # 0-1: shaped noise mixed in, following the speech envelope
    tension_db: float   # gain above 1.5 kHz: > 0 tense and bright, < 0 lax and dull
    tremor: float       # 0-1: slow (4.5-7 Hz) pitch and amplitude modulation
    jitter: float       # 0-1: irregular voicing, fast random pitch and amplitude perturbation
    creak: float        # 0-1: creaky voice (irregular low-rate pulses), growing to the end
    rise: float         # probability of a final rise (said as a question)
    exclaim: float      # probability of exclamatory intonation
    quality: str        # the voice quality and contour, in words


EMOTION_RULES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(0, 1.00, 1.00, 0, 0.00, 0, 0.00, 0.00, 0.00, 0.05, 0.05,
                            "modal"),
    "calm": EmotionStyle(-3, 0.75, 0.92, -4, 0.12, -2, 0.00, 0.00, 0.00, 0.05, 0.00,
                         "soft, slightly breathy, smooth"),
    "happy": EmotionStyle(14, 1.60, 1.15, 3, 0.05, 1, 0.00, 0.00, 0.00, 0.15, 0.60,
                          "bright, upward inflections"),
    "sad": EmotionStyle(-4, 0.60, 0.80, -5, 0.25, -5, 0.20, 0.00, 0.05, 0.00, 0.00,
                        "breathy, lax, falling, slight tremor"),
    "angry": EmotionStyle(7, 1.50, 1.05, 8, 0.00, 6, 0.00, 0.05, 0.00, 0.00, 0.80,
                          "tense, strong high-frequency energy, abrupt"),
    "fearful": EmotionStyle(20, 1.30, 1.25, 0.5, 0.05, 1, 0.50, 0.50, 0.00, 0.15, 0.10,
                            "jitter, tremor"),
    "disgust": EmotionStyle(-12, 1.15, 0.75, -3, 0.05, -1, 0.00, 0.10, 0.60, 0.00, 0.00,
                            "creaky, wide falling end"),
    "surprised": EmotionStyle(9, 1.90, 1.05, 5, 0.00, 3, 0.00, 0.00, 0.00, 0.90, 0.05,
                              "strong final rise"),
}
"""The acoustic rules, one row per emotion (RAVDESS order); the single source of the table."""

BASELINE = {"breathiness": 0.03, "tremor": 0.05, "jitter": 0.05, "creak": 0.02}
"""Voice quality every utterance has, so that no processing step is a cue in itself."""

INTERPRETATION_SD = {"pitch": 4.0, "pitch_range": 0.15, "rate": 0.07, "loudness_db": 2.0,
                     "breathiness": 0.05, "tension_db": 1.5, "tremor": 0.10, "jitter": 0.10,
                     "creak": 0.12}
"""Spread of one actor's take on an emotion and intensity (factors: spread of the log)."""

REPETITION_SD = {"pitch": 1.5, "pitch_range": 0.06, "rate": 0.03, "loudness_db": 0.8,
                 "breathiness": 0.02, "tension_db": 0.5, "tremor": 0.03, "jitter": 0.03,
                 "creak": 0.04}
"""Spread between utterances of the same take (statement, repetition)."""

_FACTORS = ("pitch_range", "rate")
_CUES = tuple(INTERPRETATION_SD)


def rules_table_markdown() -> str:
    """The emotion rules as a markdown table (relative to the same actor's neutral speech)."""
    head = ("| emotion (id) | F0 level | F0 range | rate | loudness | breathiness | tension "
            "| tremor | jitter | creak | final rise / exclaim | voice quality |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for i, (name, s) in enumerate(EMOTION_RULES.items(), start=1):
        semitones = s.pitch * 12 * 2 / 101  # espeak's pitch table spans two octaves
        rows.append(
            f"| {name} ({i:02d}) | {s.pitch:+g} ({semitones:+.1f} st) | x{s.pitch_range:.2f} "
            f"| x{s.rate:.2f} | {s.loudness_db:+g} dB | {s.breathiness:.2f} | "
            f"{s.tension_db:+g} dB | {s.tremor:.2f} | {s.jitter:.2f} | {s.creak:.2f} | "
            f"{s.rise:.0%} / {s.exclaim:.0%} | {s.quality} |")
    note = (f"\n\nStrong intensity moves every cue x{STRONG:g} as far from neutral. Each actor "
            f"has an expressiveness (x0.65-1.3) and their own take on each emotion; see "
            f"`INTERPRETATION_SD` and `REPETITION_SD` in `emogan_utils.synth`.\n")
    return head + "\n".join(rows) + note


# ------------------------------------------------------------------------------- actors

MALE_VOICES: dict[str, float] = {
    "m1": 0.6, "m2": 1.4, "m3": -0.5, "m4": -0.3, "m6": -0.5, "m7": -1.5, "m8": 4.5,
    "Gene": -3.9, "travis": -2.4, "michel": -1.5, "john": -4.9, "benjamin": 0.3,
}
"""espeak-ng voice variants for male actors, with the gain (dB) that levels them."""

FEMALE_VOICES: dict[str, float] = {
    "f1": -2.1, "f2": -2.1, "f3": -0.9, "f4": -2.3, "f5": -0.4, "Annie": -0.7, "Andrea": -4.5,
    "anika": -2.8, "belinda": -4.4, "linda": -3.4, "steph": -0.5, "aunty": -2.4,
}
"""espeak-ng voice variants for female actors, with the gain (dB) that levels them."""


@dataclass(frozen=True)
class Speaker:
    """One synthetic actor's voice: espeak variant and their neutral pitch, rate and level."""

    actor: int
    voice: str
    pitch: float          # espeak pitch (0-99) of neutral speech
    pitch_range: float    # espeak pitch range (0-99) of neutral speech
    rate: float           # words per minute of neutral speech
    level_db: float       # recording level, voice levelling included
    tilt_db: float        # the voice's own high-frequency tilt
    noise_db: float       # background noise level (dBFS RMS)
    expressiveness: float  # factor on every emotional departure from neutral


def speaker(actor: int, seed: int = 0) -> Speaker:
    """The voice of synthetic actor ``actor`` (1-24) for ``seed``."""
    if not 1 <= actor <= 24:
        raise ValueError(f"actor must be in 1-24, got {actor}")
    male = bool(actor % 2)
    voices = MALE_VOICES if male else FEMALE_VOICES
    order = np.random.default_rng([seed, 0, int(male)]).permutation(len(voices))
    voice = list(voices)[order[(actor - 1) // 2]]
    rng = np.random.default_rng([seed, actor])
    return Speaker(
        actor=actor, voice=voice,
        pitch=rng.uniform(36, 54) if male else rng.uniform(32, 48),
        pitch_range=rng.uniform(38, 60),
        rate=rng.uniform(150, 195),
        level_db=voices[voice] + rng.uniform(-3, 3),
        tilt_db=rng.uniform(-3, 3),
        noise_db=rng.uniform(-72, -60),
        expressiveness=rng.uniform(0.65, 1.3),
    )


# ------------------------------------------------------------------------------- utterances


@dataclass(frozen=True)
class Utterance:
    """Everything needed to render one file: espeak settings and the DSP that follows."""

    text: str
    voice: str
    rate: int            # espeak words per minute
    pitch: int           # espeak pitch 0-99
    pitch_range: int     # espeak pitch range 0-99
    volume: int          # espeak volume
    gain_db: float       # waveform gain after synthesis
    tilt_db: float       # gain above 1.5 kHz (actor tilt + emotional tension)
    breathiness: float
    tremor: float
    tremor_hz: float
    jitter: float
    creak: float
    lead_s: float        # silence before speech
    tail_s: float        # silence after speech
    noise_db: float      # background noise level
    noise_seed: int      # seeds the DSP's random parts


def _take(rng: np.random.Generator, sd: dict[str, float]) -> dict[str, float]:
    """One random draw per cue with the given spreads."""
    return {cue: float(rng.normal(0.0, sd[cue])) for cue in _CUES}


def _style_vector(style: EmotionStyle) -> dict[str, float]:
    """An emotion's departures from neutral, factors as logs."""
    return {cue: (np.log(getattr(style, cue)) if cue in _FACTORS else getattr(style, cue))
            for cue in _CUES}


def _cues(actor: int, emotion_id: int, intensity: int, statement_id: int, repetition: int,
          seed: int, spk: Speaker) -> dict[str, float]:
    """Departures from the actor's neutral speech for one utterance (factors as logs)."""
    style = _style_vector(EMOTION_RULES[EMOTIONS[emotion_id - 1]])
    scale = spk.expressiveness * (STRONG if intensity == 2 else 1.0)
    take_rng = np.random.default_rng([seed, actor, emotion_id, intensity, 7])
    take = _take(take_rng, INTERPRETATION_SD) if emotion_id != 1 else dict.fromkeys(_CUES, 0.0)
    rep = _take(np.random.default_rng([seed, actor, emotion_id, intensity, statement_id,
                                       repetition]), REPETITION_SD)
    return {cue: scale * (style[cue] + take[cue]) + rep[cue] for cue in _CUES}


def _ending(style: EmotionStyle, rng: np.random.Generator) -> str:
    """Final punctuation: '?' for a final rise, '!' for exclamation, else '.'."""
    u = rng.uniform()
    return "?" if u < style.rise else "!" if u < style.rise + style.exclaim else "."


def utterance(actor: int, emotion_id: int, intensity: int, statement_id: int, repetition: int,
              seed: int = 0) -> Utterance:
    """The rendering plan of one RAVDESS file of the embedded corpus."""
    if emotion_id == 1 and intensity != 1:
        raise ValueError("neutral has no strong intensity")
    spk = speaker(actor, seed)
    c = _cues(actor, emotion_id, intensity, statement_id, repetition, seed, spk)
    rng = np.random.default_rng([seed, actor, emotion_id, intensity, statement_id, repetition, 1])
    style = EMOTION_RULES[EMOTIONS[emotion_id - 1]]
    loud = float(np.clip(c["loudness_db"], -18.0, 15.0))
    return Utterance(
        text=STATEMENTS[statement_id] + _ending(style, rng),
        voice=spk.voice,
        rate=int(np.clip(round(spk.rate * np.exp(c["rate"])), 80, 450)),
        pitch=int(np.clip(round(spk.pitch + c["pitch"]), 0, 99)),
        pitch_range=int(np.clip(round(spk.pitch_range * np.exp(c["pitch_range"])), 0, 99)),
        volume=int(round(50 * 10 ** (0.4 * loud / 20))),
        gain_db=spk.level_db - 5.0 + 0.6 * loud,
        tilt_db=spk.tilt_db + c["tension_db"],
        breathiness=max(0.0, BASELINE["breathiness"] + c["breathiness"]),
        tremor=max(0.0, BASELINE["tremor"] + c["tremor"]),
        tremor_hz=float(rng.uniform(4.5, 7.0)),
        jitter=max(0.0, BASELINE["jitter"] + c["jitter"]),
        creak=float(np.clip(BASELINE["creak"] + c["creak"], 0.0, 0.9)),
        lead_s=float(rng.uniform(0.3, 0.8)),
        tail_s=float(rng.uniform(0.3, 0.8)),
        noise_db=spk.noise_db,
        noise_seed=int(rng.integers(2**31)),
    )


# ------------------------------------------------------------------------------- espeak-ng

class _Espeak:
    """Client of a private espeak-ng server process (the library is not thread safe)."""

    def __init__(self) -> None:
        import espeakng_loader

        # Run as a script, isolated and without site-packages: a small process to fork from.
        command = [sys.executable, "-I", "-S", str(Path(__file__).with_name("espeak_worker.py")),
                   espeakng_loader.get_library_path(), espeakng_loader.get_data_path()]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def speak(self, u: Utterance) -> np.ndarray:
        """Synthesise ``u`` from the engine's fresh state; float32 at 22050 Hz."""
        request = json.dumps({"text": u.text, "voice": f"en-us+{u.voice}", "rate": u.rate,
                              "pitch": u.pitch, "pitch_range": u.pitch_range,
                              "volume": u.volume, "seed": u.noise_seed}).encode()
        pipe_in, pipe_out = self._process.stdin, self._process.stdout
        try:
            pipe_in.write(struct.pack("<I", len(request)) + request)
            pipe_in.flush()
            (size,) = struct.unpack("<I", _read_exactly(pipe_out, 4))
        except (OSError, struct.error) as err:
            raise RuntimeError(f"the espeak-ng process stopped (exit code "
                               f"{self._process.poll()}); see the error above") from err
        if size == 0xFFFFFFFF:
            raise RuntimeError(f"espeak-ng failed on {u.text!r} with voice {u.voice}")
        samples = np.frombuffer(_read_exactly(pipe_out, size), dtype=np.int16)
        return samples.astype(np.float32) / 32768.0

    def close(self) -> None:
        """Stop the server process."""
        try:
            self._process.stdin.close()  # the server ends when its input does
        except OSError:
            pass  # it has already stopped
        self._process.wait(timeout=10)
        self._process.stdout.close()


def _read_exactly(stream, n: int) -> bytes:
    """Read ``n`` bytes from ``stream``; struct.error if it ends early."""
    data = stream.read(n)
    if len(data) != n:
        raise struct.error(f"expected {n} bytes, got {len(data)}")
    return data


_ENGINE: _Espeak | None = None


def _engine() -> _Espeak:
    """This process's espeak-ng server, started on first use."""
    global _ENGINE
    if _ENGINE is None:
        if not hasattr(os, "fork"):
            raise RuntimeError("the embedded corpus needs os.fork (Linux or macOS); on Windows "
                               "use WSL, or download RAVDESS with `python -m emogan_utils "
                               "download`")
        _ENGINE = _Espeak()
        atexit.register(_ENGINE.close)
    return _ENGINE


def espeak_version() -> str:
    """The version of the bundled libespeak-ng."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    return (lib.espeak_Info(None) or b"?").decode()


# ------------------------------------------------------------------------------- DSP


def _slow_noise(rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """Smooth unit-variance random signal changing about ``rate_hz`` times a second."""
    k = max(2, int(n / sample_rate * rate_hz) + 2)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), rng.standard_normal(k))


def _warp(x: np.ndarray, sample_rate: int, u: Utterance, rng: np.random.Generator) -> np.ndarray:
    """Pitch modulation by time-varying resampling: tremor (slow sine) and jitter (fast noise)."""
    n = len(x)
    t = np.arange(n) / sample_rate
    speed = (1.0 + 0.04 * u.tremor * np.sin(2 * np.pi * u.tremor_hz * t + rng.uniform(0, 6.3))
             + 0.03 * u.jitter * _slow_noise(rng, n, sample_rate, 150.0))
    pos = np.cumsum(speed) - speed[0]
    return np.interp(pos[pos <= n - 1], np.arange(n), x).astype(np.float32)


def _amplitude(n: int, sample_rate: int, u: Utterance, rng: np.random.Generator) -> np.ndarray:
    """Amplitude modulation: tremor (slow sine) and shimmer (fast noise)."""
    t = np.arange(n) / sample_rate
    am = (1.0 + 0.35 * u.tremor * np.sin(2 * np.pi * u.tremor_hz * t + rng.uniform(0, 6.3))
          + 0.2 * u.jitter * _slow_noise(rng, n, sample_rate, 150.0))
    return np.clip(am, 0.0, None)


def _creak(n: int, sample_rate: int, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Gain of creaky voice: irregular low-rate pulses, deepening towards the end."""
    count = int(n / sample_rate * 60) + 2
    gaps = rng.uniform(0.7, 1.3, count) / rng.uniform(35, 55, count)
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    tt = np.arange(n) / sample_rate
    since = tt - times[np.searchsorted(times, tt, side="right") - 1]
    ramp = np.clip(np.linspace(-0.3, 1.3, n), 0.0, 1.0)
    return 1.0 - depth * ramp + depth * ramp * 1.6 * np.exp(-since / 0.004)


@functools.lru_cache(maxsize=32)
def _butter(order: int, hz: float | tuple[float, float], btype: str,
            sample_rate: int) -> np.ndarray:
    """Butterworth filter design (second-order sections), cached."""
    return signal.butter(order, hz, btype=btype, fs=sample_rate, output="sos")


def _split(x: np.ndarray, sample_rate: int, hz: float = 1500.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero-phase low band below ``hz`` and its exact complement."""
    low = signal.sosfiltfilt(_butter(2, hz, "lowpass", sample_rate), x)
    return low, x - low


def _tilt(x: np.ndarray, sample_rate: int, db: float) -> np.ndarray:
    """Raise (tense) or lower (lax) everything above 1.5 kHz by ``db``."""
    low, high = _split(x, sample_rate)
    return low + 10 ** (db / 20) * high


def _envelope(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Smoothed RMS envelope of ``x`` (20 ms frames every 10 ms), one value per sample."""
    hop = max(1, sample_rate // 100)
    power = np.concatenate([[0.0], np.cumsum(x ** 2)])
    starts = np.arange(0, len(x), hop)
    ends = np.minimum(starts + 2 * hop, len(x))
    frames = np.sqrt((power[ends] - power[starts]) / (ends - starts))
    return np.interp(np.arange(len(x)), starts + hop, frames)


def _breath(x: np.ndarray, sample_rate: int, amount: float,
            rng: np.random.Generator) -> np.ndarray:
    """Breathy voice: duller harmonics plus aspiration noise (0.7-4 kHz) on the speech envelope."""
    top = min(4000.0, 0.45 * sample_rate)
    noise = signal.sosfilt(_butter(2, (700.0, top), "bandpass", sample_rate),
                           rng.standard_normal(len(x)))
    noise *= 0.4 * amount * _envelope(x, sample_rate) / (noise.std() + 1e-12)
    return _tilt(x, sample_rate, -12.0 * amount) + noise


def _room(n: int, sample_rate: int, db: float, rng: np.random.Generator) -> np.ndarray:
    """Background noise: soft, low-passed, at ``db`` dBFS RMS."""
    sos = _butter(1, min(2000.0, 0.4 * sample_rate), "lowpass", sample_rate)
    noise = signal.sosfilt(sos, rng.standard_normal(n))
    return 10 ** (db / 20) * noise / (noise.std() + 1e-12)


def _limit(x: np.ndarray, knee: float = 0.7) -> np.ndarray:
    """Soft limiter: linear below ``knee``, smoothly saturating to 1 above it."""
    mag = np.abs(x)
    over = mag > knee
    out = x.copy()
    out[over] = np.sign(x[over]) * (knee + (1 - knee) * np.tanh((mag[over] - knee) / (1 - knee)))
    return out


def render(u: Utterance, sample_rate: int = 16000) -> np.ndarray:
    """Synthesise and process one utterance: float32 mono at ``sample_rate``."""
    import librosa

    rng = np.random.default_rng(u.noise_seed)
    speech = _warp(_engine().speak(u), ESPEAK_RATE, u, rng)
    if sample_rate != ESPEAK_RATE:
        speech = librosa.resample(speech, orig_sr=ESPEAK_RATE, target_sr=sample_rate,
                                  res_type="soxr_hq")
    speech = speech.astype(np.float64)
    n = len(speech)
    speech = _tilt(speech, sample_rate, u.tilt_db)
    speech = speech * _creak(n, sample_rate, u.creak, rng) * _amplitude(n, sample_rate, u, rng)
    speech = _breath(speech, sample_rate, u.breathiness, rng) * 10 ** (u.gain_db / 20)
    lead, tail = int(u.lead_s * sample_rate), int(u.tail_s * sample_rate)
    audio = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    audio = audio + _room(len(audio), sample_rate, u.noise_db, rng)
    return _limit(audio).astype(np.float32)


# ------------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class _Job:
    """One file to make."""

    path: str
    utterance: Utterance
    sample_rate: int


def corpus_files(actors: Iterable[int] = ACTORS) -> list[tuple[int, int, int, int, int]]:
    """(actor, emotion, intensity, statement, repetition) of every file, in RAVDESS order."""
    return [(a, e, i, s, r) for a in actors for e in range(1, len(EMOTIONS) + 1)
            for i in ((1,) if e == 1 else (1, 2)) for s in STATEMENTS for r in (1, 2)]


def file_path(dest: Path, actor: int, emotion_id: int, intensity: int, statement_id: int,
              repetition: int) -> Path:
    """Where one file of the corpus lives."""
    return dest / f"Actor_{actor:02d}" / ravdess_name(emotion_id, intensity, statement_id,
                                                      repetition, actor)


def _params(actors: Sequence[int], seed: int, sample_rate: int) -> dict:
    """The parameters that define a corpus; equal parameters give identical files."""
    return {"generator": GENERATOR_VERSION, "seed": seed, "actors": list(actors),
            "sample_rate": sample_rate}


def _differences(found: dict, wanted: dict) -> list[str]:
    """Human-readable differences between two parameter sets."""
    return [f"{key} {found.get(key)!r} (asked for {value!r})" for key, value in wanted.items()
            if found.get(key) != value]


def _read_params(path: Path) -> dict:
    """The parameters recorded in a manifest or marker; CorpusError if unreadable."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path} is not a readable embedded-corpus record ({err}); "
                          f"delete the folder {path.parent} yourself or choose another") from err
    if not isinstance(found, dict) or "generator" not in found:
        raise CorpusError(f"{path} was not written by emogan_utils.synth; choose another folder")
    return found


def _check_params(dest: Path, record: Path, wanted: dict) -> None:
    """Raise CorpusError if the corpus in ``dest`` was made with other parameters."""
    diffs = _differences(_read_params(record), wanted)
    if diffs:
        raise CorpusError(
            f"{dest} already holds an embedded corpus made with different parameters: "
            f"{'; '.join(diffs)}. Nothing was changed. Choose another folder, or delete "
            f"{dest} yourself to remake it.")


_TEMP = re.compile(r"^\.(.+)\.[^.]+\.tmp$")  # storage.atomic_path's leftovers


def _foreign(dest: Path, expected: set[Path]) -> tuple[list[Path], list[Path]]:
    """Entries of ``dest`` we did not make, and our own interrupted temporary files."""
    foreign, temps = [], []
    records = {dest / PARTIAL_MARKER, dest / MANIFEST}
    ours = expected | {p.parent for p in expected} | {dest / PARTIAL_MARKER}
    for path in sorted(dest.rglob("*")):
        temp = _TEMP.match(path.name)
        if temp and path.parent / temp.group(1) in expected | records:
            temps.append(path)
        elif path not in ours:
            foreign.append(path)
    return foreign, temps


def _prepare(dest: Path, wanted: dict, expected: set[Path]) -> None:
    """Check that ``dest`` is empty or our own partial corpus; clear our temporary files."""
    marker = dest / PARTIAL_MARKER
    if marker.exists():
        _check_params(dest, marker, wanted)
    foreign, temps = _foreign(dest, expected)
    if not marker.exists():
        foreign, temps = sorted(foreign + temps), []
    if foreign:
        shown = ", ".join(str(p.relative_to(dest)) for p in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise CorpusError(
            f"{dest} holds files the embedded-corpus generator did not make ({shown}{more}). "
            f"Nothing was changed. Make the embedded corpus in an empty or new folder.")
    if not marker.exists() and any(p.exists() for p in expected):
        raise CorpusError(
            f"{dest} holds RAVDESS-named files but no record that emogan made them (no "
            f"{MANIFEST} or {PARTIAL_MARKER}); it may be real RAVDESS. Nothing was changed. "
            f"Use an empty folder for the embedded corpus, or point EMOGAN_DATA at this one.")
    for temp in temps:
        temp.unlink(missing_ok=True)


def _render_job(job: _Job) -> str:
    """Render and write one file (runs in a worker process)."""
    write_audio(job.path, render(job.utterance, job.sample_rate), job.sample_rate)
    return job.path


def _run(jobs: list[_Job], workers: int, progress: bool) -> None:
    """Make every job's file, in a pool of ``workers`` processes when it pays."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="embedded corpus", unit="file", disable=not progress)
    try:
        if workers <= 1 or len(jobs) < 24:
            for job in jobs:
                _render_job(job)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")  # clean workers: one espeak each
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            for _ in pool.map(_render_job, jobs, chunksize=4):
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: stop soon, files whole
    finally:
        bar.close()


def _validate(actors: Iterable[int], seed: int, sample_rate: int) -> list[int]:
    """Sorted, checked actor ids; ValueError for bad arguments."""
    chosen = sorted({int(a) for a in actors})
    if not chosen or not all(1 <= a <= 24 for a in chosen):
        raise ValueError(f"actors must be a non-empty selection of 1-24, got {chosen}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 8000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be within 8000-48000 Hz, got {sample_rate}")
    return chosen


def make_corpus(dest: str | os.PathLike, actors: Iterable[int] = ACTORS, seed: int = 0,
                sample_rate: int = 16000, workers: int | None = None,
                progress: bool = True) -> Path:
    """Make the embedded RAVDESS-format corpus in ``dest`` (or finish it, or find it made).

    Same parameters give byte-identical files. A complete corpus is marked by ``emogan_corpus.json``
    (written last) and is returned at once; an interrupted one is finished. A folder holding
    anything else (another corpus, other parameters, foreign files) raises ``CorpusError`` and is
    left untouched.
    """
    dest = Path(dest).expanduser()
    actors = _validate(actors, seed, sample_rate)
    wanted = _params(actors, int(seed), int(sample_rate))
    if dest.exists() and not dest.is_dir():
        raise CorpusError(f"{dest} is a file, not a folder for the embedded corpus")
    files = {key: file_path(dest, *key) for key in corpus_files(actors)}
    manifest = dest / MANIFEST
    if manifest.exists():
        _check_params(dest, manifest, wanted)
        missing = [k for k, p in files.items() if not p.exists()]
        if not missing:
            (dest / PARTIAL_MARKER).unlink(missing_ok=True)
            return dest
        warnings.warn(f"{dest}: {len(missing)} file(s) of the embedded corpus are missing; "
                      f"making them again", stacklevel=2)
        write_json(dest / PARTIAL_MARKER, wanted)
        manifest.unlink()
    elif dest.exists():
        _prepare(dest, wanted, set(files.values()))
    write_json(dest / PARTIAL_MARKER, wanted)
    todo = [_Job(str(p), utterance(*k, seed=int(seed)), int(sample_rate))
            for k, p in files.items() if not p.exists()]
    _run(todo, workers or os.cpu_count() or 1, progress)
    write_json(manifest, {**wanted, "files": len(files), "espeak_ng": espeak_version(),
                          "format": "RAVDESS audio-only speech, 16-bit PCM mono WAV"})
    (dest / PARTIAL_MARKER).unlink(missing_ok=True)
    return dest


def default_corpus(make: bool = True) -> Path:
    """The corpus the notebooks and the CLI use: ``EMOGAN_DATA``/``data/RAVDESS``, else the
    embedded one, made first (if ``make``) when it is not complete."""
    paths = Paths.from_env()
    if paths.uses_embedded and make:
        make_corpus(paths.embedded)
    return paths.corpus


__all__ = ["EMOTION_RULES", "EmotionStyle", "GENERATOR_VERSION", "MANIFEST", "Speaker",
           "Utterance", "corpus_files", "default_corpus", "espeak_version", "file_path",
           "make_corpus", "render", "rules_table_markdown", "speaker", "utterance"]
