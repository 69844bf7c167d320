"""The simulators behave like the systems they imitate, and seeded runs are reproducible."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict

import pytest

from kappalake.ingest.reference import Reference
from kappalake.ingest.simulators.base import Shard, diurnal_factor, parse_ms
from kappalake.ingest.simulators.clickstream import ClickstreamSimulator
from kappalake.ingest.simulators.telemetry import ENGINE_NORMAL_C, REEFER_NORMAL_C, TelemetrySimulator

START = parse_ms("2026-11-22T08:00:00Z")
REF = Reference()


def clicks(n: int, seed: int = 1, **kw):
    return list(itertools.islice(ClickstreamSimulator(REF, seed, START, **kw), n))


def telemetry(n: int, seed: int = 1, **kw):
    sim = TelemetrySimulator(REF, seed, START, **kw)
    return sim, list(itertools.islice(sim, n))


@pytest.fixture(scope="module")
def click_events():
    # No warm start: every session is seen from its landing page on.
    return [e.event for e in clicks(60_000, rate=300, warm_start=False)]


def test_seeded_runs_are_reproducible_and_seeds_differ():
    assert clicks(2000, seed=5, rate=100) == clicks(2000, seed=5, rate=100)
    assert telemetry(2000, seed=5)[1] == telemetry(2000, seed=5)[1]
    assert clicks(50, seed=5, rate=100) != clicks(50, seed=6, rate=100)
    assert telemetry(50, seed=5)[1] != telemetry(50, seed=6)[1]


def test_events_come_in_event_time_order_at_the_requested_rate():
    for events in (clicks(20_000, rate=400), telemetry(20_000, rate=400)[1]):
        times = [parse_ms(e.event["event_time"]) for e in events]
        assert times == sorted(times) and times[0] >= START
        # Warm start: the rate over the run is close to the target from the first second.
        seconds = (times[-1] - times[0]) / 1000
        assert 340 < len(times) / seconds < 460
        assert all(e.due_ms >= parse_ms(e.event["event_time"]) for e in events)


def test_keys_are_the_contract_key_fields():
    assert all(e.key == e.event["user_id"] for e in clicks(3000))
    assert all(e.key == e.event["device_id"] for e in telemetry(3000)[1])


def test_sessions_walk_a_funnel_with_drop_off(click_events):
    types = Counter(e["event_type"] for e in click_events)
    assert types["page_view"] > types["add_to_cart"] > types["checkout"] > types["purchase"] > 0
    assert types["video_play"] > 0 and types["buffering"] > 0 and types["error"] > 0 and types["search"] > 0
    sessions = defaultdict(list)
    for e in click_events:
        sessions[e["session_id"]].append(e)
    converted = sum(any(e["event_type"] == "purchase" for e in s) for s in sessions.values())
    assert 0.005 < converted / len(sessions) < 0.2  # most sessions drop off before buying
    for s in sessions.values():
        assert len({e["user_id"] for e in s}) == 1
        purchases = [i for i, e in enumerate(s) if e["event_type"] == "purchase"]
        if purchases:  # every purchase follows a checkout in its session
            assert any(e["event_type"] == "checkout" for e in s[: purchases[0]])


def test_product_popularity_is_skewed_and_prices_follow_the_catalog(click_events):
    views = Counter(e["product_id"] for e in click_events if e["event_type"] == "page_view" and e["product_id"])
    top = sum(n for _, n in views.most_common(len(REF.products) // 10))
    assert top / sum(views.values()) > 0.4  # top 10% of products get most of the attention
    base = {p.product_id: p.base_price for p in REF.products}
    for e in click_events:
        if e["event_type"] in ("add_to_cart", "purchase"):
            assert e["product_id"] in base and 0.69 * base[e["product_id"]] <= e["price"] <= base[e["product_id"]] + 0.01
            assert e["quantity"] >= 1


def test_users_keep_their_device_geo_and_ip(click_events):
    by_user = defaultdict(set)
    for e in click_events:
        by_user[e["user_id"]].add((e["device"], e["app"], e["ip"], e["geo"]["city"]))
    assert all(len(v) == 1 for v in by_user.values())
    cities = {(c, city) for c, city, *_ in __import__("kappalake.ingest.reference", fromlist=["CITIES"]).CITIES}
    assert {(e["geo"]["country"], e["geo"]["city"]) for e in click_events} <= cities


def test_incidents_raise_error_rates_in_their_area():
    sim = ClickstreamSimulator(REF, 3, START, rate=100, incidents_per_hour=12)
    events = [e.event for e in itertools.islice(sim, 100_000)]
    assert sim.incidents
    inc = max(sim.incidents, key=lambda i: i.end_ms - i.start_ms)
    inside = [e for e in events if inc.start_ms <= parse_ms(e["event_time"]) < inc.end_ms and e["page"].startswith(inc.area)]
    outside = [e for e in events if not e["page"].startswith(inc.area)]
    bad = "error" if inc.kind == "errors" else "buffering"
    share_in = sum(e["event_type"] == bad for e in inside) / max(1, len(inside))
    share_out = sum(e["event_type"] == bad for e in outside) / len(outside)
    assert share_in > 2 * share_out


def test_diurnal_shape_peaks_in_the_evening():
    assert diurnal_factor(parse_ms("2026-11-22T20:00:00Z")) > 3 * diurnal_factor(parse_ms("2026-11-22T04:00:00Z"))
    day = [diurnal_factor(parse_ms("2026-11-22T00:00:00Z") + h * 3_600_000) for h in range(24)]
    assert statistics.mean(day) == pytest.approx(1.0, abs=0.02)
    sim = ClickstreamSimulator(REF, 1, parse_ms("2026-11-22T00:00:00Z"), rate=2, users=500, diurnal=True)
    hours = Counter(int(e.event["event_time"][11:13]) for e in itertools.islice(sim, 170_000)
                    if e.event["event_time"] < "2026-11-23")
    assert hours[20] > 2.5 * hours[4]


def test_vehicles_drive_routes_burn_fuel_and_park():
    _, events = telemetry(100_000, rate=250, devices=50, people=0)
    by_dev = defaultdict(list)
    for e in events:
        by_dev[e.event["device_id"]].append(e.event)
    assert len(by_dev) == 50
    kinds = Counter(e[0]["vehicle_type"] for e in by_dev.values())
    assert set(kinds) == {"fuel_truck", "reefer_truck", "taxi"}
    moved = parked = 0
    for readings in by_dev.values():
        odo = [r["odometer_km"] for r in readings]
        assert odo == sorted(odo)  # never runs backwards
        moved += odo[-1] - odo[0] > 0.5
        parked += any(r["parked"] for r in readings)
        assert all(r["speed_kmh"] == 0 for r in readings if r["parked"] and r["speed_kmh"] < 1)
        if readings[0]["vehicle_type"] == "taxi":
            assert all(r["cargo_temp_c"] is None for r in readings)
    assert moved >= 45 and parked >= 10


def test_temperatures_run_hot_for_tens_of_seconds_then_recover():
    sim, events = telemetry(150_000, rate=500, devices=40, people=0, hot_per_hour=6)
    assert sim.episodes
    by_dev = defaultdict(list)
    for e in events:
        by_dev[e.event["device_id"]].append(e.event)
    end = parse_ms(events[-1].event["event_time"])
    checked = 0
    for ep in sim.episodes:
        if ep.end_ms + 30_000 > end:
            continue
        assert 15_000 <= ep.end_ms - ep.start_ms <= 90_000
        field, (lo, hi) = ("engine_temp_c", ENGINE_NORMAL_C) if ep.sensor == "engine" else ("cargo_temp_c", REEFER_NORMAL_C)
        readings = [(parse_ms(r["event_time"]), r[field]) for r in by_dev[ep.device_id]]
        during = [v for t, v in readings if ep.start_ms + 5_000 <= t < ep.end_ms]
        after = [v for t, v in readings if ep.end_ms + 20_000 <= t < ep.end_ms + 30_000]
        assert during and min(during) > hi  # out of band for the whole episode
        assert after and max(after) < hi  # back to normal afterwards
        checked += 1
    assert checked >= 3
    # Outside episodes readings stay inside the normal band.
    hot_devices = {ep.device_id for ep in sim.episodes}
    calm = [e.event["engine_temp_c"] for e in events if e.event["device_id"] not in hot_devices]
    assert ENGINE_NORMAL_C[0] < min(calm) and max(calm) < ENGINE_NORMAL_C[1]


def test_every_seed_simulates_the_same_fleet():
    def normals(seed):
        sim, _ = telemetry(1, seed=seed, devices=10, people=0)
        return {v.device_id: (v.vehicle_type, v.engine_base, v.cargo_base) for v in sim.vehicles}

    assert normals(1) == normals(2)  # a detector's learnt baseline holds across producer runs


def test_people_move_between_zones_in_and_out():
    _, events = telemetry(40_000, rate=80, devices=20, people=600)
    badges = [e.event for e in events if e.event["device_kind"] == "badge_sensor"]
    assert len(badges) > 300
    zone_ids = {z.zone_id for z in REF.zones}
    assert {b["zone_id"] for b in badges} <= zone_ids and len({b["zone_id"] for b in badges}) >= 8
    assert all(b["device_id"].startswith(f"badge-{b['zone_id']}-") for b in badges)
    per_badge = defaultdict(list)
    for b in badges:
        per_badge[b["badge_id"]].append(b)
    for passes in per_badge.values():
        ins = [p for p in passes if p["direction"] == "in"]
        # An "out" is always from the zone the badge last entered.
        for prev, nxt in zip(passes, passes[1:]):
            if nxt["direction"] == "out" and prev["direction"] == "in":
                assert nxt["zone_id"] == prev["zone_id"]
        assert len(ins) <= len(passes)
    assert any(len({p["zone_id"] for p in v}) > 1 for v in per_badge.values())


def test_shards_partition_the_keys():
    a = {e.key for e in itertools.islice(ClickstreamSimulator(REF, 1, START, 100, 1000, shard=Shard(0, 2)), 5000)}
    b = {e.key for e in itertools.islice(ClickstreamSimulator(REF, 1, START, 100, 1000, shard=Shard(1, 2)), 5000)}
    assert a and b and not a & b
    ta = {e.key for e in itertools.islice(TelemetrySimulator(REF, 1, START, devices=30, shard=Shard(0, 2)), 5000)}
    tb = {e.key for e in itertools.islice(TelemetrySimulator(REF, 1, START, devices=30, shard=Shard(1, 2)), 5000)}
    assert ta and tb and not ta & tb
    assert not any(k.startswith("badge-") for k in tb)  # badge sensors have a single writer


def test_a_scenario_spans_the_whole_run_in_every_producer_process():
    from kappalake.ingest.producer import ProduceSpec

    for spec in (ProduceSpec("telemetry", count=6000, seed=1, scenario="hot-truck"),
                 ProduceSpec("telemetry", count=6000, seed=1, rate=20, scenario="hot-truck"),
                 ProduceSpec("telemetry", count=6000, seed=1, span=600, scenario="hot-truck")):
        assert {s.span_ms() for s in spec.split(3)} == {spec.span_ms()}, spec
    assert ProduceSpec("telemetry", count=6000, seed=1, span=600).span_ms() == 600_000


@pytest.mark.parametrize("devices", [20, 200])  # the demo's vehicles report every ~11 s; 200 of them every ~106 s
def test_hot_truck_excursions_alert_at_any_reporting_period(devices):
    """The scenario's two long excursions each last at least six of the vehicle's readings, so the
    10 s rule (conf/base.yaml's limits: engine above 100 C, reefer cargo outside 1..7 C) sees them
    on every seed however slowly the fleet reports; the 4 s blip never alerts."""
    from kappalake.transforms.episodes import EpisodeRules, Episodes

    span = 1_800_000  # the demo: 5,000 events over 30 minutes, 400 badge holders
    limits = {"engine_temp_c": (None, 100.0), "cargo_temp_c": (1.0, 7.0)}
    for seed in range(1, 11):
        sim = TelemetrySimulator(REF, seed, START, rate=5000 / 1800, devices=devices, people=400,
                                 scenario="hot-truck", span_ms=span)
        machines: dict[tuple[str, str], Episodes] = {}
        opened = set()
        for e in sim:
            r = e.event
            if parse_ms(r["event_time"]) > START + span:
                break
            if r["device_kind"] != "vehicle":
                continue
            for metric, (low, high) in limits.items():
                if r.get(metric) is None or (metric == "cargo_temp_c" and r["vehicle_type"] != "reefer_truck"):
                    continue
                key = (r["device_id"], metric)
                m = machines.setdefault(key, Episodes(EpisodeRules("temperature", metric), r["device_id"]))
                if any(x["event"] == "open" for x in m.feed(parse_ms(r["event_time"]), r[metric], low, high)):
                    opened.add(key)
        assert opened == {("truck-0000", "engine_temp_c"), ("reefer-0005", "cargo_temp_c")}, (seed, sim.period_ms)


def test_topics_are_looked_up_in_the_registry_and_chaos_chains_come_from_the_config():
    from pathlib import Path

    from kappalake.config import load_config
    from kappalake.errors import ConfigError
    from kappalake.ingest import simulators
    from kappalake.ingest.producer import ProduceSpec, simulate
    from kappalake.ops.chaos import chain

    cfg = load_config("local", Path(__file__).resolve().parents[2] / "conf")
    assert simulators.topics() == ["clickstream", "signups", "telemetry"]
    assert simulators.get("telemetry").scenarios == ("hot-truck",)
    first = next(simulate(cfg, ProduceSpec("clickstream", count=1, seed=3)))
    assert first.key == first.event["user_id"]
    with pytest.raises(ConfigError, match="no simulator for topic 'orders'; simulators exist for clickstream, signups, telemetry"):
        simulate(cfg, ProduceSpec("orders", count=1, seed=3))
    with pytest.raises(ValueError, match="scenario 'hot-truck' is not one of clickstream's"):
        ProduceSpec("clickstream", count=1, scenario="hot-truck")
    assert chain(cfg, "clickstream") == ["bronze_clickstream", "silver_clickstream", "gold_page_minute"]
    assert chain(cfg, "telemetry") == ["bronze_telemetry", "silver_telemetry", "gold_device_minute"]
    with pytest.raises(ConfigError, match="chaos --topic alerts"):
        chain(cfg, "alerts")
