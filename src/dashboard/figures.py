"""Plotly figures of the dashboard's views, one function a chart, each from a snapshot frame."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

_LAYOUT = dict(margin=dict(l=50, r=10, t=40, b=40), height=340, template="plotly_white",
               legend=dict(title=None, font=dict(size=10)))


def _styled(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=14)), **_LAYOUT)
    return fig


def processing_rates(rates: pd.DataFrame) -> go.Figure:
    """Rows processed per second, per query and minute."""
    fig = px.line(rates, x="minute", y="processed_rows_per_s", color="pipeline", markers=True,
                  labels={"processed_rows_per_s": "rows/s", "minute": ""})
    return _styled(fig, "Processing rate per query (rows/s)")


def batch_durations(rates: pd.DataFrame) -> go.Figure:
    """The longest micro-batch of each query per minute."""
    fig = px.line(rates, x="minute", y="max_batch_ms", color="pipeline", markers=True,
                  labels={"max_batch_ms": "ms", "minute": ""})
    return _styled(fig, "Longest batch per query and minute (ms)")


def lag_by_topic(lag: pd.DataFrame) -> go.Figure:
    """Live consumer lag of each Kafka-reading query, per topic."""
    per = lag.groupby(["topic", "pipeline"], as_index=False)["lag"].sum()
    fig = px.bar(per, x="topic", y="lag", color="pipeline", barmode="group", text="lag",
                 labels={"lag": "records not yet processed", "topic": ""})
    return _styled(fig, "Consumer lag now, per topic")


def lag_over_time(history: pd.DataFrame) -> go.Figure:
    """Consumer lag as the job recorded it."""
    frame = history.assign(series=history["pipeline"] + " / " + history["topic"])
    fig = px.line(frame, x="at", y="lag", color="series", labels={"lag": "records", "at": ""})
    return _styled(fig, "Consumer lag over time (recorded by the job)")


def quality_rates(over_time: pd.DataFrame) -> go.Figure:
    """Pass and quarantine rates per table and minute."""
    long = over_time.melt(id_vars=["table", "minute"], value_vars=["pass_rate", "quarantine_rate"],
                          var_name="rate", value_name="share")
    fig = px.line(long, x="minute", y="share", color="table", line_dash="rate", markers=True,
                  labels={"share": "share of rows in", "minute": ""})
    fig.update_yaxes(tickformat=".1%")
    return _styled(fig, "Pass rate and quarantine rate per table")


def rule_failures(rules: pd.DataFrame) -> go.Figure:
    """Rows failing each rule per minute, one panel a table."""
    fig = px.bar(rules, x="minute", y="rows", color="rule", facet_col="table", facet_col_wrap=2,
                 labels={"rows": "rows failing", "minute": ""})
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_layout(showlegend=True)
    return _styled(fig, "Failures per rule")


def top_products(products: pd.DataFrame) -> go.Figure:
    """Revenue of the best-selling products."""
    frame = products.assign(label=products["product"].fillna(products["product_id"]))
    fig = px.bar(frame.iloc[::-1], x="revenue", y="label", orientation="h", color="category",
                 labels={"label": "", "revenue": "revenue"})
    return _styled(fig, "Top products by revenue")


def funnel(hours: pd.DataFrame) -> go.Figure:
    """The purchase funnel over every hour shown."""
    stages = ["sessions", "viewed_product", "added_to_cart", "checked_out", "purchased"]
    totals = [int(hours[s].sum()) for s in stages]
    fig = go.Figure(go.Funnel(y=[s.replace("_", " ") for s in stages], x=totals, textinfo="value+percent initial"))
    return _styled(fig, "Purchase funnel")


def concurrent_viewers(minutes: pd.DataFrame) -> go.Figure:
    """Peak and average concurrent video viewers per minute."""
    long = minutes.melt(id_vars=["minute"], value_vars=["peak_viewers", "avg_viewers"], var_name="series", value_name="viewers")
    fig = px.line(long, x="minute", y="viewers", color="series", labels={"minute": ""})
    return _styled(fig, "Concurrent viewers")


def zone_heatmap(zones: pd.DataFrame) -> go.Figure:
    """Visitors of every zone per 15-minute window."""
    grid = zones.assign(zone=zones["zone_name"].fillna(zones["zone_id"])).pivot_table(
        index="zone", columns="window_start", values="visitors", aggfunc="sum", fill_value=0)
    fig = px.imshow(grid, aspect="auto", color_continuous_scale="YlOrRd", labels={"color": "visitors", "x": "", "y": ""})
    return _styled(fig, "Visitors per zone and 15 minutes")


def fleet_positions(devices: pd.DataFrame) -> go.Figure:
    """Each vehicle's last position, coloured by its engine temperature (no map tiles: offline)."""
    fig = px.scatter(devices.dropna(subset=["last_lat", "last_lon"]), x="last_lon", y="last_lat",
                     color="engine_temp_max_c", color_continuous_scale="RdYlBu_r",
                     hover_data=["device_id", "vehicle_type", "cargo_temp_max_c", "speed_avg_kmh"],
                     labels={"last_lon": "longitude", "last_lat": "latitude", "engine_temp_max_c": "engine °C"})
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return _styled(fig, "Fleet: last position and engine temperature")
