"""Row-level GX expectations compiled to native Spark columns (no UDFs, no GX at run time).

Each rule becomes a boolean "this row fails" column plus a short text quoting the value, with
GX's semantics: nulls are neither expected nor unexpected except for the null checks; a
``row_condition`` (``condition_parser: spark``) limits the rule to the rows it selects.
``expect_column_values_to_be_unique`` needs the whole micro-batch (a window), so it is
evaluated inside ``foreachBatch``, where the batch is a static DataFrame. The type checks
(``..._of_type``, ``..._in_type_list``) are about the schema, so they run once at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

if TYPE_CHECKING:
    from kappalake.quality.suites import Rule

TYPE_CHECKS = {"expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"}
ROW_LEVEL = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list",
    "expect_column_values_to_not_match_regex_list",
    "expect_column_value_lengths_to_be_between",
    "expect_column_value_lengths_to_equal",
    "expect_column_values_to_be_unique",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
    *TYPE_CHECKS,
}


@dataclass(frozen=True)
class RowCheck:
    rule: Rule
    failed: Column   # true when the row fails the rule (never null)
    detail: Column   # "rule: column=value" for the quarantine's error text


def compile_rule(rule: Rule, schema: StructType) -> RowCheck | None:
    """The Spark form of a row-scope rule; None for the schema-level type checks."""
    if rule.type in TYPE_CHECKS:
        return None
    kw = rule.kwargs
    bad = _COMPILERS[rule.type](kw, schema)
    cond = kw.get("row_condition")
    if cond:
        bad = F.expr(cond) & bad
    failed = F.coalesce(bad, F.lit(False))
    quoted = [F.concat(F.lit(f"{c}="), F.coalesce(F.col(c).cast("string"), F.lit("null"))) for c in rule.columns()]
    detail = F.concat_ws(" ", F.lit(f"{rule.name}:"), *quoted)
    return RowCheck(rule, failed, detail)


def type_violations(rules: list[Rule], schema: StructType) -> list[tuple[Rule, str]]:
    """(rule, message) for each type expectation the schema does not meet."""
    out = []
    for rule in rules:
        if rule.type not in TYPE_CHECKS:
            continue
        col = rule.kwargs["column"]
        got = type(schema[col].dataType).__name__
        want = [rule.kwargs["type_"]] if "type_" in rule.kwargs else list(rule.kwargs.get("type_list") or [])
        if want and got not in want:
            out.append((rule, f"{col} is {got}, expected {' or '.join(want)}"))
    return out


def _lit_like(value: Any, column: str, schema: StructType) -> Column:
    """``value`` as a literal of the column's type (dates and timestamps may be given as text)."""
    return F.lit(value).cast(schema[column].dataType)


def _between(kw: dict[str, Any], schema: StructType, value: Column | None = None, typed: bool = True) -> Column:
    col = kw["column"]
    v = F.col(col) if value is None else value
    conds = []
    for key, strict, op_strict, op in (("min_value", "strict_min", "__gt__", "__ge__"),
                                       ("max_value", "strict_max", "__lt__", "__le__")):
        if kw.get(key) is None:
            continue
        bound = _lit_like(kw[key], col, schema) if typed else F.lit(kw[key])
        conds.append(getattr(v, op_strict if kw.get(strict) else op)(bound))
    ok = reduce(lambda a, b: a & b, conds)
    return v.isNotNull() & ~ok


def _regex_list(kw: dict[str, Any], negate: bool) -> Column:
    col = F.col(kw["column"])
    matches = [col.rlike(r) for r in kw["regex_list"]]
    if negate:
        return col.isNotNull() & reduce(lambda a, b: a | b, matches)
    combine = (lambda a, b: a & b) if kw.get("match_on", "any") == "all" else (lambda a, b: a | b)
    return col.isNotNull() & ~reduce(combine, matches)


def _greater(kw: dict[str, Any], schema: StructType) -> Column:
    # As GX on Spark: a row with a missing value on either side is not judged.
    a, b = F.col(kw["column_A"]), F.col(kw["column_B"])
    return ~(a >= b) if kw.get("or_equal") else ~(a > b)


def _equal(kw: dict[str, Any], schema: StructType) -> Column:
    return F.col(kw["column_A"]) != F.col(kw["column_B"])


_COMPILERS = {
    "expect_column_values_to_not_be_null": lambda kw, s: F.col(kw["column"]).isNull(),
    "expect_column_values_to_be_null": lambda kw, s: F.col(kw["column"]).isNotNull(),
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": lambda kw, s: F.col(kw["column"]).isNotNull() & ~F.col(kw["column"]).isin(list(kw["value_set"])),
    "expect_column_values_to_not_be_in_set": lambda kw, s: F.col(kw["column"]).isin(list(kw["value_set"])),
    "expect_column_values_to_match_regex": lambda kw, s: F.col(kw["column"]).isNotNull() & ~F.col(kw["column"]).rlike(kw["regex"]),
    "expect_column_values_to_not_match_regex": lambda kw, s: F.col(kw["column"]).rlike(kw["regex"]),
    "expect_column_values_to_match_regex_list": lambda kw, s: _regex_list(kw, negate=False),
    "expect_column_values_to_not_match_regex_list": lambda kw, s: _regex_list(kw, negate=True),
    "expect_column_value_lengths_to_be_between": lambda kw, s: _between(kw, s, F.length(kw["column"]), typed=False),
    "expect_column_value_lengths_to_equal": lambda kw, s: F.col(kw["column"]).isNotNull() & (F.length(kw["column"]) != kw["value"]),
    "expect_column_values_to_be_unique": lambda kw, s: F.col(kw["column"]).isNotNull() & (
        F.count(F.lit(1)).over(Window.partitionBy(kw["column"])) > 1),
    "expect_column_pair_values_a_to_be_greater_than_b": _greater,
    "expect_column_pair_values_to_be_equal": _equal,
}
