"""Fault injection: each kind at its requested rate, recognisable afterwards, and really broken."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import pytest

from kappalake.ingest import contracts, simulators
from kappalake.ingest.faults import (EVENT_ID_HEADER, FAULT_HEADER, FAULT_KINDS, FIELD_HEADER, FaultInjector,
                                     FaultRates)
from kappalake.ingest.reference import Reference
from kappalake.ingest.simulators.base import parse_ms
from kappalake.ingest.simulators.clickstream import ClickstreamSimulator
from kappalake.ingest.simulators.telemetry import TelemetrySimulator

START = parse_ms("2026-11-22T08:00:00Z")
N = 30_000
RATE = 0.01


def stream(topic: str, n: int = N, seed: int = 1):
    sim = ClickstreamSimulator if topic == "clickstream" else TelemetrySimulator
    return list(itertools.islice(sim(Reference(), seed, START, rate=200), n))


def fault_of(rec) -> str | None:
    return dict(rec.headers).get(FAULT_HEADER, b"").decode() or None


@pytest.fixture(scope="module", params=["clickstream", "telemetry"])
def injected(request):
    topic = request.param
    clean = stream(topic)
    inj = FaultInjector(topic, FaultRates(**{k: RATE for k in FAULT_KINDS}, oversized_bytes=200_000), seed=3)
    return topic, clean, list(inj.apply(clean)), inj


def test_each_fault_kind_is_injected_at_its_rate(injected):
    _, clean, out, inj = injected
    marked = Counter(fault_of(r) for r in out if fault_of(r))
    sigma = math.sqrt(N * RATE * (1 - RATE))
    for kind in FAULT_KINDS:
        assert abs(marked[kind] - N * RATE) < 4 * sigma, (kind, marked[kind])
        assert inj.counts[kind] == marked[kind]
    # Resends add records, every other fault replaces the event it alters.
    resends = ("duplicate", "conflicting_resend")
    assert len(out) == N + marked["duplicate"] + marked["conflicting_resend"]
    assert sum(1 for r in out if not r.headers) == N - sum(v for k, v in marked.items() if k not in resends)


def test_clean_records_are_untouched_and_valid(injected):
    topic, clean, out, _ = injected
    originals = {e.event["event_id"]: e for e in clean}
    plain = [r for r in out if not r.headers]
    assert all(r.value is originals[r.value["event_id"]].event for r in plain)
    assert all(contracts.validation_errors(topic, r.value) == [] for r in plain[::10])


def test_every_fault_is_recognisable_and_broken_as_claimed(injected):
    topic, clean, out, _ = injected
    originals = {e.event["event_id"]: e.event for e in clean}
    position = {}
    for i, r in enumerate(out):
        if not r.headers:
            position[r.value["event_id"]] = i
    seen = Counter()
    for i, r in enumerate(out):
        kind = fault_of(r)
        if not kind:
            continue
        h = dict(r.headers)
        source = originals[h[EVENT_ID_HEADER].decode()]
        assert r.key == source[contracts.kafka_key_field(topic)]
        seen[kind] += 1
        if kind == "duplicate":
            assert r.value == source and position[source["event_id"]] < i  # the original went first
        elif kind == "conflicting_resend":
            moved = parse_ms(source["event_time"]) - parse_ms(r.value["event_time"])
            assert 1 <= moved <= 999 and dict(r.value, event_time=source["event_time"]) == source
            assert position[source["event_id"]] < i and contracts.validation_errors(topic, r.value) == []
        elif kind == "late":
            lag = parse_ms(r.value["sent_at"]) - parse_ms(r.value["event_time"])
            assert 2 * 60_000 <= lag <= 31 * 60_000 and contracts.validation_errors(topic, r.value) == []
        elif kind == "out_of_order":
            assert r.value == source and contracts.validation_errors(topic, r.value) == []
            # Released when an input event is due after it: that event (whose due time may jump
            # ahead, the simulators' send times jitter) comes out right after the released ones.
            later = [o for o in out[max(0, i - 400):i + 20] if not o.headers]
            assert any(parse_ms(o.value["event_time"]) > parse_ms(source["event_time"]) for o in later)
        elif kind == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(r.value)
        elif kind == "non_utf8":
            with pytest.raises(UnicodeDecodeError):
                r.value.decode("utf-8")
            assert h[FIELD_HEADER].decode() in ("page", "device_id")
        elif kind == "oversized":
            assert len(json.dumps(r.value)) > 200_000
        elif kind in ("future_time", "bad_timestamp", "implausible_value"):
            # The contract accepts these; the silver expectations are what catch them.
            assert contracts.validation_errors(topic, r.value) == [], (kind, r.value)
            name = h[FIELD_HEADER].decode()
            if kind == "future_time":
                assert 3_600_000 <= parse_ms(r.value["event_time"]) - parse_ms(source["event_time"]) <= 48 * 3_600_000
            elif kind == "bad_timestamp":
                t = r.value["event_time"]
                assert t[:4] in ("0001", "1970") or t[5:7] == "13" or t[5:10] == "02-30"
            else:
                field, (low, _) = simulators.get(topic).implausible
                assert name == field and r.value[name] >= low
        else:
            errors = contracts.validation_errors(topic, r.value)
            assert errors, (kind, r.value)
            name = h[FIELD_HEADER].decode()
            if kind == "missing_field":
                assert name not in r.value and name in contracts.required_fields(topic)
            elif kind == "wrong_type":
                assert type(r.value[name]) is not type(source[name])
            elif kind == "extra_field":
                assert set(name.split(",")) == set(r.value) - set(source)
    assert set(seen) == set(FAULT_KINDS)


def test_injection_is_seeded_and_off_by_default():
    clean = stream("clickstream", 3000)
    rates = FaultRates.uniform(0.02)
    a = list(FaultInjector("clickstream", rates, seed=9).apply(clean))
    b = list(FaultInjector("clickstream", rates, seed=9).apply(clean))
    assert a == b
    plain = list(FaultInjector("clickstream", FaultRates(), seed=9).apply(clean))
    assert [r.value for r in plain] == [e.event for e in clean] and not any(r.headers for r in plain)


def test_rates_are_validated():
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultRates(late=1.5)
    with pytest.raises(ValueError, match="add up to 1.300"):
        FaultRates.uniform(0.1)
