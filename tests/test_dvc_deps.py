"""dvc.yaml lists every module a stage can import, so editing code always reruns its stages.

For each stage (``python -m pipeline <stage>``) the test follows the ``pipeline.*`` imports from
the command line's entry (``pipeline/__main__.py``, ``pipeline/cli.py``) and the stage's own
module (``pipeline/stages/<stage>.py``), through every module they import: at module level and
inside functions (lazy imports run too, on some path), plus the package ``__init__`` files that
importing a submodule executes. Every file reached must be covered by one of the stage's
``deps`` (the file itself or a folder above it). The import graph is read from the source
(AST), so it also covers paths a single run would not take.

It also pins the layering: library packages never import ``pipeline.stages``, and the
``pipeline.config`` package imports only its own modules and the import-free ``pipeline.rules``
and ``pipeline.errors``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"
DVC_STAGES = ("demo", "ingest", "train", "explain", "evaluate", "report", "validate")
LIBRARIES = ("io", "preprocess", "dataset", "augment", "models", "train", "evaluate", "explain",
             "report", "ingest", "demo", "utils", "export", "validate", "predict")


def module_file(name: str) -> Path | None:
    """``pipeline.a.b`` -> ``pipeline/a/b.py`` or ``pipeline/a/b/__init__.py`` (None if neither)."""
    parts = name.split(".")
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """The ``pipeline.*`` modules ``path`` imports anywhere in its body (absolute or relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "pipeline")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "pipeline":
                continue
            found.add(base)
            for alias in node.names:  # `from pipeline.x import y` may import the submodule y
                if module_file(f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
    return found


def closure(roots: set[str]) -> set[Path]:
    """Files of ``roots`` and of everything they import, with the packages above each."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
            parent = ".".join(parts[:k])
            if parent in seen:
                continue
            path = module_file(parent)
            if path is None:
                continue  # a name imported from a module, not a module itself
            seen.add(parent)
            todo.extend(imported_modules(path) - seen)
    return {module_file(m) for m in seen}


def stage_files(stage: str) -> set[Path]:
    return closure({"pipeline.__main__", "pipeline.cli", f"pipeline.stages.{stage}"})


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_the_cli_imports_no_stage_code_at_module_level():
    # otherwise every stage would depend on every other stage's code
    cli = {module_name(p) for p in closure({"pipeline.__main__", "pipeline.cli"})}
    assert not any(m.startswith("pipeline.stages.") for m in cli), sorted(cli)
    units = {"pipeline.config" if m.startswith("pipeline.config.") else m for m in cli}
    assert len(units) <= 8, sorted(cli)  # the params package (pipeline/config/) counts once


@pytest.mark.parametrize("stage", DVC_STAGES)
def test_dvc_deps_cover_every_module_the_stage_imports(stage, dvc_stages):
    deps = [d for d in dvc_stages[stage]["do"]["deps"] if d.startswith("pipeline")]
    files = stage_files(stage)
    assert ROOT / "pipeline" / "stages" / f"{stage}.py" in files
    missing = sorted(p.relative_to(ROOT).as_posix() for p in files if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage!r} does not list: {missing}"


@pytest.mark.parametrize("stage", DVC_STAGES)
def test_dvc_deps_name_only_code_that_exists(stage, dvc_stages):
    deps = [d for d in dvc_stages[stage]["do"]["deps"] if d.startswith("pipeline")]
    assert all((ROOT / d).exists() for d in deps), [d for d in deps if not (ROOT / d).exists()]


def test_closure_follows_lazy_imports():
    # the walker itself: a lazy import inside a function is followed
    files = stage_files("report")
    assert PACKAGE / "sources.py" in files  # imported inside report's main()


@pytest.mark.parametrize("package", LIBRARIES)
def test_libraries_never_import_stages(package):
    for path in sorted((PACKAGE / package).rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m.startswith("pipeline.stages"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_config_sits_at_the_bottom():
    files = sorted((PACKAGE / "config").rglob("*.py"))
    assert PACKAGE / "config" / "__init__.py" in files
    for path in files:
        imported = imported_modules(path)
        own = {m for m in imported if m.startswith("pipeline.config.")}
        assert imported - own <= {"pipeline.rules", "pipeline.errors"}, (path.relative_to(ROOT), imported)
        if path.name != "__init__.py":  # the parts import each other, never the package's re-exports
            assert "pipeline.config" not in imported, path.relative_to(ROOT)
    assert imported_modules(PACKAGE / "rules.py") == set()
    assert imported_modules(PACKAGE / "errors.py") == set()


def test_no_dynamic_imports_hide_from_the_walker():
    # the AST walk sees every import statement; only the CLI's stage dispatch (whose targets
    # are the stage modules the walk starts from) and pipeline.models' lazy names import by
    # string, and the latter's modules are all imported by statements too (TYPE_CHECKING block)
    users = sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")
                   if "import_module(" in p.read_text(encoding="utf-8")
                   or "__import__(" in p.read_text(encoding="utf-8"))
    assert users == ["pipeline/cli.py", "pipeline/models/__init__.py"]
    from pipeline.models import _HOMES

    lazy = {f"pipeline.models.{home}" for home in _HOMES.values()}
    assert lazy <= imported_modules(PACKAGE / "models" / "__init__.py")
    text = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    targets = set(re.findall(r'_stage\("pipeline\.stages\.(\w+)', text))
    assert set(DVC_STAGES) <= targets
