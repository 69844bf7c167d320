"""Validated configuration: YAML profiles in ``conf/`` merged into one typed object.

Load order (later wins): ``conf/base.yaml`` -> ``conf/<profile>.yaml`` -> extra files given
with ``--config`` -> ``--set key.path=value`` overrides. Strings may reference environment
variables as ``${env:NAME}`` or ``${env:NAME:-default}``; secrets (passwords, JAAS configs,
tokens) *must* be such references so they never live in a file. Any unknown key, wrong type
or missing value raises :class:`ConfigError` naming the key and what is allowed.
"""


from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kappalake.config.extensions import use_extensions
from kappalake.config.model import Config
from kappalake.config.sections import ENV_REF, SECRET_KEY
from kappalake.errors import ConfigError


def default_conf_dir() -> Path:
    """``$KAPPALAKE_CONF_DIR``, else ``./conf``, else the checkout's ``conf/`` next to ``src/``."""
    env = os.environ.get("KAPPALAKE_CONF_DIR")
    if env:
        return Path(env)
    if Path("conf/base.yaml").is_file():
        return Path("conf")
    return Path(__file__).resolve().parents[2] / "conf"  # src/config/loader.py -> the checkout


def load_config(
    profile: str = "local",
    conf_dir: str | Path | None = None,
    extra_files: typing.Sequence[str | Path] = (),
    overrides: typing.Sequence[str] | typing.Mapping[str, Any] = (),
) -> Config:
    """Load, merge, interpolate and validate a profile; raise ConfigError on any problem."""
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    base = conf_dir / "base.yaml"
    if not base.is_file():
        raise ConfigError(f"no {base}: point --conf-dir or KAPPALAKE_CONF_DIR at the directory holding base.yaml")
    prof = conf_dir / f"{profile}.yaml"
    if not prof.is_file():
        available = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown profile {profile!r}: no {prof}; available profiles: {', '.join(available)}")
    merged: dict[str, Any] = {}
    for f in [base, prof, *map(Path, extra_files)]:
        merged = deep_merge(merged, _read_yaml(f))
    merged = deep_merge(merged, nest_overrides(overrides))
    merged["profile"] = profile
    _read_suites(merged, conf_dir)
    _check_secrets(merged)
    merged = _interpolate(merged, ())
    try:
        cfg = Config.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, profile)) from None
    use_extensions(conf_dir, cfg.contracts_dir, cfg.libraries)
    return cfg


def _read_suites(merged: dict[str, Any], conf_dir: Path) -> None:
    """Add the suites of ``quality.suites_dir`` (one ``<table>.yaml`` each) under ``quality.suites``."""
    quality = merged["quality"] = merged.get("quality") or {}
    rel = quality.get("suites_dir", "expectations")
    if not rel:
        return
    directory = Path(rel) if Path(rel).is_absolute() else conf_dir / rel
    if not directory.is_dir():
        if "suites_dir" in quality:
            raise ConfigError(f"quality.suites_dir: {directory} is not a directory (null: no suite files)")
        return
    suites = dict(quality.get("suites") or {})
    for f in sorted(directory.glob("*.yaml")):
        suites.setdefault(f.stem, _read_yaml(f))
    quality["suites"] = suites


def derive(cfg: Config, overrides: typing.Mapping[str, Any]) -> Config:
    """``cfg`` with dotted ``overrides`` applied (``{"lake.root": "/tmp/x"}``), validated again.

    Mappings merge as profile files do, so an override cannot empty one: use ``model_copy``.
    """
    try:
        return Config.model_validate(deep_merge(cfg.model_dump(), nest_overrides(overrides)))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, cfg.profile)) from None


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``b`` win, lists are replaced, not concatenated."""
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys at the top level, not {type(data).__name__}")
    return data


def nest_overrides(overrides: typing.Sequence[str] | typing.Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` or ``["a.b=1"]`` as the nested mapping a YAML file would hold."""
    items = overrides.items() if isinstance(overrides, typing.Mapping) else (_split_override(o) for o in overrides)
    tree: dict[str, Any] = {}
    for key, value in items:
        tree = deep_merge(tree, _nest(key, value))
    return tree


def _split_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value (e.g. broker.port=19092)")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(_key_path(dotted)):
        out = {part: out}
    return out


def _key_path(dotted: str) -> list[str]:
    """Split a dotted override key along the model, keeping map keys that contain dots whole.

    ``spark.conf.spark.ui.enabled`` -> ``[spark, conf, spark.ui.enabled]``;
    ``pipelines.bronze_x.trigger.available_now`` -> one part per level.
    """
    parts = dotted.split(".")
    out: list[str] = []
    tp: Any = Config
    i = 0
    while i < len(parts):
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(parts[i])
            out.append(parts[i])
            i += 1
            if field is None:
                break
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            value_type = typing.get_args(tp)[1]
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                out.append(parts[i])
                i += 1
                tp = value_type
            else:
                out.append(".".join(parts[i:]))
                return out
        else:
            break
    return out + parts[i:]


def _check_secrets(data: dict[str, Any]) -> None:
    kafka = data.get("kafka") or {}
    candidates = {"kafka.sasl_password": kafka.get("sasl_password"),
                  "privacy.secret": (data.get("privacy") or {}).get("secret")}
    for k, v in (kafka.get("options") or {}).items():
        if SECRET_KEY.search(str(k)):
            candidates[f"kafka.options.{k}"] = v
    for key, value in candidates.items():
        if value is not None and not (isinstance(value, str) and ENV_REF.fullmatch(value.strip())):
            raise ConfigError(
                f"{key} holds a literal secret; secrets come only from the environment: "
                f"write it as ${{env:SOME_VARIABLE}} and export SOME_VARIABLE"
            )


def _interpolate(value: Any, path: tuple[str, ...], unset: list[tuple[str, str]] | None = None) -> Any:
    """``${env:...}`` references replaced by their values; every unset variable is named in one error."""
    top, unset = unset is None, [] if unset is None else unset
    if isinstance(value, dict):
        value = {k: _interpolate(v, (*path, str(k)), unset) for k, v in value.items()}
    elif isinstance(value, list):
        value = [_interpolate(v, (*path, str(i)), unset) for i, v in enumerate(value)]
    elif isinstance(value, str) and "${env:" in value:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is None:
                unset.append((".".join(path), name))
            return default or ""
        value = ENV_REF.sub(sub, value)
    if top and unset:
        refs = "; ".join(f"{key} refers to environment variable {name}" for key, name in unset)
        names = " ".join(dict.fromkeys(name for _, name in unset))
        raise ConfigError(f"{refs}, which {'is' if len(unset) == 1 else 'are'} not set: export {names}")
    return value


def format_validation_error(e: ValidationError, profile: str) -> str:
    lines = [f"invalid configuration (profile {profile!r}):"]
    for err in e.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(Config, loc[:-1])
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - unknown key '{key}'{hint}")
        elif kind == "missing":
            lines.append(f"  - missing required key '{key}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            lines.append(f"  - {key}: {msg}{shown}")
    return "\n".join(lines)


def _allowed_keys(model: Any, loc: tuple[str, ...]) -> list[str]:
    """Field names valid at ``loc`` inside ``model`` (following nested models and dict values)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [n for n in tp.model_fields if n != "profile"]
    return []


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp
