"""Consumers of the lake: named BI queries, Spark SQL over logical names, time travel, the CLI,
and other engines (delta-rs, DuckDB) reading the same Delta tables."""

from __future__ import annotations

import json

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from kappalake.bi.queries import QUERIES, register_views, run_query
from kappalake.cli import main


def table(spark, cfg, name, **options):
    return spark.read.format("delta").options(**options).load(cfg.lake.table_path(name))


@pytest.mark.parametrize("name", list(QUERIES))
def test_every_named_query_answers_on_the_demo_lake(spark, demo_lake, name):
    cfg, _ = demo_lake
    assert run_query(spark, cfg, name).count() > 0


def test_top_products_add_up_to_the_gold_table(spark, demo_lake):
    cfg, _ = demo_lake
    top = run_query(spark, cfg, "top_products")
    gold = table(spark, cfg, "gold.page_minute").filter("product_id IS NOT NULL")
    assert top.agg(F.sum("revenue")).first()[0] == gold.agg(F.sum("revenue")).first()[0] > 0
    assert top.select("product").filter("product IS NULL").count() == 0  # every product found in dim.products
    revenues = [r["revenue"] for r in top.collect()]
    assert revenues == sorted(revenues, reverse=True)


def test_zone_concentration_lists_the_top_three_of_each_window(spark, demo_lake):
    cfg, _ = demo_lake
    z = run_query(spark, cfg, "zone_concentration")
    windows = table(spark, cfg, "gold.zone_occupancy").select("window_start").distinct().count()
    assert z.select("window_start").distinct().count() == windows
    assert z.agg(F.max("rank")).first()[0] <= 3


def test_the_demos_summaries_say_what_the_named_queries_answer(spark, demo_lake, capsys):
    from kappalake.cli.render import print_alerts, print_gold_highlights, print_quality_metrics

    cfg, _ = demo_lake
    print_quality_metrics(spark, cfg)
    print_gold_highlights(spark, cfg)
    print_alerts(spark, cfg)
    out = capsys.readouterr().out
    for t in run_query(spark, cfg, "quality_by_table").collect():
        assert f"{t['table']} quality over {t['batches']} batches: {t['rows_in']:,} in, {t['passed']:,} passed" in out
    hour = run_query(spark, cfg, "funnel").orderBy(F.desc("hour")).first()
    assert f"funnel, hour from {hour['hour']:%H:%M} UTC: {hour['sessions']:,} sessions" in out
    zones = run_query(spark, cfg, "zone_concentration").collect()
    latest = [z for z in zones if z["window_start"] == zones[0]["window_start"]][:3]
    assert ", ".join(f"#{z['rank']} {z['zone_name']} ({z['visitors']} in)" for z in latest) in out
    peak = run_query(spark, cfg, "concurrent_viewers").agg(F.max("peak_viewers")).first()[0]
    assert f"peak concurrent viewers: {peak} in the minute from" in out
    episodes = run_query(spark, cfg, "alert_history").collect()
    assert f"ops.alerts: {len(episodes)} alert episodes:" in out and len(episodes) >= 2  # the hot-truck scenario
    for e in episodes:
        assert f"{e['started_at']:%H:%M:%S} {e['kind']} {e['entity']} {e['metric']} {e['reason']}, peak {e['peak']:g}" in out


def test_tables_and_named_views_are_there_for_spark_sql(spark, demo_lake):
    cfg, _ = demo_lake
    views = register_views(spark, cfg)
    assert set(views) == set(QUERIES)
    n = spark.sql("SELECT COUNT(*) AS n FROM silver.clickstream").first()["n"]
    assert n == table(spark, cfg, "silver.clickstream").count() > 0
    assert spark.sql("SELECT SUM(sessions) AS s FROM funnel").first()["s"] == \
        table(spark, cfg, "gold.funnel_hourly").agg(F.sum("sessions")).first()[0]


def test_time_travel_by_version_and_by_timestamp(spark, demo_lake):
    cfg, _ = demo_lake
    path = cfg.lake.table_path("gold.page_minute")
    history = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    assert len(history) >= 2
    first_data = next(h for h in history if h["operation"] != "CREATE TABLE")
    v = first_data["version"]
    at_v = table(spark, cfg, "gold.page_minute", versionAsOf=v)
    expected = at_v.filter("product_id IS NOT NULL").agg(F.sum("revenue")).first()[0]
    assert run_query(spark, cfg, "top_products", as_of=v).agg(F.sum("revenue")).first()[0] == expected
    by_time = first_data["timestamp"].strftime("%Y-%m-%d %H:%M:%S.%f")
    assert spark.sql(f"SELECT COUNT(*) AS n FROM gold.page_minute TIMESTAMP AS OF '{by_time}'").first()["n"] == \
        at_v.count()
    assert spark.sql("SELECT COUNT(*) AS n FROM gold.page_minute VERSION AS OF 0").first()["n"] == 0


def test_cli_query_sql_and_history(demo_lake, capsys):
    cfg, yaml_path = demo_lake
    assert main(["--config", str(yaml_path), "query", "funnel", "--json", "--limit", "100"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all({"hour", "sessions", "purchased"} <= set(r) for r in rows)
    assert main(["--config", str(yaml_path), "sql", "SELECT COUNT(*) AS n FROM gold.sessions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].strip() == "n" and int(out[2].strip().replace(",", "")) > 0
    assert main(["--config", str(yaml_path), "history", "silver.clickstream"]) == 0
    assert "WRITE" in capsys.readouterr().out
    assert main(["--config", str(yaml_path), "query", "top_products", "--as-of", "0"]) == 0
    assert "(0 rows)" in capsys.readouterr().out
    assert main(["--config", str(yaml_path), "query", "no_such_query"]) == 2
    assert "named queries: top_products" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["silver.clickstream", "gold.page_minute", "gold.zone_occupancy",
                                  "quarantine.clickstream", "quarantine.telemetry"])
def test_another_engine_reads_the_tables(spark, demo_lake, name):
    """delta-rs (the `deltalake` package, no JVM) reads what Spark wrote; DuckDB queries it."""
    import duckdb
    from deltalake import DeltaTable as RustDeltaTable

    cfg, _ = demo_lake
    path = cfg.lake.table_path(name)
    rust = RustDeltaTable(path)
    assert rust.version() == DeltaTable.forPath(spark, path).history(1).first()["version"]
    arrow = rust.to_pyarrow_table()
    df = table(spark, cfg, name)
    assert arrow.num_rows == df.count() > 0
    assert set(arrow.column_names) == set(df.columns)
    arrow.validate(full=True)  # every string column valid UTF-8, the quarantined not_utf8 payloads' text too
    numeric = {"silver.clickstream": "offset", "gold.page_minute": "events", "gold.zone_occupancy": "visitors",
               "quarantine.clickstream": "offset", "quarantine.telemetry": "offset"}[name]
    duck = duckdb.sql(f"SELECT SUM(\"{numeric}\") AS s, COUNT(*) AS n FROM arrow").fetchall()[0]
    assert duck == (df.agg(F.sum(numeric)).first()[0], df.count())
    if name.startswith("quarantine."):  # DuckDB reads every text column of every quarantined record
        texts = duckdb.sql("SELECT COUNT(*) FROM arrow WHERE reason = 'not_utf8' AND "
                           "length(payload_text) > 0 AND length(coalesce(key, '')) >= 0").fetchall()[0][0]
        assert texts == df.filter("reason = 'not_utf8'").count() > 0
    assert RustDeltaTable(path, version=0).to_pyarrow_table().num_rows == 0  # time travel there too
