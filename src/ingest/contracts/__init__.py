"""Versioned event contracts: one JSON Schema per topic and version, read by everyone.

The producers validate against them in tests, the Spark parsing code derives its explicit
``from_json`` schema from them (:func:`spark_schema`), and ``docs/contracts.md`` is
generated from them (:func:`markdown`). A schema file is ``<topic>.v<N>.json`` next to this
module; adding a version is adding a file. A configuration's ``contracts_dir`` adds topics of
the user's own the same way.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from kappalake.config.extensions import contract_dirs
from kappalake.errors import ConfigError

_FILE = re.compile(r"^(?P<topic>[a-z_]+)\.v(?P<version>\d+)\.json$")


def _catalog() -> dict[str, dict[int, dict[str, Any]]]:
    return _read_catalog(contract_dirs())


@cache
def _read_catalog(user_dirs: tuple[Path, ...]) -> dict[str, dict[int, dict[str, Any]]]:
    """kappalake's contracts, then those of the configuration's ``contracts_dir``."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for entry in resources.files(__name__).iterdir():
        m = _FILE.match(entry.name)
        if m:
            out.setdefault(m["topic"], {})[int(m["version"])] = json.loads(entry.read_text())
    for directory in user_dirs:
        for path in sorted(directory.glob("*.json")):
            m = _FILE.match(path.name)
            if not m:
                raise ConfigError(f"contracts_dir: {path} is not named <topic>.v<N>.json (e.g. orders.v1.json)")
            topic, version = m["topic"], int(m["version"])
            if version in out.get(topic, {}):
                raise ConfigError(f"contracts_dir: {path} defines {topic} v{version}, which kappalake's own contracts "
                                  f"define; a new version of a topic is a new number, a new topic a new name")
            out.setdefault(topic, {})[version] = _user_contract(path)
    return out


def _user_contract(path: Path) -> dict[str, Any]:
    """A contract file of the user's, checked for what kappalake reads from it."""
    try:
        s = json.loads(path.read_text())
        Draft202012Validator.check_schema(s)
    except (ValueError, SchemaError) as e:
        why = e.message if isinstance(e, SchemaError) else str(e)
        raise ConfigError(f"contracts_dir: {path} is not a valid JSON Schema: {why}") from None
    props = s.get("properties")
    if s.get("type") != "object" or not isinstance(props, dict) or not props:
        raise ConfigError(f"contracts_dir: {path} must describe an object: \"type\": \"object\" with \"properties\"")
    if s.get("x-kafka-key") not in props:
        raise ConfigError(f"contracts_dir: {path} needs \"x-kafka-key\": the field that is the Kafka record key "
                          f"(one of {', '.join(props)})")
    s.setdefault("required", [])
    s.setdefault("description", s.get("title", path.stem))
    return s


def topics() -> list[str]:
    """Logical topics that have a contract."""
    return sorted(_catalog())


def versions(topic: str) -> list[int]:
    return sorted(_contracts_of(topic))


def latest_version(topic: str) -> int:
    return versions(topic)[-1]


def schema(topic: str, version: int | None = None) -> dict[str, Any]:
    """The JSON Schema of ``topic`` (latest version unless given)."""
    by_version = _contracts_of(topic)
    v = latest_version(topic) if version is None else version
    if v not in by_version:
        raise KeyError(f"no contract {topic} v{v}; versions: {', '.join(map(str, sorted(by_version)))}")
    return by_version[v]


def _contracts_of(topic: str) -> dict[int, dict[str, Any]]:
    cat = _catalog()
    if topic not in cat:
        raise KeyError(f"no contract for topic {topic!r}; contracts exist for: {', '.join(sorted(cat))} "
                       f"(a topic of your own: <topic>.v<N>.json in contracts_dir)")
    return cat[topic]


def kafka_key_field(topic: str) -> str:
    """The event field whose value is the Kafka record key (per-key ordering)."""
    return schema(topic)["x-kafka-key"]


def required_fields(topic: str, version: int | None = None) -> list[str]:
    return list(schema(topic, version)["required"])


@cache
def validator(topic: str, version: int | None = None) -> Draft202012Validator:
    s = schema(topic, version)
    return Draft202012Validator(s, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validation_errors(topic: str, event: Any, version: int | None = None) -> list[str]:
    """Human-readable contract violations of ``event`` (empty when valid)."""
    errs = sorted(validator(topic, version).iter_errors(event), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(event)'}: {e.message}" for e in errs]


# -- Spark -------------------------------------------------------------------------------

_SPARK_TYPES = {"string": "string", "integer": "bigint", "number": "double", "boolean": "boolean"}


def json_type(prop: dict[str, Any]) -> str:
    """The JSON type of a contract property, without "null" (``["number", "null"]`` -> ``number``)."""
    t = prop.get("type", "string")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        if len(non_null) != 1:
            raise ValueError(f"contract property type {t} must be one type, optionally with null")
        t = non_null[0]
    return t


def spark_ddl_type(prop: dict[str, Any]) -> str:
    """Spark SQL type of a contract property (``x-spark-type`` wins; date-time strings are timestamps)."""
    if "x-spark-type" in prop:
        return prop["x-spark-type"]
    t = json_type(prop)
    if t == "object":
        return "struct<" + ", ".join(f"{n}: {spark_ddl_type(p)}" for n, p in prop["properties"].items()) + ">"
    if t == "array":
        return f"array<{spark_ddl_type(prop['items'])}>"
    if t == "string" and prop.get("format") == "date-time":
        return "timestamp"
    return _SPARK_TYPES[t]


def ddl(topic: str, version: int | None = None) -> str:
    """Spark DDL of the contract's fields, in contract order (``a string, b double, ...``)."""
    props = schema(topic, version)["properties"]
    return ", ".join(f"{name} {spark_ddl_type(p)}" for name, p in props.items())


def spark_schema(topic: str, version: int | None = None):  # -> pyspark.sql.types.StructType
    """The explicit ``from_json`` schema of the contract (timestamps as TimestampType); no JVM needed."""
    from pyspark.sql import types as T

    simple = {"string": T.StringType(), "bigint": T.LongType(), "int": T.IntegerType(), "double": T.DoubleType(),
              "boolean": T.BooleanType(), "timestamp": T.TimestampType()}

    def convert(prop: dict[str, Any]) -> T.DataType:
        t = json_type(prop)
        if "x-spark-type" not in prop and t == "object":
            return T.StructType([T.StructField(n, convert(p), True) for n, p in prop["properties"].items()])
        if "x-spark-type" not in prop and t == "array":
            return T.ArrayType(convert(prop["items"]), True)
        ddl_type = spark_ddl_type(prop)
        if m := re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", ddl_type):
            return T.DecimalType(int(m[1]), int(m[2]))
        return simple[ddl_type]

    return convert({"type": "object", "properties": schema(topic, version)["properties"]})


# -- docs --------------------------------------------------------------------------------

def _rows(props: dict[str, Any], required: set[str], prefix: str = "") -> list[str]:
    rows = []
    for name, p in props.items():
        typ = json_type(p)
        nullable = isinstance(p.get("type"), list) and "null" in p["type"]
        allowed = ", ".join(f"`{v}`" for v in p.get("enum", []) if v is not None)
        notes = [p.get("description", "")]
        if allowed:
            notes.append(f"One of {allowed}.")
        if "const" in p:
            notes.append(f"Always `{p['const']}`.")
        rows.append(f"| `{prefix}{name}` | {typ}{' or null' if nullable else ''} | {spark_ddl_type(p) if typ != 'object' else 'struct'} "
                    f"| {'yes' if name in required else ''} | {' '.join(n for n in notes if n)} |")
        if typ == "object":
            rows += _rows(p["properties"], set(p.get("required", [])), f"{prefix}{name}.")
    return rows


def markdown() -> str:
    """``docs/contracts.md``: every contract as a field table (generated; do not edit by hand)."""
    out = ["# Event contracts", "",
           "Generated from `src/ingest/contracts/*.json` by `kappalake contracts docs`; do not edit by hand.",
           "Producers, the Spark parsing code and this page all read the same files.", ""]
    for topic in topics():
        for v in versions(topic):
            s = schema(topic, v)
            out += [f"## {topic} v{v}", "", s["description"], "",
                    f"Kafka key: `{s['x-kafka-key']}`. Unknown fields violate the contract "
                    "(schema drift).", "",
                    "| field | JSON type | Spark type | required | meaning |", "|---|---|---|---|---|"]
            out += _rows(s["properties"], set(s["required"]))
            for rule in s.get("allOf", []):
                when = rule["if"]["properties"]
                (field, cond), = when.items()
                out += ["", f"When `{field}` is `{cond['const']}`, also required and not null: "
                        + ", ".join(f"`{f}`" for f in rule["then"]["required"]) + "."]
            out += ["", "Spark DDL (the explicit `from_json` schema):", "", "```", ddl(topic, v), "```", ""]
    return "\n".join(out)
