"""The quality gate of a micro-batch (or a batch job): judge, split, count, or stop.

Every row gets an outcome: ``quarantined`` (a contract error from parsing, or a failed
``quarantine`` rule), ``dropped`` (a failed ``drop`` rule), ``warned`` (kept, with failed
``warn`` rules) or ``passed``. Expectations judge only rows that met the contract: a row
whose payload did not parse is quarantined with the parser's codes, not with every rule
that a missing value would also break. A ``fail`` rule stops the query when more rows fail
it than its ``mostly`` allows (default: any); below that they count as warned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from kappalake.errors import QualityGateError
from kappalake.quality.rules import RowCheck, compile_rule
from kappalake.quality.suites import Suite
from kappalake.transforms.parse import ERRORS

OUTCOME = "_q_outcome"
FAILED = "_q_failed"     # names of every rule the row failed, contract codes first
DETAILS = "_q_details"   # "rule: column=value" per failed expectation
QUALITY_COLUMNS = [OUTCOME, FAILED, DETAILS]
OUTCOMES = ("passed", "warned", "dropped", "quarantined")


@dataclass
class BatchQuality:
    """What the gate found in one batch."""

    rows_in: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)

    @property
    def kept(self) -> int:
        return self.count("passed") + self.count("warned")


class QualityGate:
    """A table's row-scope rules compiled for the rows a pipeline writes."""

    def __init__(self, suite: Suite | None, pipeline: str, schema: Any, fail_sample: int = 5) -> None:
        self.suite = suite
        self.pipeline = pipeline
        self.fail_sample = fail_sample
        rules = suite.row_rules if suite else []
        self.checks: list[RowCheck] = [c for r in rules if (c := compile_rule(r, schema)) is not None]

    @property
    def policies(self) -> set[str]:
        return {c.rule.policy for c in self.checks}

    def evaluate(self, df: DataFrame) -> DataFrame:
        """``df`` plus the outcome, the failed rule names and their details, per row.

        Each rule's predicate is evaluated once, into the list of failed names; the outcome
        and the details are read from that list.
        """
        contract = F.col(ERRORS) if ERRORS in df.columns else F.array().cast(ArrayType(StringType()))
        judged = F.size(contract) == 0
        names = _non_null([F.when(judged & c.failed, F.lit(c.rule.name)) for c in self.checks])
        failed = F.col(FAILED)

        def any_failed(policies: tuple[str, ...]) -> Column:
            picked = [F.lit(c.rule.name) for c in self.checks if c.rule.policy in policies]
            return F.arrays_overlap(failed, F.array(*picked)) if picked else F.lit(False)

        details = _non_null([F.when(judged & F.array_contains(failed, c.rule.name), c.detail) for c in self.checks])
        outcome = (F.when(~judged | any_failed(("quarantine",)), "quarantined")
                   .when(any_failed(("drop",)), "dropped")
                   .when(any_failed(("warn", "fail")), "warned")
                   .otherwise("passed"))
        return (df.select("*", F.concat(contract, names).alias(FAILED))
                .select(*df.columns, outcome.alias(OUTCOME), FAILED, details.alias(DETAILS)))

    def measure(self, evaluated: DataFrame) -> BatchQuality:
        """Outcome counts and per-rule failure counts of an evaluated batch (one Spark job)."""
        exploded = evaluated.select(OUTCOME, F.posexplode_outer(FAILED).alias("pos", "rule"))
        rows = (exploded.groupBy(OUTCOME, F.coalesce("pos", F.lit(0)).alias("first"), "rule").count()
                .filter("first = 0 OR rule IS NOT NULL").collect())
        q = BatchQuality()
        for r in rows:
            if r["first"] == 0:
                q.outcomes[r[OUTCOME]] = q.outcomes.get(r[OUTCOME], 0) + r["count"]
            if r["rule"] is not None:
                q.rule_failures[r["rule"]] = q.rule_failures.get(r["rule"], 0) + r["count"]
        q.rows_in = sum(q.outcomes.values())
        return q

    def enforce(self, evaluated: DataFrame, quality: BatchQuality, batch_id: int | None = None) -> None:
        """Raise :class:`QualityGateError` when a ``fail`` rule is violated beyond its ``mostly``."""
        judged = None
        for check in self.checks:
            rule = check.rule
            failed = quality.rule_failures.get(rule.name, 0)
            if rule.policy != "fail" or not failed:
                continue
            if judged is None:
                judged = quality.rows_in - _contract_failures(evaluated, quality)
            mostly = float(rule.kwargs.get("mostly", 1.0))
            if judged and (judged - failed) / judged >= mostly:
                continue
            cols = [c for c in ("topic", "partition", "offset") if c in evaluated.columns] + rule.columns()
            sample = [r.asDict() for r in evaluated.filter(F.array_contains(FAILED, rule.name)).select(*cols).limit(self.fail_sample).collect()]
            where = f"batch {batch_id} of pipeline {self.pipeline}" if batch_id is not None else f"pipeline {self.pipeline}"
            raise QualityGateError(
                f"expectation {rule.name} ({rule.type}, policy fail) of quality.suites.{self.suite.table} failed for {failed} of "
                f"{judged} rows in {where} (mostly={mostly}); failing rows: {_one_line(sample)}; fix the data or the "
                f"rule, then restart: the batch is retried and nothing of it was written")


def _contract_failures(evaluated: DataFrame, quality: BatchQuality) -> int:
    """Rows quarantined by the contract (not judged by expectations)."""
    if ERRORS not in evaluated.columns:
        return 0
    return evaluated.filter(F.size(ERRORS) > 0).count() if quality.count("quarantined") else 0


def _non_null(items: list[Column]) -> Column:
    if not items:
        return F.array().cast(ArrayType(StringType()))
    return F.filter(F.array(*items), lambda x: x.isNotNull())


def _one_line(rows: list[dict[str, Any]]) -> str:
    return "[" + ", ".join("{" + ", ".join(f"{k}: {v}" for k, v in r.items()) + "}" for r in rows) + "]"
