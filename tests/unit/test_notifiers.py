"""Notifiers and the dispatcher against a real local HTTP server (no Spark)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kappalake.alerts.notifiers import (Dispatcher, LogNotifier, NotifyError, WebhookNotifier,
                                        build_notifiers)

ALERT = {"alert_id": "a1b2", "event": "open", "kind": "temperature", "severity": "critical", "entity": "truck-0000"}


class Receiver:
    """A webhook endpoint on 127.0.0.1 that answers 503 to the first ``fail_first`` posts."""

    def __init__(self, fail_first: int = 0):
        self.fail_first, self.calls, self.received, self.status = fail_first, 0, [], None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls += 1
                if outer.calls <= outer.fail_first or outer.status:
                    self.send_response(outer.status or 503)
                    self.end_headers()
                    return
                outer.received.append((dict(self.headers), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def wait_for(d: Dispatcher, n: int, timeout_s: float = 10.0):
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += d.drain()
        time.sleep(0.01)
    return got


def test_webhook_posts_json_with_idempotency_key(receiver):
    WebhookNotifier(receiver.url, headers={"Authorization": "Bearer t"}).send(ALERT)
    headers, body = receiver.received[0]
    assert body == ALERT
    assert headers["Idempotency-Key"] == "a1b2:open"
    assert headers["Authorization"] == "Bearer t"
    assert headers["Content-Type"] == "application/json"


def test_webhook_errors_raise_notify_error(receiver):
    receiver.fail_first = 1
    with pytest.raises(NotifyError, match="HTTP 503"):
        WebhookNotifier(receiver.url).send(ALERT)
    receiver.close()
    with pytest.raises(NotifyError, match="posting to"):
        WebhookNotifier(receiver.url, timeout_s=1).send(ALERT)


def test_retries_with_backoff_then_delivers(receiver):
    receiver.fail_first = 2
    sleeps = []
    d = Dispatcher([WebhookNotifier(receiver.url)], max_attempts=5, backoff_s=0.5, max_backoff_s=0.8, sleep=sleeps.append)
    assert d.submit([ALERT]) == 1
    [out] = wait_for(d, 1)
    assert (out.status, out.attempts, out.error, out.notifier) == ("delivered", 3, None, "webhook")
    assert len(receiver.received) == 1
    # exponential (0.5, 1.0 capped at 0.8) with jitter in [0.5, 1] of each step
    assert 0.25 <= sleeps[0] <= 0.5 and 0.4 <= sleeps[1] <= 0.8
    assert d.close() == []


def test_gives_up_after_max_attempts_and_records_the_error(receiver):
    receiver.fail_first = 100
    d = Dispatcher([WebhookNotifier(receiver.url)], max_attempts=3, sleep=lambda s: None)
    d.submit([ALERT, ALERT | {"event": "close"}])
    outs = wait_for(d, 2)
    assert [(o.event, o.status, o.attempts) for o in outs] == [("open", "failed", 3), ("close", "failed", 3)]
    assert outs[0].error == f"HTTP 503 from {receiver.url}"
    assert outs[0].as_dict()["finished_at"].endswith("Z")
    assert receiver.calls == 6


class Blocking:
    name = "slow"

    def __init__(self):
        self.release = threading.Event()
        self.sent = []

    def send(self, alert):
        self.release.wait(10)
        self.sent.append(alert["alert_id"])


def test_submit_never_blocks_and_drops_when_the_queue_is_full():
    slow = Blocking()
    d = Dispatcher([slow], queue_size=2)
    t0 = time.monotonic()
    queued = d.submit({"alert_id": f"a{i}", "event": "open"} for i in range(10))
    assert time.monotonic() - t0 < 1.0
    dropped = d.drain()
    # the worker holds one, the queue two: 2 or 3 queued depending on whether the worker took one yet
    assert queued in (2, 3) and len(dropped) == 10 - queued
    assert {o.status for o in dropped} == {"dropped"} and dropped[0].error == "queue full (2)"
    slow.release.set()
    outs = wait_for(d, queued)
    assert [o.status for o in outs] == ["delivered"] * queued
    d.close()


def test_worker_survives_a_notifier_that_raises():
    class Flaky:
        name = "flaky"

        def send(self, alert):
            if alert["alert_id"] == "bad":
                raise RuntimeError("boom")

    d = Dispatcher([Flaky()], max_attempts=2, sleep=lambda s: None)
    d.submit([{"alert_id": "bad", "event": "open"}, {"alert_id": "good", "event": "open"}])
    outs = wait_for(d, 2)
    assert [(o.alert_id, o.status, o.error) for o in outs] == [("bad", "failed", "RuntimeError: boom"),
                                                               ("good", "delivered", None)]
    d.close()


def test_close_waits_a_bounded_time_and_drops_the_rest():
    slow = Blocking()
    d = Dispatcher([slow], queue_size=10)
    d.submit({"alert_id": f"a{i}", "event": "open"} for i in range(4))
    t0 = time.monotonic()
    outs = d.close(timeout_s=0.3)
    assert time.monotonic() - t0 < 2.0
    # the three behind the one stuck in send are dropped; the stuck one is reported too
    assert [o.error for o in outs] == ["shutdown before delivery"] * 3 + ["still sending at shutdown"]
    assert d.submit([ALERT]) == 0 and d.drain()[0].error == "dispatcher closed"
    slow.release.set()


def test_client_errors_are_not_retried(receiver):
    d = Dispatcher([WebhookNotifier(receiver.url + "/missing")], max_attempts=5, sleep=lambda s: None)
    receiver.status = 404
    d.submit([ALERT])
    [out] = wait_for(d, 1)
    assert (out.status, out.attempts, out.error) == ("failed", 1, f"HTTP 404 from {receiver.url}/missing")
    d.close()


def test_a_stuck_notifier_does_not_hold_up_the_others():
    slow, sent = Blocking(), []

    class Quick:
        name = "quick"

        def send(self, alert):
            sent.append(alert["alert_id"])

    d = Dispatcher([slow, Quick()], queue_size=10)
    d.submit({"alert_id": f"a{i}", "event": "open"} for i in range(5))
    outs = wait_for(d, 5)
    assert sent == [f"a{i}" for i in range(5)] and {o.notifier for o in outs} == {"quick"}
    slow.release.set()
    d.close()


def test_log_notifier_logs_at_warning(caplog):
    with caplog.at_level("WARNING", logger="kappalake.alerts"):
        LogNotifier().send(ALERT)
    assert "open critical temperature truck-0000" in caplog.text


class Custom:
    def __init__(self, channel):
        self.channel = channel

    def send(self, alert):
        pass


def test_build_notifiers_from_config():
    ns = build_notifiers([{"type": "webhook", "url": "http://127.0.0.1:1/x", "name": "ops", "timeout_s": 2},
                          {"type": "log"},
                          {"type": "class", "class": "tests.unit.test_notifiers.Custom", "channel": "#ops"}])
    assert [n.name for n in ns] == ["ops", "log", "Custom"]
    assert ns[2].channel == "#ops"


@pytest.mark.parametrize("spec, message", [
    ({"url": "http://x"}, r"alerts.notifiers\[0\]: expected a mapping with a 'type'"),
    ({"type": "sms"}, r"alerts.notifiers\[0\]: unknown type 'sms'"),
    ({"type": "webhook"}, r"alerts.notifiers\[0\]: a webhook needs a 'url'"),
    ({"type": "webhook", "url": "ftp://x"}, r"must start with http:// or https://"),
    ({"type": "webhook", "url": "http://x", "retries": 3}, r"alerts.notifiers\[0\]: .*unexpected keyword"),
    ({"type": "class", "class": "nope.Missing"}, r"cannot import nope.Missing"),
    ({"type": "class", "class": "json.JSONDecoder"}, r"has no send\(alert\) method"),
])
def test_build_notifiers_rejects_bad_entries(spec, message):
    with pytest.raises(ValueError, match=message):
        build_notifiers([spec])
