"""Where things live: one dataclass read from the environment, shared by the CLI and notebooks.

``EMOGAN_DATA`` points at a RAVDESS folder; without it ``data/RAVDESS`` is used if present,
otherwise the embedded corpus in ``data/embedded`` (made on first use). ``EMOGAN_WORK`` holds
caches and checkpoints, ``EMOGAN_FIGURES`` the figures the notebooks save. ``EMOGAN_RAVDESS``
names the 16 kHz copies of real RAVDESS that the benchmarks and tests read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


VOCODERS = ("contours", "world", "griffin-lim")
"""How a conversion is made and becomes sound (:class:`emogan_utils.inference.Translator`):
the contour converter's pitch, energy, envelope and timing played by WORLD; the GAN's mel
change on WORLD's envelope; or the GAN's whole mel through Griffin-Lim."""
DEFAULT_VOCODER = "world"
"""The vocoder of ``translate``, the CLI and the widget, chosen on validation actors by the
rule in docs/results.md."""


def real_ravdess() -> Path:
    """The 16 kHz FLAC copies of real RAVDESS (``emogan download --rate 16000``) that the
    benchmarks and tests read: ``EMOGAN_RAVDESS`` if set, else ``../shared/ravdess/16k`` beside
    the repository. It may not exist; callers fall back or skip."""
    return _shared_corpus("EMOGAN_RAVDESS", "ravdess/16k")


def real_tess() -> Path:
    """Real TESS (the older speaker) that the benchmarks and tests read: ``EMOGAN_TESS`` if
    set, else ``../shared/tess`` beside the repository. It may not exist."""
    return _shared_corpus("EMOGAN_TESS", "tess")


def _shared_corpus(variable: str, beside: str) -> Path:
    """``$variable`` if set, else the folder ``beside`` under ``../shared`` next to the repo."""
    env = os.environ.get(variable)
    if env:
        return Path(env).expanduser()
    return PACKAGE_DIR.parent.parent.joinpath("shared", *beside.split("/"))


class EmoganError(Exception):
    """Base of the errors emogan raises for bad input; messages name the file and the problem."""


def project_root() -> Path:
    """The repository root for an editable install, else ``~/.emogan``."""
    repo = PACKAGE_DIR.parent
    if (repo / "pyproject.toml").exists() and (repo / "notebooks").is_dir():
        return repo
    return Path.home() / ".emogan"


@dataclass(frozen=True)
class Paths:
    """The folders emogan reads from and writes to."""

    root: Path
    data: Path | None
    work: Path
    figures: Path

    @property
    def embedded(self) -> Path:
        """Where the embedded (synthetic) corpus is made."""
        return self.root / "data" / "embedded"

    @property
    def cache(self) -> Path:
        """Feature cache, keyed by audio parameters inside."""
        return self.work / "cache"

    @property
    def checkpoints(self) -> Path:
        """Trained models that later notebooks pick up."""
        return self.work / "checkpoints"

    @property
    def corpus(self) -> Path:
        """The corpus to use: the configured RAVDESS folder, else the embedded corpus."""
        return self.data if self.data is not None else self.embedded

    @property
    def uses_embedded(self) -> bool:
        return self.data is None

    @classmethod
    def from_env(cls) -> "Paths":
        """Read ``EMOGAN_DATA``, ``EMOGAN_WORK`` and ``EMOGAN_FIGURES``; fall back to the repo."""
        root = project_root()
        env_data = os.environ.get("EMOGAN_DATA")
        if env_data:
            data: Path | None = Path(env_data).expanduser()
        elif (root / "data" / "RAVDESS").is_dir():
            data = root / "data" / "RAVDESS"
        else:
            data = None
        work = Path(os.environ.get("EMOGAN_WORK") or root / "data").expanduser()
        figures = Path(os.environ.get("EMOGAN_FIGURES") or root / "SampleImages").expanduser()
        return cls(root=root, data=data, work=work, figures=figures)


def check_settings(minimums: dict[str, tuple[float, float]], owner: str = "") -> None:
    """Raise ``ValueError`` naming the first setting that is not a finite number at least as
    large as its minimum: ``minimums`` maps each name to ``(value, minimum)``. NaN and
    infinities never pass (an infinite loss weight turns every loss into NaN)."""
    for name, (value, minimum) in minimums.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < minimum:
            raise ValueError(f"{owner}{name} must be a finite number >= {minimum:g}, "
                             f"got {value!r}")
