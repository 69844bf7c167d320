"""An outside producer with Kafka transactions (as Kafka Streams, Flink or any exactly-once
producer writes): aborted records never reach the lake, and `verify` counts records, not
offsets (transaction markers and aborted records occupy offsets that hold no record)."""

from __future__ import annotations

from pyspark.sql import functions as F

from kappalake.config import TriggerConf
from kappalake.ingest.producer import ProduceSpec, make_producer, records, send_records
from kappalake.ingest.topics import end_offsets, ensure_topics
from kappalake.ops.consistency import check_bronze
from kappalake.pipelines.runner import run_pipelines
from tests.conftest import make_config
from tests.lake_checks import bronze

CHUNK, CHUNKS = 50, 12  # every third transaction aborted: 400 committed events, 200 aborted


def test_aborted_transactions_never_reach_the_lake_and_verify_counts_records(spark, broker_conf, tmp_path):
    cfg = make_config(broker_conf, tmp_path, **{"pipelines.bronze_clickstream.source.max_offsets_per_trigger": 250})
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    events = list(records(cfg, ProduceSpec("clickstream", count=CHUNK * CHUNKS, seed=5)))
    committed: set[str] = set()
    producer = make_producer(cfg.kafka_settings, cfg.producer, transactional_id=f"kappalake-test-{tmp_path.name}")
    try:
        producer.init_transactions()
        for i in range(CHUNKS):
            chunk = events[i * CHUNK:(i + 1) * CHUNK]  # keyed by user: each transaction spans partitions
            producer.begin_transaction()
            assert send_records(producer, cfg.topic_name("clickstream"), chunk).acked == CHUNK
            if i % 3 == 1:
                producer.abort_transaction()
            else:
                producer.commit_transaction()
                committed |= {r.value["event_id"] for r in chunk}
    finally:
        producer.close()
    # Kafka's offsets hold the aborted records and one marker per transaction and partition.
    assert sum(end_offsets(cfg.kafka_settings, cfg.topic_name("clickstream")).values()) > CHUNK * CHUNKS + CHUNKS

    reports = {r.pipeline: r for r in run_pipelines(spark, cfg, ["bronze_clickstream"],
                                                      trigger=TriggerConf(available_now=True), timeout=600)}
    assert reports["bronze_clickstream"].batches >= 3  # markers and aborted records fall inside micro-batches
    ids = [r["id"] for r in bronze(spark, cfg).select(
        F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("id")).collect()]
    assert len(ids) == len(set(ids)) == len(committed) and set(ids) == committed  # no aborted event, each once

    check = check_bronze(spark, cfg, "bronze_clickstream")
    assert check.ok and check.figures["kafka_records"] == check.figures["rows"] == len(committed), check

    # verify still fails on a real gap: read uncommitted, Kafka holds 200 records bronze lacks ...
    uncommitted = cfg.model_copy(update={"kafka": cfg.kafka.model_copy(update={"isolation_level": "read_uncommitted"})})
    gap = check_bronze(spark, uncommitted, "bronze_clickstream")
    assert not gap.ok and gap.figures["missing"] == CHUNK * CHUNKS - len(committed), gap
    assert "records in offsets" in gap.detail
    # ... and on a duplicate.
    bronze(spark, cfg).limit(1).write.format("delta").mode("append").save(cfg.lake.table_path("bronze.clickstream"))
    dup = check_bronze(spark, cfg, "bronze_clickstream")
    assert not dup.ok and dup.figures["duplicates"] == 1 and dup.figures["missing"] == 0, dup
