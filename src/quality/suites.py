"""Expectation suites from ``conf/``: Great Expectations' own format plus a policy per expectation.

A suite file (``conf/expectations/<table>.yaml``) is a GX ExpectationSuite written as YAML::

    name: silver.clickstream
    expectations:
      - type: expect_column_values_to_be_between
        kwargs: {column: price, min_value: 0, max_value: 100000}
        meta: {rule: price_plausible, policy: quarantine}

``meta.policy`` is what happens to a row that fails: ``warn`` (keep, count), ``drop`` (remove,
count), ``quarantine`` (remove, store with the reason) or ``fail`` (stop the query).
``meta.rule`` names the rule in quarantine rows and metrics (default ``type(column)``).
``meta.scope`` is ``row`` (checked on every row of every micro-batch, compiled to Spark
columns) or ``table`` (validated by GX over the table in ``kappalake quality report``);
the default is ``row`` for the expectation types kappalake compiles, ``table`` otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kappalake.config.shapes import check_suite_shape as check_shape
from kappalake.errors import ConfigError

if TYPE_CHECKING:
    from kappalake.config import QualityConf

COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite, with its kappalake policy."""

    name: str
    type: str
    kwargs: dict[str, Any]
    policy: str
    scope: str
    index: int
    meta: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> list[str]:
        out: list[str] = []
        for key in COLUMN_KWARGS:
            value = self.kwargs.get(key)
            out += value if isinstance(value, list) else [value] if value else []
        return out


@dataclass(frozen=True)
class Suite:
    table: str
    rules: tuple[Rule, ...]
    raw: dict[str, Any]

    @property
    def row_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.scope == "row"]

    def to_gx(self) -> Any:
        """The suite as a GX ``ExpectationSuite`` (every expectation, both scopes)."""
        import great_expectations as gx

        return gx.ExpectationSuite(name=self.table, meta=dict(self.raw.get("meta") or {}),
                                   expectations=[_gx_expectation(r) for r in self.rules])


def load_suite(quality: QualityConf, table: str | None) -> Suite | None:
    """The validated suite for ``table`` in ``quality.suites`` (None when it has none);
    ConfigError names any problem."""
    if table is None or table not in quality.suites:
        return None
    return suite_from_dict(table, quality.suites[table])


def suite_from_dict(table: str, raw: dict[str, Any]) -> Suite:
    """A validated suite from its YAML/JSON form; ConfigError names any problem."""
    try:
        check_shape(table, raw)
    except ValueError as e:
        raise ConfigError(f"quality.suites: {e}") from None
    return _build(table, raw)


def check_suites(quality: QualityConf) -> None:
    """Validate every configured suite with GX (types exist, arguments are valid)."""
    for table in quality.suites:
        load_suite(quality, table)


def _build(table: str, raw: dict[str, Any]) -> Suite:
    from kappalake.quality.rules import ROW_LEVEL  # Spark's column code, only once a suite is built

    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, e in enumerate(raw["expectations"]):
        where = f"quality.suites.{table}.expectations[{i}] ({e['type']})"
        meta = dict(e.get("meta") or {})
        kwargs = dict(e.get("kwargs") or {})
        _check_with_gx(where, e["type"], kwargs)
        scope = meta.get("scope", "row" if e["type"] in ROW_LEVEL else "table")
        policy = meta.get("policy", "quarantine" if scope == "row" else "warn")
        if scope == "row" and e["type"] not in ROW_LEVEL:
            raise ConfigError(f"{where}: not a row-level expectation kappalake can check in the stream; "
                              f"set meta.scope: table (validated by `kappalake quality report`). "
                              f"Row-level types: {', '.join(sorted(ROW_LEVEL))}")
        if scope == "table" and policy in ("drop", "quarantine"):
            raise ConfigError(f"{where}: meta.policy {policy} needs rows to act on; a table-scope expectation "
                              f"can only warn or fail")
        if kwargs.get("row_condition") is not None and kwargs.get("condition_parser") != "spark":
            raise ConfigError(f"{where}: row_condition needs condition_parser: spark (a Spark SQL predicate)")
        name = str(meta.get("rule") or _default_name(e["type"], kwargs))
        if name in seen:
            raise ConfigError(f"{where}: rule name {name!r} is also expectations[{seen[name]}]; give one a meta.rule name")
        seen[name] = i
        rules.append(Rule(name, e["type"], kwargs, policy, scope, i, meta))
    return Suite(table, tuple(rules), raw)


def _default_name(type_: str, kwargs: dict[str, Any]) -> str:
    cols = [str(kwargs[k]) for k in COLUMN_KWARGS if k in kwargs]
    return f"{type_}({', '.join(cols)})" if cols else type_


def _check_with_gx(where: str, type_: str, kwargs: dict[str, Any]) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        cls = get_expectation_impl(type_)
    except Exception:  # noqa: BLE001 - GX raises its own ExpectationNotFoundError
        raise ConfigError(f"{where}: unknown expectation type {type_!r} (Great Expectations has no such expectation; "
                          f"see https://greatexpectations.io/expectations)") from None
    try:
        cls(**kwargs)
    except Exception as e:  # noqa: BLE001 - GX's pydantic ValidationError lists every bad argument
        lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        detail = "; ".join(f"{a} {b}" for a, b in zip(lines[::2], lines[1::2])) or str(e)
        raise ConfigError(f"{where}: invalid arguments {kwargs}: {detail}") from None


def _gx_expectation(rule: Rule) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    meta = dict(rule.meta, rule=rule.name, policy=rule.policy, scope=rule.scope)
    return get_expectation_impl(rule.type)(**rule.kwargs, meta=meta)


def check_columns(suite: Suite, columns: list[str], pipeline: str) -> None:
    """Every column a row-scope rule names must exist in the rows the pipeline writes."""
    for rule in suite.rules:
        missing = [c for c in rule.columns() if c not in columns]
        if missing:
            raise ConfigError(f"quality.suites.{suite.table}.expectations[{rule.index}] ({rule.type}, rule {rule.name}) "
                              f"names unknown column(s) {', '.join(missing)}; pipeline {pipeline} writes: {', '.join(columns)}")
