"""Operations: metrics and lag recorded by the job, status, OPTIMIZE/VACUUM that keep lagging
streams readable, the retention guard and the checkpoint-compatibility check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chispa import assert_df_equality
from kafka import TopicPartition
from pyspark.sql import functions as F

from kappalake.cli import main
from kappalake.config import TriggerConf
from kappalake.errors import ConfigError, PipelineError
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import admin_client, beginning_offsets, end_offsets, ensure_topics
from kappalake.ops.maintenance import maintain_table
from kappalake.ops.status import lake_status, render
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from tests.conftest import as_yaml, config_values, make_config
from tests.lake_checks import assert_exactly_once, bronze, table

AVAILABLE_NOW = TriggerConf(available_now=True)


def test_lag_is_recorded_while_behind_and_reaches_zero(spark, broker_conf, tmp_path):
    """Bronze reads 250 offsets per batch of a 1,500-event backlog: the job records each batch,
    the lag after it (end offset - committed offset, per partition), and commits the offsets to a
    consumer group that Kafka's own tools can describe."""
    log_file = tmp_path / "metrics.jsonl"
    cfg = make_config(broker_conf, tmp_path, **{
        "pipelines.bronze_clickstream.source.max_offsets_per_trigger": 250, "monitoring.flush_s": 1,
        "monitoring.consumer_group": "kappalake-{pipeline}", "monitoring.json_log": str(log_file)})
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    produce(cfg, ProduceSpec("clickstream", count=1500, seed=5))
    topic = cfg.topic_name("clickstream")
    ends = end_offsets(cfg.kafka_settings, topic)
    # availableNow splits the backlog into batches of max_offsets_per_trigger, then stops.
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    assert_exactly_once(spark, cfg, "clickstream", 1500)

    m = table(spark, cfg, "ops.stream_metrics").filter(F.col("pipeline") == "bronze_clickstream")
    batches = m.filter((F.col("event") == "progress") & (F.col("input_rows") > 0)).orderBy("batch_id").collect()
    assert sum(b["input_rows"] for b in batches) == 1500 and len(batches) >= 6
    assert all(b["input_rows"] <= 250 and b["batch_ms"] > 0 and b["sources"][0]["end_offset"] for b in batches)
    assert [b["batch_id"] for b in batches] == list(range(batches[0]["batch_id"], batches[0]["batch_id"] + len(batches)))
    assert {r["event"] for r in m.select("event").distinct().collect()} >= {"started", "progress", "terminated"}

    lag = table(spark, cfg, "ops.consumer_lag").filter(F.col("pipeline") == "bronze_clickstream")
    per_flush = lag.groupBy("at").agg(F.sum("lag").alias("lag"), F.sum("committed_offset").alias("done"),
                                      F.sum("end_offset").alias("end")).orderBy("at").collect()
    assert all(r["end"] == 1500 and r["lag"] == r["end"] - r["done"] for r in per_flush)
    assert per_flush[0]["lag"] > 0, per_flush  # behind while it worked through the backlog
    assert [r["lag"] for r in per_flush] == sorted((r["lag"] for r in per_flush), reverse=True)
    assert per_flush[-1]["lag"] == 0
    for r in lag.filter(F.col("at") == per_flush[-1]["at"]).collect():
        assert r["committed_offset"] == ends[r["partition"]]

    admin = admin_client(cfg.kafka_settings)
    try:
        group = admin.list_group_offsets({"kappalake-bronze_clickstream": None})["kappalake-bronze_clickstream"]
    finally:
        admin.close()
    assert {tp.partition: o.offset for tp, o in group.items() if tp.topic == topic} == ends

    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert sum(x.get("input_rows", 0) for x in lines if x["event"] == "progress") == 1500

    status = lake_status(spark, cfg)
    row = {q["pipeline"]: q for q in status["queries"]}["bronze_clickstream"]
    assert row["state"] == "stopped" and row["lag"] == 0 and row["last_error"] is None
    assert row["input_rows"] > 0 and row["processed_rows_per_s"] > 0
    assert {q["pipeline"]: q for q in status["queries"]}["silver_clickstream"]["state"] == "never ran"
    assert "bronze_clickstream" in render(status)


@pytest.fixture(scope="module")
def two_layers(spark, broker_conf, tmp_path_factory):
    """Bronze written in many small batches; silver has read only the first half of them."""
    tmp = tmp_path_factory.mktemp("maintain")
    values = config_values(broker_conf, tmp, **{"pipelines.bronze_clickstream.source.max_offsets_per_trigger": 100,
                                                 "maintenance.reader_margin_hours": 0, "producer.users": 200})
    cfg = make_config(broker_conf, tmp, **values)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    write_reference_tables(spark, cfg)
    produce(cfg, ProduceSpec("clickstream", count=500, seed=8))
    run_pipelines(spark, cfg, ["bronze_clickstream", "silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    produce(cfg, ProduceSpec("clickstream", count=500, seed=9))
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    return cfg, as_yaml(values, tmp / "overrides.yaml")


def test_optimize_compacts_and_vacuum_keeps_what_a_lagging_stream_reads(spark, two_layers):
    cfg, _ = two_layers
    path = cfg.lake.table_path("bronze.clickstream")
    before = bronze(spark, cfg).persist()
    assert before.count() == 1000
    with pytest.raises(ConfigError, match="min_retain_hours"):
        maintain_table(spark, cfg, "bronze.clickstream", retain_hours=0)

    r = maintain_table(spark, cfg, "bronze.clickstream", retain_hours=0, force=True)
    assert r.files_before >= 10 and r.files_after == 1, r
    assert_df_equality(bronze(spark, cfg), before, ignore_row_order=True)
    before.unpersist()
    # Silver still has to read the files of the second half, which OPTIMIZE just removed: VACUUM
    # retained them although asked to keep nothing...
    (reader,) = r.readers
    assert reader.pipeline == "silver_clickstream" and r.vacuum_retain_hours >= reader.hours > 0
    needed = [a["add"]["path"] for v in range(reader.version + 1, reader.version + 6)
              for a in map(json.loads, open(f"{path}/_delta_log/{v:020d}.json")) if "add" in a]
    assert needed and all(Path(path, p).exists() for p in needed)
    # ... and Delta would have deleted them at that retention.
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        doomed = {Path(p).name for p in spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS DRY RUN").toPandas()["path"]}
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    assert {Path(p).name for p in needed} <= doomed

    run_pipelines(spark, cfg, ["silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)  # no missing file
    landed = table(spark, cfg, "silver.clickstream").count() + table(spark, cfg, "quarantine.clickstream").count()
    assert landed == 1000
    # Caught up, nothing holds the removed files any more.
    again = maintain_table(spark, cfg, "bronze.clickstream", optimize=False, retain_hours=0, force=True)
    assert again.vacuum_deleted >= len(needed) and again.vacuum_retain_hours < reader.hours
    assert not any(Path(path, p).exists() for p in needed)


def test_maintain_and_status_from_the_cli(two_layers, capsys):
    cfg, overrides = two_layers
    assert main(["--config", str(overrides), "maintain", "--table", "silver.clickstream", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "silver.clickstream" in out and "dry run" in out
    assert main(["--config", str(overrides), "maintain", "--table", "nope.table"]) == 2
    assert main(["--config", str(overrides), "status", "--json"]) == 0
    out = capsys.readouterr().out
    status = json.loads(out[out.index("{"):])
    queries = {q["pipeline"]: q for q in status["queries"]}
    assert queries["silver_clickstream"]["state"] == "stopped" and queries["bronze_clickstream"]["lag"] == 0
    tables = {t["table"]: t for t in status["tables"]}
    assert tables["bronze.clickstream"]["rows"] == 1000 and tables["bronze.clickstream"]["files"] >= 1
    assert {g["table"] for g in status["quarantine"]} == {"silver.clickstream"}


def test_a_changed_stateful_operator_is_reported_before_the_query_starts(spark, two_layers):
    cfg, _ = two_layers
    p = cfg.pipelines["silver_clickstream"]

    def with_transforms(transforms):
        pipelines = {**cfg.pipelines, "silver_clickstream": p.model_copy(update={"transforms": transforms})}
        return cfg.model_copy(update={"pipelines": pipelines})

    dedup_5min = [dict(t, delay="5 minutes") if isinstance(t, dict) and t.get("name") == "dedup"
                  else ({"name": "dedup", "delay": "5 minutes"} if t == "dedup" else t) for t in p.transforms]
    assert dedup_5min != p.transforms
    with pytest.raises(ConfigError, match=r"(?s)silver_clickstream.*EventTimeWatermark.*10 minutes.*5 minutes"):
        start_pipeline(spark, with_transforms(dedup_5min).pipeline("silver_clickstream"), AVAILABLE_NOW)
    # A stateless change (coarser locations) keeps the checkpoint usable.
    coarser = [dict(t, decimals=0) if isinstance(t, dict) and t.get("name") == "coarsen" else t for t in p.transforms]
    q = start_pipeline(spark, with_transforms(coarser).pipeline("silver_clickstream"), AVAILABLE_NOW)
    q.awaitTermination(120)
    assert q.exception() is None


def test_retention_guard_reports_offsets_kafka_deleted(spark, broker_conf, tmp_path):
    cfg = make_config(broker_conf, tmp_path)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    topic = cfg.topic_name("clickstream")
    produce(cfg, ProduceSpec("clickstream", count=300, seed=1))
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=120)
    produce(cfg, ProduceSpec("clickstream", count=300, seed=2))
    ends = end_offsets(cfg.kafka_settings, topic)
    expire = {p: end - 20 for p, end in ends.items()}  # all but the last 20 of each partition
    admin = admin_client(cfg.kafka_settings)
    try:
        admin.delete_records({TopicPartition(topic, p): o for p, o in expire.items()})
    finally:
        admin.close()
    assert beginning_offsets(cfg.kafka_settings, topic) == expire
    read = {r["partition"]: r["n"] for r in bronze(spark, cfg).groupBy("partition").agg(F.count("*").alias("n")).collect()}
    lost = {p: expire[p] - read.get(p, 0) for p in ends}
    assert sum(lost.values()) > 0

    with pytest.raises(PipelineError, match=rf"Kafka deleted {sum(lost.values()):,} records") as e:
        run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=120)
    assert all(f"partition {p}: offsets {read.get(p, 0)}..{expire[p] - 1}" in str(e.value) for p in ends if lost[p])

    tolerant = make_config(broker_conf, tmp_path, **{
        "topics.clickstream.name": topic, "lake.root": cfg.lake.root, "lake.checkpoint_root": cfg.lake.checkpoint_root,
        "pipelines.bronze_clickstream.source.fail_on_data_loss": False})
    run_pipelines(spark, tolerant, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=120)
    gaps = {r["partition"]: r for r in table(spark, cfg, "ops.data_loss").collect()}
    assert {p: g["lost"] for p, g in gaps.items()} == {p: n for p, n in lost.items() if n}
    assert bronze(spark, cfg).count() == 300 + 20 * len(ends)  # the first run's rows and what Kafka kept
