"""Every error message a user can meet, read from the source, and the environment failures."""

from __future__ import annotations

import ast

from generators.common import REPO, SRC, GenerationError, code, table


SHOWN_AS = {
    "ConfigError": "`kappalake: configuration error: ...`, exit code 2",
    "BrokerError": "`kappalake: ...`, exit code 1",
    "PipelineError": "`kappalake: ...`, exit code 1",
    "CheckpointError": "`kappalake: ...`, exit code 1",
    "QualityGateError": "`kappalake: ...` (the query stops), exit code 1",
}


def error_messages() -> str:
    """Every message kappalake raises or prints as an error, read from the source (AST)."""
    groups: dict[str, list[list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            found = _raised(node) or _printed(node)
            if found is None:
                continue
            kind, text = found
            if len(text.replace("<…>", "").strip(" :;-")) < 12:
                continue  # a bare value passed on (e.g. str(e)): its own message is listed where it is made
            groups.setdefault(rel, []).append([code(text), kind, f"`{rel}:{node.lineno}`"])
    if not groups:
        raise GenerationError("no error messages found in src/")
    out = []
    for rel, rows in groups.items():
        rows.sort(key=lambda r: int(r[2].rsplit(":", 1)[1].rstrip("`")))
        out += [f"### `{rel}`", "", table(["message", "raised as", "where"], rows)]
    return "\n".join(out)


def _raised(node: ast.AST) -> tuple[str, str] | None:
    if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
        return None
    func = node.exc.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if not name.endswith(("Error", "Exception")):
        return None
    text = _template(node.exc.args[0])
    return (name, text) if text else None


def _printed(node: ast.AST) -> tuple[str, str] | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" and node.args):
        return None
    to_stderr = any(k.arg == "file" and ast.unparse(k.value) == "sys.stderr" for k in node.keywords)
    text = _template(node.args[0]) if to_stderr else None
    return ("printed", text) if text and "kappalake" in text else None


def _template(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                parts.append(_placeholder(v.value))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return (left or "<…>") + (right or "<…>") if left or right else None
    return None


def _placeholder(expr: ast.AST) -> str:
    if isinstance(expr, ast.Name):
        return f"<{expr.id}>"
    if isinstance(expr, ast.Attribute):
        return f"<{expr.attr}>"
    return "<…>"


def environment_failures() -> str:
    """Failures of the environment the runner recognises in Spark's errors, and the advice it adds."""
    from kappalake.pipelines.runner import _ENVIRONMENT

    rows = [[code(pattern), where, meaning, fix] for pattern, where, meaning, fix in _ENVIRONMENT]
    return table(["Spark's error or a cause matches", "where", "means", "what to do"], rows)
