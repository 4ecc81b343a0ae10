"""Atomic writes: a file appears complete or not at all, and nothing is half-written."""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from emogan_utils.config import EmoganError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The file gets the mode the user's umask gives a new file. Its data reach the disk
    (``fsync``) before the rename, and the rename before the call returns, so a crash or power
    loss leaves the old file or the new one, never an empty or partly written one.
    An :class:`OSError` on the way (a full disk, a folder not writable, ``path`` a folder)
    becomes an :class:`OutputError` naming ``path`` and the problem, and the temporary file is
    removed.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: already exists; refusing to overwrite it")
    check_output_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _new_file_beside(path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write it: {os_problem(err)}") from err
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync_folder(path.parent)
    except OSError as err:
        raise OutputError(f"{path}: cannot write it: {os_problem(err)}; "
                          "nothing was written") from err
    finally:
        tmp_path.unlink(missing_ok=True)


def os_problem(err: OSError) -> str:
    """What an :class:`OSError` says went wrong (``no space left on device``), without the
    file name it may carry (a temporary one)."""
    return (err.strerror or str(err)).lower()


def _new_file_beside(path: Path) -> Path:
    """A new, empty ``.<name>.<random>.tmp`` beside ``path``, mode 0o666 less the umask (the
    kernel applies it; ``tempfile.mkstemp`` would make it 0o600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: no free name for a temporary file beside {path.name}")


def _fsync(path: Path) -> None:
    """Flush ``path``'s data to the disk (POSIX flushes through any descriptor of the file)."""
    fd = os.open(path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename), where a folder can be opened (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is done anyway
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write_all(tmp, data)


def write_all(path: Path, data: bytes) -> None:
    """Write all of ``data`` into the file ``path`` with ``os.write``, which reports a full
    disk as :class:`OSError` (ENOSPC) whatever wrote the bytes into memory first."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0))
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_audio(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int,
                subtype: str = "PCM_16") -> None:
    """Write a mono or (channels, samples) waveform to a WAV/FLAC file atomically (the format
    from the extension: :data:`AUDIO_FORMATS`)."""
    audio = np.asarray(waveform, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.T  # soundfile wants (frames, channels)
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"{path}: waveform contains NaN or infinite samples; not written")
    fmt = audio_format(path)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype, format=fmt)
    write_bytes(path, buffer.getvalue())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array as .npy atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getbuffer())


def cached_npy(path: str | os.PathLike, make: Callable[[], np.ndarray],
               shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The array saved at ``path``, or ``make()`` saved there first. A file that cannot be read,
    or (with ``shape``) holds another shape, is made again and replaced."""
    path = Path(path)
    if path.is_file():
        try:
            array = np.load(path, allow_pickle=False)
            if shape is None or array.shape == shape:
                return array
        except (OSError, ValueError):
            pass
    array = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npy(path, array)
    return array


AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
"""The audio formats :func:`write_audio` writes, by file extension."""

STALE_SECONDS = 600.0
"""Age after which a temporary file of an atomic write, or a cache shard without its index,
is taken as left by a killed process, not as a write in progress."""


class OutputError(EmoganError):
    """An output path that cannot be written, named with the reason."""


def audio_format(path: str | os.PathLike) -> str:
    """The soundfile format that ``path``'s extension names; :class:`OutputError` if none."""
    suffix = Path(path).suffix.lower()
    if suffix not in AUDIO_FORMATS:
        raise OutputError(f"{path}: cannot write {suffix or 'a file without extension'}; "
                          f"name a {' or '.join(AUDIO_FORMATS)} file")
    return AUDIO_FORMATS[suffix]


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be, or be made as, a writable folder (``X is not a folder``,
    ``X is not writable``, X its nearest existing ancestor); None if it can."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless ``folder`` is, or can be made as, a writable folder."""
    problem = folder_problem(folder)
    if problem is not None:
        raise OutputError(f"{Path(folder).absolute()}: cannot write there, {problem}")


def check_output_file(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless ``path`` can be written as a file: not a folder, in a
    folder that is, or can be made, writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; name the file to write")
    problem = folder_problem(path.parent)
    if problem is not None:
        raise OutputError(f"{path}: cannot write it, {problem}")


def check_audio_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Raise :class:`OutputError` unless :func:`write_audio` can write ``path`` without
    touching ``inputs``: a supported extension, not a folder, not an input, a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; name the audio file to write")
    audio_format(path)
    if any(path.resolve() == Path(source).resolve() for source in inputs):
        raise OutputError(f"{path}: the output would overwrite the input; choose another path")
    check_writable_folder(path.parent)


def remove_stale(paths: Iterable[Path], age: float = STALE_SECONDS) -> list[Path]:
    """Delete those of ``paths`` last modified more than ``age`` seconds ago; return them."""
    now, removed = time.time(), []
    for path in paths:
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if now - path.stat().st_mtime > age:
                path.unlink()
                removed.append(path)
    return removed


def stale_temps(path: str | os.PathLike) -> list[Path]:
    """Temporary files of :func:`atomic_path` writes to ``path``, finished or not."""
    path = Path(path)
    return list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
