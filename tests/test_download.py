"""download_ravdess against a local HTTP server: full fetch, resume, checksum, zip-slip, no-op."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from filelock import FileLock

from emogan_utils.data import CorpusError, load_corpus, ravdess_name
from emogan_utils import cli, download
from emogan_utils.download import DownloadError, download_ravdess, resampled_copy

ARCHIVE = "Audio_Speech_Actors_01-24.zip"
NAMES = [f"Actor_{actor:02d}/{ravdess_name(emotion, 1, 1, 1, actor)}"
         for actor in (1, 2) for emotion in (1, 3, 5)]


def _wav_bytes(seed: int) -> bytes:
    """A tiny valid 16 kHz WAV file."""
    buf = io.BytesIO()
    noise = np.random.default_rng(seed).uniform(-0.1, 0.1, 400).astype(np.float32)
    sf.write(buf, noise, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _zip(names: list[str]) -> bytes:
    """A zip archive holding one tiny WAV per name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i, name in enumerate(names):
            zf.writestr(name, _wav_bytes(i))
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.payload``; honours ``Range``; ``server.mode`` simulates failures."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        rng = self.headers.get("Range")
        server.requests.append({"path": self.path, "range": rng})
        data, size = server.payload, len(server.payload)
        if server.mode == "missing":
            self.send_error(404)
            return
        if server.mode == "drop_once" and len(server.requests) == 1:
            self._send(200, data[: size // 2], size)  # promise everything, send half, hang up
            self.close_connection = True
            return
        if rng and server.mode != "ignore_range":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(206, data[start:], len(data) - start,
                       {"Content-Range": f"bytes {start}-{size - 1}/{size}"})
            return
        self._send(200, data, size)

    def _send(self, status: int, body: bytes, length: int, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server on 127.0.0.1 serving the test archive."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.payload, httpd.mode, httpd.requests = _zip(NAMES), "normal", []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/files/{ARCHIVE}?download=1"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _get(server: ThreadingHTTPServer, dest: Path, **kwargs) -> Path:
    kwargs.setdefault("md5", _md5(server.payload))
    return download_ravdess(dest, url=server.url, progress=False, chunk_size=256, timeout=5,
                            **kwargs)


def _assert_no_corpus(dest: Path) -> None:
    assert not (dest / "RAVDESS").exists()
    assert not list(dest.glob(".extract-*"))


def test_full_download_gives_a_corpus(server, tmp_path: Path) -> None:
    root = _get(server, tmp_path)
    assert root == tmp_path / "RAVDESS"
    assert sorted(p.name for p in root.iterdir()) == ["Actor_01", "Actor_02"]
    table = load_corpus(root)
    assert len(table) == len(NAMES)
    assert sorted(table["actor"].unique()) == [1, 2]
    assert [r["range"] for r in server.requests] == [None]
    assert not list(tmp_path.glob(".extract-*"))
    assert not (tmp_path / ".download").exists()  # archive removed after extraction


def test_keep_archive_and_progress_bar(server, tmp_path: Path) -> None:
    root = download_ravdess(tmp_path, url=server.url, md5=_md5(server.payload), progress=True,
                            chunk_size=512, name="speech", keep_archive=True)
    assert root == tmp_path / "speech"
    assert (tmp_path / ".download" / ARCHIVE).read_bytes() == server.payload


def test_interrupted_download_resumes_with_range(server, tmp_path: Path) -> None:
    server.mode = "drop_once"
    part = tmp_path / ".download" / f"{ARCHIVE}.part"
    with pytest.raises(DownloadError, match="resume"):
        _get(server, tmp_path)
    half = len(server.payload) // 2
    assert part.stat().st_size == half
    _assert_no_corpus(tmp_path)

    root = _get(server, tmp_path)
    assert server.requests[-1]["range"] == f"bytes={half}-"
    assert len(load_corpus(root)) == len(NAMES)
    assert not part.exists()


def test_server_ignoring_range_starts_over(server, tmp_path: Path) -> None:
    server.mode = "ignore_range"
    part = tmp_path / ".download" / f"{ARCHIVE}.part"
    part.parent.mkdir()
    junk = b"junk that is not the start of the archive"
    part.write_bytes(junk)
    root = _get(server, tmp_path)
    assert server.requests[-1]["range"] == f"bytes={len(junk)}-"  # asked, but got a 200
    assert len(load_corpus(root)) == len(NAMES)


def test_complete_part_gets_416_and_is_used(server, tmp_path: Path) -> None:
    part = tmp_path / ".download" / f"{ARCHIVE}.part"
    part.parent.mkdir()
    part.write_bytes(server.payload)
    root = _get(server, tmp_path)
    assert server.requests == [{"path": server.requests[0]["path"],
                                "range": f"bytes={len(server.payload)}-"}]
    assert len(load_corpus(root)) == len(NAMES)


def test_wrong_md5_raises_and_leaves_nothing(server, tmp_path: Path) -> None:
    wrong = "0" * 32
    with pytest.raises(DownloadError) as err:
        _get(server, tmp_path, md5=wrong)
    message = str(err.value)
    assert ARCHIVE in message and wrong in message and _md5(server.payload) in message
    _assert_no_corpus(tmp_path)
    assert not list((tmp_path / ".download").iterdir())  # bad archive deleted, no .part left


@pytest.mark.parametrize("evil", ["../evil.wav", "Actor_01/../../evil.wav", "/tmp/evil.wav"])
def test_zip_slip_member_is_rejected(server, tmp_path: Path, evil: str) -> None:
    server.payload = _zip(NAMES + [evil])
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="unsafe member"):
        _get(server, dest)
    _assert_no_corpus(dest)
    assert not (tmp_path / "evil.wav").exists()
    assert not list(tmp_path.rglob("evil.wav"))


def test_archive_without_ravdess_files_is_rejected(server, tmp_path: Path) -> None:
    server.payload = _zip(["Actor_01/hello.wav"])
    with pytest.raises(CorpusError, match="not a corpus folder emogan knows"):
        _get(server, tmp_path)
    _assert_no_corpus(tmp_path)


def test_existing_corpus_is_returned_untouched(server, tmp_path: Path, caplog) -> None:
    mine = tmp_path / "RAVDESS" / "Actor_01" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("user data")
    with caplog.at_level(logging.INFO, logger="emogan_utils.download"):
        assert _get(server, tmp_path) == tmp_path / "RAVDESS"
    assert server.requests == []
    assert mine.read_text() == "user data"
    assert "not downloading" in caplog.text


def test_stale_extract_folder_is_removed(server, tmp_path: Path) -> None:
    stale = tmp_path / ".extract-old"
    (stale / "Actor_01").mkdir(parents=True)
    (stale / "Actor_01" / "half.wav").write_bytes(b"")
    _get(server, tmp_path)
    assert not stale.exists()


def test_second_download_into_the_same_folder_stops_at_once(server, tmp_path: Path) -> None:
    running = tmp_path / ".extract-running"  # the first download's extraction in progress
    (running / "Actor_01").mkdir(parents=True)
    with FileLock(tmp_path / ".download.lock"):
        with pytest.raises(DownloadError, match="Another download into .* is running"):
            _get(server, tmp_path)
    assert server.requests == [] and running.is_dir()  # fetched nothing, deleted nothing
    assert _get(server, tmp_path) == tmp_path / "RAVDESS"  # the lock is free again
    assert not running.exists()  # stale now: nobody holds the lock


def test_http_error_is_reported(server, tmp_path: Path) -> None:
    server.mode = "missing"
    with pytest.raises(DownloadError, match="404"):
        _get(server, tmp_path)
    _assert_no_corpus(tmp_path)


def _sine(freq: float, seconds: float, rate: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32)


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(wave))) * rate / len(wave))


def _originals(root: Path) -> Path:
    """Two 48 kHz WAVs as RAVDESS ships them: one mono, one stereo (440 / 880 Hz)."""
    (root / "Actor_01").mkdir(parents=True)
    sf.write(root / "Actor_01" / ravdess_name(1, 1, 1, 1, 1), _sine(440, 1.0, 48000), 48000)
    sf.write(root / "Actor_01" / ravdess_name(5, 2, 1, 1, 1),
             np.stack([_sine(440, 1.0, 48000), _sine(880, 1.0, 48000)], axis=1), 48000)
    return root


def test_resampled_copies_are_flac_at_the_rate_with_the_same_sound(tmp_path: Path) -> None:
    source = _originals(tmp_path / "RAVDESS")
    dest = resampled_copy(source, tmp_path / "RAVDESS-16000", 16000, progress=False)
    mono, stereo = (dest / "Actor_01" / ravdess_name(e, i, 1, 1, 1, ".flac")
                    for e, i in ((1, 1), (5, 2)))
    for path, channels in ((mono, 1), (stereo, 2)):
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", 16000)
        assert info.channels == channels and info.frames == 16000
    wave, rate = sf.read(stereo, dtype="float32")
    assert [_peak_hz(wave[:, k], rate) for k in (0, 1)] == [440, 880]
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.01)
    assert sorted(load_corpus(dest)["path"].map(lambda p: Path(p).name)) == sorted(
        p.name for p in (mono, stereo))


def test_resampled_copy_keeps_finished_files_and_fills_in_the_rest(tmp_path: Path) -> None:
    source = _originals(tmp_path / "RAVDESS")
    dest = tmp_path / "copies"
    done = dest / "Actor_01" / ravdess_name(1, 1, 1, 1, 1, ".flac")
    done.parent.mkdir(parents=True)
    done.write_bytes(b"finished earlier")
    resampled_copy(source, dest, 16000, progress=False)
    assert done.read_bytes() == b"finished earlier"
    assert sf.info(dest / "Actor_01" / ravdess_name(5, 2, 1, 1, 1, ".flac")).samplerate == 16000
    assert not [p for p in dest.rglob("*") if p.is_file() and p.suffix != ".flac"]  # no temps
    with pytest.raises(DownloadError, match="no .wav files"):
        resampled_copy(tmp_path / "copies", tmp_path / "again", 16000, progress=False)


def test_download_command_with_a_rate_makes_the_copies_beside_the_corpus(
        tmp_path: Path, monkeypatch, capsys) -> None:
    corpus = _originals(tmp_path / "RAVDESS")
    monkeypatch.setattr(download, "download_ravdess", lambda dest: corpus)
    assert cli.main(["download", "--dest", str(tmp_path), "--rate", "16000"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == {"corpus": str(corpus), "copies": str(tmp_path / "RAVDESS-16000")}
    assert len(list((tmp_path / "RAVDESS-16000").rglob("*.flac"))) == 2
