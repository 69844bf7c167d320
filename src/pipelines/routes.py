"""Routing, as Netflix's Keystone routes processed events: the rows of each micro-batch that match a
route's SQL condition also go to a Delta table or a Kafka topic, declared under a pipeline's
``sink.routes`` and written beside the sink from the same batch.

- A table route is exactly once: an append under the batch's own transaction
  (``txnAppId``/``txnVersion``, skipped on a replay), or a MERGE on keys (a latest-state table,
  the newest row per key by ``latest_by``), which a replay repeats to the same values.
- A topic route is at-least-once (Spark's Kafka sink): a replayed batch is sent again, so every
  message carries the route's ``id_column`` as its ``idempotency-key`` header and in its JSON
  value, for consumers to drop repeats.
- A route that cannot be written fails the batch: the query stops, and the restart replays the
  batch from the checkpoint (the writes that committed skip themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

from kappalake.config import KafkaConf, PipelineSpec, RouteConf, RouteSpec
from kappalake.errors import ConfigError
from kappalake.ingest.kafka_clients import write_records
from kappalake.lake.sinks import Merge
from kappalake.lake.tables import ensure_table
from kappalake.lake.writers import Append, Txn, Writer

HEADER = "idempotency-key"


def route_rows(kept: DataFrame, route: RouteConf) -> DataFrame:
    """The rows of ``kept`` that ``route`` takes, with its columns (all when it names none)."""
    rows = kept.where(F.expr(route.when))
    return rows.select(*route.columns) if route.columns else rows


def kafka_records(kept: DataFrame, route: RouteConf) -> DataFrame:
    """The rows of ``kept`` that a topic ``route`` takes, as Kafka records: the route's columns as a
    JSON value (always with ``id_column``), ``key`` as the Kafka key, ``id_column`` as the
    ``idempotency-key`` header."""
    rows = kept.where(F.expr(route.when))
    columns = list(route.columns or rows.columns)
    if route.id_column not in columns:
        columns.append(route.id_column)
    idem = F.col(route.id_column).cast("string").cast("binary")
    # Every column in every message, nulls too: consumers see one shape.
    value = F.to_json(F.struct(*columns), {"ignoreNullFields": "false"})
    out: list[Column] = [value.alias("value"),
                         F.array(F.struct(F.lit(HEADER).alias("key"), idem.alias("value"))).alias("headers")]
    if route.key is not None:
        out.insert(0, F.col(route.key).cast("string").alias("key"))
    return rows.select(*out)


class RouteWriter(Protocol):
    route: RouteSpec

    def write(self, kept: DataFrame, txn: Txn) -> None: ...


@dataclass(frozen=True)
class TableRoute:
    """A route to a Delta table: append under the batch's transaction, or MERGE on keys."""

    route: RouteSpec
    writer: Writer

    def write(self, kept: DataFrame, txn: Txn) -> None:
        rows = route_rows(kept, self.route.conf)
        if isinstance(self.writer, Append) and rows.isEmpty():
            return  # no commit for nothing; a replay of the batch finds it empty too
        self.writer.write(rows, txn.sub(f"route/{self.route.conf.table}"))


@dataclass(frozen=True)
class TopicRoute:
    """A route to a Kafka topic: at-least-once, every message with its idempotency key."""

    route: RouteSpec
    kafka: KafkaConf

    def write(self, kept: DataFrame, txn: Txn) -> None:
        write_records(kafka_records(kept, self.route.conf), self.kafka, self.route.topic)


def route_writers(spec: PipelineSpec) -> tuple[RouteWriter, ...]:
    """The writers of the pipeline's routes, in configuration order."""
    out: list[RouteWriter] = []
    for r in spec.routes:
        c = r.conf
        if c.table is not None:
            writer: Writer = (Append(r.path) if c.mode == "append"
                              else Merge(r.path, tuple(c.keys), latest_by=c.latest_by))
            out.append(TableRoute(r, writer))
        else:
            out.append(TopicRoute(r, spec.kafka))
    return tuple(out)


def check_routes(spec: PipelineSpec, kept: DataFrame) -> None:
    """At start-up: every route's condition and columns resolve against ``kept`` (the rows the sink
    keeps, an empty frame of their schema), or a ConfigError names the key and the columns."""
    columns = kept.columns
    for r in spec.routes:
        c, where = r.conf, f"pipelines.{spec.name}.{r.where}"
        named = {"columns": c.columns, "key": [c.key] if c.key else [], "keys": c.keys,
                 "latest_by": [c.latest_by] if c.latest_by else [], "partition_by": c.partition_by}
        if c.topic is not None:
            named["id_column"] = [c.id_column]
        for key, names in named.items():
            missing = [n for n in names if n not in columns]
            if missing:
                raise ConfigError(f"{where}.{key} names {', '.join(missing)}, which pipeline {spec.name} does not write; "
                                  f"columns: {', '.join(columns)}")
        chosen = set(c.columns or columns)
        lost = [n for n in c.keys + c.partition_by + ([c.latest_by] if c.latest_by else []) if n not in chosen]
        if lost:
            raise ConfigError(f"{where}.columns must include {', '.join(lost)} (its keys, latest_by and partition_by)")
        try:
            kind = kept.select(F.expr(c.when).alias("_when")).schema["_when"].dataType
            if isinstance(kind, BooleanType):
                filtered = kept.where(F.expr(c.when))  # analysed as the filter it is (no aggregates, windows)
        except Exception as e:  # noqa: BLE001 - Spark's parse or analysis error, as one line
            raise ConfigError(f"{where}.when {c.when!r}: {_first_line(e)}; columns: {', '.join(columns)}") from None
        if not isinstance(kind, BooleanType):
            raise ConfigError(f"{where}.when {c.when!r} is a {kind.simpleString()}, not a condition (true/false)")
        if not filtered._jdf.queryExecution().analyzed().deterministic():
            raise ConfigError(f"{where}.when {c.when!r} is not deterministic (rand(), current_timestamp()...): a batch "
                              f"replayed after a crash must route the same rows")


def create_route_tables(spark: SparkSession, spec: PipelineSpec, kept: DataFrame) -> None:
    """Create the route tables that do not exist yet, with the schema of the rows they take."""
    for r in spec.routes:
        if r.path is not None:
            ensure_table(spark, r.path, route_rows(kept, r.conf).schema, r.conf.partition_by, spec.table_properties)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(" SQLSTATE:")[0][:400]
