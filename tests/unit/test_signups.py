"""The signups event type: simulator, contract, every fault kind through silver's chain, the offer."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections import Counter
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.config import load_config
from kappalake.ingest import contracts, simulators
from kappalake.ingest.faults import EVENT_ID_HEADER, FAULT_HEADER, FAULT_KINDS, FIELD_HEADER, FaultInjector, FaultRates
from kappalake.ingest.producer import ProduceSpec, records
from kappalake.ingest.reference import CITIES, Reference
from kappalake.ingest.simulators.base import Shard, parse_ms
from kappalake.ingest.simulators.signups import UNSERVED, SignupSimulator
from kappalake.pipelines.reference import MONEY, SCHEMAS, reference_rows
from kappalake.quality.gate import FAILED, OUTCOME, QualityGate
from kappalake.quality.suites import suite_from_dict
from kappalake.transforms.enrich import enrich_signups
from kappalake.transforms.parse import ERRORS, RESCUED, _fast_type, parse_events
from kappalake.transforms.registry import check_spec, get_transform
from tests.conftest import CONF_DIR
from tests.lake_checks import header

START = parse_ms("2026-11-22T08:00:00Z")
REF = Reference()
UNSERVED_CITIES = {c[1] for c in UNSERVED}
BRONZE = ("key binary, value binary, topic string, partition int, offset long, kafka_timestamp timestamp, "
          "headers array<struct<key:string,value:binary>>")


@pytest.fixture(scope="module")
def cfg():
    return load_config("local", CONF_DIR)


def signups(n: int, seed: int = 1, **kw):
    return list(itertools.islice(SignupSimulator(REF, seed, START, **kw), n))


def bronze(spark, recs):
    """Bronze rows of fault-injector records, received when they were due (Kafka's timestamp)."""
    rows = []
    for i, r in enumerate(recs):
        value = r.value if isinstance(r.value, bytes) else json.dumps(r.value, separators=(",", ":")).encode()
        received = dt.datetime.fromtimestamp(r.due_ms / 1000, dt.timezone.utc).replace(tzinfo=None)
        rows.append((r.key.encode(), value, "signups", 0, i, received, [(k, v) for k, v in r.headers] or None))
    return spark.createDataFrame(rows, BRONZE)


def plans_frame(spark, cfg):
    schema = SCHEMAS["bandwidth_plans"]
    return spark.createDataFrame([tuple(Decimal(str(r[f.name])) if f.dataType == MONEY else r[f.name] for f in schema)
                                  for r in reference_rows(cfg)["bandwidth_plans"]], schema)


# -- simulator ------------------------------------------------------------------------------

def test_the_simulator_is_registered_seeded_and_reproducible():
    sim = simulators.get("signups")
    assert sim.implausible[0] in contracts.schema("signups")["properties"] and sim.small_world == {"users": 1000}
    assert signups(500, seed=5) == signups(500, seed=5)
    assert signups(50, seed=5) != signups(50, seed=6)
    events = signups(4000, rate=20)
    times = [parse_ms(e.event["event_time"]) for e in events]
    assert min(times) >= START and 18 < len(times) / ((max(times) - START) / 1000) < 22  # the requested rate
    # Sent in order of their send times; a shop's upload comes after later sign-ups.
    assert [e.due_ms for e in events] == sorted(e.due_ms for e in events)
    assert all(e.key == e.event["user_id"] and e.due_ms == parse_ms(e.event["sent_at"]) >= times[i]
               for i, e in enumerate(events))
    behind = [e.event["channel"] for e, newest, t in zip(events[1:], itertools.accumulate(times, max), times[1:])
              if t < newest - 1000]
    assert behind and set(behind) == {"store"}  # more than a second behind: only shop uploads
    # New customers: ids after the existing ones, one sign-up each, disjoint between shards.
    assert events[0].event["user_id"] == "u005000" and len({e.key for e in events}) == len(events)
    shards = [{e.key for e in signups(300, shard=Shard(i, 3))} for i in range(3)]
    assert not (shards[0] & shards[1] or shards[1] & shards[2] or shards[0] & shards[2])


def test_customers_live_where_plans_are_but_a_few():
    served = {(p.country, p.city) for p in REF.bandwidth_plans}
    # Every city of the clickstream world has plans: the towns outside them are the "no plan" case.
    assert {(c[0], c[1]) for c in CITIES} <= served and not {(c[0], c[1]) for c in UNSERVED} & served
    events = [e.event for e in signups(20_000, rate=50)]
    unserved = [e for e in events if e["city"] in UNSERVED_CITIES]
    assert 0.02 < len(unserved) / len(events) < 0.04
    cities = Counter(e["city"] for e in events if e["city"] not in UNSERVED_CITIES)
    assert set(cities) == {c[1] for c in CITIES} and cities["New York"] > cities["Cape Town"] * 4  # CITIES' weights
    channels = Counter(e["channel"] for e in events)
    assert channels["web"] > channels["app"] > channels["store"] > 0
    located = [e for e in events if e["lat"] is not None]
    assert all(e["lon"] is not None for e in located) and 0.3 < len(located) / len(events) < 0.7
    assert all(e["lat"] is not None for e in events if e["channel"] == "store")


def test_every_produced_event_satisfies_the_contract(cfg):
    events = [r.value for r in records(cfg, ProduceSpec("signups", count=3000, seed=2, start_ms=START))]
    assert [(e["event_id"], errs) for e in events if (errs := contracts.validation_errors("signups", e))] == []
    assert contracts.kafka_key_field("signups") == "user_id"


# -- the contract in Spark --------------------------------------------------------------------

def test_parse_events_accepts_simulated_events_on_the_fast_path(spark):
    recs = list(FaultInjector("signups", FaultRates()).apply(signups(300, rate=10)))
    df = bronze(spark, recs)
    text = F.col("value").cast("string")
    canonical = F.to_json(F.from_json(text, _fast_type(contracts.schema("signups"))), {"ignoreNullFields": "false"})
    out = parse_events(df, "signups")
    iso = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    got = {r["event_id"]: r for r in out.select("event_id", "user_id", F.date_format("event_time", iso).alias("t"),
                                                ERRORS, RESCUED, (canonical == text).alias("_canonical")).collect()}
    assert {k: (r["t"], r["user_id"]) for k, r in got.items()} == {
        r.value["event_id"]: (r.value["event_time"], r.value["user_id"]) for r in recs}
    assert all(r[ERRORS] == [] and r[RESCUED] is None for r in got.values())
    # Canonical payloads (every field, in contract order): from_json then to_json gives them back,
    # so parse_events reads them on its fast path.
    assert all(r["_canonical"] for r in got.values())


# -- every fault kind through silver_signups' configured transforms and suite ----------------------

def silver_chain(spark, cfg, df):
    """The configured transforms of silver_signups on a static frame (the plans from the seed)."""
    for raw in cfg.pipelines["silver_signups"].transforms:
        t = check_spec(raw)
        kwargs = dict(t.params) | {p: plans_frame(spark, cfg) for p in t.tables}
        if t.needs_secret:
            kwargs["secret"] = "test-secret"
        df = get_transform(t.name)(df, **kwargs)
    return df


@pytest.fixture(scope="module")
def judged(spark, cfg):
    rates = FaultRates(**{k: 0.07 for k in FAULT_KINDS}, oversized_bytes=300_000)
    injector = FaultInjector("signups", rates, seed=4)
    recs = list(injector.apply(signups(400, rate=10)))
    df = silver_chain(spark, cfg, bronze(spark, recs))
    gate = QualityGate(suite_from_dict("silver.signups", cfg.quality.suites["silver.signups"]), "silver_signups",
                       df.schema)
    rows = gate.evaluate(df).select(header(FAULT_HEADER).alias("fault"), header(FIELD_HEADER).alias("field"),
                                    "event_id", "user_id", "email", "offered_plans", "plans_offered", "offer_id",
                                    "city", "value", OUTCOME, FAILED).collect()
    return injector.counts, recs, rows


def test_every_fault_kind_ends_where_it_does_for_the_other_topics(judged):
    counts, recs, rows = judged
    assert set(counts) == set(FAULT_KINDS) and all(n > 0 for n in counts.values()), counts
    where = Counter((r["fault"], r[OUTCOME]) for r in rows)
    in_silver = ("passed", "warned")
    for kind in ("late", "out_of_order", "extra_field"):  # kept (unknown fields in _rescued_data)
        assert sum(where[(kind, o)] for o in in_silver) == counts[kind], kind
    # An identical resend is dropped by dedup: one copy of each of those events left.
    assert where[("duplicate", "passed")] + where[("duplicate", "warned")] == 0
    dup_ids = {dict(r.headers)[EVENT_ID_HEADER].decode() for r in recs if dict(r.headers).get(FAULT_HEADER) == b"duplicate"}
    assert Counter(r["event_id"] for r in rows if r["event_id"] in dup_ids) == {i: 1 for i in dup_ids}
    for r in rows:
        kind, failed = r["fault"], r[FAILED]
        if kind in (None, "late", "out_of_order", "extra_field"):
            assert r[OUTCOME] in in_silver, (kind, failed)
            continue
        impossible_date = kind == "bad_timestamp" and bytes(r["value"]).decode().split('"event_time":"')[1][:4] not in (
            "0001", "1970")
        expected = {"malformed_json": "malformed_json", "non_utf8": "not_utf8", "oversized": "oversized",
                    "missing_field": f"missing:{r['field']}", "wrong_type": f"wrong_type:{r['field']}",
                    "future_time": "event_time_not_in_future", "implausible_value": "desired_speed_plausible",
                    "bad_timestamp": "format:event_time" if impossible_date else "event_time_plausible",
                    "conflicting_resend": "conflicting_resend"}[kind]
        assert r[OUTCOME] == "quarantined" and expected in failed, (kind, r["field"], failed)


def test_silver_rows_are_pseudonymised_and_carry_their_offer(judged):
    _, _, rows = judged
    kept = [r for r in rows if r[OUTCOME] in ("passed", "warned")]
    assert len(kept) > 100
    hexed = lambda v: v is not None and len(v) == 64 and set(v) <= set("0123456789abcdef")  # noqa: E731
    # The e-mail is pseudonymised; the user id is the application's account id the offer goes back to.
    assert all(hexed(r["email"]) and r["user_id"].startswith("u") for r in kept)
    # The suite's fail rules (pseudonym, offer id) hold on every row the chain keeps.
    fail_rules = {"email_pseudonymised", "offer_id_present"}
    assert not [r[FAILED] for r in kept if fail_rules & set(r[FAILED])]
    for r in kept:
        assert r["offer_id"] == hashlib.sha256(f"offer/{r['event_id']}".encode()).hexdigest()
        prices = [p["monthly_price"] for p in r["offered_plans"]]
        assert prices == sorted(prices) and r["plans_offered"] == len(prices)
        assert (r["plans_offered"] == 0) == (r["city"] in UNSERVED_CITIES), r["city"]
    # An unserved city is counted (warn: city_served), not refused.
    assert any("city_served" in r[FAILED] and r[OUTCOME] == "warned" for r in kept)


# -- enrich_signups -----------------------------------------------------------------------------

PLAN_COLS = ("plan_id string, country string, city string, plan_name string, download_mbps int, upload_mbps int, "
             "monthly_price decimal(12,2), currency string")


def test_enrich_signups_offers_plans_cheapest_first_and_an_empty_list_elsewhere(spark):
    plans = spark.createDataFrame([
        ("DE-BER-pro", "DE", "Berlin", "pro", 1000, 200, Decimal("54.99"), "EUR"),
        ("DE-BER-basic", "DE", "Berlin", "basic", 50, 10, Decimal("19.99"), "EUR"),
        ("DE-BER-plus", "DE", "Berlin", "plus", 250, 50, Decimal("34.99"), "EUR"),
        ("FR-PAR-basic", "FR", "Paris", "basic", 50, 10, Decimal("21.00"), "EUR")], PLAN_COLS)
    events = spark.createDataFrame([("e1", "DE", "Berlin"), ("e2", "FR", "Paris"), ("e3", "DE", "Husum"),
                                    ("e4", "US", "Berlin")], "event_id string, country string, city string")
    out = enrich_signups(events, plans)
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields[3:]] == [
        ("offered_plans", "array<struct<monthly_price:decimal(12,2),plan_id:string,plan_name:string,"
                          "download_mbps:int,upload_mbps:int,currency:string>>"),
        ("plans_offered", "int"), ("offer_id", "string")]

    def plan(price, pid, name, down, up):
        return (Decimal(price), pid, name, down, up, "EUR")

    def offer(event_id):
        return hashlib.sha256(f"offer/{event_id}".encode()).hexdigest()

    berlin = [plan("19.99", "DE-BER-basic", "basic", 50, 10), plan("34.99", "DE-BER-plus", "plus", 250, 50),
              plan("54.99", "DE-BER-pro", "pro", 1000, 200)]
    expected = spark.createDataFrame([
        ("e1", "DE", "Berlin", berlin, 3, offer("e1")),
        ("e2", "FR", "Paris", [plan("21.00", "FR-PAR-basic", "basic", 50, 10)], 1, offer("e2")),
        ("e3", "DE", "Husum", [], 0, offer("e3")),
        ("e4", "US", "Berlin", [], 0, offer("e4")),  # the city of another country: no plans
    ], out.schema)
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_offer_id_is_deterministic_and_not_an_event_id(spark):
    plans = spark.createDataFrame([], PLAN_COLS)
    events = spark.createDataFrame([("9b9f042e-4b7b-4a62-b262-c1b2164fc09e", "DE", "Berlin")],
                                   "event_id string, country string, city string")
    first, again = (enrich_signups(events, plans).first() for _ in range(2))
    assert first["offer_id"] == again["offer_id"] == hashlib.sha256(
        b"offer/9b9f042e-4b7b-4a62-b262-c1b2164fc09e").hexdigest()
    assert first["offered_plans"] == [] and first["plans_offered"] == 0


def test_enrich_signups_runs_on_a_stream(spark, tmp_path):
    plans = spark.createDataFrame([("DE-BER-basic", "DE", "Berlin", "basic", 50, 10, Decimal("19.99"), "EUR")],
                                  PLAN_COLS)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text('{"event_id": "e1", "country": "DE", "city": "Berlin"}\n'
                                            '{"event_id": "e2", "country": "DE", "city": "Husum"}\n')
    stream = spark.readStream.schema("event_id string, country string, city string").json(str(tmp_path / "in"))
    query = (enrich_signups(stream, plans).writeStream.format("memory").queryName("signup_offers")
             .option("checkpointLocation", str(tmp_path / "cp")).trigger(availableNow=True).start())
    try:
        query.awaitTermination(120)
    finally:
        query.stop()
    got = {r["event_id"]: (r["plans_offered"], [p["plan_id"] for p in r["offered_plans"]])
           for r in spark.table("signup_offers").collect()}
    assert got == {"e1": (1, ["DE-BER-basic"]), "e2": (0, [])}
