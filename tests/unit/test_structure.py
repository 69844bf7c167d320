"""The package's shape, read from its imports (docs/architecture.md, "Layers").

Every ``import`` of a ``kappalake`` module counts, module-level or inside a function (a lazy
import is still a dependency); imports under ``if TYPE_CHECKING:`` do not (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
# Lowest first: a module may import its own layer and the ones before it.
LAYERS = [
    ("kappalake.errors", "kappalake.frames", "kappalake.config", "kappalake.session"),
    ("kappalake.ingest",),
    ("kappalake.transforms",),
    ("kappalake.quality",),
    ("kappalake.lake",),
    # After-commit work a batch writer runs (alert delivery to Kafka and notifiers) and the job's
    # self-recording: they read config and write Kafka or Delta, and pipelines plug them in.
    ("kappalake.alerts", "kappalake.monitoring"),
    ("kappalake.pipelines",),
    ("kappalake.ops", "kappalake.bi"),
    ("kappalake.bench", "kappalake.dashboard", "kappalake.cli", "kappalake.__main__"),
]
# The imports that still climb a layer, each to be removed by issue 29 (never added to).
KNOWN_UPWARD: set[tuple[str, str]] = set()
MAX_LINES = 400
# Modules over MAX_LINES and the length they may not exceed while they are split (issue 29).
OVERSIZE = {"kappalake.ops.chaos": 410}


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ["kappalake", *path.relative_to(SRC).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The kappalake modules ``name`` imports, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:  # the longest name that is a module: `from kappalake.x import y` is x or x.y
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("kappalake") and target != name:
                out.add(target)
                break
    return out


def layer(name: str) -> int:
    if name == "kappalake":  # the package's __init__: on top
        return len(LAYERS) - 1
    for i, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{name} is in no layer: add its package to LAYERS (and docs/architecture.md)")


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_imports_run_one_way():
    upward = {(m, t) for m, targets in graph().items() for t in targets if layer(t) > layer(m)}
    assert not upward - KNOWN_UPWARD, f"imports from a lower layer to a higher one: {sorted(upward - KNOWN_UPWARD)}"
    assert not KNOWN_UPWARD - upward, f"gone, remove from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - upward)}"


def test_no_import_cycles():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_a_cycle_and_a_climb(tmp_path):
    # The same reading on a made-up package: a lazy import back up is found.
    low, high = tmp_path / "low.py", tmp_path / "high.py"
    low.write_text("def f():\n    from kappalake.cli import main\n")
    high.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kappalake.transforms import parse\n")
    known = {"kappalake.cli", "kappalake.transforms", "kappalake.transforms.parse"}
    assert imports("kappalake.transforms.low", low, known) == {"kappalake.cli"}
    assert imports("kappalake.cli.high", high, known) == set()
    assert layer("kappalake.cli") > layer("kappalake.transforms.low")


def test_modules_stay_small():
    long = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    grown = {n: lines for n, lines in long.items() if lines > OVERSIZE.get(n, MAX_LINES)}
    assert not grown, f"modules over {MAX_LINES} lines (or past their OVERSIZE ceiling): {grown}; split them by job"
    split = [n for n in OVERSIZE if long.get(n, 0) <= MAX_LINES]
    assert not split, f"{split} now within {MAX_LINES} lines: remove them from OVERSIZE"


def test_every_package_is_installed():
    # pyproject.toml lists the packages a wheel holds (package-dir maps kappalake to src/): an
    # unlisted one works in the editable install and is missing on a cluster.
    import tomllib

    listed = set(tomllib.loads((SRC.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(["kappalake", *p.parent.relative_to(SRC).parts]) for p in SRC.rglob("__init__.py")}
    assert packages == listed, f"not in pyproject.toml: {sorted(packages - listed)}; listed, not in src/: {sorted(listed - packages)}"
