"""The whole configuration (:class:`Config`) and the checks that span its sections."""

from __future__ import annotations

import re
from typing import Any, Optional

from pydantic import model_validator

from kappalake.config.graph import with_upstream
from kappalake.config.pipelines import PipelineConf
from kappalake.config.resolved import PipelineSpec, resolve
from kappalake.config.sections import (SECRET_KEY, AlertsConf, BrokerConf, ClusterConf, DashboardConf, KafkaConf,
                                       LakeConf, MaintenanceConf, MonitoringConf, PrivacyConf, ProducerConf,
                                       QualityConf, ReferenceConf, SparkConf, TopicConf, _Model)


class Config(_Model):
    profile: str
    app_name: str = "kappalake"
    broker: BrokerConf = BrokerConf()
    cluster: ClusterConf = ClusterConf()
    kafka: KafkaConf = KafkaConf()
    topics: dict[str, TopicConf]
    spark: SparkConf = SparkConf()
    lake: LakeConf = LakeConf()
    producer: ProducerConf = ProducerConf()
    reference: ReferenceConf = ReferenceConf()
    privacy: PrivacyConf = PrivacyConf()
    alerts: AlertsConf = AlertsConf()
    quality: QualityConf = QualityConf()
    monitoring: MonitoringConf = MonitoringConf()
    maintenance: MaintenanceConf = MaintenanceConf()
    dashboard: DashboardConf = DashboardConf()
    pipelines: dict[str, PipelineConf]
    # Event types of your own (docs/events.md#adding-an-event-type), relative to the conf directory.
    contracts_dir: Optional[str] = "contracts"  # contracts <topic>.v<N>.json read beside kappalake's
    libraries: list[str] = []  # Python files (globs) or modules imported at load: they register transforms and simulators

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        for name, p in self.pipelines.items():
            for key, topic in (("source.topic", p.source.topic), ("sink.topic", p.sink.topic), ("sink.publish", p.sink.publish)):
                if topic is not None and topic not in self.topics:
                    raise ValueError(f"pipelines.{name}.{key} {topic!r} is not declared under topics "
                                     f"(declared: {', '.join(sorted(self.topics))})")
            _check_routes(self, name, p)
            if p.trigger.continuous and (p.source.topic is None or p.sink.topic is None):
                raise ValueError(f"pipelines.{name}.trigger.continuous needs a Kafka source.topic and a Kafka sink.topic "
                                 "(Spark's continuous processing runs Kafka -> Kafka only)")
        if self.kafka.sasl_mechanism == "AWS_MSK_IAM" and not any(":aws-msk-iam-auth:" in p
                                                                  for p in self.spark.extra_packages):
            raise ValueError("kafka.sasl_mechanism AWS_MSK_IAM needs the IAM login module on Spark's side: add "
                             "software.amazon.msk:aws-msk-iam-auth:<version> (e.g. 2.3.2) to spark.extra_packages")
        for table in self.maintenance.zorder:
            if table not in self.tables():
                raise ValueError(f"maintenance.zorder names {table!r}, which no pipeline writes "
                                 f"(tables: {', '.join(self.tables())})")
        if self.broker.mode == "embedded":
            local = f"127.0.0.1:{self.broker.port}"
            if self.kafka.bootstrap_servers not in (None, local, f"localhost:{self.broker.port}"):
                raise ValueError(
                    f"kafka.bootstrap_servers {self.kafka.bootstrap_servers!r} does not point at the embedded broker "
                    f"({local}); set broker.mode: external to use another cluster"
                )
            if self.kafka.security_protocol != "PLAINTEXT":
                raise ValueError("the embedded broker speaks PLAINTEXT on loopback; set broker.mode: external for SSL/SASL")
        elif not self.kafka.bootstrap_servers:
            raise ValueError("broker.mode is external, so kafka.bootstrap_servers is required (host:port[,host:port])")
        return self

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers or f"127.0.0.1:{self.broker.port}"

    @property
    def kafka_settings(self) -> KafkaConf:
        """``kafka`` with what other sections decide filled in (the embedded broker's address,
        ``app_name`` as client id): all a Kafka client needs."""
        return self.kafka.model_copy(update={"bootstrap_servers": self.bootstrap_servers,
                                             "client_id": self.kafka.client_id or self.app_name})

    def pipeline(self, name: str) -> PipelineSpec:
        """Pipeline ``name`` resolved (paths, topic names, Kafka settings, suite): what the code
        running it takes."""
        return resolve(self, name)

    def tables(self) -> list[str]:
        """Every table the configuration names: pipeline sinks, quarantines and reference dimensions."""
        sinks = {p.sink.table for p in self.pipelines.values() if p.sink.table}
        sinks |= {r.table for p in self.pipelines.values() for r in p.sink.routes if r.table}
        quarantines = {p.sink.quarantine for p in self.pipelines.values() if p.sink.quarantine}
        notifying = self.alerts.notifiers and any(p.sink.notify for p in self.pipelines.values())
        deliveries = {self.alerts.deliveries_table} if notifying else set()
        metrics = {self.quality.metrics_table} if quarantines or self.quality.suites else set()
        recorded = {self.monitoring.metrics_table, self.monitoring.lag_table}
        return sorted(sinks | quarantines | deliveries | metrics | recorded | set(self.reference.tables.values()))

    def topic_name(self, logical: str) -> str:
        return self.topics[logical].name or logical

    def topic_specs(self, names: list[str] | None = None) -> dict[str, TopicConf]:
        """The configured topics ``names`` (default: all) by their names on the cluster."""
        return {self.topic_name(t): self.topics[t] for t in (names or self.topics)}

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret masked (safe to print or log)."""
        data = self.model_dump(mode="json")
        data["kafka"]["sasl_password"] = "******" if self.kafka.sasl_password else None
        data["privacy"]["secret"] = "******" if self.privacy.secret else None
        for n in data["alerts"]["notifiers"]:  # webhook URLs and headers often carry tokens
            if "url" in n:
                n["url"] = re.sub(r"^(\w+://[^/?#]*).*", r"\1/******", str(n["url"]))
            if "headers" in n:
                n["headers"] = {k: "******" for k in n["headers"] or {}}
        # Property maps passed through as given: the broker's own (its listeners' JAAS user
        # passwords), Kafka clients', Spark's (e.g. spark.hadoop.fs.s3a.secret.key).
        for section, key in (("kafka", "options"), ("broker", "properties"), ("spark", "conf")):
            data[section][key] = {k: ("******" if SECRET_KEY.search(k) else v) for k, v in data[section][key].items()}
        return data


def _check_routes(cfg: Config, name: str, p: PipelineConf) -> None:
    """A route's destination: a declared topic, never a source the pipeline is fed from (directly
    or upstream), and a table no other sink or route writes nor kappalake keeps (each table has
    one writer)."""
    fed_from = {s for n in with_upstream(cfg.pipelines, [name])
                for s in (cfg.pipelines[n].source.topic, cfg.pipelines[n].source.table) if s}
    reserved = {cfg.quality.metrics_table, cfg.monitoring.metrics_table, cfg.monitoring.lag_table,
                cfg.monitoring.losses_table, cfg.alerts.deliveries_table, *cfg.reference.tables.values()}
    for i, r in enumerate(p.sink.routes):
        where = f"pipelines.{name}.sink.routes[{i}]"
        if r.topic is not None and r.topic not in cfg.topics:
            raise ValueError(f"{where}.topic {r.topic!r} is not declared under topics "
                             f"(declared: {', '.join(sorted(cfg.topics))})")
        if (r.topic or r.table) in fed_from:
            own = "own source" if (r.topic or r.table) in (p.source.topic, p.source.table) else "upstream source"
            raise ValueError(f"{where} sends rows to the pipeline's {own} ({r.destination}), which would feed "
                             f"them back into it: route to another table or topic")
        if r.table is None:
            continue
        if r.table in reserved:
            raise ValueError(f"{where}.table {r.table} is one kappalake keeps itself (metrics, lag, deliveries, "
                             f"reference data): name another table")
        if r.table in (p.sink.table, p.sink.quarantine):
            raise ValueError(f"{where}.table {r.table} is this pipeline's own sink or quarantine: route to another table")
        for other, q in cfg.pipelines.items():
            owned = [q.sink.table, q.sink.quarantine] + [t.table for j, t in enumerate(q.sink.routes)
                                                         if (other, j) != (name, i)]
            if r.table in owned:
                raise ValueError(f"{where}.table {r.table} is also written by pipeline {other}: a table has one "
                                 f"writer; name another table")
