"""Reprocess and BI query planning: arguments, ranges, chains, side tables, checkpoints, SQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kappalake.bi.queries import QUERIES, as_of_clause, get_query, query_sql
from kappalake.cli import main
from kappalake.cli.quality import day_range
from kappalake.config import load_config
from kappalake.errors import CheckpointError, ConfigError
from kappalake.pipelines.checkpoints import delta_source_version, kafka_next_offsets
from kappalake.pipelines.reprocess import (SIDE, chain_from_kafka, default_margin, parse_time, side_config,
                                           writer_of)
from tests.conftest import CONF_DIR


@pytest.fixture(scope="module")
def conf():
    return load_config("local", CONF_DIR)


def test_times_are_utc_and_bad_ones_name_the_flag():
    assert parse_time("2026-11-24", "--from") == datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert parse_time("2026-11-24T06:00:00+02:00", "--to") == datetime(2026, 11, 24, 4, tzinfo=timezone.utc)
    assert parse_time("2026-11-24T06:00:00Z", "--to").hour == 6
    with pytest.raises(ConfigError, match="--from 'last tuesday' is not an ISO-8601"):
        parse_time("last tuesday", "--from")
    assert day_range("2026-02-28") == (datetime(2026, 2, 28, tzinfo=timezone.utc), datetime(2026, 3, 1, tzinfo=timezone.utc))
    start, end = day_range("yesterday")
    assert end - start == timedelta(days=1) and end == datetime.now(timezone.utc).replace(hour=0, minute=0, second=0,
                                                                                          microsecond=0)


def test_which_tables_can_be_reprocessed(conf):
    assert writer_of(conf, "silver.clickstream") == "silver_clickstream"
    with pytest.raises(ConfigError, match="publishes or notifies"):
        writer_of(conf, "ops.alerts")
    with pytest.raises(ConfigError, match="no pipeline writes it; tables: bronze.clickstream"):
        writer_of(conf, "gold.nothing")
    assert chain_from_kafka(conf, "silver_telemetry") == ["bronze_telemetry", "silver_telemetry"]
    with pytest.raises(ConfigError, match="keyed .* without --from/--to"):
        chain_from_kafka(conf, "gold_page_minute")


def test_margins_cover_the_longest_window(conf):
    assert default_margin(conf, "silver_clickstream") == timedelta(hours=1)  # dedup delay 10 minutes -> the floor
    assert default_margin(conf, "gold_product_demand") == timedelta(hours=2)  # 1 hour windows


def test_side_tables_replay_from_the_earliest_offset(conf):
    side = side_config(conf, ["bronze_clickstream", "silver_clickstream"])
    assert set(side.pipelines) == {"bronze_clickstream" + SIDE, "silver_clickstream" + SIDE}
    bronze, silver = side.pipelines["bronze_clickstream" + SIDE], side.pipelines["silver_clickstream" + SIDE]
    assert bronze.source.starting_offsets == "earliest" and bronze.trigger.available_now
    assert silver.source.table == "bronze.clickstream" + SIDE and silver.sink.table == "silver.clickstream" + SIDE
    assert silver.sink.quarantine == "quarantine.clickstream" + SIDE
    assert side.quality.suites["silver.clickstream" + SIDE] == conf.quality.suites["silver.clickstream"]
    assert side.quality.metrics_table == conf.quality.metrics_table + SIDE
    assert side.lake.checkpoint_path("silver_clickstream" + SIDE) != conf.lake.checkpoint_path("silver_clickstream")


def test_cli_rejects_bad_reprocess_arguments_before_spark(capsys):
    assert main(["reprocess", "--table", "ops.alerts"]) == 2
    assert main(["reprocess", "--table", "bronze.clickstream", "--day", "yesterday"]) == 2
    assert "rebuild it with --full" in capsys.readouterr().err
    assert main(["reprocess", "--table", "silver.clickstream", "--full", "--from", "2026-11-01"]) == 2
    assert main(["reprocess", "--table", "silver.clickstream", "--day", "2026-13-01"]) == 2
    assert main(["reprocess", "--table", "gold.sessions", "--full"]) == 2
    assert main(["reprocess", "--table", "silver.clickstream", "--margin", "a while"]) == 2
    assert "--margin 'a while'" in capsys.readouterr().err


def test_as_of_applies_a_version_to_the_first_table_and_a_timestamp_to_all():
    q = get_query("top_products")
    assert q.tables == ["gold.page_minute", "dim.products"]
    by_version = query_sql(q, 3)
    assert "gold.page_minute VERSION AS OF 3 p" in by_version and "dim.products d" in by_version
    by_time = query_sql(q, "2026-11-25T10:00:00Z")
    assert by_time.count("TIMESTAMP AS OF '2026-11-25 10:00:00'") == 2
    assert "{" not in query_sql(q) and as_of_clause(None) == ""
    with pytest.raises(ConfigError, match="neither a table version"):
        as_of_clause("yesterday; DROP TABLE x")
    with pytest.raises(ConfigError, match="named queries: top_products"):
        get_query("nope")
    assert all(q.tables for q in QUERIES.values())


def _checkpoint(root, batches: dict[int, str], committed: list[int]) -> None:
    (root / "offsets").mkdir(parents=True)
    (root / "commits").mkdir()
    for batch, offset in batches.items():
        (root / "offsets" / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0,"batchTimestampMs":1}}\n{offset}\n')
    for batch in committed:
        (root / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}\n')


def test_checkpoints_say_what_the_stream_has_read(spark, tmp_path):
    cfg = load_config("local", CONF_DIR, overrides={"lake.checkpoint_root": str(tmp_path)})
    delta = '{{"sourceVersion":1,"reservoirId":"r","reservoirVersion":{v},"index":{i},"isStartingVersion":{s}}}'
    assert delta_source_version(spark, cfg.pipeline("silver_clickstream")) is None  # never ran
    _checkpoint(tmp_path / "silver_clickstream", {0: delta.format(v=3, i=-1, s="false"),
                                                  1: delta.format(v=5, i=-1, s="false")}, committed=[0])
    assert delta_source_version(spark, cfg.pipeline("silver_clickstream")) == 2  # batch 1 planned, not committed
    _checkpoint(tmp_path / "silver_telemetry", {0: delta.format(v=4, i=2, s="false")}, committed=[0])
    with pytest.raises(CheckpointError, match="part-way through version 4"):
        delta_source_version(spark, cfg.pipeline("silver_telemetry"))
    _checkpoint(tmp_path / "bronze_clickstream", {0: '{"t":{"0":10,"1":0}}', 1: '{"t":{"0":12,"1":7}}'}, [0, 1])
    assert kafka_next_offsets(spark, cfg.pipeline("bronze_clickstream")) == {("t", 0): 12, ("t", 1): 7}
