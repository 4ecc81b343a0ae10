"""The package's modules import downwards only: each module of ``emogan_utils`` belongs to one
layer, and imports (read with ``ast``, function-local and ``TYPE_CHECKING`` ones included) go to
its own layer or a lower one, never in a cycle. Training and inference share a layer but do not
import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emogan_utils"
NAME = PACKAGE.name

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("infrastructure", ("__init__", "config", "threads", "storage", "runtime")),
    ("data", ("data", "layouts", "download", "synth", "espeak_worker")),
    ("features", ("features", "inputs", "inversion", "world", "prosody", "contours")),
    # checkpoint stores a model with its AudioConfig, Normalizer and labels (features, data)
    ("models", ("models", "losses", "checkpoint", "egemaps")),
    ("training and inference", ("pairs", "classifier_training", "gan_training",
                                "converter_training", "distributed", "train", "inference")),
    ("evaluation and widgets", ("evaluate", "cues", "plots", "switch", "widgets")),
    ("command line", ("cli", "__main__")),
)
"""Bottom to top."""
LAYER = {module: (rank, name) for rank, (name, modules) in enumerate(LAYERS) for module in modules}
TRAINING = frozenset({"pairs", "classifier_training", "gan_training", "converter_training",
                      "distributed", "train"})
INFERENCE = frozenset({"inference"})


def package_modules() -> list[str]:
    """The package's modules, by file name."""
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The package modules one import statement of ``module`` imports."""
    if isinstance(node, ast.Import):
        dotted = [alias.name for alias in node.names]
    elif node.level:  # relative: from . import x, from .x import y
        base = node.module or ""
        dotted = ([f"{NAME}.{base}"] if base
                  else [f"{NAME}.{alias.name}" for alias in node.names])
    elif node.module == NAME:  # from emogan_utils import x: a module, or a name of __init__
        dotted = [f"{NAME}.{alias.name}" if (PACKAGE / f"{alias.name}.py").exists() else NAME
                  for alias in node.names]
    else:
        dotted = [node.module or ""]
    parts = [name.split(".") for name in dotted]
    return [p[1] if len(p) > 1 else "__init__" for p in parts if p[0] == NAME]


def imports_of(module: str) -> list[tuple[str, int]]:
    """Every package module ``module`` imports, anywhere in its file, with the line."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    return [(target, node.lineno) for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for target in _imported(node, module) if target != module]


def test_every_module_has_one_layer():
    listed = [module for _, modules in LAYERS for module in modules]
    assert len(listed) == len(set(listed)), "a module is listed in two layers"
    unplaced = sorted(set(package_modules()) - set(listed))
    assert not unplaced, f"put {unplaced} in a layer of LAYERS"
    gone = sorted(set(listed) - set(package_modules()))
    assert not gone, f"LAYERS lists modules that do not exist: {gone}"


@pytest.mark.parametrize("module", package_modules())
def test_imports_go_to_the_same_layer_or_lower(module):
    rank, layer = LAYER[module]
    upward = [f"{NAME}.{target} (layer {LAYER[target][1]!r}) at line {line}"
              for target, line in imports_of(module) if LAYER[target][0] > rank]
    assert not upward, (f"{NAME}/{module}.py (layer {layer!r}) imports from a higher layer: "
                        + "; ".join(upward))


@pytest.mark.parametrize("module", sorted(TRAINING | INFERENCE))
def test_training_and_inference_do_not_import_each_other(module):
    other = INFERENCE if module in TRAINING else TRAINING
    crossing = [f"{NAME}.{target} at line {line}" for target, line in imports_of(module)
                if target in other]
    assert not crossing, (f"{NAME}/{module}.py imports across training and inference: "
                          + "; ".join(crossing))


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (module -> modules it imports) as a path that ends where it
    starts, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_import_cycle_finds_a_cycle():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    graph = {module: {target for target, _ in imports_of(module)}
             for module in package_modules()}
    cycle = import_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
