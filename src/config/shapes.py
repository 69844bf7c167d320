"""The shapes of config entries that other layers turn into objects: expectation suites (run by
``quality``) and alert notifiers (built by ``alerts``). Checked when the config loads, so a bad
entry fails at start-up naming itself; those layers import these checks, never the reverse."""

from __future__ import annotations

import importlib
from typing import Any

POLICIES = ("warn", "drop", "quarantine", "fail")
SCOPES = ("row", "table")
SUITE_KEYS = {"name", "expectations", "meta", "notes", "id", "suite_parameters"}
EXPECTATION_KEYS = {"type", "kwargs", "meta", "notes", "description", "severity", "id", "rendered_content"}
# Built-in notifier types: (required keys, allowed keys) besides ``type``; ``class`` takes any.
NOTIFIER_KEYS = {"webhook": ({"url"}, {"url", "name", "timeout_s", "headers"}), "log": (set(), {"name"})}


def check_suite_shape(table: str, raw: Any) -> None:
    """Structural checks of a suite that need no GX import: ValueError naming the problem."""
    if not isinstance(raw, dict):
        raise ValueError(f"suite {table}: must be a mapping with an 'expectations' list")
    unknown = set(raw) - SUITE_KEYS
    if unknown:
        raise ValueError(f"suite {table}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SUITE_KEYS))}")
    exps = raw.get("expectations")
    if not isinstance(exps, list):
        raise ValueError(f"suite {table}: 'expectations' must be a list of {{type, kwargs, meta}}")
    for i, e in enumerate(exps):
        where = f"suite {table} expectations[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("type"), str):
            raise ValueError(f"{where}: each expectation needs a 'type' (e.g. expect_column_values_to_not_be_null)")
        extra = set(e) - EXPECTATION_KEYS
        if extra:
            raise ValueError(f"{where} ({e['type']}): unknown key(s) {', '.join(sorted(extra))}; "
                             f"put kappalake settings under meta (policy, rule, scope)")
        if not isinstance(e.get("kwargs", {}), dict) or not isinstance(e.get("meta", {}) or {}, dict):
            raise ValueError(f"{where} ({e['type']}): kwargs and meta must be mappings")
        meta = e.get("meta") or {}
        if meta.get("policy", "quarantine") not in POLICIES:
            raise ValueError(f"{where} ({e['type']}): meta.policy {meta['policy']!r} must be one of {', '.join(POLICIES)}")
        if meta.get("scope", "row") not in SCOPES:
            raise ValueError(f"{where} ({e['type']}): meta.scope {meta['scope']!r} must be row or table")


def check_notifier(where: str, spec: Any) -> type | None:
    """Check one ``alerts.notifiers`` entry; ValueError starting with ``where`` names the problem.

    Returns the class a ``{type: class}`` entry names (imported), None for the built-in types.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"{where}: expected a mapping with a 'type' (webhook, log or class), got {spec!r}")
    kind, keys = spec["type"], set(spec) - {"type"}
    if kind in NOTIFIER_KEYS:
        required, allowed = NOTIFIER_KEYS[kind]
        if required - keys:
            raise ValueError(f"{where}: a {kind} needs a {' and a '.join(repr(k) for k in sorted(required - keys))}")
        if keys - allowed:
            raise ValueError(f"{where}: {kind} got an unexpected keyword argument {sorted(keys - allowed)[0]!r}; "
                             f"it takes {', '.join(sorted(allowed))}")
        if kind == "webhook" and not str(spec["url"]).startswith(("http://", "https://")):
            raise ValueError(f"{where}: url {spec['url']!r} must start with http:// or https://")
        return None
    if kind != "class":
        raise ValueError(f"{where}: unknown type {kind!r}; use webhook, log or class")
    path = spec.get("class")
    if not path or "." not in str(path):
        raise ValueError(f"{where}: 'class' must be a dotted path such as mypkg.notify.PagerDuty")
    mod, _, name = str(path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{where}: cannot import {path}: {e}") from None
    if not callable(getattr(cls, "send", None)):
        raise ValueError(f"{where}: {path} has no send(alert) method")
    return cls
