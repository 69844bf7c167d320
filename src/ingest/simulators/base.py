"""Discrete-event simulation core shared by the clickstream and telemetry simulators.

Actors (user sessions, vehicles, people) are callbacks scheduled on a heap by simulated time
in milliseconds; each callback may emit events and reschedule itself. Events therefore come
out in event-time order, and a seeded run with a fixed start is reproducible to the byte.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Relative activity per UTC hour (mean 1.0): consumer traffic peaks in the evening,
# campus traffic during the working day.
_EVENING = [0.45, 0.30, 0.22, 0.18, 0.17, 0.22, 0.38, 0.60, 0.80, 0.90, 0.95, 1.00,
            1.10, 1.05, 1.00, 1.00, 1.05, 1.15, 1.35, 1.60, 1.75, 1.65, 1.25, 0.80]
_WORKDAY = [0.10, 0.08, 0.08, 0.08, 0.10, 0.20, 0.50, 1.30, 2.20, 1.90, 1.60, 1.70,
            2.10, 1.80, 1.60, 1.50, 1.60, 1.90, 1.40, 0.80, 0.45, 0.30, 0.20, 0.14]
CURVES = {name: [v * 24 / sum(c) for v in c] for name, c in (("evening", _EVENING), ("workday", _WORKDAY))}


def diurnal_factor(t_ms: int, curve: str = "evening") -> float:
    """Activity multiplier at ``t_ms`` (epoch ms), linear between hourly points, mean 1 per day."""
    c = CURVES[curve]
    hours = (t_ms / 3_600_000) % 24
    h = int(hours)
    frac = hours - h
    return c[h] * (1 - frac) + c[(h + 1) % 24] * frac


def iso_ms(t_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds: ``2026-11-22T08:00:00.123Z``."""
    return (EPOCH + timedelta(milliseconds=t_ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("simulation start must be timezone-aware (UTC)")
    return int((ts - EPOCH) / timedelta(milliseconds=1))


def parse_ms(text: str) -> int:
    """ISO-8601 timestamp (``Z`` or offset) to epoch ms."""
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One generated event: sent at ``due_ms`` (simulated), Kafka key, contract-valid body."""

    due_ms: int
    key: str
    event: dict[str, Any]


@dataclass(frozen=True)
class Shard:
    """This process simulates ids ``index, index + count, ...`` (parallel producers never share a key)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} not in [0, {self.count})")

    def ids(self, total: int) -> range:
        return range(self.index, total, self.count)


class WeightedChoice:
    """O(log n) draws from a fixed weighted population (bisect over cumulative weights)."""

    def __init__(self, items: list[Any], weights: list[float]):
        self.items = items
        self.cum = list(accumulate(weights))

    def draw(self, rng: random.Random) -> Any:
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


class Simulation:
    """Heap of ``(time_ms, seq, callback)``; iterate to run it. Subclasses schedule actors."""

    def __init__(self, seed: int | str, start_ms: int):
        self.rng = random.Random(seed)
        self.start_ms = start_ms
        self.now_ms = start_ms
        self._heap: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = 0
        self._out: list[SimEvent] = []

    def schedule(self, t_ms: int, callback: Callable[[int], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t_ms, self._seq, callback))

    def emit(self, key: str, event: dict[str, Any], sent_ms: int) -> None:
        self._out.append(SimEvent(sent_ms, key, event))

    def event_id(self) -> str:
        """A random (version 4) UUID drawn from the seeded generator."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def __iter__(self) -> Iterator[SimEvent]:
        heap, out = self._heap, self._out
        while heap:
            t, _, callback = heapq.heappop(heap)
            self.now_ms = t
            callback(t)
            if out:
                yield from out
                out.clear()
