"""What every run leaves behind: file modes, durable writes, the version, log messages, and
output folders outside the repository."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import emogan_utils
from emogan_utils import cli, storage
from emogan_utils.checkpoint import save_checkpoint
from emogan_utils.config import Paths, real_ravdess
from emogan_utils.features import AudioConfig, Normalizer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    storage.write_bytes(tmp_path / "a.bin", b"x")
    storage.write_json(tmp_path / "b.json", {"a": 1})
    storage.write_npy(tmp_path / "c.npy", np.zeros(3))
    storage.write_audio(tmp_path / "d.wav", np.zeros(160, np.float32), 16000)
    save_checkpoint(tmp_path / "e.pt", kind="classifier", model_config={},
                    state={"model": torch.nn.Linear(2, 1).state_dict()}, audio=AudioConfig(),
                    normalizer=Normalizer(np.zeros(80), np.ones(80)))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["a.bin", "b.json", "c.npy", "d.wav", "e.pt"]  # no temporary files left
    assert {name: _mode(tmp_path / name) for name in written} == dict.fromkeys(written,
                                                                               0o666 & ~mask)


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path,
                                                                            monkeypatch):
    events: list[tuple[str, object]] = []
    real_replace = os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(info.st_mode) else "fsync", info.st_size))

    def replace(src, dst) -> None:
        events.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    storage.write_bytes(tmp_path / "out.bin", b"12345")
    assert events[:2] == [("fsync", 5), ("replace", "out.bin")]  # the data, then the name
    if os.name == "posix":
        assert events[2][0] == "fsync-dir"
    assert (tmp_path / "out.bin").read_bytes() == b"12345"


def test_version_is_the_installed_one(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"emogan {emogan_utils.__version__}"
    assert emogan_utils.__version__ == metadata.version("emogan")


def test_library_messages_are_quiet_unless_the_cli_or_the_user_asks():
    # A fresh interpreter: importing every module and logging must print nothing, and the
    # package must not have configured any handler (notebooks stay quiet).
    program = (
        "import importlib, logging, pkgutil, emogan_utils\n"
        "for m in pkgutil.iter_modules(emogan_utils.__path__):\n"
        "    if m.name not in ('__main__', 'cli', 'widgets'):\n"
        "        importlib.import_module('emogan_utils.' + m.name)\n"
        "from emogan_utils import download\n"
        "download._say('hello from the library')\n"
        "assert not logging.getLogger().handlers, logging.getLogger().handlers\n"
        "assert not logging.getLogger('emogan_utils').handlers\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "hello from the library" not in done.stdout + done.stderr


def test_the_cli_shows_library_messages_on_stderr(tmp_path, monkeypatch, capsys):
    from emogan_utils import download

    def fake_download(dest: Path) -> Path:
        download._say("fetching the archive")
        return dest / "RAVDESS"

    monkeypatch.setattr(download, "download_ravdess", fake_download)
    assert cli.main(["download", "--dest", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "fetching the archive" in err and "fetching" not in out
    assert out.strip().startswith("{")  # stdout keeps only the JSON result line


def test_tests_write_outside_the_repository_unless_asked(outputs_in_a_temporary_folder):
    """Unset, EMOGAN_WORK and EMOGAN_FIGURES point at temporary folders (conftest); a value
    set on purpose, as ``./run.sh tests`` or a figure refresh does, is kept."""
    paths = Paths.from_env()
    chosen = {"EMOGAN_WORK": paths.work, "EMOGAN_FIGURES": paths.figures}
    for name, folder in outputs_in_a_temporary_folder.items():
        assert chosen[name] == folder
        assert REPO not in folder.resolve().parents
    for name in chosen.keys() - outputs_in_a_temporary_folder.keys():
        assert chosen[name] == Path(os.environ[name]).expanduser()


def _name(requirement: str) -> str:
    """The canonical distribution name of a requirement such as ``torch==2.14.1``."""
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0]).lower()


def _requirements() -> list[str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *(r for extra in project["optional-dependencies"].values()
                                        for r in extra)]


def test_every_imported_package_is_declared():
    declared = {_name(r) for r in _requirements()}
    distributions = metadata.packages_distributions()
    undeclared = {}
    for file in sorted({*REPO.glob("emogan_utils/*.py"), *REPO.glob("benchmarks/*.py"),
                        *REPO.glob("tests/*.py")}):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top in ("emogan_utils", "conftest"):
                    continue
                if not {_name(d) for d in distributions.get(top, [top])} & declared:
                    undeclared.setdefault(top, file.relative_to(REPO).as_posix())
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_environment_yml_matches_pyproject():
    text = (REPO / "environment.yml").read_text()
    channels = re.search(r"^channels:\n((?:  - .*\n)+)", text, re.M).group(1)
    assert channels.split() == ["-", "conda-forge"]
    listed = {_name(line.split("- ", 1)[1]) for line in text.splitlines()
              if re.match(r"^\s+- [A-Za-z]", line)}
    conda_names = {"soundfile": "pysoundfile"}
    for requirement in _requirements():
        assert conda_names.get(_name(requirement), _name(requirement)) in listed, requirement
    pip_section = text.split("- pip:", 1)[1]
    for pinned in ("torch", "torchaudio"):
        wanted = next(r for r in _requirements() if _name(r) == pinned)
        assert f"- {wanted}\n" in pip_section, f"{wanted} belongs in the pip: section"


def test_the_real_ravdess_folder_comes_from_one_place(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOGAN_RAVDESS", str(tmp_path))
    assert real_ravdess() == tmp_path
    monkeypatch.delenv("EMOGAN_RAVDESS")
    assert real_ravdess() == REPO.parent / "shared" / "ravdess" / "16k"
    spelled = [f"{path.relative_to(REPO)}:{number}"
               for folder in ("emogan_utils", "benchmarks", "tests")
               for path in sorted((REPO / folder).glob("*.py"))
               if path.name not in ("config.py", Path(__file__).name)
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if re.search(r'"shared"|"ravdess"\s*/\s*"16k"', line)]
    assert not spelled, f"name the real RAVDESS folder through config.real_ravdess(): {spelled}"


def test_no_issue_numbers_or_device_loans_in_code_docs_or_notebooks():
    pattern = re.compile(r"[Ii]ssue[- ][0-9]+|was\slent|not\sdrawn")
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for folder, suffix in (("emogan_utils", "py"), ("benchmarks", "py"), ("tests", "py"),
                           ("notebooks", "ipynb")):
        files += sorted((REPO / folder).glob(f"*.{suffix}"))
    found = [f"{path.relative_to(REPO)}:{number}" for path in files
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert not found, f"issue numbers or device-loan remarks (git keeps the history): {found}"


def notebook_outputs(path: Path) -> list[str]:
    """Where a notebook carries what a run leaves: cell outputs or execution counts."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [f"{path.name} cell {number}" for number, cell in enumerate(cells)
            if cell.get("outputs") or cell.get("execution_count") is not None]


def test_committed_notebooks_carry_no_outputs():
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    carrying = [where for path in notebooks for where in notebook_outputs(path)]
    assert not carrying, f"clear the outputs before committing (nbstripout or Jupyter): {carrying}"


def test_notebook_outputs_are_found(tmp_path):
    run = {"cells": [{"cell_type": "markdown", "source": []},
                     {"cell_type": "code", "execution_count": None, "outputs": [], "source": []},
                     {"cell_type": "code", "execution_count": 3, "outputs": [], "source": []},
                     {"cell_type": "code", "execution_count": None, "source": [],
                      "outputs": [{"output_type": "stream", "text": ["1"]}]}]}
    path = tmp_path / "run.ipynb"
    path.write_text(json.dumps(run), encoding="utf-8")
    assert notebook_outputs(path) == ["run.ipynb cell 2", "run.ipynb cell 3"]


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_heading_anchors_follow_github():
    assert heading_anchors("# Results\n## Recognition: settings (tuning)\n#### Actors 13–16: a\n") \
        == {"results", "recognition-settings-tuning", "actors-1316-a"}


def test_links_to_headings_in_readme_and_docs_exist():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text("utf-8")):
            linked = (page.parent / target).resolve() if target else page
            if not linked.is_file() or anchor not in heading_anchors(linked.read_text("utf-8")):
                broken.append(f"{page.relative_to(REPO)}: {target}#{anchor}")
    assert not broken, f"links to missing headings: {broken}"
