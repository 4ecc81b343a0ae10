"""The ``emogan`` command (also ``python -m emogan_utils``): one sub-command per task.

Each sub-command is a ``_cmd_*`` function taking the parsed arguments; ``build_parser`` wires
them up. Commands that report results end with one JSON line on standard output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from emogan_utils.config import EmoganError, Paths


def _actors(text: str) -> list[int]:
    """Parse '1,2,5-8' into [1, 2, 5, 6, 7, 8]."""
    actors: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        actors.extend(range(int(lo), int(hi or lo) + 1))
    return actors


def _data_dir(value: str | None) -> Path:
    """The corpus folder: the option, else EMOGAN_DATA / data/RAVDESS / the embedded corpus."""
    if value:
        return Path(value)
    from emogan_utils.data import default_corpus

    return default_corpus()


def _print_json(obj: dict) -> None:
    print(json.dumps(obj, sort_keys=True))


def _cmd_make_corpus(args: argparse.Namespace) -> int:
    from emogan_utils.synth import make_corpus

    dest = Path(args.dest) if args.dest else Paths.from_env().embedded
    start = time.perf_counter()
    make_corpus(dest, actors=_actors(args.actors), seed=args.seed)
    _print_json({"corpus": str(dest), "seconds": round(time.perf_counter() - start, 2)})
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from emogan_utils.download import download_ravdess

    root = download_ravdess(Path(args.dest))
    print(f"RAVDESS is in {root}; use it with EMOGAN_DATA={root}", file=sys.stderr)
    _print_json({"corpus": str(root)})
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from emogan_utils.data import load_corpus
    from emogan_utils.features import AudioConfig, extract_features

    data = _data_dir(args.data)
    table = load_corpus(data)
    start = time.perf_counter()
    feats = extract_features(list(table["path"]), AudioConfig(), Paths.from_env().cache)
    _print_json({"files": len(table), "shape": list(feats.shape),
                 "seconds": round(time.perf_counter() - start, 2)})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emogan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-corpus", help="make the embedded (synthetic) RAVDESS-format corpus")
    p.add_argument("--dest", help="target folder (default: data/embedded)")
    p.add_argument("--actors", default="1-24", help="actor ids, e.g. 1-24 or 1,2")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_make_corpus)

    p = sub.add_parser("download", help="download and extract RAVDESS speech from Zenodo")
    p.add_argument("--dest", required=True, help="folder to download into")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("features", help="extract (and cache) log-mels of a whole corpus")
    p.add_argument("--data", help="corpus folder (default: configured corpus)")
    p.set_defaults(func=_cmd_features)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EmoganError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"emogan {args.command}: error: {err}", file=sys.stderr)
        return 2
