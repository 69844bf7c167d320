"""The pipelines as a graph: who writes a table (its sink or a route), who reads it, what runs
upstream of a pipeline and how deep it sits. Pure functions of the configured pipelines, used by
the configuration's own checks and by the dependency plan (``kappalake.pipelines.plan``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kappalake.config.pipelines import PipelineConf

Pipelines = Mapping[str, PipelineConf]


def depth(pipelines: Pipelines, name: str, seen: frozenset[str] = frozenset()) -> int:
    """0 for a pipeline reading Kafka, 1 + its producer's depth for one reading a table."""
    table = pipelines[name].source.table
    if table is None or name in seen:
        return 0
    return 1 + max((depth(pipelines, n, seen | {name}) for n in writers_of(pipelines, table)), default=0)


def writers_of(pipelines: Pipelines, table: str | None) -> list[str]:
    """The pipelines whose sink, or one of whose routes, is ``table``."""
    return [n for n, p in pipelines.items() if p.sink.table == table or any(r.table == table for r in p.sink.routes)]


def readers_of(pipelines: Pipelines, table: str | None) -> list[str]:
    """The pipelines whose source is ``table`` and whose sink is a table, in configuration order."""
    return [n for n, p in pipelines.items() if p.source.table == table and p.sink.table]


def with_upstream(pipelines: Pipelines, names: Iterable[str]) -> list[str]:
    """``names`` plus, transitively, the pipelines writing the tables they read."""
    out: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.append(name)
        if name in pipelines and (table := pipelines[name].source.table):
            todo += writers_of(pipelines, table)
    return out
