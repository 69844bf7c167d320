"""When rows became visible in a table, and how a query's batch durations moved: the readings
of a sustained run (:func:`kappalake.bench.stages.sustained`)."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.bench.probes import fifths, percentiles
from kappalake.ingest.simulators.base import parse_ms


def visible_latency(spark: SparkSession, path: str, from_ms: int, sent: bool = True) -> dict:
    """Produce-to-visible delays (ms) of the rows a table's change feed shows were inserted with
    a Kafka timestamp from ``from_ms`` on: the commit time of the version that added each row
    minus its Kafka timestamp (``from_kafka``) and, with ``sent``, minus its ``sent_at``; p50, p95,
    p99, max, count and mean of each, and the p95 of every 10 s of Kafka time."""
    cdf = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
           .load(path).filter("_change_type = 'insert'"))
    commit = F.unix_millis("_commit_timestamp")
    cols = [(commit - F.unix_millis("kafka_timestamp")).alias("from_kafka")]
    if sent:
        cols.append((commit - F.unix_millis("sent_at")).alias("from_sent"))
    rows = cdf.filter(F.unix_millis("kafka_timestamp") >= from_ms).select(
        *cols, (F.unix_millis("kafka_timestamp") / 10000).cast("long").alias("bucket"))
    out = {}
    for col in ("from_kafka", "from_sent") if sent else ("from_kafka",):
        r = rows.agg(F.percentile_approx(col, F.array(F.lit(0.5), F.lit(0.95), F.lit(0.99)), 10000).alias("p"),
                     F.count(col).alias("n"), F.max(col).alias("max"), F.avg(col).alias("mean")).first()
        p = r["p"] or [None] * 3
        out[col] = {"p50": p[0], "p95": p[1], "p99": p[2], "max": r["max"], "count": r["n"],
                    "mean": round(r["mean"], 1) if r["mean"] is not None else None}
    per10s = (rows.groupBy("bucket").agg(F.percentile_approx("from_kafka", F.lit(0.95), 1000).alias("p95"),
                                         F.count("*").alias("n")).orderBy("bucket").collect())
    out["p95_per_10s"] = [r["p95"] for r in per10s]
    return out


def batch_trend(query, warmup_s: float) -> dict:
    """Batch durations (triggerExecution, batches with input) after warm-up: first fifth vs last fifth."""
    prog = [p for p in query.recentProgress if p.get("numInputRows", 0) > 0]
    if not prog:
        return {"batches": 0}
    t0 = parse_ms(prog[0]["timestamp"])
    durs = [p["durationMs"].get("triggerExecution", 0) for p in prog if parse_ms(p["timestamp"]) - t0 >= warmup_s * 1000]
    rows = [p["numInputRows"] for p in prog]
    out = {"batches": len(prog), "rows_per_batch_mean": round(sum(rows) / len(rows), 1)}
    if len(durs) >= 5:
        first, last = fifths(durs)
        out |= {"duration_ms_first": round(first), "duration_ms_last": round(last),
                "duration_growth": round(last / first - 1, 3) if first else None,
                "duration_ms": percentiles(durs)}
    return out
