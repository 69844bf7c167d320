"""Notifiers (where alert events are pushed) and the dispatcher that delivers to them off the stream's thread.

A notifier is anything with a ``name`` and a ``send(alert: dict)`` that raises on failure. The
:class:`Dispatcher` owns a bounded queue and one daemon worker: ``submit`` never blocks (a full
queue records the alert as dropped), failures are retried with capped exponential backoff and
jitter, and every outcome is kept as a :class:`Delivery` for the caller to record.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Protocol

from kappalake.config.shapes import check_notifier
from kappalake.errors import NotifyError

log = logging.getLogger("kappalake.alerts")


class Notifier(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


class WebhookNotifier:
    """POSTs each alert as JSON; a non-2xx answer or a network error raises :class:`NotifyError`.

    The ``Idempotency-Key`` header (``<alert_id>:<event>``) lets the receiver drop the repeats
    that at-least-once delivery can produce.
    """

    def __init__(self, url: str, name: str = "webhook", timeout_s: float = 5.0, headers: dict[str, str] | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url {url!r} must start with http:// or https://")
        self.url, self.name, self.timeout_s, self.headers = url, name, float(timeout_s), dict(headers or {})

    def send(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, default=str).encode()
        headers = {"Content-Type": "application/json", **self.headers,
                   "Idempotency-Key": f"{alert.get('alert_id')}:{alert.get('event')}"}
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status = resp.status
        except urllib.error.HTTPError as e:
            # 4xx means this request will never be accepted, except timeouts and rate limits.
            retryable = not 400 <= e.code < 500 or e.code in (408, 429)
            raise NotifyError(f"HTTP {e.code} from {self.url}", retryable) from None
        except (urllib.error.URLError, OSError) as e:
            raise NotifyError(f"{type(e).__name__} posting to {self.url}: {getattr(e, 'reason', e)}") from None
        if not 200 <= status < 300:
            raise NotifyError(f"HTTP {status} from {self.url}")


class LogNotifier:
    """Writes each alert to the ``kappalake.alerts`` logger at WARNING."""

    def __init__(self, name: str = "log"):
        self.name = name

    def send(self, alert: dict[str, Any]) -> None:
        log.warning("alert %s %s %s %s %s=%s %s [%s]", alert.get("event"), alert.get("severity"), alert.get("kind"),
                    alert.get("entity"), alert.get("metric"), alert.get("value"), alert.get("reason"),
                    alert.get("alert_id"))


@dataclass
class Delivery:
    """The outcome of delivering one alert event to one notifier."""

    alert_id: str | None
    event: str | None
    notifier: str
    status: str  # delivered | failed | dropped
    attempts: int
    error: str | None
    finished_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_STOP = object()


class _Lane:
    """One notifier's queue and worker thread, so a slow notifier holds up only itself."""

    def __init__(self, notifier: Notifier, queue_size: int, run: Callable[["_Lane"], None]):
        self.notifier = notifier
        self.current: dict[str, Any] | None = None  # the alert being sent
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=run, args=(self,), daemon=True,
                                       name=f"kappalake-notifier-{getattr(notifier, 'name', '?')}")
        self.thread.start()


class Dispatcher:
    """Delivers alerts to every notifier from daemon threads (one per notifier); the caller never waits."""

    def __init__(self, notifiers: list[Notifier], max_attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, queue_size: int = 1000, sleep: Callable[[float], Any] | None = None):
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts, self.backoff_s, self.max_backoff_s = max_attempts, backoff_s, max_backoff_s
        self._queue_size = queue_size
        self._done: list[Delivery] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sleep = sleep or self._closing.wait  # a backoff wait ends early at close()
        self._lanes = [_Lane(n, queue_size, self._run) for n in notifiers]

    @property
    def pending(self) -> int:
        """Alert-notifier pairs queued and not yet finished."""
        return sum(lane.queue.unfinished_tasks for lane in self._lanes)

    def submit(self, alerts: Iterable[dict[str, Any]]) -> int:
        """Queue every alert for every notifier; returns how many pairs were queued (the rest are dropped)."""
        queued = 0
        for alert in alerts:
            for lane in self._lanes:
                if self._closing.is_set():
                    self._finish(alert, lane.notifier, "dropped", 0, "dispatcher closed")
                    continue
                try:
                    lane.queue.put_nowait(alert)
                    queued += 1
                except queue.Full:
                    self._finish(alert, lane.notifier, "dropped", 0, f"queue full ({self._queue_size})")
        return queued

    def drain(self) -> list[Delivery]:
        """Outcomes finished since the last call (does not wait)."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self, timeout_s: float = 10.0) -> list[Delivery]:
        """Stop accepting, wait up to ``timeout_s`` for queued deliveries, and return every outcome not yet drained.

        What is still queued at the deadline is recorded as dropped; a send still under way
        then is recorded as failed ("still sending at shutdown").
        """
        deadline = time.monotonic() + timeout_s
        self._closing.set()
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.02)
        for lane in self._lanes:
            while True:
                try:
                    alert = lane.queue.get_nowait()
                except queue.Empty:
                    break
                if alert is not _STOP:
                    self._finish(alert, lane.notifier, "dropped", 0, "shutdown before delivery")
                lane.queue.task_done()
            try:
                lane.queue.put_nowait(_STOP)
            except queue.Full:  # cannot happen after emptying it, unless a send refilled it
                pass
        for lane in self._lanes:
            lane.thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
            sending = lane.current
            if lane.thread.is_alive() and sending is not None:
                self._finish(sending, lane.notifier, "failed", 0, "still sending at shutdown")
        return self.drain()

    def _finish(self, alert: dict[str, Any], n: Notifier, status: str, attempts: int, error: str | None) -> None:
        d = Delivery(alert.get("alert_id"), alert.get("event"), getattr(n, "name", type(n).__name__), status,
                     attempts, error, _now_iso())
        if status != "delivered":
            log.warning("alert %s:%s to %s %s after %d attempt(s): %s", d.alert_id, d.event, d.notifier, status,
                        attempts, error)
        with self._lock:
            self._done.append(d)

    def _run(self, lane: _Lane) -> None:
        while True:
            alert = lane.queue.get()
            try:
                if alert is _STOP:
                    return
                lane.current = alert
                self._deliver(alert, lane.notifier)
            except BaseException as e:  # noqa: BLE001 - the worker must outlive any notifier
                self._finish(alert, lane.notifier, "failed", 0, f"{type(e).__name__}: {e}")
            finally:
                lane.current = None
                lane.queue.task_done()

    def _deliver(self, alert: dict[str, Any], n: Notifier) -> None:
        error = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                n.send(alert)
                self._finish(alert, n, "delivered", attempt, None)
                return
            except NotifyError as e:
                if not e.retryable:  # e.g. HTTP 400/401/404: trying again cannot help
                    self._finish(alert, n, "failed", attempt, str(e))
                    return
                error = str(e)
            except Exception as e:  # noqa: BLE001 - any notifier failure is retried, then recorded
                error = f"{type(e).__name__}: {e}"
            if attempt < self.max_attempts and not self._closing.is_set():
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
            elif attempt < self.max_attempts:  # closing: give up now rather than hold shutdown
                self._finish(alert, n, "failed", attempt, f"{error} (stopped retrying at shutdown)")
                return
        self._finish(alert, n, "failed", self.max_attempts, error)


def build_notifiers(specs: list[dict[str, Any]]) -> list[Notifier]:
    """Notifiers from config entries ``{type: webhook, url, headers?, timeout_s?, name?}``, ``{type: log}`` or
    ``{type: class, class: pkg.module.Cls, ...kwargs}``; a bad entry raises ``ValueError`` naming it."""
    out: list[Notifier] = []
    for i, spec in enumerate(specs):
        where = f"alerts.notifiers[{i}]"
        cls = check_notifier(where, spec)
        kwargs = {k: v for k, v in spec.items() if k not in ("type", "class")}
        try:
            if cls is None:
                out.append((WebhookNotifier if spec["type"] == "webhook" else LogNotifier)(**kwargs))
                continue
            inst = cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
        if not hasattr(inst, "name"):
            inst.name = cls.__name__
        out.append(inst)
    return out
