"""Operations helpers without Spark or Kafka: progress rows, committed offsets, config checks."""

from __future__ import annotations

import json

import pytest

from kappalake.config import load_config
from kappalake.errors import ConfigError
from kappalake.monitoring.lag import group_name
from kappalake.monitoring.metrics import kafka_committed, progress_row

PROGRESS = {
    "id": "q1", "runId": "r1", "name": "bronze_clickstream", "timestamp": "2026-11-26T01:02:03.456Z", "batchId": 7,
    "numInputRows": 200, "inputRowsPerSecond": 400.0, "processedRowsPerSecond": 250.5,
    "durationMs": {"addBatch": 600, "latestOffset": 12, "triggerExecution": 800},
    "eventTime": {"watermark": "2026-11-26T00:52:00.000Z"},
    "stateOperators": [{"numRowsTotal": 10, "memoryUsedBytes": 1000}, {"numRowsTotal": 5, "memoryUsedBytes": 24}],
    "sources": [{"description": "KafkaV2[Subscribe[clickstream_x]]",
                 "startOffset": {"clickstream_x": {"0": 100, "1": 90}},
                 "endOffset": {"clickstream_x": {"0": 200, "1": 190}},
                 "latestOffset": {"clickstream_x": {"0": 500, "1": 480}}, "numInputRows": 200}],
    "sink": {"description": "ForeachBatchSink"},
}


def test_progress_row_flattens_what_status_and_dashboards_need():
    row = progress_row(PROGRESS)
    assert (row["pipeline"], row["batch_id"], row["input_rows"], row["batch_ms"]) == ("bronze_clickstream", 7, 200, 800)
    assert (row["state_rows"], row["state_memory_bytes"]) == (15, 1024)
    assert row["at"].isoformat() == "2026-11-26T01:02:03.456000+00:00" and str(row["date"]) == "2026-11-26"
    assert json.loads(row["sources"][0]["latest_offset"]) == {"clickstream_x": {"0": 500, "1": 480}}
    assert row["watermark"] == "2026-11-26T00:52:00.000Z" and row["error"] is None


def test_committed_offsets_come_from_the_kafka_sources_end_offset():
    assert kafka_committed(PROGRESS) == {("clickstream_x", 0): 200, ("clickstream_x", 1): 190}
    delta = dict(PROGRESS, sources=[{"description": "DeltaSource[file:/lake/bronze]", "endOffset": {"reservoirVersion": 3}}])
    assert kafka_committed(delta) == {}
    as_text = dict(PROGRESS, sources=[dict(PROGRESS["sources"][0], endOffset=json.dumps({"t": {"2": 9}}))])
    assert kafka_committed(as_text) == {("t", 2): 9}


def test_consumer_group_name_per_pipeline():
    cfg = load_config("local", overrides={"monitoring.consumer_group": "kl-{pipeline}"})
    assert group_name(cfg.monitoring.consumer_group, "bronze_telemetry") == "kl-bronze_telemetry"
    assert group_name(load_config("local").monitoring.consumer_group, "bronze_telemetry") is None


@pytest.mark.parametrize("overrides, message", [
    ({"maintenance.zorder": {"silver.nope": ["user_id"]}}, "maintenance.zorder names 'silver.nope'"),
    ({"maintenance.zorder": {"silver.clickstream": []}}, "name at least one column"),
    ({"maintenance.retain_hours": -1}, "retain_hours"),
    ({"monitoring.flush_s": 0}, "flush_s"),
    ({"monitoring.metrics_table": "metrics"}, "metrics_table"),
])
def test_bad_operations_config_fails_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("local", overrides=overrides)


def test_query_status_reads_each_pipeline_from_one_snapshot(spark, tmp_path):
    """State from the newest event, the batch from the newest with rows, the error from the
    newest with one; a pipeline with no rows never ran."""
    from datetime import datetime, timedelta, timezone

    from kappalake.lake.tables import write_rows
    from kappalake.monitoring.metrics import PARTITION_BY, SCHEMA
    from kappalake.ops.status import query_status
    from tests.conftest import make_config

    cfg = make_config({}, tmp_path)
    now = datetime.now(timezone.utc)

    def row(pipeline, event, ago_s, batch_id=None, rows=None, error=None):
        at = now - timedelta(seconds=ago_s)
        return {"pipeline": pipeline, "event": event, "at": at, "date": at.date(), "batch_id": batch_id,
                "input_rows": rows, "error": error}

    write_rows(spark, cfg.lake, cfg.monitoring.metrics_table, SCHEMA, [
        row("bronze_clickstream", "terminated", 90, error="java.lang.RuntimeException: boom\n\tat x"),
        row("bronze_clickstream", "progress", 60, batch_id=8, rows=50),
        row("bronze_clickstream", "progress", 30, batch_id=9, rows=0),
        row("silver_clickstream", "progress", 20, batch_id=4, rows=7),
        row("silver_clickstream", "terminated", 10),
    ], PARTITION_BY)
    status = {q["pipeline"]: q for q in query_status(spark, cfg)}
    bronze, silver = status["bronze_clickstream"], status["silver_clickstream"]
    assert (bronze["state"], bronze["batch_id"], bronze["input_rows"]) == ("running", 8, 50)
    assert bronze["last_error"] == "java.lang.RuntimeException: boom"
    assert (silver["state"], silver["batch_id"], silver["last_error"]) == ("stopped", 4, None)
    assert status["gold_sessions"]["state"] == "never ran"
