"""The benchmark's floor stages: what bare Spark Structured Streaming does on this machine.

``floor``: silver's input, bare.
The full stage's bronze table, read as silver reads it (a Delta stream, silver's
``max_bytes_per_trigger``), goes through ``from_json`` with the contract's schema into a Delta
table, availableNow; then the same with ``dropDuplicatesWithinWatermark`` on the event id (the
least any deduplicating silver does). No contract checks, quarantine, expectations, pseudonyms
or enrichment: these are the rates a hand-written job reaches on this machine, in the same run
as the limit and silver, so silver's cost can be read against them. Last, ``contract``: silver's
first step alone, ``parse_events`` as the pipeline configures it, streamed the same way (every
row with its codes; the raw record left out, as silver's kept rows leave it to the quarantine):
the least silver costs while every quarantine reason stays as precise.

``hop``: :func:`kafka_to_delta` is the least a lake seconds behind Kafka needs, Spark's Kafka
source straight into a Delta table (no transform, Delta's default table properties), run by
the sustained-feed harness at the latency stage's rate and trigger: the delay of one hop.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappalake.bench.stages import Context, rows_per_s
from kappalake.config import Config, derive
from kappalake.ingest import contracts
from kappalake.lake.tables import ensure_table
from kappalake.pipelines.compose import apply_transforms, read_source
from kappalake.pipelines.plan import transform_specs
from kappalake.quality.quarantine import RAW_ONLY
from kappalake.transforms.parse import ERRORS

COORDINATES = ["topic", "partition", "offset", "kafka_timestamp"]


def bare_events(bronze: DataFrame, topic: str) -> DataFrame:
    """Bronze rows as a hand-written job parses them: the Kafka coordinates and ``from_json`` of
    the payload with the contract's schema, nothing checked."""
    schema = contracts.spark_schema(topic)
    return (bronze.select(*COORDINATES, F.from_json(F.col("value").cast("string"), schema).alias("e"))
            .select(*COORDINATES, "e.*"))


def floor(ctx: Context) -> dict:
    """Rows/s of the bare streams over the full stage's bronze (``from_json``; ``dedup``) and of
    silver's contract parse alone (``contract``)."""
    cfg = derive(ctx.cfg, {"lake.root": str(ctx.workspace / "full" / "lake"), "monitoring.json_log": None})
    silver = cfg.pipeline("silver_clickstream")
    root = ctx.workspace / "floor"
    shutil.rmtree(root, ignore_errors=True)
    rows = ctx.spark.read.format("delta").load(silver.source_path).count()  # availableNow reads all of it
    out: dict[str, Any] = {"source": "bronze.clickstream of the full stage",
                           "max_bytes_per_trigger": silver.source.max_bytes_per_trigger}
    parse = [t for t in transform_specs(silver) if t.name == "parse_events"]
    for label in ("from_json", "dedup", "contract") if parse else ("from_json", "dedup"):
        source = read_source(ctx.spark, silver)  # the source as silver reads it
        if label == "contract":
            events = apply_transforms(ctx.spark, silver, source, parse).drop(*[c for c in RAW_ONLY if c != ERRORS])
        else:
            events = bare_events(source, "clickstream")
        if label == "dedup":
            events = events.withWatermark("kafka_timestamp", "10 minutes").dropDuplicatesWithinWatermark(["event_id"])
        target = str(root / label)
        start = time.perf_counter()
        query = (events.writeStream.format("delta").option("checkpointLocation", str(root / f"{label}_checkpoint"))
                 .trigger(availableNow=True).queryName(f"bench_floor_{label}").start(target))
        query.awaitTermination()  # raises the query's error
        seconds = time.perf_counter() - start
        out[label] = {"rows": rows, "rows_written": ctx.spark.read.format("delta").load(target).count(),
                      "seconds": round(seconds, 3), "rows_per_s": rows_per_s(rows, seconds)}
    return out


def kafka_to_delta(spark: SparkSession, cfg: Config, pipeline: str) -> Any:
    """Spark's Kafka source as ``pipeline`` reads it, straight into the path of its sink table
    (created with only the change feed on, to time the rows), under ``cfg``'s trigger of it."""
    spec = cfg.pipeline(pipeline)
    path = spec.sink_path
    rows = read_source(spark, spec).select("key", "value", "topic", "partition", "offset",
                                           F.col("timestamp").alias("kafka_timestamp"))
    ensure_table(spark, path, rows.schema, [], {"delta.enableChangeDataFeed": "true"})
    writer = rows.writeStream.format("delta").option("checkpointLocation", spec.checkpoint).queryName(f"bench_bare_{pipeline}")
    if spec.conf.trigger.processing_time:
        writer = writer.trigger(processingTime=spec.conf.trigger.processing_time)
    return writer.start(path)
