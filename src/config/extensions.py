"""Event types of a user's own: contract files and Python libraries named by the configuration.

``contracts_dir`` holds ``<topic>.v<N>.json`` files read beside the contracts that ship with
kappalake; ``libraries`` are Python files (globs) or module names imported when the
configuration loads, where a user registers transforms (``@transform``) and simulators
(``@simulator``) by name, as Spark's declarative pipelines import their ``libraries``. So a
new topic needs configuration, a contract and its transforms, and no change to the package.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

from kappalake.errors import ConfigError

_contract_dirs: tuple[Path, ...] = ()


def contract_dirs() -> tuple[Path, ...]:
    """The directories of user contracts of the configuration loaded last (empty: none)."""
    return _contract_dirs


def use_extensions(conf_dir: Path, contracts_dir: str | None, libraries: list[str]) -> None:
    """Record ``contracts_dir`` and import ``libraries`` (paths relative to ``conf_dir``).

    A library is imported once per process, however often a configuration naming it loads.
    """
    global _contract_dirs
    dirs: tuple[Path, ...] = ()
    if contracts_dir:
        directory = _resolve(conf_dir, contracts_dir)
        if directory.is_dir():
            dirs = (directory.resolve(),)
        elif contracts_dir != "contracts":  # the default may be absent; a directory named on purpose may not
            raise ConfigError(f"contracts_dir: {directory} is not a directory (null: only kappalake's contracts)")
    _contract_dirs = dirs
    for entry in libraries:
        for path in _library_files(conf_dir, entry):
            _import(entry, path)


def _resolve(conf_dir: Path, given: str) -> Path:
    path = Path(given).expanduser()
    return path if path.is_absolute() else conf_dir / path


def _library_files(conf_dir: Path, entry: str) -> list[Path | None]:
    """The files a ``libraries`` entry names; ``[None]`` for a module name (``my_team.transforms``)."""
    if not entry.endswith(".py") and "/" not in entry and "*" not in entry:
        return [None]
    path = _resolve(conf_dir, entry)
    if any(ch in entry for ch in "*?["):
        files = sorted(p for p in path.parent.glob(path.name) if p.suffix == ".py")
    else:
        files = [path] if path.is_file() else []
    if not files:
        raise ConfigError(f"libraries: {entry!r} matches no Python file under {conf_dir} "
                          f"(entries are .py files or globs relative to the configuration directory, or module names)")
    return files


def _import(entry: str, path: Path | None) -> None:
    if path is None:
        name, where = entry, entry
    else:
        path = path.resolve()
        name = f"kappalake_library_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        where = str(path)
    if name in sys.modules:
        return
    try:
        if path is None:
            importlib.import_module(name)
            return
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except ConfigError:
        sys.modules.pop(name, None)
        raise
    except Exception as e:  # noqa: BLE001 - one line naming the library and the line that failed
        sys.modules.pop(name, None)
        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if path is not None and Path(f.filename) == path]
        at = f" (line {lines[-1]})" if lines else ""
        raise ConfigError(f"libraries: {where}{at} failed to import: {type(e).__name__}: {e}") from None
