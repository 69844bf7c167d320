"""Quality end to end on the real broker: fail stops a stream, replay moves fixed records, GX report gates."""

from __future__ import annotations

import argparse

import pytest
from pyspark.sql import functions as F

from kappalake.cli.quality import cmd_quality
from kappalake.config import TriggerConf
from kappalake.errors import ConfigError, PipelineError
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from kappalake.pipelines.replay import replay_quarantine
from kappalake.transforms.dedup import CONFLICT
from tests.conftest import CONF_DIR, make_config
from tests.lake_checks import table

AVAILABLE_NOW = TriggerConf(available_now=True)
SUITE = CONF_DIR / "expectations" / "silver.clickstream.yaml"


def suite_with(*extra):
    import yaml

    suite = yaml.safe_load(SUITE.read_text())
    suite["expectations"] = suite["expectations"] + list(extra)
    return suite


@pytest.fixture(scope="module")
def bronze_lake(spark, broker_conf, tmp_path_factory):
    """1,500 clickstream events (every fault kind at 1%) in bronze; silver is built per test."""
    tmp = tmp_path_factory.mktemp("quality")
    cfg = make_config(broker_conf, tmp)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    write_reference_tables(spark, cfg)
    sent = produce(cfg, ProduceSpec("clickstream", count=1500, seed=77, faults=FaultRates.uniform(0.01), users=200))
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    return broker_conf, tmp, cfg, sent


def config_for(bronze_lake, name, **overrides):
    """A config on the module's bronze, with silver, quarantine, metrics and checkpoints of its own."""
    broker_conf, tmp, base, _ = bronze_lake
    cfg = make_config(broker_conf, tmp, **{"topics.clickstream.name": base.topic_name("clickstream"),
                                           "lake.checkpoint_root": str(tmp / f"checkpoints_{name}"), **overrides})
    return separate_tables(cfg, name)


def separate_tables(cfg, name):
    """Point silver, quarantine and metrics of this test at tables of their own (bronze is shared)."""
    p = cfg.pipelines["silver_clickstream"]
    sink = p.sink.model_copy(update={"table": f"silver.clickstream_{name}", "quarantine": f"quarantine.clickstream_{name}"})
    pipelines = dict(cfg.pipelines, silver_clickstream=p.model_copy(update={"sink": sink}))
    suites = dict(cfg.quality.suites)
    suites[f"silver.clickstream_{name}"] = suites.pop("silver.clickstream")
    quality = cfg.quality.model_copy(update={"suites": suites, "metrics_table": f"ops.quality_metrics_{name}"})
    return cfg.model_copy(update={"pipelines": pipelines, "quality": quality})


def test_a_fail_rule_stops_the_stream_naming_the_rule_and_writes_nothing_of_the_batch(spark, bronze_lake):
    cfg = config_for(bronze_lake, "fail", **{"quality.suites": {"silver.clickstream": suite_with(
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "max_value": 50},
         "meta": {"rule": "price_below_50", "policy": "fail"}})}})
    with pytest.raises(PipelineError) as e:
        run_pipelines(spark, cfg, ["silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    msg = str(e.value)
    assert "pipeline silver_clickstream failed" in msg and "QualityGateError" in msg
    assert "expectation price_below_50 (expect_column_values_to_be_between, policy fail)" in msg
    assert "failing rows: [{topic: " in msg and "price: " in msg
    assert table(spark, cfg, "silver.clickstream_fail").count() == 0
    assert table(spark, cfg, "quarantine.clickstream_fail").count() == 0
    assert table(spark, cfg, "ops.quality_metrics_fail").count() == 0


def test_unknown_columns_fail_at_start_up(spark, bronze_lake):
    cfg = config_for(bronze_lake, "cols", **{"quality.suites": {"silver.clickstream": suite_with(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "basket_value"}})}})
    with pytest.raises(ConfigError, match=r"expectations\[13\].*names unknown column\(s\) basket_value"):
        start_pipeline(spark, cfg.pipeline("silver_clickstream"), AVAILABLE_NOW)


def test_replay_moves_records_that_pass_after_a_fix_once(spark, bronze_lake):
    strict = config_for(bronze_lake, "replay", **{"quality.suites": {"silver.clickstream": suite_with(
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "max_value": 50},
         "meta": {"rule": "price_below_50", "policy": "quarantine"}})}})
    run_pipelines(spark, strict, ["silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    silver, quarantine = "silver.clickstream_replay", "quarantine.clickstream_replay"
    q = table(spark, strict, quarantine)
    capped = q.filter(F.array_contains("errors", "price_below_50") & (F.size("errors") == 1)).count()
    conflicts = q.filter(F.col("reason") == CONFLICT).count()
    other = q.count() - capped - conflicts
    assert capped > 20 and other > 0 and conflicts == bronze_lake[3].faults["conflicting_resend"] > 0
    before = table(spark, strict, silver).count()

    # The fix: the rule was wrong. Same pipeline, default suite.
    fixed = config_for(bronze_lake, "replay")
    report = replay_quarantine(spark, fixed, "silver_clickstream")
    # Conflicting resends are not replayed: alone they would pass and be taken for duplicates.
    assert (report.examined, report.moved, report.duplicates, report.remaining, report.conflicts) == \
        (capped + other, capped, 0, other, conflicts)
    assert table(spark, fixed, silver).count() == before + capped
    assert table(spark, fixed, quarantine).count() == other + conflicts
    assert table(spark, fixed, quarantine).filter(F.array_contains("errors", "price_below_50")).count() == 0

    again = replay_quarantine(spark, fixed, "silver_clickstream")
    assert (again.examined, again.moved, again.remaining, again.conflicts) == (other, 0, other, conflicts)
    # Every bronze row is in silver or quarantine, or a resent duplicate; none twice.
    coords = ["topic", "partition", "offset"]
    b = table(spark, fixed, "bronze.clickstream")
    s, qq = table(spark, fixed, silver), table(spark, fixed, quarantine)
    assert s.select(*coords).distinct().count() == s.count() and s.select("event_id").distinct().count() == s.count()
    landed = s.select(*coords).unionByName(qq.select(*coords))
    assert landed.join(b.select(*coords), coords, "left_anti").count() == 0
    sent = bronze_lake[3]
    assert b.join(landed, coords, "left_anti").count() == sent.faults["duplicate"]


def test_quality_report_validates_with_gx_writes_data_docs_and_gates_on_fail(spark, bronze_lake, tmp_path, capsys):
    cfg = config_for(bronze_lake, "report", **{"quality.docs_dir": str(tmp_path / "gx")})
    run_pipelines(spark, cfg, ["silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    args = argparse.Namespace(action="report", tables=None, since=None, until=None, time_column="event_time")
    assert cmd_quality(cfg, args) == 0
    out = capsys.readouterr().out
    rows = table(spark, cfg, "silver.clickstream_report").count()
    assert f"silver.clickstream_report: {rows:,} rows, 13/13 expectations met" in out
    assert "No fail expectation violated." in out
    index = tmp_path / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert index.is_file() and "silver.clickstream_report" in index.read_text()

    # A fail rule the table breaks (over a time range): exit code 1, the rule named.
    suites = dict(cfg.quality.suites)
    suites["silver.clickstream_report"] = suite_with({"type": "expect_column_max_to_be_between",
                                                      "kwargs": {"column": "price", "max_value": 5},
                                                      "meta": {"rule": "price_max_5", "policy": "fail"}})
    gated = cfg.model_copy(update={"quality": cfg.quality.model_copy(update={"suites": suites})})
    args.since, args.until = "2000-01-01T00:00:00", "2100-01-01T00:00:00"
    assert cmd_quality(gated, args) == 1
    out = capsys.readouterr().out
    assert "price_max_5" in out and "FAILED: silver.clickstream_report/price_max_5 (policy fail)" in out
