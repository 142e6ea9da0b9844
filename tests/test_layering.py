"""The rule of the rooms (DESIGN §2), read from the source's import statements: the library and
the analysis never import the entry points, no entry point imports another, the measures never
import the training loop (not even through another module), the science never reaches MLflow,
and the library neither parses command lines nor exits the process."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("minimult_ml", "analysis", "entrypoints")
MEASURES = ("minimult_ml.metrics", "minimult_ml.evaluation", "minimult_ml.representations")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module an import statement in `path` names (at any depth, functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    """Our modules → the modules of ours they import."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {name: {m for m in imports(path) if m in files} for name, path in files.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for module in graph.get(todo.pop(), ()):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def test_the_graph_is_read() -> None:
    g = graph()
    # A sanity check of the reader itself: known edges are seen, from functions too.
    assert "minimult_ml.training" in g["minimult_ml.steps.pretrain"]
    assert "minimult_ml.steps.pretrain" in g["entrypoints.pretrain"]  # inside the command
    assert "entrypoints.common" in g["entrypoints.pretrain"]


def test_library_and_analysis_never_import_entry_points() -> None:
    bad = {(a, b) for a, targets in graph().items() if not a.startswith("entrypoints")
           for b in targets if b.startswith("entrypoints")}
    assert not bad


def test_the_library_never_imports_the_analysis() -> None:
    bad = {(a, b) for a, targets in graph().items() if a.startswith("minimult_ml")
           for b in targets if b.startswith("analysis")}
    assert not bad


def test_no_entry_point_imports_another() -> None:
    shared = {"entrypoints", "entrypoints.common"}
    bad = {(a, b) for a, targets in graph().items() if a.startswith("entrypoints.")
           for b in targets if b.startswith("entrypoints") and b not in shared}
    assert not bad


def test_the_measures_never_reach_the_training_loop() -> None:
    g = graph()
    for measure in MEASURES:
        assert "minimult_ml.training" not in reachable(g, measure), measure


def test_the_library_parses_no_command_line_and_never_exits() -> None:
    for path in (ROOT / "minimult_ml").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert "argparse" not in imports(path), path
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                call = f"{node.value.id}.{node.attr}"
                assert call not in ("sys.exit", "click.command", "click.option",
                                    "click.argument", "click.group"), (path, call)


def test_the_science_never_reaches_mlflow() -> None:
    # The steps and the modules that read and write the tracking server are the only ones.
    tracking_side = ("minimult_ml.steps", "minimult_ml.tracking", "minimult_ml.store",
                     "minimult_ml.results", "minimult_ml.reproduction", "minimult_ml.ui")
    g = graph()
    science = [m for m in g if m.startswith("minimult_ml.") and not m.startswith(tracking_side)]
    assert {"minimult_ml.training", "minimult_ml.tasks", "minimult_ml.crosslingual"} <= set(science)
    for module in science:
        path = ROOT / (module.replace(".", "/") + ".py")
        uses = {m for m in (module, *reachable(g, module)) if m.startswith(tracking_side)}
        assert not uses and "mlflow" not in {m.split(".")[0] for m in imports(path)}, module
