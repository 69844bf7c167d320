"""Routes declared under a pipeline's sink: every bad route stops the configuration, naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappalake.config import load_config
from kappalake.errors import ConfigError
from kappalake.pipelines.plan import depth, validate_pipelines

CONF = Path(__file__).resolve().parents[2] / "conf"
ORDERS = {"when": "event_type = 'purchase'", "table": "silver.orders"}
INCIDENTS = {"when": "event_type IN ('error', 'video_stall')", "topic": "incidents", "key": "app"}
TOPICS = {"topics.incidents": {"partitions": 1, "replication_factor": 1}}


def routes(*items, pipeline="silver_clickstream", **extra):
    return load_config("local", CONF, overrides={**TOPICS, f"pipelines.{pipeline}.sink.routes": list(items), **extra})


def err(*items, **kw) -> str:
    with pytest.raises(ConfigError) as e:
        routes(*items, **kw)
    return str(e.value)


def test_routes_resolve_to_paths_and_topic_names():
    cfg = routes(ORDERS, INCIDENTS, {"table": "serving.user_latest", "mode": "merge", "keys": ["user_id"],
                                     "latest_by": "event_time"}, **{"topics.incidents.name": "ops-incidents"})
    spec = cfg.pipeline("silver_clickstream")
    assert [(r.path, r.topic) for r in spec.routes] == [
        (cfg.lake.table_path("silver.orders"), None), (None, "ops-incidents"),
        (cfg.lake.table_path("serving.user_latest"), None)]
    assert "ops-incidents" in spec.output_topics  # created at start-up like a publish topic
    assert {"silver.orders", "serving.user_latest"} <= set(cfg.tables())


def test_a_pipeline_reading_a_route_table_runs_after_the_pipeline_writing_it():
    cfg = routes(ORDERS, **{"pipelines.gold_orders": {
        "source": {"table": "silver.orders"}, "transforms": [{"name": "page_minute_metrics", "window": "1 minute",
                                                              "lateness": "1 hour"}],
        "sink": {"table": "gold.orders", "mode": "merge", "keys": ["window_start", "page", "product_id"]},
        "trigger": {"processing_time": "10 seconds"}}})
    assert depth(cfg.pipelines, "gold_orders") == depth(cfg.pipelines, "silver_clickstream") + 1
    order = validate_pipelines(cfg)
    assert order.index("gold_orders") > order.index("silver_clickstream")


@pytest.mark.parametrize("route, message", [
    ({"when": "true"}, "exactly one of table"),
    ({"table": "silver.orders", "topic": "incidents"}, "exactly one of table"),
    ({"topic": "nowhere"}, "routes[0].topic 'nowhere' is not declared under topics"),
    ({"table": "Orders"}, "must look like 'layer.name'"),
    ({"table": "bronze.clickstream"}, "own source (table bronze.clickstream)"),
    ({"table": "silver.clickstream"}, "own sink or quarantine"),
    ({"table": "quarantine.clickstream"}, "own sink or quarantine"),
    ({"table": "gold.page_minute"}, "also written by pipeline gold_page_minute"),
    ({"table": "serving.x", "mode": "merge"}, "needs keys"),
    ({"table": "serving.x", "mode": "merge", "keys": ["user_id"]}, "and latest_by"),
    ({"table": "dim.products"}, "one kappalake keeps itself"),
    ({"table": "ops.quality_metrics"}, "one kappalake keeps itself"),
    ({"table": "serving.x", "latest_by": "event_time"}, "only apply to a route with mode: merge"),
    ({"table": "serving.x", "key": "app"}, "key is the Kafka key of a topic route"),
    ({"topic": "incidents", "mode": "merge", "keys": ["app"]}, "a topic route takes no mode"),
    ({"table": "serving.x", "when": " "}, "SQL condition"),
])
def test_bad_routes_name_the_key(route, message):
    assert message in err(route)
    assert "silver_clickstream" in err(route) or "route" in err(route)


def test_a_route_to_the_pipelines_own_topic_is_refused():
    assert "own source (topic clickstream)" in err({"topic": "clickstream"}, pipeline="bronze_clickstream")


def test_a_route_to_a_topic_upstream_of_the_pipeline_is_refused():
    # silver_signups reads bronze.signups, which bronze_signups fills from the signups topic.
    assert "upstream source (topic signups)" in err({"topic": "signups"}, pipeline="silver_signups")


def test_a_merge_sink_takes_no_routes():
    assert "sink.routes need sink.mode: append" in err({"topic": "incidents"}, pipeline="gold_page_minute")


def test_two_pipelines_routing_to_one_table_are_refused():
    with pytest.raises(ConfigError, match="also written by pipeline silver_"):
        load_config("local", CONF, overrides={"pipelines.silver_clickstream.sink.routes": [ORDERS],
                                              "pipelines.silver_telemetry.sink.routes": [{"table": "silver.orders"}]})


def test_a_kafka_sink_takes_no_routes():
    assert "takes no quarantine, partition_by, mode, publish, notify or routes" in err(
        {"topic": "alerts"}, pipeline="alerts_fast")
