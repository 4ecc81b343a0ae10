"""Download RAVDESS speech from Zenodo: resumable, checksummed, extracted atomically.

The archive is fetched to ``DEST/.download/<archive>.part`` (resumed with an HTTP ``Range``
request after an interruption), checked against its MD5, unpacked into a temporary
``DEST/.extract-XXXX`` folder, checked with :func:`emogan_utils.data.load_corpus`, and only then
moved to ``DEST/RAVDESS``. An interrupted or failed run never leaves a half corpus there.
One download runs into a ``DEST`` at a time: it holds ``DEST/.download.lock`` (an OS file lock,
freed when its process ends however it ends), and a second one stops with an error at once
rather than write into the same partial archive or delete the first one's extraction.
:func:`resampled_copy` makes the 16 kHz FLAC copies the benchmarks read
(``emogan download --rate 16000``).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import secrets
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import librosa
import numpy as np
import soundfile as sf
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from emogan_utils import storage
from emogan_utils.config import EmoganError
from emogan_utils.data import load_corpus

RAVDESS_URL = "https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
"""Zenodo record 1188976: the audio-only speech part of RAVDESS (24 actors, 1440 files, ~208 MB)."""

# The MD5 that Zenodo lists for Audio_Speech_Actors_01-24.zip on record 1188976.
RAVDESS_MD5 = "bc696df654c87fed845eb13823edef8a"

DOWNLOAD_DIR = ".download"
LOCK_NAME = ".download.lock"
EXTRACT_PREFIX = ".extract-"

_log = logging.getLogger(__name__)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(EmoganError):
    """A download that failed or an archive that cannot be used, with the reason."""


def download_ravdess(dest: str | os.PathLike, url: str = RAVDESS_URL, md5: str | None = RAVDESS_MD5,
                     progress: bool = True, chunk_size: int = 1 << 20, timeout: float = 60,
                     name: str = "RAVDESS", keep_archive: bool = False) -> Path:
    """Fetch, verify and unpack RAVDESS speech into ``dest/name``; return that corpus root."""
    dest = Path(dest).expanduser()
    final = dest / name
    if final.exists() and not final.is_dir():
        raise DownloadError(f"{final} exists and is not a folder; refusing to overwrite it")
    storage.check_writable_folder(dest)
    dest.mkdir(parents=True, exist_ok=True)
    lock = FileLock(dest / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DownloadError(f"Another download into {dest} is running (it holds "
                            f"{dest / LOCK_NAME}); wait for it to end, then run again") from None
    try:
        return _download_locked(dest, final, url, md5, progress, chunk_size, timeout,
                                keep_archive)
    finally:
        lock.release()


def _download_locked(dest: Path, final: Path, url: str, md5: str | None, progress: bool,
                     chunk_size: int, timeout: float, keep_archive: bool) -> Path:
    """:func:`download_ravdess`'s work, under its lock."""
    if _has_files(final):
        _say(f"{final} already exists and holds files; not downloading (delete it to fetch again).")
        return final
    _remove_stale_extracts(dest)
    archive = dest / DOWNLOAD_DIR / archive_name(url)
    if not archive.exists():
        fetch(url, archive, progress=progress, chunk_size=chunk_size, timeout=timeout)
    if md5:
        verify_md5(archive, md5)
    corpus = extract_corpus(archive, final)
    if not keep_archive:
        archive.unlink(missing_ok=True)
        _remove_if_empty(archive.parent)
    _say(f"RAVDESS speech is ready in {corpus}")
    return corpus


def resampled_copy(source: str | os.PathLike, dest: str | os.PathLike, rate: int,
                   progress: bool = True) -> Path:
    """Copy every ``.wav`` under ``source`` to the same place under ``dest`` as 16-bit FLAC at
    ``rate`` Hz (soxr high quality, channels kept) and return ``dest``. Each file is written
    atomically, so an interrupted run leaves no half file, and files already there are kept:
    running again finishes the copy."""
    if rate <= 0:
        raise ValueError(f"the sample rate must be positive, got {rate}")
    source, dest = Path(source).expanduser(), Path(dest).expanduser()
    waves = sorted(source.rglob("*.wav"))
    if not waves:
        raise DownloadError(f"{source}: no .wav files to resample")
    for wave in tqdm(waves, desc=f"{rate} Hz copies", unit="file", disable=not progress):
        target = dest / wave.relative_to(source).with_suffix(".flac")
        if target.exists():
            continue
        audio, orig_rate = sf.read(wave, dtype="float32", always_2d=True)
        storage.write_audio(target, resample_channels(audio.T, orig_rate, rate), rate)
    return dest


def resample_channels(audio: np.ndarray, orig_rate: int, rate: int) -> np.ndarray:
    """A (channels, samples) waveform at ``rate``, soxr high quality; mono comes back 1-D."""
    out = librosa.resample(audio, orig_sr=orig_rate, target_sr=rate, res_type="soxr_hq")
    return out[0] if len(out) == 1 else out


def archive_name(url: str) -> str:
    """The file name at the end of ``url``'s path (query string ignored)."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name or name in (".", ".."):
        raise DownloadError(f"Cannot tell the archive's file name from the URL {url!r}")
    return name


# ---------------------------------------------------------------- download with resume

def fetch(url: str, target: Path, progress: bool = True, chunk_size: int = 1 << 20,
          timeout: float = 60) -> Path:
    """Download ``url`` to ``target``, resuming ``target.part`` if an earlier run left one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    try:
        _fetch_part(url, part, offset, progress, chunk_size, timeout)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"Downloading {url} failed: {err}. {kept} bytes are kept in {part}; "
                            f"run again to resume.") from err
    os.replace(part, target)
    return target


def _fetch_part(url: str, part: Path, offset: int, progress: bool, chunk_size: int,
                timeout: float) -> None:
    """Fetch the rest of ``url`` into ``part``, which already holds ``offset`` bytes."""
    headers = {"User-Agent": "emogan-download/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            _check_complete(part, offset, err.headers.get("Content-Range"))
            return
        raise
    with response:
        start = _resume_offset(response, offset)
        _say_resume(part, offset, start)
        total = _total_size(response, start)
        _copy(response, part, start, total, progress, chunk_size)


def _resume_offset(response: http.client.HTTPResponse, offset: int) -> int:
    """Where the body starts: ``offset`` for a matching 206, else 0 (start over)."""
    if response.status != 206:
        return 0
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:
        raise DownloadError(f"Server answered a resume at byte {offset} with Content-Range "
                            f"{response.headers.get('Content-Range')!r}")
    return offset


def _total_size(response: http.client.HTTPResponse, start: int) -> int | None:
    """The full archive size, if the server says it."""
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _check_complete(part: Path, offset: int, content_range: str | None) -> None:
    """After a 416, make sure ``part`` really is the whole file, else delete it."""
    match = re.match(r"bytes\s+\*/(\d+)", content_range or "")
    if match and int(match.group(1)) != offset:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{part} holds {offset} bytes but the file has {match.group(1)}; "
                            f"deleted it, run again to download afresh")
    _say(f"{part.name}: already complete ({offset} bytes).")


def _copy(response: http.client.HTTPResponse, part: Path, start: int, total: int | None,
          progress: bool, chunk_size: int) -> None:
    """Stream the response body into ``part`` from byte ``start`` on, with a progress bar."""
    received = start
    with open(part, "r+b" if start else "wb") as out, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=part.name.removesuffix(".part"), disable=not progress) as bar:
        out.seek(start)
        out.truncate()
        while chunk := response.read(chunk_size):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def _say_resume(part: Path, offset: int, start: int) -> None:
    """Tell the user whether a partial download is being resumed."""
    if offset and start:
        _say(f"Resuming {part.name} at {offset} bytes.")
    elif offset:
        _say(f"The server does not resume downloads; starting {part.name} again.")


# ---------------------------------------------------------------- checksum

def file_md5(path: Path, chunk_size: int = 1 << 20) -> str:
    """The hex MD5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    """Raise :class:`DownloadError` (and delete ``path``) if its MD5 is not ``expected``."""
    actual = file_md5(path)
    if actual.lower() != expected.strip().lower():
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path.name}: MD5 checksum mismatch (expected {expected}, got "
                            f"{actual}); the archive is corrupt or not the right file and was "
                            f"deleted. Run again to download it afresh.")


# ---------------------------------------------------------------- atomic, safe extraction

def extract_corpus(archive: Path, final: Path) -> Path:
    """Unpack ``archive`` beside ``final``, check it is RAVDESS speech, then move it into place."""
    # Made with the umask's mode, which the corpus keeps once moved (mkdtemp gives 0o700).
    # The lock keeps other runs out; a stale folder of a killed run was removed before.
    tmp = final.parent / f"{EXTRACT_PREFIX}{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        safe_extract(archive, tmp)
        root = _corpus_root(tmp)
        table = load_corpus(root)
        _move_into_place(root, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"Extracted {len(table)} RAVDESS speech files from {archive.name}.")
    return final


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip into ``target`` after rejecting absolute or ``..`` member paths (zip-slip)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                _check_member(member, archive)
            zf.extractall(target)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive.name} is not a valid zip archive: {err}") from err


def _check_member(member: str, archive: Path) -> None:
    """Raise if a zip member would land outside the extraction folder."""
    path = member.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or ".." in path.split("/"):
        raise DownloadError(f"{archive.name}: refusing to extract unsafe member {member!r} "
                            f"(absolute path or '..')")


def _corpus_root(folder: Path) -> Path:
    """The folder holding ``Actor_XX/``: ``folder`` itself or its single top-level subfolder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if any(p.is_dir() and p.name.startswith("Actor_") for p in entries):
        return folder
    if len(entries) == 1 and entries[0].is_dir():
        return _corpus_root(entries[0])
    return folder


def _move_into_place(root: Path, final: Path) -> None:
    """``os.replace`` the checked corpus to ``final``; never over a folder that holds files."""
    if _has_files(final):
        raise DownloadError(f"{final} appeared while extracting and holds files; leaving it alone")
    try:
        if final.is_dir():
            final.rmdir()  # empty (checked above); os.replace cannot replace a folder on Windows
        os.replace(root, final)
    except OSError as err:
        raise DownloadError(f"Could not move the extracted corpus to {final}: {err}") from err


def _remove_stale_extracts(dest: Path) -> None:
    """Delete ``.extract-*`` folders left by an interrupted run."""
    for stale in dest.glob(EXTRACT_PREFIX + "*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------- helpers

def _has_files(folder: Path) -> bool:
    """Whether ``folder`` is a folder with anything in it."""
    return folder.is_dir() and any(folder.iterdir())


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _say(message: str) -> None:
    """Tell the user what is happening: a log message (the CLI shows it on stderr)."""
    _log.info(message)
