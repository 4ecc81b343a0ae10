"""File names of other emotional-speech corpora: CREMA-D, TESS, SAVEE and ESD.

Each parser reads what one file name (and its folders) says about a recording into a
:class:`Recording`, with the emotion under the package's name where the two coincide ('fear'
is 'fearful', 'surprise' and TESS's 'pleasant surprise' are 'surprised'). RAVDESS's own parser
is :func:`emogan_utils.data.parse_name`; :func:`emogan_utils.data.load_corpus` reads them all.

- CREMA-D: ``1001_DFA_ANG_XX.wav`` = actor 1001, sentence DFA, anger, unspecified level.
- TESS: ``OAF_angry/OAF_back_angry.wav`` = speaker OAF, word "back", angry.
- SAVEE: ``DC/a01.wav`` or ``DC_a01.wav`` = speaker DC, anger, sentence 1 of that emotion.
- ESD: ``0011/Angry/0011_000351.wav`` = speaker 0011, angry, sentence 1 (each speaker reads
  the same 350 sentences in every emotion, numbered on: neutral 1-350, angry 351-700, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Recording:
    """One recording of any corpus: who says what, in which emotion."""

    path: Path
    speaker: str
    emotion: str
    utterance: str
    """What is said: the same value in two emotions makes the two recordings parallel."""
    repetition: int = 1
    intensity: int = 1
    gender: str = ""
    statement: str = ""
    """The words, where the corpus's names say them (else the utterance)."""


LABELS: dict[str, tuple[str, ...]] = {
    "crema-d": ("neutral", "happy", "sad", "angry", "fearful", "disgust"),
    "tess": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    "savee": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    "esd": ("neutral", "happy", "sad", "angry", "surprised"),
}
"""Each corpus's emotions, in the package's (RAVDESS's) order."""
EXAMPLES = {"crema-d": "1001_DFA_ANG_XX.wav", "tess": "OAF_angry/OAF_back_angry.wav",
            "savee": "DC/a01.wav or DC_a01.wav", "esd": "0011/Angry/0011_000351.wav"}

CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
                  "NEU": "neutral", "SAD": "sad"}
CREMA_LEVELS = {"LO": 1, "MD": 2, "HI": 3, "XX": 0}
"""CREMA-D's intensity levels; XX (unspecified) is 0."""
CREMA_SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
TESS_EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
                 "neutral": "neutral", "ps": "surprised", "sad": "sad"}
SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral",
                  "sa": "sad", "su": "surprised"}
ESD_EMOTIONS = {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad",
                "surprise": "surprised"}
ESD_SENTENCES = 350

_CREMA = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_TESS = re.compile(r"^([A-Za-z]{2,3})_([A-Za-z']+)_(angry|disgust|fear|happy|neutral|ps|sad)$",
                   re.IGNORECASE)
_TESS_FOLDER = re.compile(r"^([A-Za-z]{3})_(angry|disgust|fear|happy|neutral|ps|sad)$",
                          re.IGNORECASE)
_SAVEE = re.compile(r"^(?:([A-Z]{2})_)?(a|d|f|h|n|sa|su)(\d{2})$")
_ESD = re.compile(r"^(\d{4})_(\d{6})$")


def _reject(layout: str, path: Path, why: str = "") -> ValueError:
    detail = f"{why}; " if why else ""
    article = "an" if layout[0] in "aeiou" else "a"
    return ValueError(f"Not {article} {layout.upper()} file name: {path.name!r} ({detail}"
                      f"expected e.g. {EXAMPLES[layout]})")


def parse_crema(path: Path) -> Recording:
    """``AAAA_SSS_EEE_LL``: actor, sentence, emotion and level, e.g. ``1001_DFA_ANG_XX.wav``."""
    match = _CREMA.match(path.stem)
    if not match:
        raise _reject("crema-d", path)
    actor, sentence, emotion, level = match.groups()
    problems = [f"{what} {code!r} not one of {', '.join(known)}" for what, code, known in (
        ("sentence", sentence, CREMA_SENTENCES), ("emotion", emotion, CREMA_EMOTIONS),
        ("level", level, CREMA_LEVELS)) if code not in known]
    if problems:
        raise _reject("crema-d", path, "; ".join(problems))
    return Recording(path, actor, CREMA_EMOTIONS[emotion], sentence,
                     intensity=CREMA_LEVELS[level], statement=CREMA_SENTENCES[sentence])


def parse_tess(path: Path) -> Recording:
    """``SPK_word_emotion``, e.g. ``OAF_back_angry.wav``; both TESS speakers are women.

    The speaker is the folder's (``OAF_angry/``) when it names one: the distributed corpus has
    a file with a shortened prefix, ``OAF_neutral/OA_bite_neutral.wav``.
    """
    match = _TESS.match(path.stem)
    if not match:
        raise _reject("tess", path)
    speaker, word, emotion = match.groups()
    folder = _TESS_FOLDER.match(path.parent.name)
    if folder and folder.group(2).lower() == emotion.lower():
        speaker = folder.group(1)
    elif len(speaker) < 3:
        raise _reject("tess", path, f"speaker {speaker!r} has two letters and the folder "
                                    f"{path.parent.name!r} names none")
    return Recording(path, speaker.upper(), TESS_EMOTIONS[emotion.lower()], word.lower(),
                     gender="female", statement=word.lower())


def parse_savee(path: Path) -> Recording:
    """``SPK_e01`` or ``SPK/e01``, e.g. ``DC_a01.wav``; the four SAVEE speakers are men.

    The sentence number counts within one emotion, so ``a01`` and ``h01`` need not be the same
    words: the utterance is the whole code and SAVEE gives no parallel pairs.
    """
    match = _SAVEE.match(path.stem)
    if not match:
        raise _reject("savee", path)
    speaker = match.group(1) or path.parent.name
    if not re.fullmatch(r"[A-Z]{2}", speaker):
        raise _reject("savee", path, f"no speaker: the folder {path.parent.name!r} is not two "
                                     "capitals like DC")
    code = match.group(2) + match.group(3)
    return Recording(path, speaker, SAVEE_EMOTIONS[match.group(2)], code, gender="male")


def parse_esd(path: Path) -> Recording:
    """``SPK_NNNNNN`` in an emotion folder, e.g. ``0011/Angry/0011_000351.wav``.

    The sentence is ``(NNNNNN - 1) % 350 + 1``: every speaker reads the same 350 sentences in
    each emotion. A ``train``/``evaluation``/``test`` folder below the emotion is allowed but
    not kept as a split (ESD splits sentences, not speakers).
    """
    match = _ESD.match(path.stem)
    if not match:
        raise _reject("esd", path)
    folders = [p.name.lower() for p in path.parents][:3]
    emotion = next((ESD_EMOTIONS[f] for f in folders if f in ESD_EMOTIONS), None)
    if emotion is None:
        raise _reject("esd", path, f"not in a folder named {', '.join(ESD_EMOTIONS)}")
    speaker, number = match.group(1), int(match.group(2))
    if number < 1:
        raise _reject("esd", path, "sentence number 000000")
    return Recording(path, speaker, emotion, f"{(number - 1) % ESD_SENTENCES + 1:03d}")


PARSERS: dict[str, Callable[[Path], Recording]] = {
    "crema-d": parse_crema, "tess": parse_tess, "savee": parse_savee, "esd": parse_esd}
LAYOUTS = ("ravdess", *PARSERS)
"""The corpus folders :func:`emogan_utils.data.load_corpus` recognises (RAVDESS's parser is
``data.parse_name``)."""
