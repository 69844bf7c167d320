"""Parse raw Kafka payloads against their contract, natively in Spark (no Python UDFs).

The payload is parsed once into a VARIANT (``try_parse_json``); the contract (JSON Schema)
is compiled into Spark expressions that check each field's JSON type, presence, pattern,
enum and range, and extract it as its Spark type. Every problem becomes a short code in
the ``_errors`` array (``malformed_json``, ``missing:event_id``, ``wrong_type:price``...),
so the split into valid rows and quarantine is one predicate and nothing is dropped here.
Fields the contract does not know are kept as JSON in ``_rescued_data``. Text is trimmed
and enum codes compared case-insensitively (stored lower case) before they are checked.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from kappalake.ingest import contracts

ERRORS = "_errors"
RESCUED = "_rescued_data"
RAW_COLUMNS = ["key", "value", "topic", "partition", "offset", "kafka_timestamp", "headers"]


def is_valid() -> Column:
    """True for a parsed row without problems (its ``_errors`` list is empty)."""
    return F.size(ERRORS) == 0

# schema_of_variant() names per JSON Schema type. Integers may arrive as DECIMAL(n,0) only
# when they overflow BIGINT; numbers may be any numeric.
_INTEGER = "^(BIGINT|INT|SMALLINT|TINYINT)$"
_NUMBER = "^(BIGINT|INT|SMALLINT|TINYINT|DECIMAL.*|DOUBLE|FLOAT)$"
_VARIANT_TYPE = {"string": "^STRING$", "integer": _INTEGER, "number": _NUMBER, "boolean": "^BOOLEAN$",
                 "object": "^OBJECT.*", "array": "^ARRAY.*"}


def parse_events(df: DataFrame, topic: str, max_payload_bytes: int = 256 * 1024) -> DataFrame:
    """Bronze rows -> one typed column per contract field, plus ``_rescued_data`` and ``_errors``.

    Keeps the Kafka coordinates and the raw payload (for quarantine); rows are never dropped.
    Errors: ``not_utf8``, ``oversized``, ``malformed_json``, ``not_an_object``, and per field
    ``missing:<f>``, ``wrong_type:<f>``, ``pattern:<f>``, ``format:<f>`` (an impossible date-time),
    ``enum:<f>``, ``range:<f>``,
    ``version:<n>`` for an unknown ``schema_version``.

    Cost per row: one JSON parse into a VARIANT and three lookups on it (its type signature,
    the contract fields as a struct, all fields as a map for the rescue); every per-field
    check then works on those columns with plain string and comparison functions.
    """
    schema = contracts.schema(topic)
    types = F.col("_t")
    fields: list[Column] = []
    field_checks: list[Column] = []
    for name, prop in schema["properties"].items():
        col, errs = _field(types, F.col("_s"), name, prop, name in schema["required"])
        fields.append(col.alias(name))
        field_checks += errs
    field_checks += _conditional_rules(types, schema)
    version = schema["properties"]["schema_version"].get("const")
    if version is not None:
        got = F.col("_s.schema_version")
        field_checks.append(F.when(got != version, F.concat(F.lit("version:"), got.cast("string"))))
    # Field problems only mean something once the payload is a JSON object.
    is_object = F.col("_sig").startswith("OBJECT")
    checks: list[Column] = [
        F.when(~F.expr("is_valid_utf8(cast(value as string))"), F.lit("not_utf8")),
        F.when(F.length("value") > max_payload_bytes, F.lit("oversized")),
        F.when(F.col("_sig").isNull(), F.lit("malformed_json")),
        F.when(F.col("_sig").isNotNull() & ~is_object, F.lit("not_an_object")),
        *[F.when(is_object, c) for c in field_checks],
    ]
    known = F.array(*[F.lit(n) for n in schema["properties"]])
    unknown = F.array_except(F.map_keys("_m"), known)
    extra = F.map_filter("_m", lambda k, _: ~F.array_contains(known, k))
    keep = [c for c in RAW_COLUMNS if c in df.columns]
    struct = "struct<" + ", ".join(f"{n}: {_lookup_type(p)}" for n, p in schema["properties"].items()) + ">"
    objects = [n for n, p in schema["properties"].items() if contracts.json_type(p) == "object"]
    looked_up = (
        df.withColumn("_v", F.expr("try_parse_json(cast(value as string))"))
        .select(*keep,
                F.expr("schema_of_variant(_v)").alias("_sig"),
                F.expr(f"try_variant_get(_v, '$', '{struct}')").alias("_s"),
                F.expr("try_variant_get(_v, '$', 'map<string,variant>')").alias("_m"))
        # Field types of each object level, computed once per row and read by every check.
        .select(*keep, "_sig", "_s", "_m", _types(F.col("_sig")).alias("_t"),
                *[_types(F.regexp_extract("_sig", rf"(?:<|, ){n}: (OBJECT<[^<>]*>)", 1)).alias(f"_t_{n}") for n in objects])
    )
    return looked_up.select(
        *keep, *fields,
        F.when(F.size(unknown) > 0, F.to_json(extra)).alias(RESCUED),
        F.array_except(F.array(*checks), F.array(F.lit(None).cast("string"))).alias(ERRORS),
    )


_NAME_TYPE = r"(?:<|, )([A-Za-z0-9_$]+): ([A-Z]+)"


def _types(signature: Column) -> Column:
    """Map of field name -> JSON type name (STRING, BIGINT, DECIMAL, OBJECT, VOID...) of one object level.

    ``schema_of_variant`` gives e.g. ``OBJECT<a: STRING, g: OBJECT<c: STRING>, p: DECIMAL(3,1)>``;
    nested objects and arrays are collapsed first so only this level's names are read.
    """
    flat = signature
    for _ in range(3):
        flat = F.regexp_replace(flat, r": (OBJECT|ARRAY)<[^<>]*>", ": $1")
    return F.map_from_arrays(F.regexp_extract_all(flat, F.lit(_NAME_TYPE), 1),
                             F.regexp_extract_all(flat, F.lit(_NAME_TYPE), 2))


def _lookup_type(prop: dict[str, Any]) -> str:
    """Spark type to read a property as; timestamps as text (their format is checked first)."""
    if contracts.json_type(prop) == "object":
        return "struct<" + ", ".join(f"{n}: {_lookup_type(p)}" for n, p in prop["properties"].items()) + ">"
    t = contracts.spark_ddl_type(prop)
    return "string" if t == "timestamp" else t


def _field(types: Column, parent: Column, name: str, prop: dict[str, Any], required: bool,
           prefix: str = "") -> tuple[Column, list[Column]]:
    """(typed value or null when invalid, error expressions) for one contract property."""
    jtype = contracts.json_type(prop)
    nullable = isinstance(prop.get("type"), list) and "null" in prop["type"]
    vtype = F.try_element_at(types, F.lit(name))  # null: absent, VOID: JSON null
    absent = vtype.isNull() | (vtype == "VOID")
    type_ok = vtype.rlike(_VARIANT_TYPE[jtype])
    label = prefix + name
    errors = [F.when((vtype == "VOID") & F.lit(not nullable) | vtype.isNull() & F.lit(required), F.lit(f"missing:{label}")),
              F.when(~absent & ~type_ok, F.lit(f"wrong_type:{label}"))]
    raw = parent.getField(name)
    if jtype == "object":
        inner = F.col(f"_t_{name}")  # nested objects: one level, as the contracts have
        subs, sub_errs = [], []
        for sub, sp in prop["properties"].items():
            c, e = _field(inner, raw, sub, sp, sub in prop.get("required", []), prefix=f"{label}.")
            subs.append(c.alias(sub))
            sub_errs += e
        value = F.when(~absent & type_ok, F.struct(*subs))
        # Inner problems only count when the object itself is there and is an object.
        errors += [F.when(~absent & type_ok, e) for e in sub_errs]
        return value, errors
    text = raw
    if jtype == "string":
        raw = text = F.trim(raw)  # canonical text: no surrounding blanks
    allowed = [x for x in prop.get("enum", []) if x is not None]
    if allowed and all(isinstance(x, str) and x == x.lower() for x in allowed):
        raw = F.lower(raw)  # codes compare case-insensitively: " Add_To_Cart " is add_to_cart
    ok = type_ok
    if "pattern" in prop:
        matches = text.rlike(prop["pattern"])
        errors.append(F.when(type_ok & ~matches, F.lit(f"pattern:{label}")))
        ok = type_ok & matches
    if contracts.spark_ddl_type(prop) == "timestamp":
        # ISO-8601 with zone. try_: under ANSI mode an impossible date (2026-02-30) would raise
        # and stop the stream; it is a format error of this row instead.
        raw = F.try_to_timestamp(text)
        errors.append(F.when(ok & raw.isNull(), F.lit(f"format:{label}")))
    value = F.when(ok, raw)
    if allowed:
        errors.append(F.when(type_ok & ~raw.isin(allowed), F.lit(f"enum:{label}")))
    lo, hi = prop.get("minimum"), prop.get("maximum")
    if lo is not None or hi is not None:
        bad = F.lit(False)
        if lo is not None:
            bad = bad | (raw < lo)
        if hi is not None:
            bad = bad | (raw > hi)
        errors.append(F.when(type_ok & bad, F.lit(f"range:{label}")))
    return value, errors


def _conditional_rules(types: Column, schema: dict[str, Any]) -> list[Column]:
    """``allOf: [{if: {properties: {f: {const: c}}}, then: {required: [...]}}]`` as checks."""
    out = []
    for rule in schema.get("allOf", []):
        (field, cond), = rule["if"]["properties"].items()
        when = F.col(f"_s.{field}") == cond["const"]
        for req in rule["then"]["required"]:
            vtype = F.try_element_at(types, F.lit(req))
            out.append(F.when(when & (vtype.isNull() | (vtype == "VOID")), F.lit(f"missing:{req}")))
    return out
