"""Expectation suites: compiled row rules agree with GX, each policy does what it says."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.errors import ConfigError, QualityGateError
from kappalake.quality.gate import QualityGate
from kappalake.quality.quarantine import quarantine_rows, valid_rows
from kappalake.quality.rules import type_violations
from kappalake.quality.suites import check_columns, suite_from_dict

SCHEMA = ("event_id string, event_type string, price double, quantity int, page string, "
          "event_time timestamp, sent_at timestamp")
T0 = dt.datetime(2026, 11, 25, 12, 0, 0)


def rows():
    m = dt.timedelta(minutes=1)
    return [
        ("e1", "purchase", 10.0, 1, "/home", T0, T0),
        ("e2", "purchase", -5.0, 2, "/cart", T0, T0 + m),        # negative price
        ("e3", "page_view", None, None, "/product/p0042", T0, T0),
        ("e4", "add_to_cart", None, 3, "/cart", T0, T0),        # cart event without price
        ("e4", "click", 2.0, 5000, "bad page", T0, T0 - m),     # duplicate id, huge quantity, odd page
        ("e6", None, 1.0, 1, "/x", None, T0),                   # no type, no time
    ]


def expectation(kind, policy="quarantine", rule=None, **kwargs):
    meta = {"policy": policy} | ({"rule": rule} if rule else {})
    return {"type": kind, "kwargs": kwargs, "meta": meta}


ALL_ROW_TYPES = [
    expectation("expect_column_values_to_not_be_null", column="event_type"),
    expectation("expect_column_values_to_be_null", column="quantity", rule="quantity_null"),
    expectation("expect_column_values_to_be_between", column="price", min_value=0, max_value=100),
    expectation("expect_column_values_to_be_between", column="quantity", min_value=1, max_value=10, strict_max=True,
                rule="quantity_strict"),
    expectation("expect_column_values_to_be_between", column="event_time", min_value="2026-01-01T00:00:00",
                max_value="2026-11-25T11:00:00", rule="time_window"),
    expectation("expect_column_values_to_be_in_set", column="event_type", value_set=["purchase", "page_view"]),
    expectation("expect_column_values_to_not_be_in_set", column="event_type", value_set=["click"]),
    expectation("expect_column_values_to_match_regex", column="page", regex="^/"),
    expectation("expect_column_values_to_not_match_regex", column="page", regex="cart"),
    expectation("expect_column_values_to_match_regex_list", column="page", regex_list=["^/home", "^/product"]),
    expectation("expect_column_values_to_not_match_regex_list", column="page", regex_list=["^/x", " "]),
    expectation("expect_column_value_lengths_to_be_between", column="page", min_value=3, max_value=8),
    expectation("expect_column_value_lengths_to_equal", column="event_id", value=2),
    expectation("expect_column_values_to_be_unique", column="event_id"),
    expectation("expect_column_pair_values_a_to_be_greater_than_b", column_A="sent_at", column_B="event_time",
                or_equal=True),
    expectation("expect_column_values_to_not_be_null", column="price", rule="cart_price",
                row_condition="event_type IN ('add_to_cart', 'purchase')", condition_parser="spark"),
]


def gate_for(expectations, table="silver.test"):
    suite = suite_from_dict(table, {"expectations": expectations})
    return suite, QualityGate(suite, "test_pipeline", _schema(), fail_sample=3)


def _schema():
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(SCHEMA)


@pytest.fixture
def df(spark):
    return spark.createDataFrame(rows(), SCHEMA)


def failures(gate, df):
    """rule name -> sorted event ids (with row position) that fail it, by the compiled rules."""
    ev = gate.evaluate(df.withColumn("_pos", F.monotonically_increasing_id()))
    out = {}
    for r in ev.collect():
        for name in r["_q_failed"]:
            out.setdefault(name, []).append(r["event_id"])
    return {k: sorted(v) for k, v in out.items()}


def test_compiled_rules_agree_with_great_expectations(spark, df, tmp_path):
    """Same suite, same rows: the per-rule failure counts of the Spark columns equal GX's unexpected counts."""
    import great_expectations as gx

    suite, gate = gate_for(ALL_ROW_TYPES)
    ours = {k: len(v) for k, v in failures(gate, df).items()}
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_spark("s").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b") \
        .get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite.to_gx())
    theirs = {r.expectation_config.meta["rule"]: r.result.get("unexpected_count") for r in result.results}
    assert theirs == {rule.name: ours.get(rule.name, 0) for rule in suite.rules}
    assert sum(theirs.values()) > 15  # the rows exercise every rule


def test_warn_keeps_and_counts_drop_removes_quarantine_keeps_the_reasons(spark, df):
    _, gate = gate_for([
        expectation("expect_column_values_to_be_between", "warn", "price_sane", column="price", min_value=0),
        expectation("expect_column_values_to_be_between", "drop", "quantity_small", column="quantity", max_value=10),
        expectation("expect_column_values_to_not_be_null", "quarantine", "typed", column="event_type"),
        expectation("expect_column_values_to_not_be_null", "quarantine", "timed", column="event_time"),
    ])
    ev = gate.evaluate(df)
    q = gate.measure(ev)
    assert (q.rows_in, q.count("passed"), q.count("warned"), q.count("dropped"), q.count("quarantined")) == (6, 3, 1, 1, 1)
    assert q.rule_failures == {"price_sane": 1, "quantity_small": 1, "typed": 1, "timed": 1}
    kept = valid_rows(ev, drop_raw=False)
    expected = df.filter(F.col("event_id").isin("e1", "e2", "e3") | (F.col("event_type") == "add_to_cart"))
    assert_df_equality(kept, expected, ignore_row_order=True)
    outcome = {r["event_id"] + "/" + str(r["event_type"]): r["_q_outcome"] for r in ev.collect()}
    assert outcome == {"e1/purchase": "passed", "e2/purchase": "warned", "e3/page_view": "passed",
                       "e4/add_to_cart": "passed", "e4/click": "dropped", "e6/None": "quarantined"}


def test_a_quarantined_row_lists_every_rule_it_failed_with_the_values(spark, df):
    _, gate = gate_for([
        expectation("expect_column_values_to_not_be_null", "quarantine", "typed", column="event_type"),
        expectation("expect_column_values_to_not_be_null", "warn", "timed", column="event_time"),
        expectation("expect_column_values_to_be_between", "drop", "cheap", column="price", max_value=0.5),
    ])
    raw = df.select("*", F.lit("t").alias("topic"), F.lit(0).alias("partition"), F.lit(7).cast("long").alias("offset"),
                    F.col("event_time").alias("kafka_timestamp"), F.lit(None).cast("binary").alias("key"),
                    F.encode("event_id", "utf-8").alias("value"), F.array().cast("array<struct<key:string,value:binary>>").alias("headers"),
                    F.array().cast("array<string>").alias("_errors"))
    q = quarantine_rows(gate.evaluate(raw), "p").collect()
    assert len(q) == 1
    r = q[0]
    assert (r["reason"], r["errors"], r["stage"], r["payload_text"]) == ("typed", ["typed", "timed", "cheap"], "expectations", "e6")
    assert r["error_text"] == "typed: event_type=null; timed: event_time=null; cheap: price=1.0"


def test_contract_errors_quarantine_first_and_expectations_do_not_pile_on(spark):
    _, gate = gate_for([expectation("expect_column_values_to_not_be_null", column="event_type")])
    df = spark.createDataFrame([("a", None, ["malformed_json"]), ("b", None, []), ("c", "x", ["missing:page", "enum:app"])],
                               "event_id string, event_type string, _errors array<string>")
    got = {r["event_id"]: (r["_q_outcome"], r["_q_failed"]) for r in gate.evaluate(df).collect()}
    assert got == {"a": ("quarantined", ["malformed_json"]), "b": ("quarantined", ["expect_column_values_to_not_be_null(event_type)"]),
                   "c": ("quarantined", ["missing:page", "enum:app"])}


def test_fail_stops_with_the_rule_and_failing_rows_unless_mostly_tolerates_them(spark, df):
    _, gate = gate_for([expectation("expect_column_values_to_be_between", "fail", "price_sane", column="price", min_value=0)])
    ev = gate.evaluate(df)
    with pytest.raises(QualityGateError) as e:
        gate.enforce(ev, gate.measure(ev), batch_id=4)
    msg = str(e.value)
    assert "price_sane" in msg and "1 of 6 rows in batch 4 of pipeline test_pipeline" in msg
    assert "price: -5.0" in msg and "\n" not in msg
    _, tolerant = gate_for([expectation("expect_column_values_to_be_between", "fail", "price_sane", column="price",
                                        min_value=0, mostly=0.8)])
    ev = tolerant.evaluate(df)
    q = tolerant.measure(ev)
    tolerant.enforce(ev, q)  # 5 of 6 pass: within mostly
    assert q.count("warned") == 1


@pytest.mark.parametrize("bad, message", [
    ({"type": "expect_column_values_to_be_purple", "kwargs": {"column": "x"}}, "unknown expectation type 'expect_column_values_to_be_purple'"),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "minimum": 0}}, "minimum extra fields not permitted"),
    ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "price"}}, "value_set"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}, "meta": {"policy": "explode"}}, "meta.policy 'explode'"),
    ({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {"policy": "quarantine"}}, "can only warn or fail"),
    ({"type": "expect_column_mean_to_be_between", "kwargs": {"column": "price", "min_value": 1}, "meta": {"scope": "row"}}, "set meta.scope: table"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "row_condition": "x > 1"}}, "condition_parser: spark"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}, "policy": "warn"}, "put kappalake settings under meta"),
])
def test_invalid_expectations_are_named(bad, message):
    with pytest.raises(ConfigError, match="silver.test") as e:
        suite_from_dict("silver.test", {"expectations": [expectation("expect_column_values_to_not_be_null", column="a"), bad]})
    assert message in str(e.value) and "expectations[1]" in str(e.value)


def test_unknown_columns_and_wrong_types_are_found_before_a_stream_starts():
    suite = suite_from_dict("silver.test", {"expectations": [
        expectation("expect_column_values_to_be_between", column="prize", min_value=0),
        expectation("expect_column_values_to_be_of_type", "fail", column="price", type_="StringType")]})
    with pytest.raises(ConfigError, match=r"expectations\[0\].*names unknown column\(s\) prize; pipeline p writes: event_id"):
        check_columns(suite, _schema().fieldNames(), "p")
    [(rule, problem)] = type_violations(suite.row_rules, _schema())
    assert rule.index == 1 and problem == "price is DoubleType, expected StringType"


def test_the_shipped_suites_load():
    from kappalake.config import load_config
    from kappalake.quality.suites import check_suites

    cfg = load_config("local")
    check_suites(cfg.quality)
    assert {"silver.clickstream", "silver.telemetry"} <= set(cfg.quality.suites)
