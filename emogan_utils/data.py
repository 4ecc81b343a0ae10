"""RAVDESS: file names, the corpus table, and speaker-independent splits.

A RAVDESS speech file is named ``MM-VV-EE-II-SS-RR-AA`` (modality, vocal channel, emotion,
intensity, statement, repetition, actor), e.g. ``03-01-05-02-01-01-12.wav``: audio-only speech,
angry, strong, "Kids are talking by the door", first repetition, actor 12 (female).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from emogan_utils.config import EmoganError

EMOTIONS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)
"""Emotion names in RAVDESS id order (id = index + 1)."""

STATEMENTS: dict[int, str] = {
    1: "Kids are talking by the door",
    2: "Dogs are sitting by the door",
}
MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
CHANNELS = {1: "speech", 2: "song"}
INTENSITIES = {1: "normal", 2: "strong"}
AUDIO_SUFFIXES = (".wav", ".flac")
NAME_FORM = "MM-VV-EE-II-SS-RR-AA"
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


class CorpusError(EmoganError):
    """A corpus folder or file that cannot be used, with the reason."""


@dataclass(frozen=True)
class RavdessFile:
    """One RAVDESS recording, described by its file name."""

    path: Path
    modality: int
    vocal_channel: int
    emotion_id: int
    intensity: int
    statement_id: int
    repetition: int
    actor: int

    @property
    def emotion(self) -> str:
        return EMOTIONS[self.emotion_id - 1]

    @property
    def label(self) -> int:
        """Zero-based class index (emotion id - 1)."""
        return self.emotion_id - 1

    @property
    def statement(self) -> str:
        return STATEMENTS[self.statement_id]

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def utterance(self) -> tuple[int, int, int]:
        """(actor, statement, repetition): the same words said in every emotion."""
        return (self.actor, self.statement_id, self.repetition)

    def as_row(self) -> dict:
        row = asdict(self)
        row.update(emotion=self.emotion, label=self.label, statement=self.statement,
                   gender=self.gender)
        return row


def ravdess_name(emotion_id: int, intensity: int, statement_id: int, repetition: int,
                 actor: int, suffix: str = ".wav") -> str:
    """The RAVDESS file name of an audio-only speech recording."""
    return f"03-01-{emotion_id:02d}-{intensity:02d}-{statement_id:02d}-{repetition:02d}-{actor:02d}{suffix}"


def parse_name(path: str | Path) -> RavdessFile:
    """Parse a RAVDESS file name into a :class:`RavdessFile`; raise ``ValueError`` if it does not fit."""
    path = Path(path)
    match = _NAME.match(path.stem)
    if not match:
        raise ValueError(f"Not a RAVDESS file name: {path.name!r} (expected {NAME_FORM}, "
                         f"e.g. 03-01-05-02-01-01-12.wav)")
    mm, vv, ee, ii, ss, rr, aa = (int(g) for g in match.groups())
    problems = []
    if mm not in MODALITIES:
        problems.append(f"modality {mm:02d} not in 01-03")
    if vv not in CHANNELS:
        problems.append(f"vocal channel {vv:02d} not in 01-02")
    if not 1 <= ee <= len(EMOTIONS):
        problems.append(f"emotion {ee:02d} not in 01-08")
    if ii not in INTENSITIES:
        problems.append(f"intensity {ii:02d} not in 01-02")
    elif ee == 1 and ii == 2:
        problems.append("neutral has no strong intensity")
    if ss not in STATEMENTS:
        problems.append(f"statement {ss:02d} not in 01-02")
    if rr not in (1, 2):
        problems.append(f"repetition {rr:02d} not in 01-02")
    if not 1 <= aa <= 24:
        problems.append(f"actor {aa:02d} not in 01-24")
    if problems:
        raise ValueError(f"Not a RAVDESS file name: {path.name!r} ({'; '.join(problems)}; "
                         f"expected {NAME_FORM})")
    return RavdessFile(path, mm, vv, ee, ii, ss, rr, aa)


def emotion_id(name: str) -> int:
    """RAVDESS id (1-8) of an emotion name; raise ``ValueError`` listing valid names."""
    key = name.strip().lower()
    aliases = {"anger": "angry", "fear": "fearful", "surprise": "surprised", "disgusted": "disgust"}
    key = aliases.get(key, key)
    if key not in EMOTIONS:
        raise ValueError(f"Unknown emotion {name!r}; choose one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(key) + 1


COLUMNS = ["path", "modality", "vocal_channel", "emotion_id", "intensity", "statement_id",
           "repetition", "actor", "emotion", "label", "statement", "gender"]


def load_corpus(root: str | Path, speech_only: bool = True,
                skipped: list[tuple[Path, str]] | None = None) -> pd.DataFrame:
    """Find every RAVDESS speech file below ``root`` (``Actor_XX/`` folders or flat).

    Returns one row per file, sorted by actor then name. Files that are not RAVDESS speech are
    skipped, and so is a second copy of a recording (the same RAVDESS name, as WAV or FLAC, or
    the same file through a link); each is reported with its reason in a warning and, if
    given, appended to ``skipped``. Linked folders are followed, each folder once.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusError(_missing_corpus_message(root, "does not exist"))
    rows, bad, seen = [], [], {}
    for path in sorted(_audio_files(root)):
        try:
            record = parse_name(path)
        except ValueError as err:
            bad.append((path, str(err)))
            continue
        if speech_only and (record.modality != 3 or record.vocal_channel != 1):
            bad.append((path, "not audio-only speech (modality 03, vocal channel 01)"))
            continue
        if not path.is_file():
            bad.append((path, "not a readable file (a broken or looping link)"))
            continue
        first = seen.get(path.stem) or seen.get(os.path.realpath(path))
        if first is not None:
            bad.append((path, f"the same recording as {first}, counted once"))
            continue
        seen[path.stem] = seen[os.path.realpath(path)] = path
        rows.append(record.as_row())
    if skipped is not None:
        skipped.extend(bad)
    if bad:
        shown = "\n".join(f"  {p}: {why}" for p, why in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        warnings.warn(f"Skipped {len(bad)} file(s) under {root}:\n{shown}{more}", stacklevel=2)
    if not rows:
        raise CorpusError(_missing_corpus_message(root, "holds no RAVDESS speech files"))
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["actor", "path"], key=_sort_key).reset_index(drop=True)


def _audio_files(root: Path) -> Iterator[Path]:
    """Audio files below ``root``, hidden names (temporary files of atomic writes) left out;
    linked folders are followed, each real folder once, so a link loop ends."""
    visited: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            dirs.clear()
            continue
        visited.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (Path(folder) / name for name in files
                    if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES)


def corpus_fingerprint(table: pd.DataFrame, root: str | Path) -> str:
    """SHA-1 of the sorted paths (relative to ``root``) and sizes of a corpus table's files:
    which recordings a training run used, wherever the corpus folder now lies."""
    root = Path(root).expanduser()
    lines = sorted(f"{Path(path).relative_to(root).as_posix()}\t{os.path.getsize(path)}"
                   for path in table["path"])
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def _sort_key(col: pd.Series) -> pd.Series:
    return col.map(lambda p: Path(p).name) if col.name == "path" else col


def recording(table: pd.DataFrame, actor: int, statement_id: int, emotion: str,
              intensity: int = 2, repetition: int = 1) -> pd.Series:
    """The row of one recording. Neutral has no strong intensity in RAVDESS: it falls back."""
    chosen = table[(table["actor"] == actor) & (table["statement_id"] == statement_id)
                   & (table["emotion"] == emotion) & (table["repetition"] == repetition)]
    exact = chosen[chosen["intensity"] == intensity]
    rows = exact if len(exact) or emotion != EMOTIONS[0] else chosen
    if not len(rows):
        raise CorpusError(f"The corpus has no recording of actor {actor}, statement "
                          f"{statement_id}, {emotion} ({INTENSITIES[intensity]}), "
                          f"repetition {repetition}")
    return rows.iloc[0]


def emotion_clips(table: pd.DataFrame, actor: int, statement_id: int, intensity: int = 2,
                  repetition: int = 1) -> pd.DataFrame:
    """The 8 rows (one per emotion, in id order) of one actor saying one statement."""
    return table.loc[[recording(table, actor, statement_id, emotion, intensity, repetition).name
                      for emotion in EMOTIONS]]


def translation_items(table: pd.DataFrame, source: str = "neutral",
                      targets: Sequence[str] | None = None,
                      max_sources: int | None = None) -> pd.DataFrame:
    """Every (source recording, target emotion, real target recording) triple in ``table``.

    The real target is the same actor, statement and repetition in the target emotion, at
    strong intensity where that exists (RAVDESS has no strong neutral). ``repeat_path`` is the
    same recording's other repetition (NaN where there is none): how far two takes of one
    sentence in one emotion lie apart. ``max_sources`` keeps that many source recordings,
    spread over the actors first.
    """
    emotion_id(source)
    targets = [t for t in (targets or EMOTIONS) if t != source]
    for name in targets:
        emotion_id(name)
    key = ["actor", "statement_id", "repetition"]
    real = (table.sort_values("intensity").groupby(key + ["emotion"], as_index=False).last()
            .rename(columns={"path": "target_path", "emotion": "target"}))
    repeats = (real.merge(real, on=["actor", "statement_id", "target"], suffixes=("", "_other"))
               .query("repetition != repetition_other")
               .drop_duplicates(key + ["target"])
               .rename(columns={"target_path_other": "repeat_path"}))
    items = (table[table["emotion"] == source].rename(columns={"path": "source_path"})
             .merge(pd.DataFrame({"target": targets}), how="cross")
             .merge(real[key + ["target", "target_path"]], on=key + ["target"])
             .merge(repeats[key + ["target", "repeat_path"]], on=key + ["target"], how="left"))
    if items.empty:
        raise ValueError(f"No parallel {source} -> {targets} recordings in the selected actors")
    if max_sources is not None:
        spread = items.drop_duplicates("source_path").sort_values(
            ["statement_id", "repetition", "actor"])
        items = items[items["source_path"].isin(spread["source_path"].head(max_sources))]
    return items[key + ["source_path", "target", "target_path", "repeat_path"]].reset_index(drop=True)


def _missing_corpus_message(root: Path, problem: str) -> str:
    return (f"{root} {problem}. Get RAVDESS with `python -m emogan_utils download --dest DIR` "
            f"(or from https://zenodo.org/record/1188976, Audio_Speech_Actors_01-24.zip) and set "
            f"EMOGAN_DATA=DIR, or make the embedded corpus with "
            f"`python -m emogan_utils make-corpus`.")


# ---------------------------------------------------------------- speaker-independent splits

@dataclass(frozen=True)
class Split:
    """Actors for training, validation and test; no actor is in two of them."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        for a, b in ((self.train, self.val), (self.train, self.test), (self.val, self.test)):
            shared = set(a) & set(b)
            if shared:
                raise ValueError(f"Actors {sorted(shared)} appear on both sides of a split")

    def select(self, table: pd.DataFrame, part: str) -> pd.DataFrame:
        """Rows of ``table`` whose actor is in ``part`` ('train', 'val' or 'test')."""
        return table[table["actor"].isin(getattr(self, part))].reset_index(drop=True)


def _by_gender(actors: Iterable[int], seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    actors = sorted(set(actors))
    male = [a for a in actors if a % 2]
    female = [a for a in actors if not a % 2]
    rng.shuffle(male)
    rng.shuffle(female)
    return male, female


def _take_balanced(male: list[int], female: list[int], n: int) -> list[int]:
    """Pop ``n`` actors alternating genders (starting with the larger pool)."""
    taken: list[int] = []
    while len(taken) < n and (male or female):
        pool = male if (len(male) >= len(female)) else female
        taken.append(pool.pop())
    return taken


def split_actors(actors: Sequence[int], n_val: int = 2, n_test: int = 2, seed: int = 0) -> Split:
    """A reproducible, gender-balanced split of ``actors`` into train / val / test."""
    actors = sorted(set(int(a) for a in actors))
    if n_val + n_test >= len(actors):
        raise ValueError(f"Cannot hold out {n_val} + {n_test} of {len(actors)} actors and still train")
    male, female = _by_gender(actors, seed)
    test = _take_balanced(male, female, n_test)
    val = _take_balanced(male, female, n_val)
    return Split(tuple(sorted(male + female)), tuple(sorted(val)), tuple(sorted(test)))


def actor_folds(actors: Sequence[int], k: int = 5, seed: int = 0) -> list[tuple[int, ...]]:
    """Partition ``actors`` into ``k`` gender-balanced folds (each a tuple of test actors)."""
    actors = sorted(set(int(a) for a in actors))
    if not 2 <= k <= len(actors):
        raise ValueError(f"k must be between 2 and the number of actors ({len(actors)}), got {k}")
    male, female = _by_gender(actors, seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for i, actor in enumerate(male + female):
        folds[i % k].append(actor)
    return [tuple(sorted(f)) for f in folds]


def fold_split(actors: Sequence[int], k: int, fold: int, n_val: int = 2, seed: int = 0) -> Split:
    """Fold ``fold`` of ``k``: its actors are the test set; ``n_val`` of the rest validate."""
    folds = actor_folds(actors, k, seed)
    test = folds[fold]
    rest = [a for a in actors if a not in test]
    inner = split_actors(rest, n_val=n_val, n_test=0, seed=seed + fold) if n_val else None
    val = inner.val if inner else ()
    train = tuple(a for a in sorted(set(rest)) if a not in val)
    return Split(train, val, test)
