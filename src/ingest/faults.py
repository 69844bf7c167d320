"""Fault injection: turn a clean simulated stream into the messy one real producers send.

Every injected record carries Kafka headers ``kl-fault`` (the fault kind), ``kl-event-id``
(the event it was derived from) and, where a field was tampered with, ``kl-field``. Bronze
keeps headers, so tests can prove where each bad record ended up even when its payload is
unreadable. Clean records carry no headers.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kappalake.ingest import contracts, simulators
from kappalake.ingest.simulators.base import SimEvent, iso_ms, parse_ms

FAULT_KINDS = ("duplicate", "late", "out_of_order", "malformed_json", "wrong_type", "missing_field",
               "extra_field", "oversized", "non_utf8", "future_time", "bad_timestamp", "implausible_value", "conflicting_resend")
FAULT_HELP = {
    "duplicate": "resend an event (same event_id) a few records later",
    "late": "event_time 2-30 minutes in the past",
    "out_of_order": "hold an event back 2-30 s, so newer events overtake it",
    "malformed_json": "truncated or broken JSON",
    "wrong_type": "one field with the wrong JSON type (e.g. a number as text)",
    "missing_field": "one required field left out",
    "extra_field": "unknown fields added (schema drift)",
    "oversized": "a ~600 KB field added (below Kafka's 1 MiB limit)",
    "non_utf8": "Latin-1 bytes inside a string (not valid UTF-8)",
    "future_time": "event_time 1-48 hours ahead of when it is sent (a device clock gone wrong)",
    "bad_timestamp": "event_time that is no date (2026-02-30, month 13) or an absurd one (year 1, 1970)",
    "implausible_value": "a well-typed but impossible value (price in the millions, speed over 500 km/h)",
    "conflicting_resend": "resend an event's event_id with other content (event_time 1-999 ms earlier) a few records later",
}
FAULT_HEADER = "kl-fault"
EVENT_ID_HEADER = "kl-event-id"
FIELD_HEADER = "kl-field"
DRIFT_FIELDS = [("experiment_bucket", lambda r: r.randrange(100)), ("ab_variant", lambda r: r.choice("ABC")),
                ("client_hints", lambda r: {"dpr": r.choice([1, 2, 3]), "lang": r.choice(["de", "en", "fr"])}),
                ("consent_v2", lambda r: r.random() < 0.8)]


@dataclass(frozen=True, slots=True)
class Record:
    """What the producer sends: key, value (dict to serialise as JSON, or raw bytes), headers."""

    key: str
    value: dict[str, Any] | bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    due_ms: int = 0  # simulated send time, for pacing


@dataclass(frozen=True)
class FaultRates:
    """Fraction of events that get each fault (at most one fault per event; sum <= 1)."""

    duplicate: float = 0.0
    late: float = 0.0
    out_of_order: float = 0.0
    malformed_json: float = 0.0
    wrong_type: float = 0.0
    missing_field: float = 0.0
    extra_field: float = 0.0
    oversized: float = 0.0
    non_utf8: float = 0.0
    future_time: float = 0.0
    bad_timestamp: float = 0.0
    implausible_value: float = 0.0
    conflicting_resend: float = 0.0
    late_minutes: tuple[float, float] = (2.0, 30.0)
    out_of_order_seconds: tuple[float, float] = (2.0, 30.0)
    oversized_bytes: int = 600_000  # below Kafka's default 1 MiB message limit, far above any real event

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            r = getattr(self, kind)
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"fault rate {kind}={r} must be between 0 and 1")
        if self.total > 1.0:
            raise ValueError(f"fault rates add up to {self.total:.3f}; at most one fault per event, so the sum must be <= 1")

    @property
    def total(self) -> float:
        return sum(getattr(self, k) for k in FAULT_KINDS)

    @classmethod
    def uniform(cls, rate: float) -> "FaultRates":
        """The same rate for every kind."""
        return cls(**{k: rate for k in FAULT_KINDS})


@dataclass
class FaultInjector:
    """Applies :class:`FaultRates` to a stream of :class:`SimEvent`; counts what it injected."""

    topic: str
    rates: FaultRates
    seed: int | str = 0
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"faults/{self.seed}")
        self._cum = []
        acc = 0.0
        for kind in FAULT_KINDS:
            acc += getattr(self.rates, kind)
            self._cum.append((acc, kind))
        schema = contracts.schema(self.topic)
        self._required = [f for f in schema["required"] if f != "schema_version"]
        self._typed = {name: contracts.json_type(p) for name, p in schema["properties"].items()}

    def apply(self, events: Iterable[SimEvent], limit: int | None = None) -> Iterator[Record]:
        """Clean records pass through; the chosen ones are altered, resent or held back.

        With ``limit`` exactly that many records come out: input stops early enough that the
        duplicates and held-back records still pending fit, and those are flushed at the end
        (so every fault counted in :attr:`counts` is really sent).
        """
        held: list[tuple[int, int, Record]] = []  # out-of-order records released at due_ms
        resend: list[tuple[int, int, Record]] = []  # duplicates resent a few records later
        seq = emitted = 0
        last_due = 0
        active = self.rates.total > 0
        for ev in events:
            if limit is not None and emitted + len(held) + len(resend) >= limit:
                break
            seq += 1
            last_due = ev.due_ms
            while held and held[0][0] <= ev.due_ms:
                emitted += 1
                yield heapq.heappop(held)[2]
            while resend and resend[0][0] <= seq:
                emitted += 1
                yield heapq.heappop(resend)[2]
            room = None if limit is None else limit - emitted - len(held) - len(resend)
            kind = self._draw() if active and (room is None or room > 0) else None
            if kind in ("duplicate", "conflicting_resend") and room is not None and room < 2:
                kind = None
            if kind is None:
                if room is None or room > 0:
                    emitted += 1
                    yield Record(ev.key, ev.event, (), ev.due_ms)
                continue
            self.counts[kind] += 1
            if kind in ("duplicate", "conflicting_resend"):
                emitted += 1
                yield Record(ev.key, ev.event, (), ev.due_ms)
                rec = self._mark(ev, ev.event, kind) if kind == "duplicate" else self._conflicting_resend(ev)
                heapq.heappush(resend, (seq + self.rng.randint(1, 200), seq, rec))
            elif kind == "out_of_order":
                delay = int(self.rng.uniform(*self.rates.out_of_order_seconds) * 1000)
                rec = self._mark(ev, ev.event, kind)
                heapq.heappush(held, (ev.due_ms + delay, seq, Record(rec.key, rec.value, rec.headers, ev.due_ms + delay)))
            else:
                emitted += 1
                yield getattr(self, f"_{kind}")(ev)
        # End of input: send what is still pending now rather than waiting for its due time.
        while resend:
            yield _due(heapq.heappop(resend)[2], last_due)
        while held:
            yield _due(heapq.heappop(held)[2], last_due)

    def _draw(self) -> str | None:
        r = self.rng.random()
        for acc, kind in self._cum:
            if r < acc:
                return kind
        return None

    def _mark(self, ev: SimEvent, value: dict[str, Any] | bytes, kind: str, field_name: str | None = None) -> Record:
        headers = [(FAULT_HEADER, kind.encode()), (EVENT_ID_HEADER, str(ev.event.get("event_id", "")).encode())]
        if field_name:
            headers.append((FIELD_HEADER, field_name.encode()))
        return Record(ev.key, value, tuple(headers), ev.due_ms)

    # -- one method per kind (names match FAULT_KINDS) ---------------------------------------

    def _conflicting_resend(self, ev: SimEvent) -> Record:
        moved = iso_ms(parse_ms(ev.event["event_time"]) - self.rng.randint(1, 999))
        return self._mark(ev, dict(ev.event, event_time=moved), "conflicting_resend", "event_time")

    def _late(self, ev: SimEvent) -> Record:
        minutes = self.rng.uniform(*self.rates.late_minutes)
        body = dict(ev.event, event_time=iso_ms(parse_ms(ev.event["event_time"]) - int(minutes * 60_000)))
        return self._mark(ev, body, "late", "event_time")

    def _malformed_json(self, ev: SimEvent) -> Record:
        text = _json(ev.event)
        cut = self.rng.randrange(1, len(text) - 1)
        broken = self.rng.choice([
            text[:cut],                       # truncated
            text.replace('":', '"=', 1),      # key/value separator mangled
            "{'" + text[2:].replace('"', "'", 1),  # single-quoted key, as in a Python repr
        ])
        return self._mark(ev, broken.encode(), "malformed_json")

    def _wrong_type(self, ev: SimEvent) -> Record:
        name = self.rng.choice([k for k, v in ev.event.items() if v is not None and k in self._typed])
        value = ev.event[name]
        kind = self._typed[name]
        if kind in ("number", "integer"):
            bad: Any = self.rng.choice([str(value), "n/a", "12,5"])
        elif kind == "boolean":
            bad = self.rng.choice(["yes", "1", 1])
        elif kind == "object":
            bad = json.dumps(value)
        elif name in ("event_time", "sent_at"):
            bad = parse_ms(value)  # epoch millis instead of ISO text
        else:
            bad = self.rng.choice([12345, True, [value]])
        return self._mark(ev, dict(ev.event, **{name: bad}), "wrong_type", name)

    def _missing_field(self, ev: SimEvent) -> Record:
        name = self.rng.choice(self._required)
        body = {k: v for k, v in ev.event.items() if k != name}
        return self._mark(ev, body, "missing_field", name)

    def _extra_field(self, ev: SimEvent) -> Record:
        extra = dict(self.rng.sample(DRIFT_FIELDS, self.rng.randint(1, 2)))
        body = dict(ev.event, **{k: make(self.rng) for k, make in extra.items()})
        return self._mark(ev, body, "extra_field", ",".join(extra))

    def _oversized(self, ev: SimEvent) -> Record:
        blob = "x" * self.rates.oversized_bytes
        return self._mark(ev, dict(ev.event, debug_trace=blob), "oversized", "debug_trace")

    def _non_utf8(self, ev: SimEvent) -> Record:
        # A client that encodes text as Latin-1 / cp1252: bytes that are not valid UTF-8.
        name = next(k for k in ("page", "device_id", "user_id") if k in ev.event)
        marker = "@@kl-non-utf8@@"
        raw = _json(dict(ev.event, **{name: marker})).encode()
        mangled = f"{ev.event[name]}-Zürich-café".encode("latin-1")
        return self._mark(ev, raw.replace(marker.encode(), mangled), "non_utf8", name)


    def _future_time(self, ev: SimEvent) -> Record:
        hours = self.rng.uniform(1, 48)
        body = dict(ev.event, event_time=iso_ms(parse_ms(ev.event["event_time"]) + int(hours * 3_600_000)))
        return self._mark(ev, body, "future_time", "event_time")

    def _bad_timestamp(self, ev: SimEvent) -> Record:
        t = ev.event["event_time"]  # 2026-11-25T16:31:40.998Z: the contract's pattern still matches
        bad = self.rng.choice([t[:5] + "02-30" + t[10:], t[:5] + "13" + t[7:], "0001" + t[4:], "1970" + t[4:]])
        return self._mark(ev, dict(ev.event, event_time=bad), "bad_timestamp", "event_time")

    def _implausible_value(self, ev: SimEvent) -> Record:
        name, (lo, hi) = simulators.get(self.topic).implausible  # the field and range its simulator names
        return self._mark(ev, dict(ev.event, **{name: round(self.rng.uniform(lo, hi), 1)}), "implausible_value", name)


def _due(rec: Record, due_ms: int) -> Record:
    return Record(rec.key, rec.value, rec.headers, min(rec.due_ms, due_ms))


def _json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
