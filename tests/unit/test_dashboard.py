"""The dashboard's page drawn from a snapshot built by hand (pandas only, no Spark, no browser)."""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import pandas as pd
import pytest

from kappalake.config import load_config
from kappalake.dashboard import app as page
from kappalake.dashboard.snapshot import Snapshot
from kappalake.errors import ConfigError


def snapshot(number: int = 1, rows_in: int = 1000) -> Snapshot:
    snap = Snapshot(at=datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc), seconds=2.5, number=number)
    minutes = pd.to_datetime(["2026-11-26 11:58", "2026-11-26 11:59"])
    snap.frames.update(
        queries=pd.DataFrame([{"pipeline": "silver_clickstream", "state": "running", "last_batch": minutes[1],
                               "batch_id": 7, "input_rows": 1234, "input_rows_per_s": 50.0,
                               "processed_rows_per_s": 617.25, "batch_ms": 2000, "state_rows": None, "lag": 12,
                               "last_error": None},
                              {"pipeline": "gold_sessions", "state": "failed", "last_batch": None, "batch_id": None,
                               "input_rows": None, "input_rows_per_s": None, "processed_rows_per_s": None,
                               "batch_ms": None, "state_rows": None, "lag": None, "last_error": "boom"}]),
        tables=pd.DataFrame([{"table": "silver.clickstream", "rows": 4794, "files": 1, "version": 3}]),
        lag=pd.DataFrame([{"pipeline": "bronze_clickstream", "topic": "clickstream", "partition": 0, "end_offset": 10,
                           "processed": 4, "lag": 6, "at": minutes[1]}]),
        stream_rates=pd.DataFrame({"pipeline": ["silver_clickstream"] * 2, "minute": minutes,
                                   "processed_rows_per_s": [10.0, 20.0], "max_batch_ms": [900, 1100]}),
        quality_by_table=pd.DataFrame([{"table": "silver.clickstream", "batches": 2, "rows_in": rows_in,
                                        "passed": rows_in - 25, "warned": 0, "dropped": 0, "quarantined": 25,
                                        "quarantine_rate": 25 / rows_in}]),
        quality_over_time=pd.DataFrame({"table": ["silver.clickstream"] * 2, "minute": minutes,
                                        "pass_rate": [0.98, 0.97], "quarantine_rate": [0.02, 0.03]}),
        rule_failures=pd.DataFrame({"table": ["silver.clickstream"] * 3, "minute": [minutes[0], minutes[1], minutes[1]],
                                    "rule": ["not_utf8", "not_utf8", "price_plausible"], "rows": [3, 4, 5]}),
        top_products=pd.DataFrame([{"product_id": "p1", "product": "Kinetic Lite", "category": "shoes", "views": 1200,
                                    "add_to_carts": 30, "purchases": 9, "units": 9, "revenue": 759.0,
                                    "view_to_cart": 0.025}]),
        alert_history=pd.DataFrame([{"alert_id": "a", "kind": "temperature", "severity": "critical",
                                     "entity": "truck-0000", "metric": "engine_temp_c", "reason": "above_max",
                                     "started_at": minutes[0], "ended_at": None, "peak": 117.0, "status": "open"}]),
    )
    snap.missing["zone_heatmap"] = "query zone_heatmap reads gold.zone_occupancy, which does not exist yet"
    return snap


def rendered(component) -> str:  # noqa: ANN001
    """Every text in a component tree, in order."""
    if isinstance(component, (list, tuple)):
        return " | ".join(rendered(c) for c in component)
    if isinstance(component, (str, int, float)):
        return str(component)
    children = getattr(component, "children", None)
    return "" if children is None else rendered(children)


def find(component, testid: str):  # noqa: ANN001, ANN201
    if isinstance(component, (list, tuple)):
        return next((f for f in (find(c, testid) for c in component) if f is not None), None)
    if getattr(component, "data-testid", None) == testid:
        return component
    children = getattr(component, "children", None)
    return None if children is None or isinstance(children, str) else find(children, testid)


def table_rows(component) -> list[list[str]]:  # noqa: ANN001
    body = component.children[1]
    return [[cell.children for cell in tr.children] for tr in body.children]


def test_numbers_are_formatted_for_reading():
    assert page.integer(1234567) == "1,234,567" and page.integer(None) == "" and page.integer(float("nan")) == ""
    assert page.decimal(617.25) == "617.2" and page.percent(0.025) == "2.50%"
    assert page.when(pd.Timestamp("2026-11-26 11:59:00")) == "2026-11-26 11:59:00"
    assert page.text(5)("abcdefgh") == "abcd…"


def test_sections_show_the_snapshot_figures():
    snap = snapshot()
    page.draw(snap, rows=10)
    health, quality, business = (snap.drawn[k] for k in page.SECTIONS)
    queries = table_rows(find(health, "health-queries"))
    assert queries[0][:8] == ["silver_clickstream", "running", "2026-11-26 11:59:00", "7", "1,234", "50.0", "617.2",
                              "2,000"]
    assert queries[1][1] == "failed" and queries[1][-1] == "boom"
    assert rendered(find(health, "kpi-running")) == "1 of 2" and rendered(find(health, "kpi-failed")) == "1"
    assert rendered(find(health, "kpi-lag")) == "6" and rendered(find(health, "kpi-rows")) == "4,794"
    assert table_rows(find(quality, "quality-tables"))[0][-2:] == ["25", "2.50%"]
    assert table_rows(find(quality, "quality-rules")) == [["silver.clickstream", "not_utf8", "7"],
                                                          ["silver.clickstream", "price_plausible", "5"]]
    assert table_rows(find(business, "business-products"))[0][0] == "Kinetic Lite"
    assert rendered(find(business, "kpi-open-alerts")) == "1"
    assert table_rows(find(business, "alerts-open"))[0][4] == "truck-0000"


def test_a_view_without_rows_says_why_and_the_rest_still_draws():
    snap = snapshot()
    page.draw(snap, rows=10)
    business = snap.drawn["business"]
    assert "does not exist yet" in rendered(find(business, "missing-zone_heatmap"))
    assert rendered(find(business, "empty-funnel")) == "no rows yet"
    assert find(business, "chart-products") is not None


def test_a_view_that_cannot_be_drawn_shows_the_error_in_its_panel():
    snap = snapshot()
    snap.frames["top_products"] = pd.DataFrame({"unexpected": [1]})
    page.draw(snap, rows=10)
    assert "could not draw top_products: KeyError" in rendered(find(snap.drawn["business"], "error-top_products"))


def test_fingerprints_change_only_with_the_content():
    a, b, c = snapshot(1), snapshot(2), snapshot(3, rows_in=2000)
    for s in (a, b, c):
        page.draw(s, rows=10)
    assert a.drawn["prints"] == b.drawn["prints"]
    assert a.drawn["prints"]["quality"] != c.drawn["prints"]["quality"]
    assert a.drawn["prints"]["health"] == c.drawn["prints"]["health"]


def test_header_says_how_fresh_the_figures_are():
    assert page.header_text(None, None).startswith("reading the lake")
    text = page.header_text(snapshot(), "OSError: gone")
    assert text.startswith("data as of 2026-11-26 12:00:00 UTC, read in 2.5 s (#1)") and "last refresh failed" in text


def test_port_from_config_and_bad_values_fail_at_start_up():
    with pytest.raises(ConfigError, match="dashboard.port"):
        load_config("local", overrides={"dashboard.port": 80})
    cfg = load_config("local", overrides={"dashboard.port": 18050})
    assert cfg.dashboard.port == 18050


def test_a_port_in_use_names_the_key_and_the_fix(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        cfg = load_config("local")
        with pytest.raises(ConfigError, match=rf"dashboard.port {port}: cannot listen on 127.0.0.1:{port}.*--port N"):
            page.serve(None, cfg, port)  # fails before any Spark work
