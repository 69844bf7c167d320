"""Transforms by the names that ``conf/`` pipelines use, and how their parameters are bound.

A pipeline lists transforms as a name or ``{name: ..., <param>: <value>}``. Parameters come
from that mapping, except: a parameter annotated ``DataFrame`` takes a table name and
receives that Delta table (a dimension, for joins), and a parameter named ``secret``
receives ``privacy.secret``. :func:`check_spec` validates all of it before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from kappalake.transforms.anomalies import hard_limit_flags, rate_anomalies, temperature_anomalies
from kappalake.transforms.bronze import bronze_record
from kappalake.transforms.dedup import dedup
from kappalake.transforms.enrich import enrich_clickstream, enrich_signups, enrich_telemetry
from kappalake.transforms.gold_clickstream import (concurrent_viewers, hourly_funnel, page_minute_metrics,
                                                   product_demand, sessions)
from kappalake.transforms.gold_telemetry import device_minute_stats, fleet_health, zone_occupancy
from kappalake.transforms.normalise import normalise
from kappalake.transforms.parse import parse_events
from kappalake.transforms.privacy import coarsen, pseudonymise

Transform = Callable[..., DataFrame]

TRANSFORMS: dict[str, Transform] = {
    "bronze_record": bronze_record,
    "parse_events": parse_events,
    "normalise": normalise,
    "dedup": dedup,
    "pseudonymise": pseudonymise,
    "coarsen": coarsen,
    "enrich_clickstream": enrich_clickstream,
    "enrich_signups": enrich_signups,
    "enrich_telemetry": enrich_telemetry,
    "page_minute_metrics": page_minute_metrics,
    "sessions": sessions,
    "hourly_funnel": hourly_funnel,
    "concurrent_viewers": concurrent_viewers,
    "product_demand": product_demand,
    "device_minute_stats": device_minute_stats,
    "zone_occupancy": zone_occupancy,
    "fleet_health": fleet_health,
    "temperature_anomalies": temperature_anomalies,
    "rate_anomalies": rate_anomalies,
    "hard_limit_flags": hard_limit_flags,
}
SECRET_PARAM = "secret"


def transform(name: str | Callable[..., DataFrame] | None = None) -> Any:
    """Register a transform under its function's name (``@transform``) or another (``@transform("x")``).

    For transforms outside kappalake: a file or module listed in the configuration's
    ``libraries`` registers them when the configuration loads. A name is registered once.
    """
    def register(fn: Transform, as_name: str | None = None) -> Transform:
        key = as_name or fn.__name__
        known = TRANSFORMS.get(key)
        if known is not None and known is not fn:
            raise ValueError(f"transform {key!r} is already registered (by {known.__module__}); pick another name")
        TRANSFORMS[key] = fn
        return fn

    if callable(name):
        return register(name)
    return lambda fn: register(fn, name)


@dataclass(frozen=True)
class TransformSpec:
    """One configured step: the function, its plain parameters and its table parameters."""

    name: str
    params: dict[str, Any]
    tables: dict[str, str]  # parameter -> table name (read as a DataFrame at run time)
    needs_secret: bool


def get_transform(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise KeyError(f"unknown transform {name!r}; known transforms: {', '.join(sorted(TRANSFORMS))}") from None


def check_spec(raw: str | dict[str, Any]) -> TransformSpec:
    """Validate one configured transform against its function's signature (ValueError names the problem)."""
    if isinstance(raw, str):
        name, given = raw, {}
    else:
        given = dict(raw)
        name = given.pop("name", None)
        if not isinstance(name, str):
            raise ValueError("a transform mapping needs 'name', e.g. {name: dedup, delay: 10 minutes}")
    fn = get_transform(name)
    sig = list(inspect.signature(fn).parameters.values())[1:]  # the first is the input DataFrame
    allowed = {p.name: p for p in sig}
    unknown = sorted(set(given) - set(allowed) - {SECRET_PARAM})
    if unknown or SECRET_PARAM in given:
        bad = unknown or [SECRET_PARAM]
        settable = ", ".join(n for n in allowed if n != SECRET_PARAM) or "(none)"
        hint = " (the secret comes from privacy.secret)" if SECRET_PARAM in bad else ""
        raise ValueError(f"transform {name!r} has no parameter {', '.join(map(repr, bad))}{hint}; parameters: {settable}")
    params, tables = {}, {}
    for p in sig:
        if p.name == SECRET_PARAM:
            continue
        if p.name not in given:
            if p.default is inspect.Parameter.empty:
                raise ValueError(f"transform {name!r} needs parameter {p.name!r}")
            continue
        if p.annotation in ("DataFrame", DataFrame):
            if not isinstance(given[p.name], str):
                raise ValueError(f"transform {name!r} parameter {p.name!r} takes a table name, e.g. dim.products")
            tables[p.name] = given[p.name]
        else:
            params[p.name] = given[p.name]
    return TransformSpec(name, params, tables, SECRET_PARAM in allowed)
