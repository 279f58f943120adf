"""Fidelity: how closely the synthetic table follows the real training split (SDMetrics reports).

We use the unified reports ``sdmetrics.reports.QualityReport`` and ``DiagnosticReport``: in
sdmetrics 0.32 the single-table classes under ``sdmetrics.reports.single_table`` are the deprecated
ones (they emit a FutureWarning on import). The unified reports take ``{table: DataFrame}`` dicts and
multi-table metadata ``{"tables": {table: {"columns": ...}}}``; for one table they skip the
multi-table properties themselves.

Note on the diagnostic score: SDMetrics' Data Validity checks synthetic values against the *real
data's* observed range and categories (BoundaryAdherence, CategoryAdherence), not against the public
schema. A DP generator that samples the schema's full public domain can therefore score below 1.0
without anything being wrong; the details list which columns cost the score.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sdmetrics.reports import DiagnosticReport, QualityReport

from audits.context import AuditContext
from audits.membership import check_frames
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.schema import Schema

_TABLE = "table"
#: How many of the lowest-scoring columns the details name.
WORST_COLUMNS = 5


def run_fidelity(
    real_train: pl.DataFrame,
    real_holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """SDMetrics quality and diagnostic scores of ``synthetic`` against ``real_train``.

    Metrics: ``quality_score`` (>= ``thresholds.quality_min``) and ``diagnostic_score``
    (>= ``thresholds.diagnostic_min``). The holdout and ``ctx`` are unused; they are accepted so that
    every audit has the same signature.
    """
    del ctx
    check_frames(real_train, real_holdout, synthetic, schema)
    metadata = sdmetrics_metadata(schema)
    real = {_TABLE: real_train.select(schema.names).to_pandas()}
    syn = {_TABLE: synthetic.select(schema.names).to_pandas()}
    metrics = [
        _quality(real, syn, metadata, policy),
        _diagnostic(real, syn, metadata, policy),
    ]
    return AuditResult(audit="fidelity", metrics=tuple(metrics))


def sdmetrics_metadata(schema: Schema) -> dict[str, Any]:
    """The schema as SDMetrics' multi-table metadata with one table."""
    columns = {c.name: {"sdtype": "numerical" if c.is_numeric else "categorical"} for c in schema.columns}
    return {"tables": {_TABLE: {"columns": columns}}}


_QUALITY_MEANING = (
    "SDMetrics quality: how well the synthetic data reproduces the training data's column "
    "distributions and pairwise trends (1 is a perfect match)."
)
_DIAGNOSTIC_MEANING = (
    "SDMetrics diagnostic: share of synthetic values within the real data's observed ranges and "
    "categories, and whether the table structure matches (1 expected)."
)


def _quality(real: dict, syn: dict, metadata: dict, policy: Policy) -> Metric:
    try:
        with _sdmetrics_quietly(policy.audit.seed):
            report = QualityReport()
            report.generate(real, syn, metadata, verbose=False)
            score = float(report.get_score())
            props = _properties(report)
            shapes = report.get_details("Column Shapes", table_name=_TABLE)
            pairs = report.get_details("Column Pair Trends", table_name=_TABLE)
    except Exception as exc:  # noqa: BLE001 - a library failure fails the gate, never the suite
        return _failed("quality_score", "maximize", policy.thresholds.quality_min, _QUALITY_MEANING, exc)
    worst = shapes.sort_values("Score", kind="stable").head(WORST_COLUMNS)
    pair_scores = pd.to_numeric(pairs["Score"], errors="coerce")
    details = {
        "column_shapes": props.get("Column Shapes"),
        "column_pair_trends": props.get("Column Pair Trends"),
        "worst_columns": [
            {"column": str(r["Column"]), "metric": str(r["Metric"]), "score": _r(r["Score"])}
            for _, r in worst.iterrows()
        ],
        "column_pairs_scored": int(pair_scores.notna().sum()),
        "column_pairs_unscored": int(pair_scores.isna().sum()),
        "compared_against": "real_train",
    }
    return Metric(
        name="quality_score",
        value=score,
        goal="maximize",
        threshold=policy.thresholds.quality_min,
        meaning=_QUALITY_MEANING,
        details=details,
    )


def _diagnostic(real: dict, syn: dict, metadata: dict, policy: Policy) -> Metric:
    try:
        with _sdmetrics_quietly(policy.audit.seed):
            report = DiagnosticReport()
            report.generate(real, syn, metadata, verbose=False)
            score = float(report.get_score())
            props = _properties(report)
            validity = report.get_details("Data Validity", table_name=_TABLE)
    except Exception as exc:  # noqa: BLE001 - a library failure fails the gate, never the suite
        return _failed(
            "diagnostic_score", "maximize", policy.thresholds.diagnostic_min, _DIAGNOSTIC_MEANING, exc
        )
    scores = pd.to_numeric(validity["Score"], errors="coerce")
    below = validity[scores < 1.0].sort_values("Score", kind="stable")
    details = {
        "data_validity": props.get("Data Validity"),
        "data_structure": props.get("Data Structure"),
        "columns_below_1": [
            {"column": str(r["Column"]), "metric": str(r["Metric"]), "score": _r(r["Score"])}
            for _, r in below.iterrows()
        ],
        "compared_against": "real_train (observed ranges and categories, not the schema's domain)",
    }
    return Metric(
        name="diagnostic_score",
        value=score,
        goal="maximize",
        threshold=policy.thresholds.diagnostic_min,
        meaning=_DIAGNOSTIC_MEANING,
        details=details,
    )


def _properties(report: Any) -> dict[str, float | None]:
    table = report.get_properties()
    return {str(r["Property"]): _r(r["Score"]) for _, r in table.iterrows()}


def _failed(name: str, goal: str, threshold: float, meaning: str, exc: Exception) -> Metric:
    first = (str(exc).strip().splitlines() or [""])[0]
    return Metric(
        name=name,
        value=math.nan,
        goal=goal,  # type: ignore[arg-type]
        threshold=threshold,
        meaning=meaning,
        flags=(f"error: {type(exc).__name__}: {first}"[:200],),
    )


@contextmanager
def _sdmetrics_quietly(seed: int) -> Iterator[None]:
    # Above 50,000 rows SDMetrics subsamples column pairs with pandas' unseeded ``sample``, which
    # draws from numpy's global generator: seed it for the call and restore it afterwards.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(state)


def _r(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else round(v, 6)
