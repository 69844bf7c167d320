"""parse_events' two paths agree: a canonical payload read with from_json, anything else through
the VARIANT. Every row of the hostile corpus, every fault kind and randomly mutated valid events
gets the same values and the same error codes both ways."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from pyspark.sql import functions as F

from kappalake.config import load_config
from kappalake.ingest import contracts
from kappalake.ingest.faults import FAULT_KINDS, FaultInjector, FaultRates
from kappalake.ingest.producer import ProduceSpec, simulate
from kappalake.transforms.parse import _fast_type, parse_events
from tests.conftest import CONF_DIR
from tests.integration.test_hostile_input import CORPUS, ROUND_2, VALID
from tests.unit.test_silver_transforms import bronze


def _bytes(value) -> bytes | None:
    return value if value is None or isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


def _mutate(event: dict, rnd: random.Random) -> bytes:
    """A valid event changed in one of the ways a producer might: some still valid, most not."""
    e = dict(event)
    name = rnd.choice([k for k in e if k != "geo"])
    value = e[name]
    how = rnd.randrange(20)
    if how == 0:
        e[name] = str(value) if value is not None else "null"          # number/boolean/null as text
    elif how == 1:
        e[name] = rnd.choice([0, 1.5, True, [], {}])                     # another JSON type
    elif how == 2:
        del e[name]                                                      # a field left out
    elif how == 3:
        e["extra_" + name] = value                                       # an unknown field
    elif how == 4:
        e = dict(reversed(list(e.items())))                              # another key order
    elif how == 5:
        return json.dumps(e).encode()                                    # spaces after , and :
    elif how == 6:
        return json.dumps(e, separators=(",", ":")).replace(f'"{name}":', f'"{name}":NaN,"{name}_":', 1).encode()
    elif how == 7:
        return _bytes(e) + rnd.choice([b" ", b"x", b"{}", b"]", b"\n"])  # trailing content
    elif how == 8:
        return _bytes(e)[:-1] + f',"{name}":{json.dumps(value)}}}'.encode()  # a duplicate key
    elif how == 9:
        e[name] = (value or "") + "ü" if isinstance(value, str) or value is None else value
        return json.dumps(e, separators=(",", ":"), ensure_ascii=rnd.random() < 0.5).encode()
    elif how == 10 and isinstance(value, str):
        e[name] = rnd.choice([value.upper(), f"  {value} ", "", " ", value + "\n"])
    elif how == 11 and isinstance(value, (int, float)) and not isinstance(value, bool):
        e[name] = rnd.choice([float(value), int(value), value + 0.001, -value, 10**20, 1e300, 19.999])
    elif how == 12:
        e[name] = None                                                   # null where a value may be required
    elif how == 13 and isinstance(e.get("geo"), dict):
        e["geo"] = rnd.choice([None, {}, {**e["geo"], "alt": 3}, {k: v for k, v in e["geo"].items() if k != "lat"},
                               {**e["geo"], "lat": "51.5"}, [1, 2]])
    elif how == 14:
        return rnd.choice([b"null", b"[]", b"1", b'"x"', b"{}", b"", b"{"])
    elif how == 15:
        e["schema_version"] = rnd.choice([2, "1", 1.0, None])
    elif how == 16 and isinstance(value, str) and name.endswith("time"):
        e[name] = rnd.choice([value.replace("Z", "+01:00"), value[:10], "2026-02-30T00:00:00Z", value.replace("T", " ")])
    elif how == 17:
        return json.dumps(e, separators=(",", ":")).replace('"', "'", 2).encode()  # single quotes
    elif how == 18 and isinstance(value, str):
        e[name] = value + "\u0000\u2028\t"
    return _bytes(e)


def _payloads(topic: str) -> list[bytes | None]:
    cfg = load_config("local", CONF_DIR)
    clean = list(itertools.islice(simulate(cfg, ProduceSpec(topic, count=400, seed=5)), 400))
    rates = FaultRates(**{k: 0.04 for k in FAULT_KINDS}, oversized_bytes=300_000)
    faulty = [_bytes(r.value) for r in FaultInjector(topic, rates, seed=6).apply(clean)]
    rnd = random.Random(f"mutations/{topic}")
    mutated = [_mutate(ev.event, rnd) for ev in clean for _ in range(2)]
    hostile = [c.value for c in CORPUS + VALID + ROUND_2] if topic == "clickstream" else []
    return faulty + mutated + hostile


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_the_from_json_path_and_the_variant_path_agree_on_every_row(spark, topic):
    df = bronze(spark, _payloads(topic), topic).persist()
    def rows(fast: bool) -> dict[int, dict]:
        # Compared as JSON text: some parsed timestamps (year 0) have no Python datetime.
        out = parse_events(df, topic, fast=fast).drop("key", "value", "headers")
        return {r["offset"]: json.loads(r["row"]) for r in out.select("offset", F.to_json(
            F.struct(*out.columns), {"ignoreNullFields": "false"}).alias("row")).collect()}

    fast, slow = rows(True), rows(False)
    differ = [(o, {k: (v, slow[o][k]) for k, v in row.items() if v != slow[o][k]})
              for o, row in fast.items() if row != slow[o]]
    assert len(fast) == len(slow) == df.count()
    assert not differ, f"{len(differ)} of {len(fast)} rows differ, e.g. {differ[:3]}"
    assert all(len(r["_errors"]) == len(set(r["_errors"])) for r in fast.values())  # each code once
    # Both paths are exercised: most clean events take the fast one, most mutations the other.
    text = F.col("value").cast("string")
    canonical = F.to_json(F.from_json(text, _fast_type(contracts.schema(topic))), {"ignoreNullFields": "false"}) == text
    share = df.select(F.coalesce(canonical, F.lit(False)).alias("c")).groupBy("c").count().collect()
    counts = {r["c"]: r["count"] for r in share}
    assert counts[True] > 300 and counts[False] > 500, counts
    assert sum(1 for r in fast.values() if r["_errors"]) > 400
    df.unpersist()
