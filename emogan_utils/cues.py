"""Where the emotion lives: a neutral recording given one component of the same speaker's real
recording in another emotion at a time (pitch contour, energy contour, envelope, aperiodicity,
timing), resynthesised by WORLD and judged. The share of the emotion each variant carries says
which components a conversion must change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emogan_utils.contours import CONTOUR_WORLD, contours, frame_energy_db
from emogan_utils.data import emotion_id, translation_items
from emogan_utils.features import AudioConfig, load_audio
from emogan_utils.pairs import dtw_alignment
from emogan_utils.prosody import ProsodyShift, convert_f0
from emogan_utils.world import WorldFrames, analyze, resample_frames, stretch_frames, synthesize

VARIANTS = ("real target", "real target through WORLD", "source through WORLD",
            "target F0 contour", "target F0 + energy contours", "target envelope",
            "target envelope shape, source level", "target aperiodicity",
            "everything but timing", "target timing + F0, source timbre",
            "global statistics only")
"""The variants of :func:`cue_variants`, in the order figures show them."""


def _with_energy(frames: WorldFrames, energy_db: np.ndarray) -> WorldFrames:
    """``frames`` with each frame's envelope scaled to ``energy_db``."""
    gain = 10.0 ** (np.clip(energy_db - frame_energy_db(frames.envelope), -60, 60) / 10.0)
    return replace(frames, envelope=frames.envelope * gain[:, None])


def _global_shift(source: WorldFrames, target: WorldFrames) -> ProsodyShift:
    """The clip-level change from ``source`` to ``target``: log-F0 mean and spread, level of
    the loud frames, and duration."""
    def stats(frames: WorldFrames) -> tuple[float, float, float]:
        log_f0 = np.log(frames.f0[frames.f0 > 0]) if np.any(frames.f0 > 0) else np.zeros(1)
        energy = frame_energy_db(frames.envelope)
        loud = energy[energy >= energy.max() - 40.0]
        level = 10 * np.log10(np.mean(10 ** (loud / 10)))
        return float(log_f0.mean()), float(log_f0.std() + 1e-6), float(level)

    (m_s, s_s, l_s), (m_t, s_t, l_t) = stats(source), stats(target)
    return ProsodyShift(semitones=12 * (m_t - m_s) / np.log(2), rate=source.n_frames / target.n_frames,
                        gain_db=l_t - l_s, range_ratio=s_t / s_s)


def cue_variants(source: np.ndarray, target: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Each of :data:`VARIANTS` for one neutral ``source`` and the same speaker's ``target``
    recording: the target's components DTW-aligned (on mel-cepstra) onto the source's timeline
    and resynthesised by WORLD, except where a variant keeps the target's timing."""
    fs, ft = (analyze(w, sample_rate, CONTOUR_WORLD) for w in (source, target))
    cs, ct = contours(fs), contours(ft)
    scale = np.concatenate([cs.cepstra, ct.cepstra]).std(axis=0) + 1e-6
    index = dtw_alignment((cs.cepstra / scale).T, (ct.cepstra / scale).T)
    aligned = replace(ft, f0=ft.f0[index], envelope=ft.envelope[index],
                      aperiodicity=ft.aperiodicity[index])
    target_f0 = np.where(cs.voiced, np.exp(ct.log_f0[index]), 0.0)
    with_f0 = replace(fs, f0=target_f0)
    level = frame_energy_db(fs.envelope)
    # the source frame each target frame follows: the inverse of the alignment
    position = np.interp(np.arange(ft.n_frames), index, np.arange(fs.n_frames))
    retimed = resample_frames(fs, position)
    shift = _global_shift(fs, ft)
    global_only = _with_energy(replace(fs, f0=convert_f0(fs.f0, shift)),
                               level + shift.gain_db)
    n = len(source)
    frames = {
        "real target through WORLD": (ft, len(target)),
        "source through WORLD": (fs, n),
        "target F0 contour": (with_f0, n),
        "target F0 + energy contours": (_with_energy(with_f0, ct.energy_db[index]), n),
        "target envelope": (replace(fs, envelope=aligned.envelope), n),
        "target envelope shape, source level": (
            _with_energy(replace(fs, envelope=aligned.envelope), level), n),
        "target aperiodicity": (replace(fs, aperiodicity=aligned.aperiodicity), n),
        "everything but timing": (replace(aligned, f0=target_f0), n),
        "target timing + F0, source timbre": (replace(retimed, f0=ft.f0), len(target)),
        "global statistics only": (
            stretch_frames(global_only, max(2, round(fs.n_frames / shift.rate))),
            round(n / shift.rate)),
    }
    out = {"real target": np.asarray(target, np.float32)}
    out.update({name: synthesize(f, length) for name, (f, length) in frames.items()})
    return {name: out[name] for name in VARIANTS}


def cue_map(table: pd.DataFrame, judges: dict[str, Callable[[Sequence[np.ndarray],
                                                             Sequence[int]], np.ndarray]],
            audio: AudioConfig = AudioConfig(), source: str = "neutral",
            max_sources: int | None = None, progress: bool = True) -> pd.DataFrame:
    """How often each judge hears the target emotion in each variant (:func:`cue_variants`)
    of every (neutral recording, other emotion) pair of ``table``: one row per variant, one
    column per judge, and per emotion in ``attrs["per_emotion"]`` (variant x emotion x judge).
    """
    items = translation_items(table, source, max_sources=max_sources)
    hits: dict[tuple[str, str, str], list[bool]] = {}
    for target, rows in tqdm(items.groupby("target", sort=False), desc="cue map",
                             unit="emotion", disable=not progress):
        label = emotion_id(target) - 1
        variants = [cue_variants(load_audio(s, audio, fixed_length=False),
                                 load_audio(t, audio, fixed_length=False), audio.sample_rate)
                    for s, t in zip(rows["source_path"], rows["target_path"])]
        for name in VARIANTS:
            waves = [v[name] for v in variants]
            for judge, classify in judges.items():
                verdict = np.asarray(classify(waves, rows["actor"].to_numpy())) == label
                hits.setdefault((name, target, judge), []).extend(verdict.tolist())
    per_emotion = pd.Series({k: float(np.mean(v)) for k, v in hits.items()})
    per_emotion.index.names = ["variant", "emotion", "judge"]
    summary = per_emotion.groupby(["variant", "judge"]).mean().unstack("judge")
    summary = summary.reindex(VARIANTS)
    summary.attrs["per_emotion"] = per_emotion.unstack("judge").reindex(VARIANTS, level=0)
    return summary
