"""Episodes of a value outside its normal band: the state machine behind the anomaly detectors.

Pure Python over one key's readings in event-time order, so the streaming detector
(``applyInPandasWithState``) and the batch one (``applyInPandas``) run the very same code.

A reading is *out of band* when it is outside its static band (``low``/``high``, either may be
missing) or, once the key's baseline has ``min_samples`` readings, more than ``k`` standard
deviations from the baseline mean (an exponentially weighted mean and variance of the in-band
readings; out-of-band readings never move it). A run of consecutive out-of-band readings is an
episode; it **opens** an alert when its out-of-band span (last minus first out-of-band reading)
reaches ``min_duration_ms``, and **closes** it at the first in-band reading or when the key
falls silent for ``idle_ms`` (then the baseline is forgotten too, so state stays bounded).
Runs shorter than ``min_duration_ms`` raise nothing. A deviation from the baseline alone (inside
the static band) that lasts ``baseline_reset_ms`` is the key's new normal: the alert closes
(reason ``new_normal``) and the baseline is learnt again from there, so a lasting shift (a
different load, a recalibrated sensor) does not hold an alert open for ever. A reading at the same instant as the
previous one is a repeat and is ignored.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EpisodeRules:
    """How one metric's readings are judged."""

    kind: str
    metric: str
    min_duration_ms: int = 10_000
    idle_ms: int = 300_000
    baseline_k: float | None = None  # None: static band only
    baseline_alpha: float = 0.05
    baseline_min_samples: int = 30
    min_std: float = 0.0
    baseline_reset_ms: int | None = None  # None: a baseline deviation stays an alert while it lasts
    severity: str = "warning"


def alert_id(kind: str, entity: str, metric: str, started_ms: int) -> str:
    """Deterministic id of an episode: the same in a stream, a replay and a batch re-run."""
    return hashlib.sha1(f"{kind}|{entity}|{metric}|{started_ms}".encode()).hexdigest()[:20]


class Episodes:
    """One key's episode state for one metric; ``state`` is plain data (JSON-serialisable)."""

    def __init__(self, rules: EpisodeRules, entity: str, state: dict[str, Any] | None = None):
        self.rules = rules
        self.entity = entity
        self.s = state or {"n": 0, "mean": 0.0, "var": 0.0, "last": None, "ep": None}

    @property
    def state(self) -> dict[str, Any]:
        return self.s

    def feed(self, t: int, value: float | None, low: float | None = None, high: float | None = None) -> list[dict]:
        """Judge the reading at ``t`` (ms); return the alert events it causes (open/close).

        ``value`` None means "no judgement possible" (e.g. too few events for a rate): it
        closes an open alert (reason ``no_data``) and is otherwise ignored.
        """
        s, r = self.s, self.rules
        out: list[dict] = []
        if s["last"] is not None and t <= s["last"]:
            return out  # a repeat (or older): the series has moved past it
        if s["last"] is not None and t - s["last"] > r.idle_ms:
            out += self.expire(s["last"] + r.idle_ms)
        s["last"] = t
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if s["ep"] is not None:
                out += self._close(t, "no_data")
            return out
        reason, lo, hi = self._judge(value, low, high)
        ep = s["ep"]
        static = reason in ("above_max", "below_min")
        if (reason is not None and not static and ep is not None and not ep["static"]
                and r.baseline_reset_ms is not None and t - ep["start"] >= r.baseline_reset_ms):
            out += self._close(t, "new_normal", value)
            s.update({"n": 0, "mean": 0.0, "var": 0.0})
            self._learn(value)
            return out
        if reason is not None:
            if ep is None:
                ep = s["ep"] = {"start": t, "last_out": t, "count": 0, "peak": value, "reason": reason,
                                "low": lo, "high": hi, "open": False, "static": static}
            elif static and not ep["static"]:  # a baseline deviation that now breaks a static limit
                ep.update({"reason": reason, "low": lo, "high": hi, "static": True})
            ep["last_out"] = t
            ep["count"] += 1
            if abs(value - self._ref(ep)) > abs(ep["peak"] - self._ref(ep)):
                ep["peak"] = value
            if not ep["open"] and t - ep["start"] >= r.min_duration_ms:
                ep["open"] = True
                out.append(self._event("open", t, value, ep["reason"]))
            return out
        if ep is not None:
            out += self._close(t, "back_in_band", value)
        self._learn(value)
        return out

    def expire(self, t: int) -> list[dict]:
        """The key fell silent at ``t``: close an open alert (``no_data``) and forget everything."""
        out = self._close(t, "no_data") if self.s["ep"] is not None else []
        self.s.update({"n": 0, "mean": 0.0, "var": 0.0, "last": None, "ep": None})
        return out

    @property
    def empty(self) -> bool:
        return self.s["last"] is None

    # -- details ---------------------------------------------------------------------------

    def _judge(self, v: float, low: float | None, high: float | None) -> tuple[str | None, float | None, float | None]:
        """(reason or None, low, high): the static band when it is broken, else the static band
        narrowed by the baseline's."""
        s, r = self.s, self.rules
        lo, hi = low, high
        if r.baseline_k is not None and s["n"] >= r.baseline_min_samples:
            spread = r.baseline_k * max(math.sqrt(s["var"]), r.min_std)
            lo = s["mean"] - spread if lo is None else max(lo, s["mean"] - spread)
            hi = s["mean"] + spread if hi is None else min(hi, s["mean"] + spread)
        if high is not None and v > high:
            return "above_max", low, high
        if low is not None and v < low:
            return "below_min", low, high
        if hi is not None and v > hi:
            return "above_baseline", lo, hi
        if lo is not None and v < lo:
            return "below_baseline", lo, hi
        return None, lo, hi

    def _learn(self, v: float) -> None:
        s = self.s
        # Plain running mean and variance at first, exponential forgetting once warmed up.
        a = max(self.rules.baseline_alpha, 1.0 / (s["n"] + 1))
        d = v - s["mean"]
        s["mean"] += a * d
        s["var"] = (1 - a) * (s["var"] + a * d * d)
        s["n"] += 1

    @staticmethod
    def _ref(ep: dict) -> float:
        if ep["reason"] in ("above_max", "above_baseline") and ep["high"] is not None:
            return ep["high"]
        if ep["low"] is not None:
            return ep["low"]
        return ep["peak"]

    def _close(self, t: int, reason: str, value: float | None = None) -> list[dict]:
        ep = self.s["ep"]
        self.s["ep"] = None
        if ep is None or not ep["open"]:
            return []
        return [self._event("close", t, value, reason, ep)]

    def _event(self, event: str, t: int, value: float | None, reason: str, ep: dict | None = None) -> dict:
        ep = ep or self.s["ep"]
        r = self.rules
        return {
            "alert_id": alert_id(r.kind, self.entity, r.metric, ep["start"]),
            "event": event,
            "kind": r.kind,
            "severity": r.severity,
            "entity": self.entity,
            "metric": r.metric,
            "reason": reason,
            "started_ms": ep["start"],
            "event_ms": t,
            "ended_ms": t if event == "close" else None,
            "duration_s": (ep["last_out"] - ep["start"]) / 1000,
            "value": value,
            "peak": ep["peak"],
            "low": ep["low"],
            "high": ep["high"],
            "readings": ep["count"],
        }
