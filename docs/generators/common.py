"""What every generated part shares: the repository's paths, the error that stops the build, and
Markdown helpers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[2]  # docs/generators/common.py -> the checkout
SRC = REPO / "src"
CONF = REPO / "conf"
RESULTS = REPO / "bench" / "results"
MARKER = re.compile(r"<!-- generated: ([\w-]+) -->")
ENUMERATION = re.compile(r"[\w-]+( \| [\w-]+)+( \(.*\))?")


class GenerationError(Exception):
    """A generated part cannot be built (the build must fail rather than publish a gap)."""


def cell(text: Any) -> str:
    """Text for one table cell: one line, pipes escaped, ``<`` outside code spans kept as text."""
    parts = re.split(r"(``.*?``|`[^`]*`)", re.sub(r"\s+", " ", str(text)).strip())
    # Python-Markdown's tables leave pipes inside code spans alone; elsewhere they split cells.
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace("|", "\\|") for p in parts)


def anchor(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def code(text: Any) -> str:
    """An inline code span that survives backticks inside."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    if not s:
        return ""
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def flow(value: Any) -> str:
    """A value as YAML flow text (what a user writes in conf/)."""
    import yaml

    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
