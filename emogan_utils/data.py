"""Corpora: RAVDESS file names, other layouts and manifests, the corpus table, and
speaker-independent splits.

A RAVDESS speech file is named ``MM-VV-EE-II-SS-RR-AA`` (modality, vocal channel, emotion,
intensity, statement, repetition, actor), e.g. ``03-01-05-02-01-01-12.wav``: audio-only speech,
angry, strong, "Kids are talking by the door", first repetition, actor 12 (female).
"""

from __future__ import annotations

import difflib
import hashlib
import numbers
import os
import random
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from emogan_utils import storage
from emogan_utils.config import EmoganError
from emogan_utils.layouts import (CREMA_EMOTIONS, ESD_EMOTIONS, EXAMPLES, LABELS, LAYOUTS,
                                  PARSERS, TESS_EMOTIONS, Recording)

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


EMOTION_ALIASES = {"anger": "angry", "fear": "fearful", "surprise": "surprised",
                   "disgusted": "disgust", "happiness": "happy", "sadness": "sad",
                   "pleasant surprise": "surprised", "pleasant_surprise": "surprised",
                   "ps": "surprised"}
"""Other corpora's names of the package's emotions."""

KNOWN_EMOTIONS: dict[str, str] = {
    **{e: e for e in EMOTIONS}, **EMOTION_ALIASES,
    **{name.lower(): e for names in (CREMA_EMOTIONS, TESS_EMOTIONS, ESD_EMOTIONS)
       for name, e in names.items()},
}
"""Every lower-case emotion name a manifest may use, mapped to the package's name: the
package's own, :data:`EMOTION_ALIASES` and the names of the CREMA-D, TESS and ESD layouts
('ang', 'ps', 'surprise'). SAVEE's one- and two-letter codes are left out: one letter off
would be another emotion."""


def emotion_name(name: str, labels: Sequence[str] = EMOTIONS) -> str:
    """The package's name of an emotion ('Anger' -> 'angry'), which must be in ``labels``;
    raise ``ValueError`` listing them."""
    key = str(name).strip().lower()
    key = EMOTION_ALIASES.get(key, key)
    if key not in labels:
        raise ValueError(f"Unknown emotion {name!r}; choose one of {', '.join(labels)}")
    return key


def emotion_id(name: str) -> int:
    """RAVDESS id (1-8) of an emotion name; raise ``ValueError`` listing valid names."""
    return EMOTIONS.index(emotion_name(name)) + 1


COLUMNS = ["path", "modality", "vocal_channel", "emotion_id", "intensity", "statement_id",
           "repetition", "actor", "emotion", "label", "statement", "gender", "speaker",
           "utterance", "split", "corpus"]
"""The corpus table of every layout. A speaker is ``corpus`` (the layout, or a manifest's
corpus) and ``speaker`` (the name): :func:`speaker_ids`. ``actor`` numbers the speakers of
one table (the speaker's number where all are distinct numbers, else their place in sorted
order), ``statement_id`` the utterance so,
``label`` the emotion's index in the corpus's label set (:func:`corpus_labels`) and
``emotion_id`` that plus one; ``split`` is a manifest's train/val/test or empty."""
EXAMPLES = {"ravdess": "Actor_12/03-01-05-02-01-01-12.wav", **EXAMPLES}
MANIFEST_COLUMNS = ("path", "speaker", "emotion", "utterance")
MANIFEST_OPTIONAL = {"repetition": 1, "intensity": 1, "gender": "", "split": "", "corpus": ""}
"""Optional manifest columns and their defaults; an empty ``corpus`` is the manifest's name."""
SPLITS = ("train", "val", "test")


Source = str | os.PathLike
"""A corpus folder or a manifest CSV."""
Sources = Source | Sequence[Source]
"""One corpus source, or several read as one table (:func:`load_corpora`)."""


def source_list(data: Sources) -> list[Path]:
    """The sources of ``data`` (one path or a sequence of them) as a list of paths."""
    if isinstance(data, (str, os.PathLike)):
        return [Path(data)]
    return [Path(d) for d in data]


def source_label(data: Sources) -> str:
    """``data`` for messages: its path, or its paths joined with ' + '."""
    return " + ".join(str(p) for p in source_list(data))


def load_corpus(root: Sources, speech_only: bool = True,
                skipped: list[tuple[Path, str]] | None = None,
                layout: str | None = None, allow_new_emotions: bool = False) -> pd.DataFrame:
    """Every recording of a corpus: a manifest CSV (:func:`read_manifest`, which refuses
    emotions outside :data:`KNOWN_EMOTIONS` unless ``allow_new_emotions``) or a folder; a
    sequence of them is read as one table by :func:`load_corpora`.

    A folder is read in ``layout`` (one of :data:`LAYOUTS`), by default the one most of its
    file names fit (RAVDESS: ``Actor_XX/`` folders or flat). Returns one row per file (columns
    :data:`COLUMNS`), sorted by actor then name, with the corpus's emotions in
    ``table.attrs["labels"]``. Files that do not fit the layout (or are not RAVDESS speech)
    are skipped, and so is a second copy of a recording (the same recording as WAV and FLAC,
    or the same file through a link); each is reported with its reason in a warning and, if
    given, appended to ``skipped``. Linked folders are followed, each folder once.
    """
    if not isinstance(root, (str, os.PathLike)):
        sources = source_list(root)
        if len(sources) != 1:
            return load_corpora(sources, speech_only, skipped, layout,
                                allow_new_emotions=allow_new_emotions)
        root = sources[0]
    root = Path(root).expanduser()
    if root.suffix.lower() == ".csv" and not root.is_dir():
        return read_manifest(root, allow_new_emotions)
    if not root.is_dir():
        raise CorpusError(_missing_corpus_message(root, "does not exist"))
    files = sorted(_audio_files(root))
    layout = layout or detect_layout(root, files)
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    records, bad, seen = [], [], {}
    for path in files:
        try:
            record = _parse(path, layout)
        except ValueError as err:
            bad.append((path, str(err)))
            continue
        if speech_only and isinstance(record, RavdessFile) and (
                record.modality != 3 or record.vocal_channel != 1):
            bad.append((path, "not audio-only speech (modality 03, vocal channel 01)"))
            continue
        if not path.is_file():
            bad.append((path, "not a readable file (a broken or looping link)"))
            continue
        key = _identity(record)
        first = seen.get(key) or seen.get(os.path.realpath(path))
        if first is not None:
            bad.append((path, f"the same recording as {first}, counted once"))
            continue
        seen[key] = seen[os.path.realpath(path)] = path
        records.append(record)
    if skipped is not None:
        skipped.extend(bad)
    if bad:
        shown = "\n".join(f"  {p}: {why}" for p, why in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        warnings.warn(f"Skipped {len(bad)} file(s) under {root}:\n{shown}{more}", stacklevel=2)
    if not records:
        what = "RAVDESS speech" if layout == "ravdess" else f"{layout.upper()}"
        raise CorpusError(_missing_corpus_message(root, f"holds no {what} files"))
    if layout == "ravdess":
        return _table([_ravdess_row(r) for r in records], EMOTIONS, layout)
    return _recordings_table(records, LABELS[layout], layout)


def _parse(path: Path, layout: str) -> RavdessFile | Recording:
    return parse_name(path) if layout == "ravdess" else PARSERS[layout](path)


def _identity(record: RavdessFile | Recording) -> tuple:
    """What makes two files the same recording (one as WAV and one as FLAC, say)."""
    if isinstance(record, RavdessFile):
        return ("ravdess", record.path.stem)
    return (record.speaker, record.emotion, record.utterance, record.repetition,
            record.intensity)


def load_corpora(sources: Sequence[Source], speech_only: bool = True,
                 skipped: list[tuple[Path, str]] | None = None,
                 layout: str | None = None, rename: bool = False,
                 allow_new_emotions: bool = False) -> pd.DataFrame:
    """One corpus table of several corpus folders or manifests (:func:`merge_corpora`).

    Each source is read by :func:`load_corpus` (``layout``, if given, for every folder;
    ``allow_new_emotions`` for every manifest).
    :class:`CorpusError` if there is no source, if one is given twice, if a file is in two
    sources, or if two sources hold corpora of one name (two RAVDESS folders): read alone,
    each would name its speakers alike. With ``rename`` (for writing one manifest of them,
    which then keeps the names) such a corpus takes its folder's (or manifest's) name instead.
    """
    sources = [Path(s).expanduser() for s in sources]
    if not sources:
        raise CorpusError("no corpus given: name at least one corpus folder or manifest")
    tables, owner, where = [], {}, {}
    for k, source in enumerate(sources):
        if any(os.path.realpath(source) == os.path.realpath(s) for s in sources[:k]):
            raise CorpusError(f"{source}: given twice; name each corpus once")
        table = load_corpus(source, speech_only, skipped, layout, allow_new_emotions)
        names = list(dict.fromkeys(table["corpus"]))
        if rename and len(names) == 1 and names[0] in owner:
            table = table.assign(corpus=_own_name(source))
            names = [_own_name(source)]
        taken = [n for n in names if n in owner]
        if taken:
            raise CorpusError(
                f"{source}: its corpus is named {taken[0]!r}, as is {owner[taken[0]]}'s, so "
                "their speakers would be named alike; write one manifest of both (`emogan "
                "manifest DIR DIR --out m.csv` names each corpus by its folder) and use that")
        owner.update(dict.fromkeys(names, source))
        for path in table["path"]:
            real = os.path.realpath(path)
            if real in where:
                raise CorpusError(f"{source}: {path} is also in {where[real]}; a recording "
                                  "may be in one of the corpora only")
            where[real] = source
        tables.append(table)
    return merge_corpora(tables)


def _own_name(source: Path) -> str:
    """A corpus's name from its source: the folder's name, or the manifest's without .csv."""
    return source.stem if source.suffix.lower() == ".csv" else source.name


def merged_labels(label_sets: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """Every emotion of ``label_sets``: the package's (:data:`EMOTIONS`) first in their order,
    then the others alphabetically."""
    present = {e for labels in label_sets for e in labels}
    return (*(e for e in EMOTIONS if e in present), *sorted(present - set(EMOTIONS)))


ACTOR_BLOCK = 100
"""Each corpus after the first numbers its actors from the next multiple of this."""


def merge_corpora(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The corpus tables of several corpora as one (columns :data:`COLUMNS`).

    The first table's actor numbers stay; each later table's are shifted by the smallest
    multiple of :data:`ACTOR_BLOCK` above every number before it (so even numbers stay even),
    and no two corpora share one. The label set is :func:`merged_labels` of the tables'
    (:func:`corpus_labels`), and ``label`` and ``emotion_id`` follow it; ``corpus`` keeps the
    speakers apart (:func:`speaker_ids`). ``attrs["layout"]`` joins the layouts with '+'.
    """
    if len(tables) == 1:
        return tables[0]
    labels = merged_labels(corpus_labels(t) for t in tables)
    parts, start = [], 0
    for table in tables:
        part = table.assign(actor=table["actor"].astype(int) + start)
        start = (int(part["actor"].max()) // ACTOR_BLOCK + 1) * ACTOR_BLOCK
        parts.append(part)
    merged = pd.concat(parts, ignore_index=True)
    merged["label"] = [labels.index(e) for e in merged["emotion"]]
    merged["emotion_id"] = merged["label"] + 1
    layouts = dict.fromkeys(t.attrs.get("layout", "manifest") for t in tables)
    merged = merged.sort_values(["actor", "path"], key=_sort_key).reset_index(drop=True)
    merged.attrs.update(labels=labels, layout="+".join(layouts))
    return merged


def detect_layout(root: Path, files: Sequence[Path] | None = None) -> str:
    """The layout most audio files below ``root`` fit; :class:`CorpusError` if none fits."""
    files = sorted(_audio_files(root)) if files is None else files
    fits = {}
    for layout in LAYOUTS:
        fits[layout] = 0
        for path in files:
            try:
                _parse(path, layout)
                fits[layout] += 1
            except ValueError:
                pass
    best = max(LAYOUTS, key=lambda name: fits[name])  # ties: the earlier layout, RAVDESS first
    if not fits[best]:
        known = "; ".join(f"{name}: {example}" for name, example in EXAMPLES.items())
        found = (f"none of its {len(files)} audio file(s) is named" if files
                 else "it holds no audio files named")
        raise CorpusError(_missing_corpus_message(
            root, f"is not a corpus folder emogan knows: {found} as in a known layout "
                  f"({known}); for other names write a manifest CSV (path, speaker, emotion, "
                  "utterance) and pass it instead of the folder"))
    return best


def _ravdess_row(record: RavdessFile) -> dict:
    return {**record.as_row(), "speaker": f"{record.actor:02d}",
            "utterance": f"{record.statement_id:02d}", "split": "", "corpus": "ravdess"}


def _numbers(values: Sequence[str]) -> dict[str, int]:
    """Each distinct value's number: itself where all are digits naming distinct numbers, else
    its place (from 1), so that ``1`` and ``01`` stay apart."""
    distinct = sorted(set(values))
    if all(v.isdigit() for v in distinct) and len({int(v) for v in distinct}) == len(distinct):
        return {v: int(v) for v in distinct}
    return {v: i for i, v in enumerate(distinct, start=1)}


def speaker_ids(table: pd.DataFrame) -> list[str]:
    """Each row's speaker as ``corpus/name``, e.g. ``ravdess/01`` or ``tess/OAF``: two corpora
    whose speakers share a name or number keep them apart."""
    return [f"{c}/{s}" for c, s in zip(table["corpus"], table["speaker"])]


def training_speakers(table: pd.DataFrame, train_actors: Sequence[int],
                      val_actors: Sequence[int]) -> dict[str, list[str]]:
    """``train_speakers`` and ``val_speakers`` as ``corpus/name``, for a checkpoint."""
    named = dict(zip(table["actor"], speaker_ids(table)))
    return {"train_speakers": [named[a] for a in train_actors if a in named],
            "val_speakers": [named[a] for a in val_actors if a in named]}


def seen_actors(extra: dict, table: pd.DataFrame) -> list[int]:
    """The actors of a corpus ``table`` that a checkpoint (its ``extra``) was trained or
    validated on: those whose ``corpus/name`` it records; for a checkpoint that records only
    actor numbers, the speakers whose name is one of those numbers."""
    named = {*extra.get("train_speakers", []), *extra.get("val_speakers", [])}
    numbers = {*extra.get("train_actors", []), *extra.get("val_actors", [])}
    seen = {int(actor) for actor, who, name in zip(table["actor"], speaker_ids(table),
                                                   table["speaker"].astype(str))
            if who in named or not named and name.isdigit() and int(name) in numbers}
    return sorted(seen)


def select_actors(table: pd.DataFrame, speakers: Iterable[int | str], source: object
                  ) -> list[int]:
    """The table's actor numbers of ``speakers``: ints are actor numbers as they are; a string
    is a speaker's name (``OAF``, any case), ``corpus/name`` (``tess/OAF``), or a number that
    a numerically named speaker has (``19`` for ``19`` or ``0019``).

    A name no speaker has, or one that several corpora's speakers share, raises
    :class:`CorpusError` naming ``source`` (the corpus) and the speakers it has.
    """
    who = table[["actor", "corpus", "speaker"]].drop_duplicates("actor")
    ids = {int(a): f"{c}/{s}" for a, c, s in who.itertuples(index=False)}
    names = {int(a): str(s) for a, s in zip(who["actor"], who["speaker"])}
    chosen, problems = [], []
    for item in speakers:
        if isinstance(item, numbers.Integral) and not isinstance(item, bool):
            chosen.append(int(item))
            continue
        text = str(item).strip()
        found = [a for a in ids if text.lower() in (ids[a].lower(), names[a].lower())]
        if not found and text.isdigit():
            found = [a for a, n in names.items() if n.isdigit() and int(n) == int(text)]
        if len(found) == 1:
            chosen.append(found[0])
        else:
            problems.append(f"{text!r} names {' and '.join(ids[a] for a in found)}: write "
                            "corpus/name" if found else f"no speaker {text!r}")
    if problems:
        names = ", ".join(sorted(ids.values()))
        raise CorpusError(f"{source}: {'; '.join(problems)} (its speakers: {names})")
    return chosen


def _recordings_table(records: Sequence[Recording], labels: Sequence[str], layout: str,
                      splits: Sequence[str] | None = None,
                      corpora: Sequence[str] | None = None) -> pd.DataFrame:
    """The corpus table of recordings of any layout (or a manifest's, with their splits and
    corpora)."""
    actors = _numbers([r.speaker for r in records])
    statements = _numbers([r.utterance for r in records])
    rows = []
    for i, r in enumerate(records):
        label = list(labels).index(r.emotion)
        rows.append({"path": r.path, "modality": 3, "vocal_channel": 1, "emotion_id": label + 1,
                     "intensity": r.intensity, "statement_id": statements[r.utterance],
                     "repetition": r.repetition, "actor": actors[r.speaker],
                     "emotion": r.emotion, "label": label,
                     "statement": r.statement or r.utterance, "gender": r.gender,
                     "speaker": r.speaker, "utterance": r.utterance,
                     "split": splits[i] if splits else "",
                     "corpus": corpora[i] if corpora else layout})
    return _table(rows, labels, layout)


def _table(rows: list[dict], labels: Sequence[str], layout: str) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    table = table.sort_values(["actor", "path"], key=_sort_key).reset_index(drop=True)
    table.attrs.update(labels=tuple(labels), layout=layout)
    return table


def corpus_labels(table: pd.DataFrame) -> tuple[str, ...]:
    """The emotions of the corpus ``table`` came from, in label order (also for a part of it:
    pandas keeps ``attrs`` through selections); a table without them gives its own."""
    if "labels" in table.attrs:
        return tuple(table.attrs["labels"])
    pairs = table[["label", "emotion"]].drop_duplicates().sort_values("label")
    return tuple(pairs["emotion"])


def training_labels(table: pd.DataFrame, data: str | os.PathLike) -> tuple[str, ...]:
    """:func:`corpus_labels` of a corpus to train on; ValueError naming ``data`` if its
    recordings hold fewer than two emotions (nothing to tell apart or convert between)."""
    present = sorted(set(table["emotion"]))
    if len(present) < 2:
        raise ValueError(f"{data}: the recordings hold {len(present)} emotion(s) "
                         f"({', '.join(present) or 'none'}); training needs at least two")
    return corpus_labels(table)


def closest_emotion(name: str) -> str | None:
    """The package's name of the known emotion name (:data:`KNOWN_EMOTIONS`) spelt most like
    ``name``, or None when none is close."""
    close = difflib.get_close_matches(name.lower(), KNOWN_EMOTIONS, n=1)
    return KNOWN_EMOTIONS[close[0]] if close else None


def manifest_emotions(path: Path, names: Sequence[str],
                      allow_new: bool = False) -> list[str]:
    """The package's names of a manifest's emotion column (:data:`KNOWN_EMOTIONS`); a name
    outside them is kept, lower-case, as a new emotion if ``allow_new``, else
    :class:`CorpusError` names the manifest, each such name with its lines, and the closest
    known emotion."""
    keys = [str(n).strip().lower() for n in names]
    unknown: dict[str, list[int]] = {}
    for line, key in zip(range(2, len(keys) + 2), keys):
        if key not in KNOWN_EMOTIONS:
            unknown.setdefault(key, []).append(line)
    if unknown and not allow_new:
        shown = []
        for key, lines in list(unknown.items())[:5]:
            where = f"line {lines[0]}" + (f" (and {len(lines) - 1} more)" if len(lines) > 1
                                           else "")
            guess = closest_emotion(key)
            hint = f"did you mean {guess!r}?" if guess else "no known emotion is close"
            shown.append(f"{where}: unknown emotion {key!r} ({hint})")
        more = f"; ... and {len(unknown) - 5} more names" if len(unknown) > 5 else ""
        raise CorpusError(f"{path}: {'; '.join(shown)}{more}. The known emotions are "
                          f"{', '.join(EMOTIONS)} and their other corpora's names (e.g. "
                          "'anger', 'fear', 'surprise', 'ps'); to make each new name its own "
                          "class, pass --allow-new-emotions (allow_new_emotions=True)")
    return [KNOWN_EMOTIONS.get(key, key) for key in keys]


def read_manifest(path: str | Path, allow_new_emotions: bool = False) -> pd.DataFrame:
    """The corpus table of a manifest CSV: ``path, speaker, emotion, utterance`` and optional
    ``repetition, intensity, gender, split`` columns, one row per recording.

    Paths are relative to the manifest's folder (or absolute). Emotion names become the
    package's where they mean the same ('Anger' -> 'angry', 'surprise' -> 'surprised'); a name
    outside :data:`KNOWN_EMOTIONS` ('angery') raises :class:`CorpusError` with the closest
    known one, unless ``allow_new_emotions`` keeps it as a new emotion. The label set is the
    emotions present, the package's first in their order, then the rest in alphabetical order.
    A missing column or file, an empty field, a bad number, a path listed twice or a speaker in
    two splits raise :class:`CorpusError` naming the manifest.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorpusError(f"{path}: no such manifest")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CorpusError(f"{path}: not a readable manifest CSV ({err})") from err
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise CorpusError(f"{path}: manifest lacks column(s) {', '.join(missing)} (it needs "
                          f"{', '.join(MANIFEST_COLUMNS)}; optional: "
                          f"{', '.join(MANIFEST_OPTIONAL)})")
    if frame.empty:
        raise CorpusError(f"{path}: the manifest lists no recordings")
    for column, default in MANIFEST_OPTIONAL.items():
        if column not in frame.columns:
            frame[column] = str(default)
    frame = frame.apply(lambda col: col.str.strip())
    problems = []
    for line, row in zip(range(2, len(frame) + 2), frame.itertuples(index=False)):
        empty = [c for c in MANIFEST_COLUMNS if not getattr(row, c)]
        if empty:
            problems.append(f"line {line}: empty {', '.join(empty)}")
        for column in ("repetition", "intensity"):
            if not getattr(row, column).isdigit():
                problems.append(f"line {line}: {column} {getattr(row, column)!r} is not a "
                                "whole number")
        if row.split.lower() not in ("", *SPLITS):
            problems.append(f"line {line}: split {row.split!r} is not one of {', '.join(SPLITS)}")
    _raise_problems(path, problems)
    base = path.parent
    files = [Path(p).expanduser() if Path(p).expanduser().is_absolute() else base / p
             for p in frame["path"]]
    absent = [f"line {line}: {file} does not exist" for line, file
              in zip(range(2, len(frame) + 2), files) if not file.is_file()]
    listed: dict[str, int] = {}
    for line, file in zip(range(2, len(frame) + 2), files):
        real = os.path.realpath(file)
        if real in listed:
            absent.append(f"line {line}: {file} is listed again (first on line {listed[real]})")
        listed.setdefault(real, line)
    _raise_problems(path, absent)
    emotions = manifest_emotions(path, list(frame["emotion"]), allow_new_emotions)
    splits = [s.lower() for s in frame["split"]]
    corpora = [c or path.stem for c in frame["corpus"]]
    several = len(set(corpora)) > 1
    where: dict[str, set[str]] = {}
    for corpus, speaker, split in zip(corpora, frame["speaker"], splits):
        if split:
            where.setdefault(f"{corpus}/{speaker}" if several else speaker, set()).add(split)
    twice = {s: sorted(parts) for s, parts in where.items() if len(parts) > 1}
    if twice:
        shown = "; ".join(f"speaker {s} in {' and '.join(p)}" for s, p in sorted(twice.items()))
        raise CorpusError(f"{path}: a speaker may be in one split only, so that validation and "
                          f"test speakers are never trained on ({shown})")
    labels = tuple([e for e in EMOTIONS if e in emotions]
                   + sorted(set(emotions) - set(EMOTIONS)))
    records = [Recording(file, row.speaker, emotion, row.utterance, int(row.repetition),
                         int(row.intensity), row.gender.lower())
               for file, emotion, row in zip(files, emotions, frame.itertuples(index=False))]
    return merge_corpora([_manifest_part(records, splits, corpora, name, labels)
                          for name in dict.fromkeys(corpora)])


def _manifest_part(records: Sequence[Recording], splits: Sequence[str], corpora: Sequence[str],
                   name: str, labels: Sequence[str]) -> pd.DataFrame:
    """The corpus table of a manifest's recordings of corpus ``name``."""
    rows = [i for i, corpus in enumerate(corpora) if corpus == name]
    return _recordings_table([records[i] for i in rows], labels, "manifest",
                             [splits[i] for i in rows], [name] * len(rows))


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        more = f"; ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise CorpusError(f"{path}: bad manifest: {'; '.join(problems[:5])}{more}")


def write_manifest(table: pd.DataFrame, out: str | Path) -> Path:
    """Write a corpus table as a manifest CSV (atomically), paths relative to its folder."""
    out = Path(out).expanduser()
    base = out.parent.resolve()
    rows = table.assign(path=[os.path.relpath(Path(p).resolve(), base) for p in table["path"]])
    with storage.atomic_path(out) as tmp:
        rows[[*MANIFEST_COLUMNS, *MANIFEST_OPTIONAL]].to_csv(tmp, index=False)
    return out


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


def corpus_fingerprint(table: pd.DataFrame, root: Sources) -> str:
    """SHA-1 of the sorted paths (relative to ``root``, a corpus folder or a manifest's) and
    sizes of a corpus table's files: which recordings a training run used, wherever the corpus
    now lies. With several sources each path is relative to the source folder it lies in
    (the deepest), so one source in a list gives the same fingerprint as alone."""
    folders = []
    for source in source_list(root):
        source = source.expanduser()
        folders.append(os.path.abspath(source.parent if source.is_file() else source))
    lines = sorted(f"{Path(os.path.relpath(path, _folder_of(path, folders))).as_posix()}"
                   f"\t{os.path.getsize(path)}" for path in table["path"])
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def _folder_of(path: str | Path, folders: Sequence[str]) -> str:
    """The deepest of ``folders`` (absolute) that holds ``path``, else the first."""
    where = os.path.abspath(path)
    holding = [f for f in folders if where.startswith(f.rstrip(os.sep) + os.sep)]
    return max(holding, key=len) if holding else folders[0]


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
    known = (*EMOTIONS, *(e for e in corpus_labels(table) if e not in EMOTIONS))
    source = emotion_name(source, known)
    targets = [t for t in (emotion_name(t, known) for t in (targets or known)) if t != source]
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


def manifest_actors(table: pd.DataFrame, part: str) -> list[int]:
    """The actors a manifest puts in ``part`` ('train', 'val' or 'test')."""
    return sorted({int(a) for a in table.loc[table["split"] == part, "actor"]})


def manifest_split(table: pd.DataFrame, val_actors: Sequence[int] | None,
                   train_actors: Sequence[int] | None
                   ) -> tuple[Sequence[int] | None, Sequence[int] | None]:
    """The validation and training actors: those given, else a manifest's split (its
    ``train`` speakers less the validation ones), else None."""
    if val_actors is None and manifest_actors(table, "val"):
        val_actors = manifest_actors(table, "val")
    if train_actors is None and manifest_actors(table, "train"):
        train_actors = [a for a in manifest_actors(table, "train")
                        if a not in set(val_actors or ())]
    return val_actors, train_actors


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


def held_out_split(table: pd.DataFrame, val_actors: Sequence[int | str],
                   train_actors: Sequence[int | str] | None,
                   source: object) -> tuple[list[int], list[int]]:
    """The training and validation actors of a translation model: ``val_actors`` (else a
    manifest's ``val`` speakers) validate; ``train_actors`` (else a manifest's ``train``
    speakers, else every other actor but a manifest's ``test`` ones) train. Speakers are
    numbers or names (:func:`select_actors`); ValueError naming ``source`` (the corpus) if some
    are not in it or none is left to train on."""
    actors = {int(a) for a in table["actor"]}  # plain ints: checkpoints load weights_only
    given_val, given_train = manifest_split(
        table, select_actors(table, val_actors, source) or None,
        select_actors(table, train_actors, source) if train_actors else None)
    val = [int(a) for a in given_val or ()]
    held_out = set(val) | set(manifest_actors(table, "test"))
    train = sorted({int(a) for a in given_train or actors} - held_out)
    missing = sorted((set(train) | set(val)) - actors)
    if missing:
        raise ValueError(f"{source}: no recordings of actors {missing}")
    if not train:
        raise ValueError(f"{source}: no actors left to train on: the corpus has actors "
                         f"{sorted(actors)}, all held out for validation or test; hold out "
                         "fewer (--val-actors)")
    return train, val


def validation_actors(table: pd.DataFrame, n_val: int = 2, seed: int = 0) -> tuple[int, ...]:
    """Validation actors drawn from each corpus of ``table``: :func:`split_actors`'s
    gender-balanced ``n_val`` from every corpus of more than ``n_val`` speakers (a smaller one
    gives none and trains on all its speakers); empty if no corpus has that many."""
    chosen: list[int] = []
    for _, actors in table.groupby("corpus", sort=False)["actor"]:
        actors = sorted({int(a) for a in actors})
        if len(actors) > n_val:
            chosen.extend(split_actors(actors, n_val=n_val, n_test=0, seed=seed).val)
    return tuple(sorted(chosen))


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
