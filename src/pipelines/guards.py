"""Start-up checks that turn Spark's obscure mid-run failures into clear messages with options.

* Retention: offsets the checkpoint still has to read that Kafka has already deleted.
* Checkpoint compatibility: a change to the query's stateful operators (or its source) that
  the state in the checkpoint cannot follow.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType

from kappalake.config import PipelineSpec
from kappalake.errors import ConfigError, PipelineError
from kappalake.ingest.topics import beginning_offsets
from kappalake.lake.tables import write_rows
from kappalake.lake.files import hadoop_path, read_lines
from kappalake.pipelines.checkpoints import kafka_next_offsets, last_committed


log = logging.getLogger("kappalake.ops")

LOSS_SCHEMA = StructType([
    StructField("pipeline", StringType()),
    StructField("topic", StringType()),
    StructField("partition", LongType()),
    StructField("from_offset", LongType()),   # the next offset the checkpoint wanted
    StructField("to_offset", LongType()),     # the earliest offset Kafka still had
    StructField("lost", LongType()),
    StructField("detected_at", TimestampType()),
    StructField("date", DateType()),
])


@dataclass(frozen=True)
class Gap:
    topic: str
    partition: int
    wanted: int
    earliest: int

    @property
    def lost(self) -> int:
        return self.earliest - self.wanted


def retention_gaps(spark: SparkSession, spec: PipelineSpec) -> list[Gap]:
    """The partitions where the pipeline's checkpoint resumes before Kafka's earliest retained offset."""
    if spec.source_topic is None:
        return []
    wanted = kafka_next_offsets(spark, spec)
    if not wanted:
        return []
    earliest: dict[str, dict[int, int]] = {}
    gaps = []
    for (topic, part), offset in sorted(wanted.items()):
        if topic not in earliest:
            earliest[topic] = beginning_offsets(spec.kafka, topic)
        first = earliest[topic].get(part, 0)
        if first > offset:
            gaps.append(Gap(topic, part, offset, first))
    return gaps


def check_retention(spark: SparkSession, spec: PipelineSpec) -> list[Gap]:
    """Fail (``source.fail_on_data_loss: true``) or record and go on, when Kafka deleted offsets
    the pipeline has not read yet."""
    name = spec.name
    try:
        gaps = retention_gaps(spark, spec)
    except Exception as e:  # noqa: BLE001 - Kafka unreachable: Spark's own source reports that
        log.warning("pipeline %s: retention check skipped, Kafka did not answer (%s: %s)", name, type(e).__name__, e)
        return []
    if not gaps:
        return []
    where = "; ".join(f"{g.topic} partition {g.partition}: offsets {g.wanted}..{g.earliest - 1} ({g.lost:,} records)"
                      for g in gaps)
    total = sum(g.lost for g in gaps)
    if spec.source.fail_on_data_loss:
        raise PipelineError(
            f"pipeline {name}: Kafka deleted {total:,} records before the stream read them (retention) - {where}. "
            f"They cannot be read again. To go on without them, set pipelines.{name}.source.fail_on_data_loss: false "
            f"(the gap is recorded in {spec.losses_table}); to avoid it, raise the topic's retention.ms or "
            f"run the stream more often")
    log.warning("pipeline %s: %s records lost to Kafka retention, going on (fail_on_data_loss: false): %s",
                name, f"{total:,}", where)
    now = datetime.now(timezone.utc)
    write_rows(spark, spec.lake, spec.losses_table, LOSS_SCHEMA,
               [{"pipeline": name, "topic": g.topic, "partition": g.partition, "from_offset": g.wanted,
                 "to_offset": g.earliest, "lost": g.lost, "detected_at": now, "date": now.date()} for g in gaps],
               ["date"])
    return gaps


# -- checkpoint compatibility ---------------------------------------------------------------

_STATEFUL = re.compile(r"^[\s|:+-]*~(Aggregate|Deduplicate\w*|EventTimeWatermark|\w*WithState\w*)\b(.*)$")
FINGERPRINT = "kappalake-plan.json"


def plan_fingerprint(spec: PipelineSpec, df: DataFrame) -> list[str]:
    """The query's source and its stateful operators (grouping keys, watermark delays) in plan
    order, without expression ids: what a checkpoint's offsets and state are tied to. (The
    source comes from the configuration: the plan's own text holds the Kafka options.)"""
    plan = df._jdf.queryExecution().analyzed().toString()
    out = [f"source kafka topic {spec.source_topic}" if spec.source_topic else f"source delta {spec.source_path}"]
    for line in plan.splitlines():
        m = _STATEFUL.match(line)
        if not m:
            continue
        node, rest = m.groups()
        rest = re.sub(r"#\d+L?|-T\d+ms|\b[0-9a-f]{8}-[0-9a-f-]{27}\b,?\s*|@[0-9a-f]+", "", rest).strip()
        if node == "Aggregate" or node.startswith("Deduplicate"):
            rest = rest.split("], [")[0] + ("]" if "], [" in rest else "")  # the keys, not the outputs
        out.append(f"{node} {rest}".strip())
    return out


def check_checkpoint(spark: SparkSession, spec: PipelineSpec, df: DataFrame) -> None:
    """Compare the query about to start with the one that wrote its checkpoint; record the
    fingerprint when the checkpoint has none yet."""
    root, name = spec.checkpoint, spec.name
    path = f"{root}/{FINGERPRINT}"
    now = plan_fingerprint(spec, df)
    fs, p = hadoop_path(spark, path)
    if fs.exists(p):
        before = json.loads("\n".join(read_lines(spark, path)))["operators"]
        if before != now and last_committed(spark, spec) is not None:
            gone = [op for op in before if op not in now]
            new = [op for op in now if op not in before]
            raise ConfigError(
                f"pipelines.{name}: the query no longer matches its checkpoint ({root}). Changed stateful operators or "
                f"source - was: {'; '.join(gone) or '(order)'}; now: {'; '.join(new) or '(order)'}. Spark cannot carry "
                f"the checkpoint's state over to it. Options: revert the change; or start {name} on a new checkpoint "
                f"(move {root} aside) and rebuild what it writes from its source with the new code - a keyed (merge) "
                f"sink is rebuilt by the new query itself as it re-reads its source table; for an appended table "
                f"clear it first or use `kappalake reprocess --table {spec.sink.table or '...'}`"
                + (" (a new checkpoint also appends its route tables again and resends its topic routes: clear those "
                   "tables too)" if spec.routes else ""))
        if before == now:
            return
    out = fs.create(p, True)
    try:
        out.write(json.dumps({"pipeline": name, "operators": now}, indent=1).encode())
    finally:
        out.close()
