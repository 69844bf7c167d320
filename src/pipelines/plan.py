"""The dependency plan of the configured pipelines: names and transforms checked before
anything starts, the order they run in (a pipeline reading another's table after it), and
the pipelines upstream of a selection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kappalake.config import Config, PipelineConf, PipelineSpec
from kappalake.errors import ConfigError
from kappalake.quality.suites import load_suite
from kappalake.transforms.registry import TransformSpec, check_spec


def validate_pipelines(cfg: Config, names: Iterable[str] | None = None) -> list[str]:
    """Check pipeline and transform names and parameters before anything starts.

    Returns the names in dependency order: a pipeline reading another's table comes after it.
    """
    selected = list(names or cfg.pipelines)
    for name in selected:
        spec = cfg.pipeline(name)  # an unknown name is an error naming the closest ones
        transform_specs(spec)
        load_suite(cfg.quality, spec.sink.table)  # GX checks the suite's types and arguments
    return sorted(selected, key=lambda n: depth(cfg.pipelines, n))


def transform_specs(spec: PipelineSpec) -> list[TransformSpec]:
    """The pipeline's transforms, each checked against the registry (name, parameters)."""
    specs = []
    for i, raw in enumerate(spec.transforms):
        try:
            t = check_spec(raw)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"pipelines.{spec.name}.transforms[{i}]: {e.args[0]}") from None
        if t.needs_secret and spec.secret is None:
            raise ConfigError(f"pipelines.{spec.name}.transforms[{i}] ({t.name}) needs privacy.secret: "
                              "set privacy.secret: ${env:KAPPALAKE_PSEUDONYM_SECRET} and export it")
        if t.name == "dedup" and i != len(spec.transforms) - 1:
            raise ConfigError(f"pipelines.{spec.name}.transforms[{i}] (dedup) must be the last transform: on a stream "
                              f"it settles which copy of an event is kept once per micro-batch, after the whole chain; "
                              f"move it to the end")
        specs.append(t)
    return specs


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
