"""The library's shape, read from its source: packages by pipeline stage, imports that only point down, no circles.

The stages, lowest first (``LAYERS``): shared utilities → ``data`` (the schema, reading/writing, text rules) →
``collect`` / ``sentiment`` / ``metrics`` → ``crowd`` → ``world`` (the simulator: it emits data in the schema and
measures its own headroom with the crowd divergences) → ``build`` → ``models`` / ``pac_lora`` → ``train`` →
``generate`` → ``experiments`` / ``popularity`` → ``popalm`` / ``results`` → ``checkpoints`` / ``explore`` /
``course`` → ``cli``. A module-level import may only point to the same or a lower layer. On top of that, the
training and generation stages never import the world, the experiments, the explorers or the CLI, not even inside a
function (they must run on real data with no simulator around).

The flat modules kept for one release (``socialalign_lib/io.py`` …, each starting "Deprecated import path") are
thin shims: no library module may import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "socialalign_lib"

LAYERS: dict[str, int] = {
    "": 0,
    "__init__": 0,
    "runtime": 0,
    "paths": 0,
    "logsafe": 0,
    "plots": 0,
    "reference": 0,
    "exports": 0,
    "data": 1,
    "collect": 2,
    "sentiment": 2,
    "metrics": 2,
    "crowd": 3,
    "world": 4,
    "build": 5,
    "models": 6,
    "pac_lora": 6,
    "train": 7,
    "generate": 8,
    "experiments": 9,
    "popularity": 9,
    "gate_analysis": 9,
    "popalm": 10,
    "results": 10,
    "checkpoints": 11,
    "explore": 11,
    "course": 11,
    "cliargs": 12,
    "cli": 12,
    "__main__": 13,
}
#: Module-level imports that point up a layer on purpose.
UPWARD_OK = {
    # the loaders read what the crawler writes: they reuse its parsers instead of a second copy
    ("socialalign_lib.data.loaders", "socialalign_lib.collect"),
}
#: Never imported by the stages that must run without a simulator, at any depth (function-local included).
SIMULATOR_FREE = ("build", "pac_lora", "train", "generate", "data")
FORBIDDEN_THERE = ("world", "experiments", "explore", "cli", "course", "results")
FUNCTION_LOCAL_OK = {
    # course_data makes the course's own world from (size, seed); build_from_world is the simulator-free half
    ("socialalign_lib.build.pipeline", "socialalign_lib.world"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def _is_shim(path: Path) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.lstrip().lower().startswith("deprecated import path")


SHIMS = {name for name, path in MODULES.items() if _is_shim(path)}


def _imports(name: str, path: Path, module_level: bool) -> set[str]:
    """Library modules imported by ``name`` (module level only, or everywhere); ``if TYPE_CHECKING`` is skipped."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("socialalign_lib"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.startswith("socialalign_lib"):
                    for alias in node.names:
                        sub = f"{module}.{alias.name}"
                        found.add(sub if sub in MODULES else module)
            if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    visit([c for c in children if isinstance(c, (ast.stmt, ast.excepthandler))])
            if isinstance(node, ast.ExceptHandler):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path, module_level=True) for name, path in MODULES.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    assert sorted({_stage(m) for m in MODULES if m not in SHIMS} - set(LAYERS)) == []


def test_no_import_circle():
    """Tarjan's strongly connected components over module-level imports: every component is one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            connect(v)
    assert circles == []


def test_imports_point_down():
    upward = []
    for name, deps in GRAPH.items():
        if name in SHIMS:
            continue
        for dep in deps - SHIMS:
            allowed = any(name.startswith(a) and dep.startswith(b) for a, b in UPWARD_OK)
            if LAYERS[_stage(dep)] > LAYERS[_stage(name)] and not allowed:
                upward.append(f"{name} → {dep}")
    assert upward == []


@pytest.mark.parametrize("stage", SIMULATOR_FREE)
def test_simulator_free_stages_never_import_the_world_or_what_sits_on_top(stage):
    bad = []
    for name, path in MODULES.items():
        if _stage(name) != stage or name in SHIMS:
            continue
        for dep in _imports(name, path, module_level=False):
            if _stage(dep) in FORBIDDEN_THERE and not any(
                name.startswith(a) and dep.startswith(b) for a, b in FUNCTION_LOCAL_OK
            ):
                bad.append(f"{name} → {dep}")
    assert bad == []


def test_no_library_module_imports_a_deprecated_path():
    users = [
        f"{name} → {dep}"
        for name, path in MODULES.items()
        if name not in SHIMS
        for dep in _imports(name, path, module_level=False) & SHIMS
    ]
    assert users == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The graph reader is not blind: a relative import two levels up resolves to the module it names."""
    probe = LIB / "generate" / "decode.py"
    assert "socialalign_lib.build.records" in _imports(
        "socialalign_lib.generate.decode", probe, module_level=True
    )
    assert "socialalign_lib.pac_lora" in GRAPH["socialalign_lib.generate.decode"]
