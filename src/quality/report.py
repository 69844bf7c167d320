"""``kappalake quality report``: GX validates whole tables (or a time range) and builds Data Docs.

Every expectation of a table's suite is validated by Great Expectations itself (row rules and
table rules alike) over a Delta snapshot. The GX project (suites, validation results, Data Docs)
lives in ``quality.docs_dir``, so it can be opened with GX tooling as well as in a browser.
A violated ``fail`` expectation makes the report fail, so a scheduler can gate on it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappalake.config import LakeConf, QualityConf
from kappalake.errors import ConfigError
from kappalake.quality.suites import Suite, load_suite


@dataclass
class RuleResult:
    rule: str
    type: str
    policy: str
    scope: str
    success: bool
    unexpected: int | None = None
    unexpected_percent: float | None = None
    observed: Any = None
    sample: list[Any] = field(default_factory=list)

    @property
    def gating(self) -> bool:
        """A violated ``fail`` expectation."""
        return not self.success and self.policy == "fail"


@dataclass
class TableReport:
    table: str
    rows: int
    results: list[RuleResult]

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.gating]


def quality_report(spark: SparkSession, quality: QualityConf, lake: LakeConf, tables: list[str] | None = None, since: str | None = None,
                   until: str | None = None, time_column: str = "event_time"
                   ) -> tuple[list[TableReport], str | None, list[str]]:
    """Validate each table's suite with GX; returns the reports, the Data Docs index URL and the
    tables skipped because they do not exist yet (only when ``tables`` is not given)."""
    names = tables or sorted(quality.suites)
    suites: list[Suite] = []
    for name in names:
        suite = load_suite(quality, name)
        if suite is None:
            raise ConfigError(f"table {name} has no expectation suite; suites: {', '.join(sorted(quality.suites))} "
                              f"(add conf/{quality.suites_dir}/{name}.yaml)")
        suites.append(suite)
    context = _context(quality.docs_dir)
    reports, skipped = [], []
    for suite in suites:
        path = lake.table_path(suite.table)
        if not DeltaTable.isDeltaTable(spark, path) and not tables:
            skipped.append(suite.table)
            continue
        if not DeltaTable.isDeltaTable(spark, path):
            raise ConfigError(f"table {suite.table} does not exist yet at {path}; run its pipeline first")
        df = _time_range(spark.read.format("delta").load(path), suite.table, time_column, since, until)
        reports.append(_validate(context, suite, df))
    context.build_data_docs()
    urls = context.get_docs_sites_urls()
    return reports, (urls[0]["site_url"] if urls else None), skipped


def _context(docs_dir: str) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    root = Path(docs_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _time_range(df: DataFrame, table: str, column: str, since: str | None, until: str | None) -> DataFrame:
    if since is None and until is None:
        return df
    if column not in df.columns:
        raise ConfigError(f"--time-column {column} is not a column of {table}; columns: {', '.join(df.columns)}")
    if since is not None:
        df = df.filter(F.col(column) >= F.lit(since).cast("timestamp"))
    if until is not None:
        df = df.filter(F.col(column) < F.lit(until).cast("timestamp"))
    return df


def _validate(context: Any, suite: Suite, df: DataFrame) -> TableReport:
    import great_expectations as gx

    source = context.data_sources.add_or_update_spark(name="kappalake")
    try:
        asset = source.get_asset(suite.table)
    except LookupError:
        asset = source.add_dataframe_asset(name=suite.table)
    try:
        batch_def = asset.get_batch_definition("snapshot")
    except KeyError:
        batch_def = asset.add_batch_definition_whole_dataframe("snapshot")
    gx_suite = context.suites.add_or_update(suite.to_gx())
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite.table, data=batch_def, suite=gx_suite))
    result = definition.run(batch_parameters={"dataframe": df},
                            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})
    by_rule = {r.name: r for r in suite.rules}
    out = []
    for r in result.results:
        rule = by_rule[r.expectation_config.meta["rule"]]
        res = r.result or {}
        out.append(RuleResult(rule.name, rule.type, rule.policy, rule.scope, bool(r.success), res.get("unexpected_count"),
                              res.get("unexpected_percent"), res.get("observed_value"),
                              list(res.get("partial_unexpected_list") or [])[:5]))
    rows = next((r.observed for r in out if r.type == "expect_table_row_count_to_be_between"), None)
    out.sort(key=lambda r: by_rule[r.rule].index)
    return TableReport(suite.table, rows if rows is not None else df.count(), out)


def format_report(reports: list[TableReport], docs_url: str | None, skipped: list[str] = ()) -> str:
    """The terminal summary: one line per expectation, violated ones marked."""
    lines = [f"{t}: not written yet (skipped)" for t in skipped]
    for rep in reports:
        lines.append(f"{rep.table}: {rep.rows:,} rows, {sum(r.success for r in rep.results)}/{len(rep.results)} expectations met")
        lines.append(f"  {'rule':34} {'policy':10} {'scope':6} {'result':8} {'unexpected':>12}  observed")
        for r in rep.results:
            mark = "ok" if r.success else ("FAILED" if r.policy == "fail" else "violated")
            unexpected = "" if r.unexpected is None else f"{r.unexpected:,} ({r.unexpected_percent or 0:.2f}%)"
            observed = "" if r.observed is None else str(r.observed)[:40]
            if not r.success and r.sample:
                observed = (observed + " e.g. " + ", ".join(map(str, r.sample[:3]))).strip()
            lines.append(f"  {r.rule:34} {r.policy:10} {r.scope:6} {mark:8} {unexpected:>12}  {observed}")
    if docs_url:
        lines.append(f"Data Docs: {docs_url}")
    gating = [f"{rep.table}/{r.rule}" for rep in reports for r in rep.failed]
    lines.append(f"FAILED: {', '.join(gating)} (policy fail)" if gating else "No fail expectation violated.")
    return "\n".join(lines)
