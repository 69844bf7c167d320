"""Event simulators by topic.

Each simulator module registers a factory with :func:`simulator`: the topic it produces, the
field an ``implausible_value`` fault sets (and the range it draws from), its scripted
scenarios and a small world for test feeds. The producer, the fault injector, the CLI's
choices and chaos look a topic up here, so a new event type adds a module (or a library the
configuration names), not branches.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kappalake.config import ProducerConf
    from kappalake.ingest.producer import ProduceSpec
    from kappalake.ingest.reference import Reference
    from kappalake.ingest.simulators.base import SimEvent

    Factory = Callable[[ProducerConf, ProduceSpec, Reference, int, float], Iterator[SimEvent]]

# The simulators that ship with kappalake, imported (and so registered) on first lookup.
BUILT_IN = ("kappalake.ingest.simulators.clickstream", "kappalake.ingest.simulators.signups",
            "kappalake.ingest.simulators.telemetry")


@dataclass(frozen=True)
class Simulator:
    """A registered simulator: ``build(producer, spec, reference, start_ms, rate)`` yields its
    events (``producer``: the configuration's ``producer`` section, for its default sizes)."""

    topic: str
    build: Factory
    implausible: tuple[str, tuple[float, float]]  # the field an implausible_value fault sets, its range
    scenarios: tuple[str, ...] = ()               # scripted runs (--scenario)
    small_world: dict[str, int] = field(default_factory=dict)  # ProduceSpec sizes for short test feeds


_REGISTRY: dict[str, Simulator] = {}


def simulator(topic: str, implausible: tuple[str, tuple[float, float]], scenarios: tuple[str, ...] = (),
              small_world: dict[str, int] | None = None) -> Callable[[Factory], Factory]:
    """Register the decorated factory as the simulator of ``topic`` (one per topic).

    For topics of the user's own: a file or module listed in the configuration's ``libraries``
    registers its simulator when the configuration loads.
    """
    def register(build: Factory) -> Factory:
        if build.__module__ not in BUILT_IN:
            _load()  # kappalake's own first, so a library cannot take their topics unnoticed
        known = _REGISTRY.get(topic)
        if known is not None and known.build.__module__ != build.__module__:
            raise ValueError(f"a simulator for topic {topic!r} is already registered (by {known.build.__module__})")
        _REGISTRY[topic] = Simulator(topic, build, implausible, scenarios, dict(small_world or {}))
        return build
    return register


def _load() -> dict[str, Simulator]:
    for module in BUILT_IN:
        importlib.import_module(module)
    return _REGISTRY


def topics() -> list[str]:
    """The topics a simulator exists for."""
    return sorted(_load())


def get(topic: str) -> Simulator:
    """The simulator of ``topic``; KeyError naming the topics that have one."""
    registry = _load()
    if topic not in registry:
        raise KeyError(f"no simulator for topic {topic!r}; simulators exist for {', '.join(sorted(registry))} "
                       f"(a library named in `libraries` can register one)")
    return registry[topic]


def scenarios() -> dict[str, tuple[str, ...]]:
    """The scripted scenarios of each topic that has any."""
    return {t: sim.scenarios for t, sim in sorted(_load().items()) if sim.scenarios}
