"""What keying the feature cache on file content costs: the identities of every file of a corpus
by size and modification time alone, by a whole-file hash (SHA-1 and BLAKE2b), and by the
cache's own key (:meth:`~emogan_utils.features.FeatureCache.identity`: SHA-1, reused while the
file's status is unchanged), beside a whole cached re-run of ``extract_features``.

    python benchmarks/cache_key.py [--data DIR] [--repeats 5]

The files are read once first, so every hash reads them from the page cache, as a re-run does.
Prints the fastest and median of the repeats in ms, as one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from emogan_utils.config import real_ravdess
from emogan_utils.data import load_corpus
from emogan_utils.features import AudioConfig, FeatureCache, extract_features


def stat_key(path: str) -> str:
    """The size-and-modification-time key."""
    stat = os.stat(path)
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def hash_key(name: str) -> Callable[[str], str]:
    """A key of the whole file's hash ``name`` (a :mod:`hashlib` algorithm)."""
    def key(path: str) -> str:
        with open(path, "rb") as file:
            return f"{path}|{hashlib.new(name, file.read()).hexdigest()}"
    return key


def cache_identities(folder: str, config: AudioConfig, paths: list[str]) -> list[str]:
    """The cache's keys of ``paths``, from a new :class:`FeatureCache` (which reads the saved
    digests), as each run of ``extract_features`` makes them."""
    cache = FeatureCache(folder, config)
    return [cache.identity(p) for p in paths]


def timings(run: Callable[[], object], repeats: int) -> dict[str, float]:
    """Fastest and median wall time of ``run`` over ``repeats``, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"fastest_ms": round(times[0] * 1e3, 1),
            "median_ms": round(times[len(times) // 2] * 1e3, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(real_ravdess()), help="corpus folder")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    paths = [os.path.abspath(p) for p in load_corpus(args.data)["path"]]
    size = sum(len(Path(p).read_bytes()) for p in paths)  # also warms the page cache
    config = AudioConfig()
    with tempfile.TemporaryDirectory() as folder:
        extract_features(paths, config, folder, progress=False)
        report = {
            "files": len(paths), "megabytes": round(size / 1e6, 1),
            "size_and_mtime": timings(lambda: [stat_key(p) for p in paths], args.repeats),
            "sha1": timings(lambda: [hash_key("sha1")(p) for p in paths], args.repeats),
            "blake2b": timings(lambda: [hash_key("blake2b")(p) for p in paths], args.repeats),
            "cache_identity": timings(lambda: cache_identities(folder, config, paths),
                                      args.repeats),
            "cached_rerun": timings(lambda: extract_features(paths, config, folder,
                                                             progress=False), args.repeats),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
