"""Seeded generators of clickstream and telemetry events (plain dicts, JSON-ready).

Deliberately small: enough realistic shape for ingestion. The full simulators (funnels,
routes, fault injection) build on the same ``(key, event)`` iterator interface.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

SCHEMA_VERSION = 1
CLICK_TYPES = ["page_view"] * 6 + ["click"] * 3 + ["search", "add_to_cart", "purchase", "video_play", "buffering", "error"]
PAGES = ["/", "/search", "/product", "/cart", "/checkout", "/account", "/watch"]
DEVICES = ["web", "ios", "android", "tv"]
ROADS = ["dry", "wet", "icy", "snow"]


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clickstream_events(count: int, seed: int = 7, users: int = 500, start: datetime | None = None) -> Iterator[tuple[str, dict]]:
    """``count`` clickstream events keyed by user_id."""
    rng = random.Random(seed)
    t = start or datetime.now(timezone.utc)
    for _ in range(count):
        t += timedelta(milliseconds=rng.randint(0, 20))
        user = f"u{rng.randrange(users):06d}"
        etype = rng.choice(CLICK_TYPES)
        product = f"p{rng.randrange(200):04d}" if etype in ("click", "add_to_cart", "purchase") or rng.random() < 0.3 else None
        event = {
            "schema_version": SCHEMA_VERSION,
            "event_id": _event_id(rng),
            "event_type": etype,
            "user_id": user,
            "session_id": f"{user}-s{rng.randrange(5)}",
            "device": rng.choice(DEVICES),
            "page": rng.choice(PAGES),
            "product_id": product,
            "price": round(rng.uniform(5, 300), 2) if etype == "purchase" else None,
            "quantity": rng.randint(1, 3) if etype in ("add_to_cart", "purchase") else None,
            "event_time": _iso(t),
            "sent_at": _iso(t + timedelta(milliseconds=rng.randint(1, 50))),
        }
        yield user, event


def telemetry_events(count: int, seed: int = 11, devices: int = 50, start: datetime | None = None) -> Iterator[tuple[str, dict]]:
    """``count`` vehicle telemetry readings keyed by device_id."""
    rng = random.Random(seed)
    t = start or datetime.now(timezone.utc)
    for _ in range(count):
        t += timedelta(milliseconds=rng.randint(0, 20))
        device = f"truck-{rng.randrange(devices):04d}"
        event = {
            "schema_version": SCHEMA_VERSION,
            "event_id": _event_id(rng),
            "device_id": device,
            "vehicle_type": "fuel_truck",
            "event_time": _iso(t),
            "lat": round(47.0 + rng.uniform(-0.5, 0.5), 6),
            "lon": round(8.0 + rng.uniform(-0.5, 0.5), 6),
            "speed_kmh": round(max(0.0, rng.gauss(60, 20)), 1),
            "engine_temp_c": round(rng.gauss(90, 4), 1),
            "cargo_temp_c": round(rng.gauss(4, 1), 1),
            "fuel_level_pct": round(rng.uniform(5, 100), 1),
            "road_condition": rng.choice(ROADS),
            "parked": rng.random() < 0.1,
        }
        yield device, event


GENERATORS = {"clickstream": clickstream_events, "telemetry": telemetry_events}
