"""Producer throughput: simulation alone, then kafka-python into the real local broker.

    .venv/bin/python bench/produce_rate.py [--events 200000] [--processes 1 2] [--compression gzip none]

Prints a table and writes bench/results/produce_rate.json. Starts the embedded broker on
its configured port if it is not running (and stops it again afterwards).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from kappalake.config import load_config
from kappalake.ingest.broker import LocalBroker
from kappalake.ingest.producer import ProduceSpec, produce, simulate
from kappalake.ingest.topics import admin_client, ensure_topics

OUT = Path(__file__).resolve().parent / "results" / "produce_rate.json"


def generation_rate(cfg, topic: str, n: int) -> float:
    spec = ProduceSpec(topic, count=n, seed=1)
    it = simulate(cfg, spec)
    start = time.perf_counter()
    for _ in zip(range(n), it):
        pass
    return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="events per run")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--compression", nargs="+", default=["gzip", "none"])
    ap.add_argument("--topics", nargs="+", default=["clickstream", "telemetry"])
    args = ap.parse_args()

    base = load_config("local")
    broker = LocalBroker(base.broker)
    started = base.broker.mode == "embedded" and broker.pid() is None
    if started:
        broker.start()
    results = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
               "events_per_run": args.events, "generation": {}, "runs": []}
    try:
        for topic in args.topics:
            results["generation"][topic] = round(generation_rate(base, topic, min(args.events, 100_000)))
            print(f"simulate {topic:<12} {results['generation'][topic]:>10,} events/s (no Kafka)", flush=True)
        print(f"{'topic':<12}{'compression':>12}{'processes':>10}{'events/s':>12}{'MiB/s':>8}{'seconds':>9}{'errors':>8}")
        for topic in args.topics:
            for comp in args.compression:
                for procs in args.processes:
                    name = f"bench_{topic}_{comp}_{procs}_{int(time.time())}"
                    cfg = load_config("local", overrides={f"topics.{topic}.name": name, "producer.compression": comp})
                    ensure_topics(cfg.kafka_settings, cfg.topic_specs([topic]))
                    stats = produce(cfg, ProduceSpec(topic, count=args.events, seed=3), processes=procs)
                    run = {"topic": topic, "compression": comp, "processes": procs, "events": stats.acked,
                           "errors": stats.errors, "seconds": round(stats.seconds, 2),
                           "events_per_s": round(stats.rate), "mib_per_s": round(stats.bytes / 2**20 / stats.seconds, 2)}
                    results["runs"].append(run)
                    print(f"{topic:<12}{comp:>12}{procs:>10}{run['events_per_s']:>12,}{run['mib_per_s']:>8}"
                          f"{run['seconds']:>9}{run['errors']:>8}", flush=True)
                    admin = admin_client(cfg.kafka_settings)
                    try:
                        admin.delete_topics([name])
                    finally:
                        admin.close()
    finally:
        if started:
            broker.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
