"""Drive a transform as a stream over hand-made micro-batches, into a real Delta sink."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from kappalake.config import SinkConf
from kappalake.lake.sinks import sink_writer, table_schema
from kappalake.lake.writers import Txn
from kappalake.lake.tables import ensure_table


def stream_batches(spark: SparkSession, tmp: Path, batches: list[DataFrame], transform: Callable[[DataFrame], DataFrame],
                   sink: SinkConf, timeout: float = 180) -> DataFrame:
    """Append each DataFrame in ``batches`` to a Delta source as its own version, stream the
    source through ``transform`` one version per micro-batch, write with ``sink``'s mode
    (append: finalised rows; merge: update mode + MERGE) and return the sink table."""
    run = tmp / uuid.uuid4().hex[:8]
    source, target = str(run / "source"), str(run / "sink")
    for b in batches:
        b.coalesce(1).write.format("delta").mode("append").save(source)
    # From version 0, so the versions arrive in the order written (a snapshot orders files by mtime).
    reader = spark.readStream.format("delta").option("maxFilesPerTrigger", 1).option("startingVersion", 0)
    df = transform(reader.load(source))
    ensure_table(spark, target, table_schema(df.schema, sink), [], {})

    def write(batch: DataFrame, batch_id: int) -> None:
        sink_writer(sink, target).write(batch, Txn("test", batch_id))

    query = (df.writeStream.outputMode("update" if sink.mode == "merge" else "append")
             .option("checkpointLocation", str(run / "checkpoint")).trigger(availableNow=True)
             .foreachBatch(write).start())
    try:
        query.awaitTermination(timeout)
    finally:
        query.stop()
    if query.exception():
        raise query.exception()
    return spark.read.format("delta").load(target)


def batch_through(spark: SparkSession, tmp: Path, df: DataFrame, transform: Callable[[DataFrame], DataFrame],
                  sink: SinkConf) -> DataFrame:
    """The same transform and sink over ``df`` as one static batch (the reprocessing path)."""
    target = str(tmp / uuid.uuid4().hex[:8] / "sink")
    out = transform(df)
    ensure_table(spark, target, table_schema(out.schema, sink), [], {})
    sink_writer(sink, target).write(out, Txn("batch", 0))
    return spark.read.format("delta").load(target)
