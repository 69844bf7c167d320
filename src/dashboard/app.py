"""`kappalake dashboard`: one page (Dash) with three sections, health, quality and business,
re-drawn whenever the :class:`SnapshotFeed` has read the lake again."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import socket
from typing import Any, Callable

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from plotly.utils import PlotlyJSONEncoder
from pyspark.sql import SparkSession

from kappalake.config import Config
from kappalake.dashboard import figures
from kappalake.dashboard.snapshot import Snapshot, SnapshotFeed
from kappalake.errors import ConfigError

log = logging.getLogger("kappalake.dashboard")

HOST = "127.0.0.1"
_CSS = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline;
         position: sticky; top: 0; z-index: 10; }
header h1 { font-size: 20px; margin: 0; } header a { color: #9cc3ff; margin-right: 14px; text-decoration: none; }
header .as-of { margin-left: auto; font-size: 13px; color: #c9d1e0; }
section { padding: 8px 24px 24px; } section > h2 { border-bottom: 2px solid #1d2330; padding-bottom: 4px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 12px; }
.card { background: #fff; border-radius: 6px; padding: 10px 16px; min-width: 150px; box-shadow: 0 1px 2px #0002; }
.card .value { font-size: 26px; font-weight: 600; } .card .label { font-size: 12px; color: #5b6475; }
.card.bad .value { color: #c0392b; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.panel { background: #fff; border-radius: 6px; padding: 8px 12px; box-shadow: 0 1px 2px #0002; overflow-x: auto; }
.panel h3 { font-size: 14px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e6ec; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #eef0f4; }
td.wrap { white-space: normal; max-width: 420px; word-break: break-all; }
.state-running { color: #1e8449; font-weight: 600; } .state-failed { color: #c0392b; font-weight: 600; }
.state-silent { color: #b9770e; font-weight: 600; }
.missing { color: #5b6475; font-style: italic; font-size: 13px; padding: 8px 0; }
"""

Format = Callable[[Any], str]


def _isna(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def integer(v: Any) -> str:
    return "" if _isna(v) else f"{int(v):,}"


def decimal(v: Any) -> str:
    return "" if _isna(v) else f"{float(v):,.1f}"


def percent(v: Any) -> str:
    return "" if _isna(v) else f"{float(v):.2%}"


def when(v: Any) -> str:
    return "" if _isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")


def text(limit: int = 0) -> Format:
    def fmt(v: Any) -> str:
        s = "" if _isna(v) else str(v)
        return s if not limit or len(s) <= limit else s[: limit - 1] + "…"
    return fmt


Column = tuple[str, str, Format]  # (frame column, header, format)


def data_table(df: pd.DataFrame, columns: list[Column], testid: str, limit: int | None = None) -> html.Table:
    """``df`` as an HTML table; numbers right-aligned, each cell formatted for reading."""
    numeric = {integer, decimal, percent}
    body = []
    for _, row in (df if limit is None else df.head(limit)).iterrows():
        cells = []
        for col, _, fmt in columns:
            value = row.get(col)
            cls = "num" if fmt in numeric else "wrap" if col in ("error_text", "payload_text", "last_error", "reason") \
                else None
            if col == "state":
                cls = f"state-{value}"
            cells.append(html.Td(fmt(value), className=cls))
        body.append(html.Tr(cells))
    return html.Table([html.Thead(html.Tr([html.Th(h) for _, h, _ in columns])), html.Tbody(body)],
                      **{"data-testid": testid})


def card(label: str, value: str, testid: str, bad: bool = False) -> html.Div:
    return html.Div([html.Div(value, className="value", **{"data-testid": testid}), html.Div(label, className="label")],
                    className="card bad" if bad else "card")


def graph(fig, testid: str) -> html.Div:  # noqa: ANN001
    fig.update_layout(uirevision=testid)  # keeps zoom and hidden series across refreshes
    return html.Div(dcc.Graph(figure=fig, config={"displaylogo": False}), **{"data-testid": testid})


def panel(title: str, *children: Any) -> html.Div:
    return html.Div([html.H3(title), *children], className="panel")


def view(snap: Snapshot, name: str, draw: Callable[[pd.DataFrame], Any], empty: str = "no rows yet") -> Any:
    """``draw`` of the named view's rows, or why there are none."""
    if name in snap.missing:
        return html.Div(f"not available: {snap.missing[name]}", className="missing", **{"data-testid": f"missing-{name}"})
    df = snap.get(name)
    if df.empty:
        return html.Div(empty, className="missing", **{"data-testid": f"empty-{name}"})
    try:
        return draw(df)
    except Exception as e:  # noqa: BLE001 - one panel failing to draw leaves the rest of the page
        log.exception("drawing %s", name)
        return html.Div(f"could not draw {name}: {type(e).__name__}: {e}", className="missing",
                        **{"data-testid": f"error-{name}"})


def health(snap: Snapshot) -> list[Any]:
    q = snap.get("queries")
    running = int((q["state"] == "running").sum()) if not q.empty else 0
    failed = int((q["state"] == "failed").sum()) if not q.empty else 0
    lag = snap.get("lag")
    tables = snap.get("tables")
    cards = html.Div([
        card("queries running", f"{running} of {len(q)}", "kpi-running"),
        card("queries failed", str(failed), "kpi-failed", bad=failed > 0),
        card("Kafka lag (records)", "n/a" if snap.lag_error else integer(lag["lag"].sum() if not lag.empty else 0),
             "kpi-lag"),
        card("rows in the lake", integer(tables["rows"].fillna(0).sum()) if not tables.empty else "0", "kpi-rows"),
    ], className="cards")
    queries = data_table(q, [
        ("pipeline", "query", text()), ("state", "state", text()), ("last_batch", "last batch with rows", when),
        ("batch_id", "batch", integer), ("input_rows", "rows", integer), ("input_rows_per_s", "input rows/s", decimal),
        ("processed_rows_per_s", "processed rows/s", decimal), ("batch_ms", "batch ms", integer),
        ("state_rows", "state rows", integer), ("lag", "Kafka lag", integer), ("last_error", "last error", text(300)),
    ], "health-queries")
    lag_panel = (html.Div(f"lag unavailable: {snap.lag_error}", className="missing", **{"data-testid": "lag-error"})
                 if snap.lag_error else view(snap, "lag", lambda df: graph(figures.lag_by_topic(df), "chart-lag")))
    table_list = data_table(tables, [("table", "table", text()), ("rows", "rows", integer), ("files", "files", integer),
                                     ("version", "version", integer)], "health-tables")
    return [
        html.H2("Pipeline health"), cards,
        panel("Queries", queries),
        html.Div([
            panel("Processing rate", view(snap, "stream_rates", lambda df: graph(figures.processing_rates(df), "chart-rates"))),
            panel("Batch duration", view(snap, "stream_rates", lambda df: graph(figures.batch_durations(df), "chart-batches"))),
            panel("Consumer lag per topic", lag_panel),
            panel("Consumer lag over time", view(snap, "consumer_lag",
                                                 lambda df: graph(figures.lag_over_time(df), "chart-lag-history"))),
        ], className="grid"),
        panel("Tables", table_list),
    ]


def quality(snap: Snapshot, rows: int) -> list[Any]:
    def rule_totals(df: pd.DataFrame) -> html.Table:
        totals = df.groupby(["table", "rule"], as_index=False)["rows"].sum().sort_values(["rows", "table", "rule"],
                                                                                      ascending=[False, True, True])
        return data_table(totals, [("table", "table", text()), ("rule", "rule", text()), ("rows", "rows failing", integer)],
                          "quality-rules", limit=rows)

    return [
        html.H2("Data quality"),
        panel("Per table", view(snap, "quality_by_table", lambda df: data_table(df, [
            ("table", "table", text()), ("batches", "batches", integer), ("rows_in", "rows in", integer),
            ("passed", "passed", integer), ("warned", "warned", integer), ("dropped", "dropped", integer),
            ("quarantined", "quarantined", integer), ("quarantine_rate", "quarantine rate", percent)],
            "quality-tables"))),
        html.Div([
            panel("Pass and quarantine rates over time",
                  view(snap, "quality_over_time", lambda df: graph(figures.quality_rates(df), "chart-quality"))),
            panel("Failures per rule over time",
                  view(snap, "rule_failures", lambda df: graph(figures.rule_failures(df), "chart-rules"))),
        ], className="grid"),
        panel("Rules failed most (in the period shown)", view(snap, "rule_failures", rule_totals)),
        panel("Latest quarantined records", view(snap, "latest_quarantined", lambda df: data_table(df, [
            ("quarantined_at", "quarantined at", when), ("table", "table", text()), ("stage", "stage", text()),
            ("reason", "reason", text()), ("error_text", "error", text(200)), ("topic", "topic", text()),
            ("partition", "partition", integer), ("offset", "offset", integer), ("payload_text", "payload", text(90))],
            "quality-quarantined"))),
    ]


def business(snap: Snapshot, rows: int) -> list[Any]:
    alerts = snap.get("alert_history")
    open_alerts = alerts[alerts["status"] == "open"] if not alerts.empty else alerts
    alert_columns: list[Column] = [
        ("started_at", "started", when), ("ended_at", "ended", when), ("kind", "kind", text()),
        ("severity", "severity", text()), ("entity", "entity", text()), ("metric", "metric", text()),
        ("peak", "peak", decimal), ("reason", "reason", text(160))]
    viewers = snap.get("concurrent_viewers")
    funnel_rows = snap.get("funnel")
    return [
        html.H2("Business"),
        html.Div([
            card("open alerts", str(len(open_alerts)), "kpi-open-alerts", bad=len(open_alerts) > 0),
            card("peak concurrent viewers", integer(viewers["peak_viewers"].max()) if not viewers.empty else "0",
                 "kpi-peak-viewers"),
            card("purchases", integer(funnel_rows["purchased"].sum()) if not funnel_rows.empty else "0", "kpi-purchases"),
            card("revenue", decimal(funnel_rows["revenue"].sum()) if not funnel_rows.empty else "0", "kpi-revenue"),
        ], className="cards"),
        html.Div([
            panel("Top products", view(snap, "top_products", lambda df: graph(figures.top_products(df), "chart-products")),
                  view(snap, "top_products", lambda df: data_table(df, [
                      ("product", "product", text()), ("category", "category", text()), ("views", "views", integer),
                      ("add_to_carts", "carts", integer), ("purchases", "purchases", integer),
                      ("revenue", "revenue", decimal), ("view_to_cart", "view→cart", percent)], "business-products"))),
            panel("Funnel", view(snap, "funnel", lambda df: graph(figures.funnel(df), "chart-funnel")),
                  view(snap, "funnel", lambda df: data_table(df.sort_values("hour", ascending=False), [
                      ("hour", "hour", when), ("sessions", "sessions", integer), ("purchased", "purchased", integer),
                      ("conversion_rate", "conversion", percent), ("revenue", "revenue", decimal)],
                      "business-funnel", limit=rows))),
            panel("Concurrent viewers", view(snap, "concurrent_viewers",
                                             lambda df: graph(figures.concurrent_viewers(df), "chart-viewers"))),
            panel("Zone concentration (top 3 per 15 minutes)", view(snap, "zone_concentration", lambda df: data_table(df, [
                ("window_start", "window", when), ("rank", "rank", integer), ("zone_name", "zone", text()),
                ("building", "building", text()), ("visitors", "visitors", integer),
                ("utilisation", "utilisation", percent)], "business-zones"))),
            panel("Zones heat map", view(snap, "zone_heatmap", lambda df: graph(figures.zone_heatmap(df), "chart-zones"))),
            panel("Fleet now", view(snap, "fleet_health", lambda df: data_table(df, [
                ("window_start", "minute", when), ("vehicle_type", "type", text()), ("vehicles", "vehicles", integer),
                ("moving", "moving", integer), ("engine_hot", "engine hot", integer),
                ("cargo_out_of_range", "cargo out of range", integer), ("low_fuel", "low fuel", integer),
                ("engine_temp_max_c", "engine max °C", decimal)], "business-fleet")),
                  view(snap, "device_temperatures", lambda df: graph(figures.fleet_positions(df), "chart-fleet"))),
            panel("Hottest vehicles (latest minute of each)", view(snap, "device_temperatures", lambda df: data_table(df, [
                ("device_id", "vehicle", text()), ("vehicle_type", "type", text()), ("window_start", "minute", when),
                ("engine_temp_max_c", "engine °C", decimal), ("cargo_temp_max_c", "cargo °C", decimal),
                ("speed_avg_kmh", "km/h", decimal), ("fuel_min_pct", "fuel %", decimal)], "business-devices",
                limit=rows))),
        ], className="grid"),
        *[panel(f"Latest state: {name.removeprefix('latest:')} (delta-rs, no Spark)",
                view(snap, name, lambda df, name=name: data_table(df, [(c, c, _cell_format(df[c])) for c in df.columns],
                                                                  name.replace(":", "-").replace(".", "-"))))
          for name in sorted({*snap.frames, *snap.missing}) if name.startswith("latest:")],
        panel("Open alerts", view(snap, "alert_history", lambda df: data_table(open_alerts, alert_columns, "alerts-open")
                                  if not open_alerts.empty else html.Div("no open alerts", className="missing",
                                                                         **{"data-testid": "empty-alerts-open"}))),
        panel("Recent alerts", view(snap, "alert_history", lambda df: data_table(df, alert_columns + [
            ("status", "status", text())], "alerts-recent", limit=rows))),
    ]


def _cell_format(values: pd.Series) -> Format:
    """How a column of a latest-state table is shown: times, numbers or text, by its values."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return when
    if pd.api.types.is_integer_dtype(values):
        return integer
    if pd.api.types.is_float_dtype(values):
        return decimal
    return text(60)


def _fingerprint(children: list[Any]) -> str:
    return hashlib.sha1(json.dumps(children, cls=PlotlyJSONEncoder, sort_keys=True).encode()).hexdigest()


def header_text(snap: Snapshot | None, error: str | None) -> str:
    if snap is None:
        return f"reading the lake for the first time…{' (' + error + ')' if error else ''}"
    age = f"data as of {snap.at:%Y-%m-%d %H:%M:%S} UTC, read in {snap.seconds:.1f} s (#{snap.number})"
    return age + (f" — last refresh failed: {error}" if error else "")


SECTIONS = ("health", "quality", "business")


def draw(snap: Snapshot, rows: int) -> None:
    """The page's sections of ``snap``, with a fingerprint of each, into ``snap.drawn``."""
    snap.drawn.update(health=health(snap), quality=quality(snap, rows), business=business(snap, rows))
    snap.drawn["prints"] = {k: _fingerprint(snap.drawn[k]) for k in SECTIONS}


def build_app(feed: SnapshotFeed, cfg: Config) -> Dash:
    """The Dash app over ``feed``; the page polls every few seconds and re-draws on a new snapshot."""
    app = Dash(__name__, title="kappalake dashboard", update_title=None, serve_locally=True)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + _CSS + "</style>")
    poll_ms = int(min(cfg.dashboard.refresh_s, 5) * 1000)
    app.layout = html.Div([
        html.Header([html.H1("kappalake"), html.Nav([html.A("Health", href="#health"), html.A("Quality", href="#quality"),
                                                     html.A("Business", href="#business")]),
                     html.Span(header_text(None, None), id="as-of", className="as-of", **{"data-testid": "as-of"})]),
        html.Section(id="health", **{"data-testid": "section-health"}),
        html.Section(id="quality", **{"data-testid": "section-quality"}),
        html.Section(id="business", **{"data-testid": "section-business"}),
        dcc.Interval(id="tick", interval=poll_ms),
        dcc.Store(id="shown", data={}),
    ])

    @app.callback(Output("as-of", "children"), Output("health", "children"), Output("quality", "children"),
                  Output("business", "children"), Output("shown", "data"),
                  Input("tick", "n_intervals"), State("shown", "data"))
    def refresh(_: int | None, shown: dict | None) -> tuple:
        snap = feed.latest()
        shown = shown or {}
        if snap is None:
            return header_text(None, feed.error), no_update, no_update, no_update, shown
        if snap.number == shown.get("number"):
            raise PreventUpdate
        # Sections were drawn when the snapshot was taken: a poll answers at once (Dash drops
        # an answer that comes after the next poll has gone out). One whose content did not
        # change is not sent again: re-drawing a dozen charts costs the browser far more.
        prints = snap.drawn["prints"]
        out = [snap.drawn[k] if prints[k] != shown.get(k) else no_update for k in SECTIONS]
        return (header_text(snap, feed.error), *out, {"number": snap.number, **prints})

    return app


def serve(spark: SparkSession, cfg: Config, port: int | None = None, refresh_s: float | None = None) -> None:
    """Serve the dashboard on 127.0.0.1 until interrupted (Ctrl-C or SIGTERM)."""
    from werkzeug.serving import make_server

    port = port or cfg.dashboard.port
    feed = SnapshotFeed(spark, cfg, refresh_s, prepare=lambda snap: draw(snap, cfg.dashboard.rows))
    app = build_app(feed, cfg)
    try:  # werkzeug would print its own message and exit: check first
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((HOST, port))
    except OSError as e:
        raise ConfigError(f"dashboard.port {port}: cannot listen on {HOST}:{port} ({e.strerror or e}); stop what holds "
                          f"it, or choose another port: --port N, or --set dashboard.port=N") from None
    server = make_server(HOST, port, app.server, threaded=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per poll
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    feed.start()
    print(f"dashboard on http://{HOST}:{port}/ (lake {cfg.lake.root}, refreshed every {feed.refresh_s:g} s; "
          f"Ctrl-C stops it)", flush=True)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        feed.stop()
        server.server_close()
        print("dashboard stopped", flush=True)
