"""The notebooks are committed stripped (no outputs, no execution counts) and stay thin:
they import the kappalake package instead of carrying their own copy of pipeline code."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# Streaming and Kafka I/O belong to the package's pipelines, not to a notebook.
PIPELINE_CODE = re.compile(r"\.(readStream|writeStream|foreachBatch)\b|\bKafka(Producer|Consumer|AdminClient)\b")


def package_definitions() -> set[str]:
    """Names of the functions and classes defined at the top level of the package's modules."""
    names = set()
    for path in (REPO / "src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return names


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def python_source(cell: dict) -> str:
    """The cell's Python, IPython magics and shell escapes commented out."""
    return "".join(line if not line.lstrip().startswith(("%", "!")) else "# " + line for line in cell["source"])


def test_the_notebook_series_is_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path: Path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["cells"][0]["cell_type"] == "markdown"
    for cell in code_cells(path):
        assert cell["outputs"] == [], f"outputs committed in {path.name}: {''.join(cell['source'])[:80]!r}"
        assert cell["execution_count"] is None, f"execution count committed in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_the_package_instead_of_copying_it(path: Path):
    sources = [python_source(c) for c in code_cells(path)]
    assert any("from kappalake.bi.notebook import open_lake" in s for s in sources)
    package = package_definitions()
    for source in sources:
        assert not PIPELINE_CODE.search(source), f"{path.name} carries pipeline code: {source[:120]!r}"
        defined = {n.name for n in ast.walk(ast.parse(source))
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        assert not defined & package, f"{path.name} redefines {sorted(defined & package)}: import them from kappalake"
