"""`kappalake dashboard` on a copy of the demo lake, opened in Debian's Chromium (Playwright).

The dashboard runs as a user starts it (the CLI in a process of its own, port from the
config file); the browser waits for the first snapshot, then every section is read off the
page and compared with the same named queries run here on the same tables. A metrics row the
test appends afterwards (as the job's recorder writes it) must appear without a reload. The
full-page screenshot is kept in ``.kappalake/artifacts/dashboard.png`` and its first screen in
``docs/img/dashboard.png`` (shown in the docs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONF_DIR, REPO, free_port

pytestmark = [pytest.mark.process, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / ".kappalake" / "artifacts"
DOCS_IMAGE = REPO / "docs" / "img" / "dashboard.png"
# Debian's Chromium on a closed network: no background connections (they are refused, many at a time).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def lake(demo_lake, tmp_path_factory):
    """A copy of the demo lake (tables and checkpoints) with its own YAML: the test may append to it."""
    from kappalake.config import load_config

    cfg, lake_yaml = demo_lake
    tmp = tmp_path_factory.mktemp("dashboard")
    tree = yaml.safe_load(lake_yaml.read_text())
    shutil.copytree(cfg.lake.root, tmp / "lake")
    shutil.copytree(cfg.lake.checkpoint_root, tmp / "checkpoints")
    tree["lake"].update(root=str(tmp / "lake"), checkpoint_root=str(tmp / "checkpoints"))
    tree["dashboard"] = {"port": free_port(), "refresh_s": 2, "rows": 10}
    # the appended batch must still count as recent when a loaded machine gets round to reading it
    tree.setdefault("monitoring", {})["stale_after_s"] = 600
    tree.setdefault("spark", {}).setdefault("conf", {}).update({"spark.ui.enabled": "false",
                                                                "spark.sql.warehouse.dir": str(tmp / "warehouse")})
    path = tmp / "dashboard.yaml"
    path.write_text(yaml.safe_dump(tree))
    return load_config("local", CONF_DIR, extra_files=[str(path)]), path


@pytest.fixture(scope="module")
def dashboard(lake, tmp_path_factory):
    """``kappalake --config <yaml> dashboard`` until the module ends; yields its URL."""
    cfg, path = lake
    log = tmp_path_factory.mktemp("dashboard-log") / "dashboard.log"
    cli = Path(sys.executable).with_name("kappalake")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(cli), "--config", str(path), "dashboard"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{cfg.dashboard.port}/"
    try:
        deadline = time.monotonic() + 240
        while f"dashboard on {url}" not in log.read_text():
            assert proc.poll() is None, f"the dashboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no dashboard after 240 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]


@pytest.fixture(scope="module")
def page(dashboard):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package when run as root; "
                    "otherwise: sudo apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(dashboard)
        tab.wait_for_function("document.querySelector('[data-testid=as-of]')?.innerText.includes('data as of')",
                              timeout=240_000)
        tab.wait_for_selector("[data-testid=chart-zones] .main-svg", timeout=60_000)
        yield tab
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        tab.screenshot(path=str(DOCS_IMAGE))  # the first screen, shown in docs/notebooks-dashboard.md
        browser.close()
        assert not errors, errors


def table(page, testid: str) -> list[dict[str, str]]:
    """The rows of a table on the page, as header -> cell text."""
    return page.evaluate("""id => {
        const t = document.querySelector(`[data-testid="${id}"]`);
        if (!t) return null;
        const heads = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
        return [...t.querySelectorAll('tbody tr')].map(tr =>
            Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.innerText.trim()])));
    }""", testid)


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%"))


def query(spark, cfg, name: str):
    from kappalake.bi.queries import run_query

    return run_query(spark, cfg, name).toPandas()


def test_health_section_shows_every_query_and_table(spark, lake, page):
    from kappalake.ops.status import query_status, table_stats

    cfg, _ = lake
    rows = {r["query"]: r for r in table(page, "health-queries")}
    expected = query_status(spark, cfg)
    assert set(rows) == set(cfg.pipelines)
    for q in expected:
        shown = rows[q["pipeline"]]
        assert shown["state"] == q["state"]
        if q["batch_id"] is not None:
            assert number(shown["batch"]) == q["batch_id"] and number(shown["rows"]) == q["input_rows"], shown
    tables = {r["table"]: r for r in table(page, "health-tables")}
    stats = [t for t in table_stats(cfg) if t["exists"]]
    assert {t["table"]: number(tables[t["table"]]["rows"]) for t in stats} == {t["table"]: t["rows"] for t in stats}
    assert number(page.inner_text("[data-testid=kpi-rows]")) == sum(t["rows"] for t in stats)
    # the session's broker runs, so the lag is live: one figure per Kafka-reading query
    assert page.inner_text("[data-testid=kpi-lag]") != "n/a"
    for chart in ("chart-rates", "chart-batches", "chart-lag", "chart-lag-history"):
        assert page.locator(f"[data-testid={chart}] .main-svg").count() > 0, chart


def test_quality_section_matches_the_quality_metrics_and_quarantine(spark, lake, page):
    cfg, _ = lake
    by_table = query(spark, cfg, "quality_by_table")
    shown = {r["table"]: r for r in table(page, "quality-tables")}
    assert len(shown) == len(by_table) == 2
    for r in by_table.to_dict("records"):
        s = shown[r["table"]]
        assert (number(s["rows in"]), number(s["passed"]), number(s["quarantined"])) == \
            (r["rows_in"], r["passed"], r["quarantined"])
        assert s["quarantine rate"] == f"{r['quarantine_rate']:.2%}"
    rules = query(spark, cfg, "rule_failures").groupby(["table", "rule"])["rows"].sum()
    for r in table(page, "quality-rules"):
        assert number(r["rows failing"]) == rules[(r["table"], r["rule"])]
    latest = query(spark, cfg, "latest_quarantined").head(cfg.dashboard.rows)
    quarantined = table(page, "quality-quarantined")
    assert [(r["topic"], int(number(r["partition"])), int(number(r["offset"])), r["reason"]) for r in quarantined] == \
        [(r["topic"], r["partition"], r["offset"], r["reason"]) for r in latest.to_dict("records")]
    assert all(r["error"] for r in quarantined)
    for chart in ("chart-quality", "chart-rules"):
        assert page.locator(f"[data-testid={chart}] .main-svg").count() > 0, chart


def test_business_section_matches_the_named_queries(spark, lake, page):
    cfg, _ = lake
    products = query(spark, cfg, "top_products").head(cfg.dashboard.rows)
    shown = table(page, "business-products")
    assert [(r["product"], number(r["revenue"])) for r in shown] == \
        [(p, round(float(v), 1)) for p, v in zip(products["product"], products["revenue"])]
    funnel = query(spark, cfg, "funnel")
    assert number(page.inner_text("[data-testid=kpi-purchases]")) == funnel["purchased"].sum()
    zones = query(spark, cfg, "zone_concentration")
    newest = zones[zones["window_start"] == zones["window_start"].max()]
    shown_zones = table(page, "business-zones")
    assert [(r["zone"], number(r["visitors"])) for r in shown_zones[:len(newest)]] == \
        list(zip(newest["zone_name"], newest["visitors"]))
    devices = query(spark, cfg, "device_temperatures").head(cfg.dashboard.rows)
    assert [r["vehicle"] for r in table(page, "business-devices")] == list(devices["device_id"])
    fleet = query(spark, cfg, "fleet_health")
    assert sum(number(r["vehicles"]) for r in table(page, "business-fleet")) == fleet["vehicles"].sum()
    alerts = query(spark, cfg, "alert_history")
    assert number(page.inner_text("[data-testid=kpi-open-alerts]")) == (alerts["status"] == "open").sum()
    recent = table(page, "alerts-recent")
    assert len(recent) == min(len(alerts), cfg.dashboard.rows) > 0  # the demo's hot truck raised alerts
    assert [r["entity"] for r in recent] == list(alerts["entity"].head(cfg.dashboard.rows))
    for chart in ("chart-products", "chart-funnel", "chart-viewers", "chart-zones", "chart-fleet"):
        assert page.locator(f"[data-testid={chart}] .main-svg").count() > 0, chart


def test_the_page_follows_the_lake_without_a_reload(spark, lake, page):
    """A batch the job records now shows up within a few refreshes, the query as running."""
    from kappalake.lake.tables import write_rows
    from kappalake.monitoring.metrics import PARTITION_BY, SCHEMA, progress_row

    cfg, _ = lake
    now = datetime.now(timezone.utc)
    progress = {"name": "silver_clickstream", "id": "dashboard-test", "runId": "dashboard-test", "batchId": 4242,
                "timestamp": now.isoformat().replace("+00:00", "Z"), "numInputRows": 1234, "inputRowsPerSecond": 100.0,
                "processedRowsPerSecond": 617.0, "durationMs": {"triggerExecution": 2000}, "sources": []}
    write_rows(spark, cfg.lake, cfg.monitoring.metrics_table, SCHEMA, [progress_row(json.loads(json.dumps(progress)))],
               PARTITION_BY)
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=health-queries] tbody tr')]
        .some(tr => tr.innerText.includes('silver_clickstream') && tr.innerText.includes('4,242'))""", timeout=120_000)
    row = next(r for r in table(page, "health-queries") if r["query"] == "silver_clickstream")
    assert (row["state"], row["rows"], row["batch ms"]) == ("running", "1,234", "2,000")
    assert page.inner_text("[data-testid=kpi-running]").startswith("1 of")
