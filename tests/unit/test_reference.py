"""Reference data: seeded, consistent with what the simulators emit."""

from __future__ import annotations

import itertools

from kappalake.ingest.reference import CITIES, Reference
from kappalake.ingest.simulators.base import parse_ms
from kappalake.ingest.simulators.clickstream import ClickstreamSimulator
from kappalake.ingest.simulators.telemetry import TelemetrySimulator

START = parse_ms("2026-11-22T08:00:00Z")


def test_reference_data_is_seeded():
    a, b, c = Reference(42), Reference(42), Reference(43)
    assert a.products == b.products and a.zones == b.zones and a.bandwidth_plans == b.bandwidth_plans
    assert a.products != c.products
    assert len(Reference(42, 500).products) == 500


def test_catalog_zones_and_plans_are_well_formed():
    ref = Reference()
    assert len({p.product_id for p in ref.products}) == 200
    assert sorted(p.popularity_rank for p in ref.products) == list(range(1, 201))
    assert all(p.base_price > 0 for p in ref.products)
    assert len({z.zone_id for z in ref.zones}) == len(ref.zones) >= 10 and all(z.capacity > 0 for z in ref.zones)
    cities = {(p.country, p.city) for p in ref.bandwidth_plans}
    assert cities == {(c[0], c[1]) for c in CITIES}  # an offer for every city users come from
    assert len({p.plan_id for p in ref.bandwidth_plans}) == len(ref.bandwidth_plans)


def test_every_id_in_the_events_exists_in_the_dimensions():
    ref = Reference(7, 50)
    clicks = [e.event for e in itertools.islice(ClickstreamSimulator(ref, 1, START, rate=200), 20_000)]
    assert {e["product_id"] for e in clicks if e["product_id"]} <= {p.product_id for p in ref.products}
    plan_cities = {(p.country, p.city) for p in ref.bandwidth_plans}
    assert {(e["geo"]["country"], e["geo"]["city"]) for e in clicks} <= plan_cities
    telem = [e.event for e in itertools.islice(TelemetrySimulator(ref, 1, START, rate=50, people=800), 20_000)]
    zones = {e["zone_id"] for e in telem if e["zone_id"]}
    assert zones and zones <= {z.zone_id for z in ref.zones}
