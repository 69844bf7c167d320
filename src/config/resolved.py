"""One pipeline as the code below the entry points sees it: its section of the configuration
with every name resolved (table paths, Kafka topic names, the Kafka settings, its suite), so
the composition, the guards and the batch writer take this rather than the whole Config."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kappalake.config.pipelines import PipelineConf, RouteConf, SinkConf, SourceConf
from kappalake.config.sections import AlertsConf, KafkaConf, LakeConf, TopicConf
from kappalake.errors import ConfigError

if TYPE_CHECKING:
    from kappalake.config.model import Config


@dataclass(frozen=True)
class RouteSpec:
    """A route of the pipeline's sink, its destination resolved (a table's path or the topic's
    name on the cluster)."""

    index: int
    conf: RouteConf
    path: str | None
    topic: str | None

    @property
    def where(self) -> str:
        """Its place in the configuration, for messages."""
        return f"sink.routes[{self.index}]"


@dataclass(frozen=True)
class PipelineSpec:
    """A configured pipeline, resolved. ``conf`` is its YAML section as written; the rest is
    what its source, transforms, quality gate, sinks and checks need from other sections."""

    name: str
    conf: PipelineConf
    kafka: KafkaConf                  # bootstrap servers and client id filled in
    lake: LakeConf                    # paths of the tables its transforms read
    source_topic: str | None          # the Kafka topic's name on the cluster
    source_partitions: int | None
    source_path: str | None           # the Delta source table's path
    sink_path: str | None
    sink_topic: str | None
    publish_topic: str | None
    output_topics: dict[str, TopicConf]  # the sink and publish topics by name, to create them
    quarantine_path: str | None
    metrics_path: str                 # quality metrics
    losses_table: str                 # records Kafka deleted before the stream read them
    checkpoint: str
    table_properties: dict[str, str]
    suite: dict[str, Any] | None      # the sink table's expectation suite as configured
    fail_sample: int
    secret: str | None                # privacy.secret, for transforms that pseudonymise
    alerts: AlertsConf | None         # set when the sink notifies
    deliveries_path: str | None
    routes: tuple[RouteSpec, ...] = ()

    @property
    def source(self) -> SourceConf:
        return self.conf.source

    @property
    def sink(self) -> SinkConf:
        return self.conf.sink

    @property
    def transforms(self) -> list[str | dict[str, Any]]:
        """The transforms as configured (``pipelines.plan.transform_specs`` checks them)."""
        return self.conf.transforms


def resolve(cfg: Config, name: str) -> PipelineSpec:
    """``cfg``'s pipeline ``name`` resolved; an unknown name is a ConfigError with the closest ones."""
    if name not in cfg.pipelines:
        close = difflib.get_close_matches(name, cfg.pipelines, n=2)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ConfigError(f"unknown pipeline {name!r}; {hint}configured pipelines: {', '.join(sorted(cfg.pipelines))}")
    p = cfg.pipelines[name]
    lake, sink, source = cfg.lake, p.sink, p.source
    notifying = sink.notify and bool(cfg.alerts.notifiers)
    outputs = [t for t in (sink.topic, sink.publish) if t] + [r.topic for r in sink.routes if r.topic]
    return PipelineSpec(
        name=name, conf=p, kafka=cfg.kafka_settings, lake=lake,
        source_topic=cfg.topic_name(source.topic) if source.topic else None,
        source_partitions=cfg.topics[source.topic].partitions if source.topic else None,
        source_path=lake.table_path(source.table) if source.table else None,
        sink_path=lake.table_path(sink.table) if sink.table else None,
        sink_topic=cfg.topic_name(sink.topic) if sink.topic else None,
        publish_topic=cfg.topic_name(sink.publish) if sink.publish else None,
        output_topics=cfg.topic_specs(outputs) if outputs else {},
        quarantine_path=lake.table_path(sink.quarantine) if sink.quarantine else None,
        metrics_path=lake.table_path(cfg.quality.metrics_table),
        losses_table=cfg.monitoring.losses_table,
        checkpoint=lake.checkpoint_path(name),
        table_properties=dict(lake.table_properties),
        suite=cfg.quality.suites.get(sink.table) if sink.table else None,
        fail_sample=cfg.quality.fail_sample,
        secret=cfg.privacy.secret.get_secret_value() if cfg.privacy.secret else None,
        alerts=cfg.alerts if notifying else None,
        deliveries_path=lake.table_path(cfg.alerts.deliveries_table) if notifying else None,
        routes=tuple(RouteSpec(i, r, lake.table_path(r.table) if r.table else None,
                               cfg.topic_name(r.topic) if r.topic else None) for i, r in enumerate(sink.routes)),
    )
