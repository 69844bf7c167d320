"""The dependency plan of the configured pipelines: names and transforms checked before
anything starts, the order they run in (a pipeline reading another's table after it), and
the pipelines upstream of a selection."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from kappalake.config import Config
from kappalake.errors import ConfigError
from kappalake.quality.suites import load_suite
from kappalake.transforms.registry import TransformSpec, check_spec


def validate_pipelines(cfg: Config, names: Iterable[str] | None = None) -> list[str]:
    """Check pipeline and transform names and parameters before anything starts.

    Returns the names in dependency order: a pipeline reading another's table comes after it.
    """
    selected = list(names or cfg.pipelines)
    for name in selected:
        if name not in cfg.pipelines:
            close = difflib.get_close_matches(name, cfg.pipelines, n=2)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(f"unknown pipeline {name!r}; {hint}configured pipelines: {', '.join(sorted(cfg.pipelines))}")
        transform_specs(cfg, name)
        load_suite(cfg, cfg.pipelines[name].sink.table)  # GX checks the suite's types and arguments
    return sorted(selected, key=lambda n: depth(cfg, n))


def transform_specs(cfg: Config, name: str) -> list[TransformSpec]:
    specs = []
    for i, raw in enumerate(cfg.pipelines[name].transforms):
        try:
            spec = check_spec(raw)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"pipelines.{name}.transforms[{i}]: {e.args[0]}") from None
        if spec.needs_secret and cfg.privacy.secret is None:
            raise ConfigError(f"pipelines.{name}.transforms[{i}] ({spec.name}) needs privacy.secret: "
                              "set privacy.secret: ${env:KAPPALAKE_PSEUDONYM_SECRET} and export it")
        if spec.name == "dedup" and i != len(cfg.pipelines[name].transforms) - 1:
            raise ConfigError(f"pipelines.{name}.transforms[{i}] (dedup) must be the last transform: on a stream it "
                              f"settles which copy of an event is kept once per micro-batch, after the whole chain; "
                              f"move it to the end")
        specs.append(spec)
    return specs


def depth(cfg: Config, name: str, seen: frozenset[str] = frozenset()) -> int:
    """0 for a pipeline reading Kafka, 1 + its producer's depth for one reading a table."""
    table = cfg.pipelines[name].source.table
    if table is None or name in seen:
        return 0
    return 1 + max((depth(cfg, n, seen | {name}) for n in writers_of(cfg, table)), default=0)


def writers_of(cfg: Config, table: str | None) -> list[str]:
    """The pipelines whose sink is ``table``."""
    return [n for n, p in cfg.pipelines.items() if p.sink.table == table]


def readers_of(cfg: Config, table: str | None) -> list[str]:
    """The pipelines whose source is ``table`` and whose sink is a table, in configuration order."""
    return [n for n, p in cfg.pipelines.items() if p.source.table == table and p.sink.table]


def with_upstream(cfg: Config, names: Iterable[str]) -> list[str]:
    """``names`` plus, transitively, the pipelines writing the tables they read."""
    out: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.append(name)
        if name in cfg.pipelines and (table := cfg.pipelines[name].source.table):
            todo += writers_of(cfg, table)
    return out


