"""A pipeline's configuration: its source, sink (with ranking), trigger."""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from kappalake.config.sections import INTERVAL, TABLE_NAME, _check_table_name, _Model


class SourceConf(_Model):
    """A Kafka topic (``topic``) or a Delta table read as a stream (``table``), exactly one."""

    topic: Optional[str] = None
    table: Optional[str] = None
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: Optional[int] = Field(None, ge=1)
    fail_on_data_loss: bool = True
    min_partitions: Optional[int] = Field(None, ge=1)
    max_files_per_trigger: Optional[int] = Field(None, ge=1)  # Delta sources
    max_bytes_per_trigger: Optional[str] = None  # Delta sources, e.g. 32m: a soft cap, at least one file a batch

    @model_validator(mode="after")
    def _one_source(self) -> "SourceConf":
        if (self.topic is None) == (self.table is None):
            raise ValueError("set exactly one of source.topic (a Kafka topic) or source.table (a Delta table, e.g. bronze.clickstream)")
        if self.max_bytes_per_trigger is not None and not re.fullmatch(r"\d+[kmg]?", self.max_bytes_per_trigger.lower()):
            raise ValueError(f"source.max_bytes_per_trigger {self.max_bytes_per_trigger!r} must be a size like 32m, 512k or 1g")
        if self.table is not None and not TABLE_NAME.match(self.table):
            raise ValueError(f"source.table {self.table!r} must look like 'layer.name' (e.g. bronze.clickstream)")
        return self


class RankConf(_Model):
    """Rank rows among those sharing ``within`` (e.g. zones in the same 15 minutes) by ``by``."""

    column: str
    within: list[str]
    by: list[str]  # column names, each optionally followed by ' desc'

    @field_validator("by")
    @classmethod
    def _order(cls, v: list[str]) -> list[str]:
        for item in v:
            parts = item.split()
            if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise ValueError(f"rank.by entry {item!r} must be a column name, optionally followed by asc or desc")
        return v


class RouteConf(_Model):
    """Rows of each micro-batch that match ``when`` (SQL over the rows the sink keeps), also sent to
    a Delta ``table`` (exactly once, like the sink) or a Kafka ``topic`` (at-least-once, every
    message carrying ``id_column`` as its ``idempotency-key`` header and in its JSON)."""

    when: str = "true"
    table: Optional[str] = None
    topic: Optional[str] = None          # logical topic name (declared under topics)
    columns: list[str] = []              # what is written (the topic's JSON value); [] = every column
    key: Optional[str] = None            # topic routes: the Kafka key column (null: no key)
    id_column: str = "event_id"          # topic routes: the idempotency key consumers drop repeats by
    mode: Literal["append", "merge"] = "append"  # table routes; merge: upsert on keys (a latest-state table)
    keys: list[str] = []
    latest_by: Optional[str] = None      # merge: of rows sharing keys keep the newest by this column, and
                                         # never replace a newer row (out-of-order input, replays)
    partition_by: list[str] = []

    @field_validator("table")
    @classmethod
    def _table_name(cls, v: Optional[str]) -> Optional[str]:
        return v if v is None else _check_table_name(v, "silver.orders")

    @model_validator(mode="after")
    def _one_destination(self) -> "RouteConf":
        if (self.table is None) == (self.topic is None):
            raise ValueError("a route needs exactly one of table (a Delta table, e.g. silver.orders) or topic "
                             "(a Kafka topic declared under topics)")
        if self.topic is not None and (self.mode != "append" or self.keys or self.latest_by or self.partition_by):
            raise ValueError("a topic route takes no mode, keys, latest_by or partition_by (those are for table routes)")
        if self.table is not None and self.key is not None:
            raise ValueError("key is the Kafka key of a topic route; a table route takes mode: merge and keys")
        if self.mode == "merge" and (not self.keys or not self.latest_by):
            raise ValueError("a route with mode merge needs keys (the columns that identify a row, e.g. [device_id]) and "
                             "latest_by (the column saying which of a key's rows is newest, e.g. event_time)")
        if self.mode == "append" and (self.keys or self.latest_by):
            raise ValueError("keys and latest_by only apply to a route with mode: merge")
        if not self.when.strip():
            raise ValueError("a route's when is a SQL condition over the kept rows, e.g. \"event_type = 'purchase'\"")
        return self

    @property
    def destination(self) -> str:
        return f"table {self.table}" if self.table else f"topic {self.topic}"


class SinkConf(_Model):
    """A Delta ``table`` (written idempotently per micro-batch) or a Kafka ``topic`` (rows with
    ``key``/``value`` columns, at-least-once; the only sink a continuous trigger can use)."""

    table: Optional[str] = None
    topic: Optional[str] = None  # logical topic name (declared under topics)
    partition_by: list[str] = []
    # Rows whose ``_errors`` is not empty go here (with reasons, raw payload, Kafka
    # coordinates) instead of ``table``.
    quarantine: Optional[str] = None
    # append: each micro-batch appends its rows (finalised windows, events).
    # merge: upsert on ``keys`` (streaming aggregations in update mode: a window's row is
    # rewritten with its new totals while it is open, and is final once the watermark passes).
    mode: Literal["append", "merge"] = "append"
    keys: list[str] = []
    rank: Optional[RankConf] = None
    # merge sinks: the stream's output mode. update (default) rewrites open windows every batch;
    # append merges each row once it is final (what session windows need), keyed so that a
    # row `kappalake reprocess` already wrote is replaced rather than duplicated.
    output_mode: Literal["update", "append"] = "update"
    # The column `kappalake reprocess --from/--to` ranges apply to (e.g. event_time, window_start).
    time_column: Optional[str] = None
    # After each committed micro-batch: also send its rows as JSON to this topic (keyed by
    # ``publish_key``; at-least-once), and/or to the notifiers under ``alerts``.
    publish: Optional[str] = None
    publish_key: str = "entity"
    notify: bool = False
    # Routing (docs/routing.md): rows of each batch by SQL condition to more tables and topics.
    routes: list[RouteConf] = []

    @field_validator("table", "quarantine")
    @classmethod
    def _table_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not TABLE_NAME.match(v):
            raise ValueError(f"table name {v!r} must look like 'layer.name' (lower case, e.g. bronze.clickstream)")
        return v

    @model_validator(mode="after")
    def _merge_needs_keys(self) -> "SinkConf":
        if (self.table is None) == (self.topic is None):
            raise ValueError("set exactly one of sink.table (a Delta table, e.g. silver.clickstream) or sink.topic (a Kafka topic)")
        if self.topic is not None and (self.quarantine or self.partition_by or self.publish or self.notify
                                       or self.mode != "append" or self.routes):
            raise ValueError("a sink.topic (Kafka) sink takes no quarantine, partition_by, mode, publish, notify or routes")
        if self.mode == "merge" and not self.keys:
            raise ValueError("sink.mode merge needs sink.keys, the columns that identify a row (e.g. [window_start, page])")
        if self.mode == "append" and (self.keys or self.rank or self.output_mode != "update"):
            raise ValueError("sink.keys, sink.rank and sink.output_mode only apply to sink.mode: merge")
        if self.quarantine and self.mode == "merge":
            raise ValueError("sink.quarantine only applies to sink.mode: append")
        if self.routes and self.mode == "merge":
            raise ValueError("sink.routes need sink.mode: append (a merge sink's batches carry a window's totals again "
                             "each time they change, which a route would send again)")
        return self


class TriggerConf(_Model):
    processing_time: Optional[str] = None
    available_now: bool = False
    # Continuous processing: map/filter-only queries from Kafka to Kafka, ~ms latency,
    # at-least-once; the value is the checkpoint interval.
    continuous: Optional[str] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "TriggerConf":
        if sum([bool(self.processing_time), self.available_now, bool(self.continuous)]) != 1:
            raise ValueError("set exactly one of trigger.processing_time (e.g. '5 seconds'), trigger.available_now: true "
                             "or trigger.continuous (e.g. '1 second')")
        for key in ("processing_time", "continuous"):
            value = getattr(self, key)
            if value and not INTERVAL.match(value.strip()):
                raise ValueError(f"trigger.{key} {value!r} is not an interval like '500 milliseconds', '5 seconds' or '1 minute'")
        return self

    def as_writer_kwargs(self) -> dict[str, Any]:
        if self.available_now:
            return {"availableNow": True}
        if self.continuous:
            return {"continuous": self.continuous}
        return {"processingTime": self.processing_time}


class PipelineConf(_Model):
    source: SourceConf
    # A transform is a name, or a mapping {name: ..., <parameter>: <value>, ...}.
    transforms: list[str | dict[str, Any]]
    sink: SinkConf
    trigger: TriggerConf
