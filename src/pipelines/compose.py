"""The composition point: a pipeline's source, its configured transforms and its sink table's
quality gate, put together the same way for the stream (`runner.start_pipeline`) and for
batch work (reprocessing, quarantine replay, `verify`, the tests)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from kappalake.alerts.delivery import BatchDelivery
from kappalake.config import PipelineSpec
from kappalake.errors import ConfigError, PipelineError
from kappalake.ingest.kafka_clients import spark_source_options
from kappalake.lake.sinks import table_schema
from kappalake.lake.tables import read_table, table_exists
from kappalake.pipelines.plan import transform_specs
from kappalake.quality.gate import QualityGate
from kappalake.quality.quarantine import valid_rows
from kappalake.quality.rules import type_violations
from kappalake.quality.suites import check_columns, suite_from_dict
from kappalake.transforms.parse import ERRORS
from kappalake.transforms.registry import TransformSpec, get_transform

log = logging.getLogger("kappalake.pipelines")


def read_source(spark: SparkSession, spec: PipelineSpec) -> DataFrame:
    """The pipeline's source as a streaming DataFrame: Spark's Kafka source or a Delta table."""
    source = spec.source
    if spec.source_topic is not None:
        options = spark_source_options(spec.kafka, spec.source_topic, source)
        return spark.readStream.format("kafka").options(**options).load()
    if not table_exists(spark, spec.source_path):
        raise PipelineError(f"pipeline {spec.name} reads {source.table}, which does not exist yet at "
                            f"{spec.source_path}: run the pipeline that writes it first")
    # A reprocess rewrites a range of the table (removes + adds): downstream streams skip such
    # commits (their own tables are reprocessed for the range in turn) instead of failing on them.
    reader = spark.readStream.format("delta").option("skipChangeCommits", "true")
    if source.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", source.max_files_per_trigger)
    if source.max_bytes_per_trigger:
        reader = reader.option("maxBytesPerTrigger", source.max_bytes_per_trigger)
    return reader.load(spec.source_path)


def apply_transforms(spark: SparkSession, spec: PipelineSpec, df: DataFrame,
                     transforms: Iterable[TransformSpec] | None = None) -> DataFrame:
    """Apply the pipeline's transforms (or ``transforms``) in order, binding table parameters
    and the privacy secret.

    A transform rejecting its parameters (ValueError) is a configuration error naming the step.
    """
    for i, t in enumerate(transform_specs(spec) if transforms is None else transforms):
        kwargs = dict(t.params)
        for param, table in t.tables.items():
            path = spec.lake.table_path(table)
            kwargs[param] = read_table(spark, path)
            if kwargs[param] is None:
                raise PipelineError(f"{t.name} needs table {table} at {path}; create it first "
                                    f"(dimension tables: kappalake reference create)")
        if t.needs_secret:
            kwargs["secret"] = spec.secret
        try:
            df = get_transform(t.name)(df, **kwargs)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"pipelines.{spec.name}.transforms[{i}] ({t.name}): {e}") from None
    return df


def read_static_source(spark: SparkSession, spec: PipelineSpec, version: int | None = None) -> DataFrame:
    """The pipeline's source table as a static DataFrame: its latest snapshot, or ``version``."""
    if spec.source_path is None:
        raise ConfigError(f"pipelines.{spec.name} reads Kafka; batch runs read a Delta table (bronze or later)")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(spec.source_path)


def build_batch(spark: SparkSession, spec: PipelineSpec, source: DataFrame | None = None,
                version: int | None = None) -> DataFrame:
    """The pipeline's transforms over a static DataFrame (default: its source table now, or at
    Delta ``version``). The same functions the stream runs, so the result equals what the
    stream wrote from the same input."""
    df = source if source is not None else read_static_source(spark, spec, version)
    return apply_transforms(spark, spec, df)


def build_checked_batch(spark: SparkSession, spec: PipelineSpec, source: DataFrame | None = None,
                        version: int | None = None) -> DataFrame:
    """:func:`build_batch` judged by the sink table's quality gate, as the stream judges it:
    ``valid_rows`` of it is what the stream writes to the table, ``quarantine_rows`` what it
    quarantines."""
    df = build_batch(spark, spec, source, version)
    gate = quality_gate(spec, df)
    return df if gate is None else gate.evaluate(df)


def sink_schema(spec: PipelineSpec, df: DataFrame) -> StructType:
    """The sink table's schema for the transformed rows ``df`` (plus the rank column, if any)."""
    return table_schema(valid_rows(df, drop_raw=bool(spec.sink.quarantine)).schema, spec.sink)


def quality_gate(spec: PipelineSpec, df: DataFrame) -> QualityGate | None:
    """The gate for the pipeline's rows: its sink table's suite, checked against the columns it
    writes; None when the table has neither a suite nor a quarantine."""
    sink, name = spec.sink, spec.name
    suite = suite_from_dict(sink.table, spec.suite) if spec.suite is not None else None
    if suite is None and not sink.quarantine:
        return None
    if suite is not None:
        written = valid_rows(df, drop_raw=bool(sink.quarantine)).schema
        check_columns(suite, written.fieldNames(), name)
        for rule, problem in type_violations(suite.row_rules, written):
            message = (f"quality.suites.{suite.table}.expectations[{rule.index}] ({rule.name}): pipeline {name} "
                       f"writes {problem}")
            if rule.policy == "fail":
                raise ConfigError(message + "; change the transforms or the expectation")
            log.warning("%s (policy %s)", message, rule.policy)
    gate = QualityGate(suite, name, df.schema, spec.fail_sample)
    if ("quarantine" in gate.policies or ERRORS in df.columns) and not sink.quarantine:
        raise ConfigError(f"quality.suites.{sink.table} quarantines rows (quarantine rules, or contract errors from "
                          f"parse_events) but pipelines.{name}.sink.quarantine is not set: name a quarantine table, "
                          f"or use policy warn, drop or fail")
    return gate


AfterCommit = Callable[[DataFrame], None]


def after_commit_hooks(spark: SparkSession, spec: PipelineSpec,
                       closers: list[Callable[[], object]] | None = None) -> list[AfterCommit]:
    """What runs on a batch's rows once they are committed to the sink: publishing them to a Kafka
    topic and handing them to notifiers (alerts). ``closers`` gets what must run when the query
    stops (notifications under way)."""
    delivery = BatchDelivery(spark, spec)
    if closers is not None and delivery.dispatcher is not None:
        closers.append(delivery.close)
    return [delivery.deliver] if delivery.active else []
