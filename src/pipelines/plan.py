"""The dependency plan of the configured pipelines: names and transforms checked before
anything starts, the order they run in (a pipeline reading another's table after it), and
the pipelines upstream of a selection (the graph helpers live with the configuration,
``kappalake.config.graph``, whose checks use them too)."""

from __future__ import annotations

from collections.abc import Iterable

from kappalake.config import Config, PipelineSpec
from kappalake.config.graph import depth, readers_of, with_upstream, writers_of
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


__all__ = ["depth", "readers_of", "transform_specs", "validate_pipelines", "with_upstream", "writers_of"]
