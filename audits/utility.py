"""Utility: train on synthetic, test on real (TSTR) against train on real, test on real (TRTR).

One gradient-boosted classifier (scikit-learn's HistGradientBoostingClassifier, categorical columns
handled natively, seeded) is fitted on the synthetic data and one on the real training split, both
capped at the same number of rows; both predict the real holdout. The metric is the ratio of their
ROC AUCs (binary target: AUC of the second class; more classes: macro one-vs-rest AUC), because
accuracy flatters a majority-class predictor (policy-thresholds.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from audits.context import AuditContext
from audits.membership import check_frames
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema

#: Rows each model is fitted on, at most (the same for both, so that the ratio compares like with like).
MAX_FIT_ROWS = 10_000
#: HistGradientBoosting handles at most this many categories natively; wider columns are fed as codes.
_MAX_NATIVE_CATEGORIES = 255
#: OpenMP threads for the classifier. At most ``MAX_FIT_ROWS`` rows one thread fits in seconds, while
#: OpenMP's spinning threads slowed the same fit 20-fold when other processes shared the cores.
_FIT_THREADS = 1
#: Below this TRTR AUC the real-data model barely beats chance and the ratio says little.
_WEAK_BASELINE_AUC = 0.55

_MEANING = (
    "Ratio of the ROC AUC on real held-out rows of a model trained on synthetic data to that of the "
    "same model trained on real training data (1 means no loss of predictive utility)."
)


def run_utility(
    real_train: pl.DataFrame,
    real_holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """TSTR/TRTR ROC-AUC ratio for predicting ``ctx.target`` (else ``schema.target``).

    The target must be a categorical column of the schema (``InputError`` otherwise). Without any
    target the metric ``utility_auc_ratio`` is reported with role "info", value NaN and the flag
    "no target column", so it does not block the release. A synthetic table holding a single class
    of the target gets a constant predictor, whose AUC is 0.5.
    """
    check_frames(real_train, real_holdout, synthetic, schema)
    name = resolve_target(schema, ctx.target if ctx is not None else None)
    if name is None:
        metric = Metric(
            name="utility_auc_ratio",
            value=math.nan,
            goal="maximize",
            threshold=policy.thresholds.utility_ratio_min,
            role="info",
            meaning=_MEANING,
            flags=("no target column",),
            details={"target": None},
        )
        return AuditResult(audit="utility", metrics=(metric,))

    rng = np.random.default_rng([policy.audit.seed, 303])
    n_fit = min(MAX_FIT_ROWS, real_train.height, synthetic.height)
    train_fit = _cap(real_train, n_fit, rng)
    syn_fit = _cap(synthetic, n_fit, rng)
    features = [c for c in schema.names if c != name]
    classes = list(schema.column(name).categories)
    seed = policy.audit.seed

    x_test, y_test = _encode(real_holdout, schema, features, name)
    present = sorted(set(y_test.tolist()))
    flags: list[str] = []
    try:
        args = (x_test, y_test, schema, features, name, classes, seed)
        auc_trtr, notes_trtr = _fit_and_score(train_fit, *args)
        auc_tstr, notes_tstr = _fit_and_score(syn_fit, *args)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed fit fails the gate, never the suite
        first = (str(exc).strip().splitlines() or [""])[0]
        flags.append(f"error: {type(exc).__name__}: {first}"[:200])
        auc_trtr = auc_tstr = math.nan
        notes_trtr = notes_tstr = []

    if flags:
        ratio = math.nan
    elif len(present) < 2:
        flags.append("AUC undefined: the holdout holds one class of the target")
        ratio = math.nan
    else:
        ratio = auc_tstr / auc_trtr if auc_trtr > 0 else math.nan
        if auc_trtr < _WEAK_BASELINE_AUC:
            flags.append(f"weak baseline: the real-data model's AUC is {auc_trtr:.3f}")
    details: dict[str, Any] = {
        "target": name,
        "classes": len(classes),
        "auc": "binary ROC AUC" if len(classes) == 2 else "macro one-vs-rest ROC AUC",
        "auc_tstr": _r(auc_tstr),
        "auc_trtr": _r(auc_trtr),
        "model": "HistGradientBoostingClassifier (native categorical support)",
    }
    if notes_tstr:
        details["synthetic_model"] = notes_tstr
    if notes_trtr:
        details["real_model"] = notes_trtr
    metric = Metric(
        name="utility_auc_ratio",
        value=ratio,
        goal="maximize",
        threshold=policy.thresholds.utility_ratio_min,
        meaning=_MEANING,
        flags=tuple(flags),
        details=details,
    )
    return AuditResult(audit="utility", metrics=(metric,))


def resolve_target(schema: Schema, target: str | None) -> str | None:
    """The target column: ``target`` if given, else ``schema.target``; it must be categorical."""
    name = target if target is not None else schema.target
    if name is None:
        return None
    if name not in schema.names:
        raise InputError(f"utility target {name!r} is not a column of the schema")
    if schema.column(name).is_numeric:
        kind = schema.column(name).type
        raise InputError(f"utility target {name!r} must be a categorical column (it is {kind})")
    return name


def macro_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present in ``y_true`` (codes index ``proba``'s columns).

    For two classes both one-vs-rest AUCs are equal, so this is the ordinary binary AUC. A class the
    model never saw has a constant score, which gives it 0.5.
    """
    present = sorted(set(y_true.tolist()))
    if len(present) < 2:
        return math.nan
    return float(np.mean([roc_auc_score(y_true == c, proba[:, c]) for c in present]))


def _fit_and_score(
    fit_df: pl.DataFrame,
    x_test: np.ndarray,
    y_test: np.ndarray,
    schema: Schema,
    features: list[str],
    target: str,
    classes: list[str],
    seed: int,
) -> tuple[float, list[str]]:
    x_fit, y_fit = _encode(fit_df, schema, features, target)
    notes: list[str] = []
    seen = np.unique(y_fit)
    proba = np.zeros((len(x_test), len(classes)), dtype=np.float64)
    if len(seen) < 2:
        # A one-class training set gives a constant predictor (AUC 0.5), not a crash.
        proba[:, int(seen[0])] = 1.0
        notes.append("one class of the target only: constant predictor")
    else:
        model = HistGradientBoostingClassifier(
            categorical_features=_categorical_mask(schema, features), random_state=seed
        )
        with threadpool_limits(limits=_FIT_THREADS, user_api="openmp"):
            model.fit(x_fit, y_fit)
            proba[:, model.classes_.astype(int)] = model.predict_proba(x_test)
        missing = len(classes) - len(seen)
        if missing:
            notes.append(f"{missing} target classes absent from its training rows")
    return macro_auc(y_test, proba), notes


def _encode(
    df: pl.DataFrame, schema: Schema, features: list[str], target: str
) -> tuple[np.ndarray, np.ndarray]:
    cols = []
    for name in features:
        col = schema.column(name)
        s = df.get_column(name)
        if col.is_numeric:
            cols.append(s.cast(pl.Float64).to_numpy())
        else:
            cols.append(_codes(s, col.categories).astype(np.float64))
    x = np.column_stack(cols) if cols else np.zeros((df.height, 0))
    y = _codes(df.get_column(target), schema.column(target).categories)
    return x, y


def _codes(s: pl.Series, categories: tuple[str, ...]) -> np.ndarray:
    # Codes from the schema's public category order, never from the data.
    index = {c: i for i, c in enumerate(categories)}
    codes = np.array([index.get(v, -1) for v in s.cast(pl.Utf8).to_list()], dtype=np.int64)
    if (codes < 0).any():
        raise InputError(f"column {s.name!r} holds values outside the schema's categories")
    return codes


def _categorical_mask(schema: Schema, features: list[str]) -> np.ndarray:
    return np.array(
        [
            not schema.column(n).is_numeric and len(schema.column(n).categories) <= _MAX_NATIVE_CATEGORIES
            for n in features
        ],
        dtype=bool,
    )


def _cap(df: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    return df if df.height <= n else df.sample(n, seed=int(rng.integers(0, 2**31 - 1)))


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)
