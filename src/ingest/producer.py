"""kafka-python producers: keyed JSON records with headers, pacing, progress and parallel processes.

:func:`produce` runs one :class:`ProduceSpec` (which simulator, how many events, how fast,
which faults) in this process or split over several processes with disjoint key sets, so
per-key ordering holds and the aggregate rate scales past one Python process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kafka import KafkaProducer
from kafka.serializer import Serializer

from kappalake.config import Config, KafkaConf, ProducerConf
from kappalake.errors import ConfigError
from kappalake.ingest.faults import FaultInjector, FaultRates, Record
from kappalake.ingest.kafka_clients import python_client_kwargs
from kappalake.ingest import simulators
from kappalake.ingest.reference import Reference
from kappalake.ingest.simulators.base import SimEvent, Shard

DEFAULT_SIM_RATE = 1000.0  # event-time density of unpaced runs, events per simulated second


@dataclass
class SendStats:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    faults: Counter = field(default_factory=Counter)
    last_error: str | None = field(default=None, repr=False)

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0

    def add(self, other: "SendStats") -> None:
        self.sent += other.sent
        self.acked += other.acked
        self.errors += other.errors
        self.bytes += other.bytes
        self.faults.update(other.faults)
        self.last_error = other.last_error or self.last_error


class KeySerializer(Serializer):
    """str keys as UTF-8; bytes and None pass through."""

    def serialize(self, topic: str, headers: Any, data: Any) -> bytes | None:
        return data.encode() if isinstance(data, str) else data


class JsonValueSerializer(Serializer):
    """Mappings as compact JSON; bytes pass through untouched (e.g. deliberately malformed payloads)."""

    def serialize(self, topic: str, headers: Any, data: Any) -> bytes | None:
        if data is None or isinstance(data, bytes):
            return data
        return json.dumps(data, separators=(",", ":")).encode()


def producer_settings(p: ProducerConf, **overrides: Any) -> dict[str, Any]:
    """KafkaProducer kwargs from ``producer.*`` in the configuration, then ``overrides``."""
    compression = None if p.compression == "none" else p.compression
    if compression:
        from kafka import codec

        if not getattr(codec, f"has_{compression}")():
            package = {"lz4": "lz4", "zstd": "zstandard", "snappy": "python-snappy"}.get(compression, compression)
            raise ConfigError(f"producer.compression {compression} needs the Python package {package!r}: "
                              f"pip install {package}, or set producer.compression: gzip")
    settings: dict[str, Any] = {
        "acks": "all" if p.acks == "all" else int(p.acks),
        "enable_idempotence": p.enable_idempotence,
        "linger_ms": p.linger_ms,
        "batch_size": p.batch_size,
        "compression_type": compression,
        "max_request_size": p.max_request_size,
        "max_block_ms": 30_000,
        "key_serializer": KeySerializer(),
        "value_serializer": JsonValueSerializer(),
    }
    settings.update(overrides)
    return settings


def make_producer(kafka: KafkaConf, producer: ProducerConf, **overrides: Any) -> KafkaProducer:
    """A producer from ``producer.*`` (durable by default: acks=all, idempotent, batched) on the
    resolved Kafka settings (``Config.kafka_settings``)."""
    return KafkaProducer(**python_client_kwargs(kafka), **producer_settings(producer, **overrides))


def send_records(
    producer: KafkaProducer,
    topic: str,
    records: Iterable[Record | tuple[Any, Any]],
    pace_from_ms: int | None = None,
    duration: float | None = None,
    progress: Callable[[SendStats], None] | None = None,
    progress_every: float = 1.0,
) -> SendStats:
    """Send records (or plain ``(key, value)`` pairs) to ``topic``; flush and count acks.

    With ``pace_from_ms`` each record waits until the wall clock has advanced as far past the
    start as its ``due_ms`` is past ``pace_from_ms``: event time then tracks real time. With
    ``duration`` sending stops after that many seconds.
    """
    stats = SendStats()

    def ok(meta: Any) -> None:
        stats.acked += 1
        stats.bytes += max(meta.serialized_value_size, 0)

    def failed(exc: BaseException) -> None:
        stats.errors += 1
        stats.last_error = repr(exc)

    start = last_report = time.monotonic()
    deadline = start + duration if duration else None
    for rec in records:
        now = time.monotonic()
        if isinstance(rec, Record):
            if pace_from_ms is not None:
                ahead = (rec.due_ms - pace_from_ms) / 1000 - (now - start)
                if ahead > 0:
                    if deadline and now + ahead > deadline:
                        time.sleep(max(0.0, deadline - now))  # the run lasts its duration, not until the last send
                        break
                    time.sleep(ahead)
                    now = time.monotonic()
            key, value, headers = rec.key, rec.value, list(rec.headers) or None
        else:
            (key, value), headers = rec, None
        if deadline and now >= deadline:
            break
        try:
            producer.send(topic, key=key, value=value, headers=headers).add_callback(ok).add_errback(failed)
        except Exception as e:  # noqa: BLE001 - e.g. record too large, metadata timeout: count, go on
            failed(e)
        stats.sent += 1
        if progress and now - last_report >= progress_every:
            stats.seconds = now - start
            progress(stats)
            last_report = now
    producer.flush()
    stats.seconds = time.monotonic() - start
    if progress:
        progress(stats)
    return stats


# -- what to produce -------------------------------------------------------------------------

@dataclass(frozen=True)
class ProduceSpec:
    """One producer run. ``rate`` paces sending (live); without it events go as fast as possible,
    their event times ``span`` simulated seconds apart in all (default: 1,000 events per second)."""

    topic: str
    count: int | None = 10_000
    duration: float | None = None
    rate: float | None = None
    span: float | None = None
    seed: int = 7
    start_ms: int | None = None
    users: int | None = None
    devices: int | None = None
    people: int | None = None
    diurnal: bool = False
    faults: FaultRates = FaultRates()
    shard: Shard = Shard()
    scenario: str | None = None  # telemetry: scripted episodes, e.g. "hot-truck"

    def __post_init__(self) -> None:
        if self.count is None and self.duration is None:
            raise ValueError("give a count, a duration or both")
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0 events/s")
        if self.span is not None and (self.span <= 0 or self.rate is not None or not self.count):
            raise ValueError("span (simulated seconds) needs a count and no rate, and must be > 0")
        if self.scenario is not None:
            scripted = simulators.scenarios()
            if self.scenario not in scripted.get(self.topic, ()):
                known = "; ".join(f"{t}: {', '.join(s)}" for t, s in scripted.items())
                raise ValueError(f"scenario {self.scenario!r} is not one of {self.topic}'s (scenarios: {known})")

    def span_ms(self) -> int:
        """Simulated milliseconds the whole run covers (for scripted scenarios)."""
        if self.count:
            return int(self.count / self.sim_rate() * 1000)  # per shard: both are this shard's share
        return int((self.duration or 0) * 1000)

    def resolved_start_ms(self) -> int:
        """Explicit start; else now when paced, else so that the last event time is about now."""
        if self.start_ms is not None:
            return self.start_ms
        now = int(time.time() * 1000)
        if self.rate or not self.count:
            return now
        return now - int((self.span or self.count / DEFAULT_SIM_RATE) * 1000)

    def sim_rate(self) -> float:
        """Events per simulated second for this shard."""
        if self.rate:
            return self.rate
        if self.span:
            return self.count / self.span  # count is already this shard's share
        return DEFAULT_SIM_RATE / self.shard.count

    def split(self, processes: int) -> list["ProduceSpec"]:
        """Per-process specs: disjoint key sets, count and rate divided, same start."""
        start = self.resolved_start_ms()
        out = []
        for i in range(processes):
            count = None if self.count is None else self.count // processes + (1 if i < self.count % processes else 0)
            out.append(replace(self, count=count, rate=self.rate / processes if self.rate else None,
                               start_ms=start, shard=Shard(i, processes)))
        return out


def simulate(cfg: Config, spec: ProduceSpec) -> Iterator[SimEvent]:
    """The clean simulated stream of ``spec`` (no faults, no count limit)."""
    try:
        sim = simulators.get(spec.topic)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    ref = Reference(cfg.reference.seed, cfg.reference.products)
    return sim.build(cfg.producer, spec, ref, spec.resolved_start_ms(), spec.sim_rate())


def records(cfg: Config, spec: ProduceSpec, injector: FaultInjector | None = None) -> Iterator[Record]:
    """Simulated events with faults applied, limited to ``spec.count`` records."""
    injector = injector or FaultInjector(spec.topic, spec.faults, f"{spec.seed}/{spec.shard.index}")
    return injector.apply(simulate(cfg, spec), limit=spec.count)


# -- running ----------------------------------------------------------------------------------

def produce(cfg: Config, spec: ProduceSpec, processes: int = 1,
            progress: Callable[[SendStats], None] | None = None) -> SendStats:
    """Run ``spec`` against the configured topic, in ``processes`` parallel producers."""
    if processes < 1:
        raise ValueError("processes must be >= 1")
    producer_settings(cfg.producer)  # fail fast on a bad compression setting
    if processes == 1:
        return _produce_here(cfg, spec, progress)
    return _produce_parallel(cfg, spec, processes, progress)


def _produce_here(cfg: Config, spec: ProduceSpec, progress: Callable[[SendStats], None] | None) -> SendStats:
    injector = FaultInjector(spec.topic, spec.faults, f"{spec.seed}/{spec.shard.index}")
    start = spec.resolved_start_ms()
    spec = replace(spec, start_ms=start)
    producer = make_producer(cfg.kafka_settings, cfg.producer)
    try:
        def report(s: SendStats) -> None:
            s.faults = Counter(injector.counts)
            if progress:
                progress(s)

        stats = send_records(producer, cfg.topic_name(spec.topic), records(cfg, spec, injector),
                             pace_from_ms=start if spec.rate else None, duration=spec.duration, progress=report)
    finally:
        producer.close()
    stats.faults = Counter(injector.counts)
    return stats


def _worker(cfg: Config, spec: ProduceSpec, results: Any) -> None:
    def report(s: SendStats) -> None:
        results.put((spec.shard.index, False, s))

    try:
        stats = _produce_here(cfg, spec, report)
        results.put((spec.shard.index, True, stats))
    except BaseException as e:  # noqa: BLE001 - surfaced by the parent
        results.put((spec.shard.index, True, SendStats(errors=1, last_error=f"producer process failed: {e!r}")))


def _produce_parallel(cfg: Config, spec: ProduceSpec, processes: int,
                      progress: Callable[[SendStats], None] | None) -> SendStats:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(cfg, s, results), daemon=True) for s in spec.split(processes)]
    latest: dict[int, SendStats] = {}
    done: set[int] = set()
    start = time.monotonic()
    for w in workers:
        w.start()
    try:
        while len(done) < processes:
            try:
                index, finished, stats = results.get(timeout=1.0)
                latest[index] = stats
                if finished:
                    done.add(index)
            except queue.Empty:
                dead = [i for i, w in enumerate(workers) if not w.is_alive() and i not in done]
                if dead and results.empty():
                    for i in dead:
                        latest[i] = SendStats(errors=1, last_error=f"producer process {i} died (exit {workers[i].exitcode})")
                        done.add(i)
            if progress:
                total = _sum(latest.values(), time.monotonic() - start)
                progress(total)
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()
    return _sum(latest.values(), time.monotonic() - start)


def _sum(parts: Iterable[SendStats], seconds: float) -> SendStats:
    total = SendStats()
    for p in parts:
        total.add(p)
    total.seconds = seconds
    return total


def progress_printer(topic: str, stream: Any = None) -> Callable[[SendStats], None]:
    """Progress as one rewritten line on a terminal, one line per report otherwise."""
    stream = stream or sys.stderr
    tty = stream.isatty()

    def show(s: SendStats) -> None:
        faults = sum(s.faults.values())
        line = (f"{topic}: sent {s.sent:,}  acked {s.acked:,}  errors {s.errors:,}  "
                f"{s.rate:,.0f} events/s  {s.bytes / 2**20:,.1f} MiB" + (f"  faults {faults:,}" if faults else ""))
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=stream, flush=True)

    return show
