"""What a pipeline's stream has committed, read from its checkpoint (local paths or S3 alike).

Spark writes ``offsets/<batch>`` when it plans a micro-batch and ``commits/<batch>`` once the
batch's sink writes are done; the offsets of the newest committed batch are where the next
run resumes. Reprocessing uses them to leave to the stream exactly what it has not read yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyspark.sql import SparkSession

from kappalake.config import PipelineSpec
from kappalake.errors import CheckpointError
from kappalake.lake.files import hadoop_path, read_lines


@dataclass(frozen=True)
class Committed:
    """The newest committed micro-batch of a query and its source's end offset (parsed JSON)."""

    batch_id: int
    offset: dict
    watermark_ms: int


def _batch_ids(spark: SparkSession, path: str) -> list[int]:
    fs, p = hadoop_path(spark, path)
    if not fs.exists(p):
        return []
    return sorted(int(s.getPath().getName()) for s in fs.listStatus(p) if s.getPath().getName().isdigit())


def last_committed(spark: SparkSession, spec: PipelineSpec) -> Committed | None:
    """The newest committed batch of the pipeline's query, or None if it never committed one."""
    root = spec.checkpoint
    committed = _batch_ids(spark, f"{root}/commits")
    if not committed:
        return None
    batch = committed[-1]
    lines = read_lines(spark, f"{root}/offsets/{batch}")
    meta = json.loads(lines[1])
    return Committed(batch, json.loads(lines[2]), int(meta.get("batchWatermarkMs", 0)))


def delta_source_version(spark: SparkSession, spec: PipelineSpec) -> int | None:
    """The last version of the pipeline's source Delta table that its stream has read completely
    (-1: none yet, also while its first batch is planned but not committed: that batch owns
    what it read); None when the query never planned a batch (never ran).

    Raises :class:`CheckpointError` while the stream is part-way through a version (it reads a
    version's files over several batches only with a small ``max_files_per_trigger``).
    """
    committed = last_committed(spark, spec)
    pipeline = spec.name
    if committed is None:
        return -1 if _batch_ids(spark, f"{spec.checkpoint}/offsets") else None
    o = committed.offset
    if "reservoirVersion" not in o:
        raise CheckpointError(f"pipeline {pipeline}'s checkpoint does not hold a Delta source offset: {o}")
    # (v, index -1, not the starting snapshot): every version before v is done, nothing of v.
    if o.get("index") == -1 and not o.get("isStartingVersion", False):
        return int(o["reservoirVersion"]) - 1
    raise CheckpointError(
        f"pipeline {pipeline} is part-way through version {o['reservoirVersion']} of its source table (offset {o}); "
        f"retry when its current batch has committed (or unset source.max_files_per_trigger)")


def kafka_next_offsets(spark: SparkSession, spec: PipelineSpec) -> dict[tuple[str, int], int] | None:
    """Per (topic, partition), the next Kafka offset the pipeline's stream will read; None if it
    never committed a batch."""
    committed = last_committed(spark, spec)
    if committed is None:
        return None
    return {(topic, int(p)): int(n) for topic, parts in committed.offset.items() for p, n in parts.items()}
