"""Location-based offers (AWS scenario 1) on the real broker: sign-ups with faults through bronze and
silver, each valid one's offer in gold.offers exactly once, on the offers topic at least once
with its idempotency key, the latest per user looked up without Spark; invalid ones quarantined."""

from __future__ import annotations

import json
import time

import pytest
from chispa import assert_df_equality

from kappalake.bi.lookup import lookup
from kappalake.config import TriggerConf
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.simulators.signups import UNSERVED
from kappalake.ingest.topics import ensure_topics
from kappalake.ops.consistency import check_silver
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import run_pipelines
from tests.conftest import make_config
from tests.integration.test_routing import _read_topic
from tests.lake_checks import table

OFFER_FIELDS = {"offer_id", "event_id", "user_id", "channel", "country", "city", "offered_plans", "plans_offered",
                "event_time"}


@pytest.fixture(scope="module")
def offers_lake(spark, broker_conf, tmp_path_factory):
    cfg = make_config(broker_conf, tmp_path_factory.mktemp("offers"))
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["signups", "offers"]))
    write_reference_tables(spark, cfg)
    sent = produce(cfg, ProduceSpec("signups", count=1_500, seed=5, faults=FaultRates.uniform(0.01), users=200))
    assert sent.acked == sent.sent and not sent.errors
    run_pipelines(spark, cfg, ["bronze_signups", "silver_signups"], trigger=TriggerConf(available_now=True), timeout=600)
    return cfg


def test_every_valid_signup_has_exactly_one_offer_row_and_invalid_ones_are_quarantined(spark, offers_lake):
    cfg = offers_lake
    check = check_silver(spark, cfg, "silver_signups")
    assert check.ok, check.detail
    assert check.figures["quarantined"] > 0 and check.figures["rows"] > 1_000
    reasons = {r.reason.split(":")[0] for r in table(spark, cfg, "quarantine.signups").select("reason").collect()}
    assert {"malformed_json", "missing", "wrong_type"} <= reasons, reasons
    silver, offers = table(spark, cfg, "silver.signups"), table(spark, cfg, "gold.offers")
    assert offers.count() == offers.select("offer_id").distinct().count() == silver.count()
    assert_df_equality(offers, silver.select(*offers.columns), ignore_row_order=True, ignore_nullable=True)


def test_offers_list_the_plans_of_the_city_cheapest_first_and_none_where_no_plan_reaches(spark, offers_lake):
    rows = table(spark, offers_lake, "gold.offers").collect()
    unserved = {(c[0], c[1]) for c in UNSERVED}
    empty = [r for r in rows if (r.country, r.city) in unserved]
    assert empty and all(r.offered_plans == [] and r.plans_offered == 0 for r in empty)
    served = [r for r in rows if (r.country, r.city) not in unserved]
    assert all(r.plans_offered == len(r.offered_plans) >= 1 for r in served)
    assert all([p.monthly_price for p in r.offered_plans] == sorted(p.monthly_price for p in r.offered_plans)
               for r in served)


def test_every_offer_is_on_the_topic_keyed_by_user_with_its_idempotency_key(spark, offers_lake):
    cfg = offers_lake
    offers = {r.offer_id: r for r in table(spark, cfg, "gold.offers").collect()}
    messages = _read_topic(cfg, cfg.topic_name("offers"))
    assert len(messages) >= len(offers)
    seen = set()
    for m in messages:
        value = json.loads(m.value)
        assert set(value) == OFFER_FIELDS
        assert dict(m.headers)["idempotency-key"].decode() == value["offer_id"]
        assert m.key.decode() == value["user_id"] == offers[value["offer_id"]].user_id
        assert len(value["offered_plans"]) == value["plans_offered"]
        seen.add(value["offer_id"])
    assert seen == set(offers)


def test_the_latest_offer_per_user_is_looked_up_without_spark(spark, offers_lake):
    cfg = offers_lake
    latest = table(spark, cfg, "serving.latest_offers")
    assert latest.count() == latest.select("user_id").distinct().count() == \
        table(spark, cfg, "silver.signups").select("user_id").distinct().count()
    user = latest.first().user_id
    lookup(cfg.lake, "serving.latest_offers", {"user_id": "u0"})  # delta-rs and pyarrow imported once
    started = time.monotonic()
    found = lookup(cfg.lake, "serving.latest_offers", {"user_id": user})
    took = time.monotonic() - started
    assert [r["user_id"] for r in found.to_pylist()] == [user] and "offered_plans" in found.column_names
    assert took < 1.0, took
