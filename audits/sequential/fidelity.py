"""Fidelity of synthetic sequences: per-event and per-entity marginals, time, transitions, and a
real-vs-synthetic discriminator over whole entities (DESIGN.md section 5, "for sequences").

Every figure but the discriminator compares the synthetic entities with the real training entities
(as the tabular fidelity audit does); the components are similarities in [0, 1], 1 a perfect match:

- ``event_column_shapes`` / ``static_column_shapes``: the mean over the event (static) columns of
  SDMetrics' single-column metrics: ``TVComplement`` (1 - total variation distance) for categorical
  columns, missing counted as a category of its own, and ``KSComplement`` (1 - the two-sample
  Kolmogorov-Smirnov statistic) for numeric columns, a missing value placed below the public domain
  (so that the share missing enters the statistic like a point mass at the bottom).
- ``length_similarity`` and ``gap_similarity``: ``KSComplement`` of the events per entity and of the
  gaps between consecutive events of one entity.
- ``transition_similarity``: 1 - the total variation distance between the row-normalised transition
  matrices of the joint state (``sequence.state``, else the categorical event columns), each row
  weighted by the real share of transitions leaving that state: ``1 - sum_s pi(s) TV(P(.|s), Q(.|s))``.
  A state the synthetic data never leaves counts TV 1.
- ``autocorrelation_similarity``: per numeric event column, the lag-1 autocorrelation within entity
  (Pearson correlation of consecutive present values after subtracting each entity's mean, pooled
  over entities), real vs synthetic: ``1 - |r_real - r_syn| / 2`` (the scaling of SDMetrics'
  CorrelationSimilarity), averaged over the columns.
- ``discriminator_auc`` (info): a gradient-boosted classifier (scikit-learn's
  HistGradientBoostingClassifier) over the per-entity feature vectors of ``features.py``, real
  holdout vs synthetic entities in equal numbers (the holdout, not the training split: a copied
  training entity would have a twin of the other label in the training folds, and cross-validation
  would learn to call every copy synthetic), 5-fold cross-validated ROC AUC (out-of-fold scores) with
  a bootstrap interval (``audits.bounds.auc_with_interval``). 0.5 means the classifier cannot tell
  them apart (the "detection" metric of SDMetrics and of the synthetic-data literature, e.g.
  Borisov et al. 2023 and the time-series discriminative score of Yoon et al. 2019, TimeGAN).
- ``sequence_quality_score`` (gate, ``thresholds.quality_min``): the unweighted mean of the
  components above that are defined, the discriminator entering as ``1 - 2 max(0, AUC - 0.5)``;
  NaN (failing the gate) when the discriminator cannot run (fewer than
  ``MIN_DISCRIMINATOR_ENTITIES`` synthetic or holdout entities).
- ``sequence_validity`` (gate, ``thresholds.diagnostic_min``): the share of synthetic entities whose
  structure keeps the schema's public bounds (1 to ``max_events`` events, order values within the
  bounds, every gap within [gap_min, gap_max]); values outside a column's domain cannot occur in
  conformed data. Like SDMetrics' diagnostic, 1 is expected.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sdmetrics.single_column import KSComplement, TVComplement
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from audits.bounds import auc_with_interval
from audits.context import AuditContext
from audits.result import AuditResult, Metric
from audits.sequential.features import (
    EncodedSequences,
    column_states,
    encode,
    entity_features,
    joint_states,
    state_cardinality,
    state_columns,
    transition_pairs,
)
from audits.sequential.inputs import check_sequences, sub_seed
from policies.model import Policy
from privacy.schema import Column, Schema
from privacy.sequences import SequenceData

#: entities per side the discriminator uses at most (seeded samples)
MAX_DISCRIMINATOR_ENTITIES = 5000
#: below this many entities per side the discriminator is not run (5 folds need a few per fold)
MIN_DISCRIMINATOR_ENTITIES = 10
_FOLDS = 5
#: joint states above this count are compared per state column only (a dense K x K matrix)
_MAX_JOINT_STATES = 2000


def run_sequence_fidelity(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """Fidelity metrics of ``synthetic`` against ``real_train`` (see the module docstring)."""
    ctx = ctx or AuditContext()
    check_sequences(real_train, real_holdout, synthetic, schema)
    real, syn = encode(real_train, schema), encode(synthetic, schema)
    rng = np.random.default_rng([policy.audit.seed, 606])
    metrics: list[Metric] = []
    components: dict[str, float] = {}

    event_scores = {c.name: column_similarity(real.events[:, j], syn.events[:, j], c)
                    for j, c in enumerate(real.event_columns)}
    components["event_column_shapes"] = float(np.mean(list(event_scores.values())))
    metrics.append(_info("event_column_shapes", components["event_column_shapes"],
                         "Mean over the event columns of SDMetrics' TVComplement (categorical, missing as a category) "
                         "or KSComplement (numeric) between all real and all synthetic events (1 is a perfect match).",
                         {"columns": _rounded(event_scores)}))
    if real.static_columns:
        static_scores = {c.name: column_similarity(real.statics[:, j], syn.statics[:, j], c)
                         for j, c in enumerate(real.static_columns)}
        components["static_column_shapes"] = float(np.mean(list(static_scores.values())))
        metrics.append(_info("static_column_shapes", components["static_column_shapes"],
                             "Mean over the static (per-entity) columns of SDMetrics' TVComplement or KSComplement "
                             "between real and synthetic entities (1 is a perfect match).",
                             {"columns": _rounded(static_scores)}))

    components["length_similarity"] = ks_similarity(real.lengths.astype(float), syn.lengths.astype(float))
    metrics.append(_info("length_similarity", components["length_similarity"],
                         "KSComplement of the number of events per entity, real vs synthetic (1 - KS statistic).",
                         {"mean_events_synthetic": round(float(syn.lengths.mean()), 3)}))
    gap = gap_similarity(real, syn)
    if not math.isnan(gap):
        components["gap_similarity"] = gap
    metrics.append(_info("gap_similarity", gap,
                         "KSComplement of the gaps between consecutive events of an entity, real vs synthetic.",
                         {"unit": schema.seq.unit_text()},
                         flags=("no gaps: every entity has one event",) if math.isnan(gap) else ()))

    trans, trans_details = transition_similarity(real, syn, schema)
    if not math.isnan(trans):
        components["transition_similarity"] = trans
    metrics.append(_info("transition_similarity", trans,
                         "1 - total variation between the real and synthetic transition matrices of the event state "
                         "(row-normalised, rows weighted by the real share of transitions leaving each state).",
                         trans_details, flags=("no transitions in the real data",) if math.isnan(trans) else ()))

    auto, auto_details = autocorrelation_similarity(real, syn)
    if not math.isnan(auto):
        components["autocorrelation_similarity"] = auto
    metrics.append(_info("autocorrelation_similarity", auto,
                         "1 - |r_real - r_syn| / 2 for the lag-1 within-entity autocorrelation of each numeric event "
                         "column, averaged over the columns.", auto_details,
                         flags=() if not math.isnan(auto) else ("no numeric event column with a defined autocorrelation",)))

    n_boot = policy.audit.membership[ctx.profile].bootstrap  # type: ignore[index]
    # the discriminator's real side is the holdout: a synthetic entity copied from a training entity would
    # otherwise have a twin of the opposite label in the other folds, and cross-validation would learn to
    # call it synthetic (measured: AUC 0.01 for a copy of the training data)
    disc = discriminator(encode(real_holdout, schema), syn, schema, rng, n_boot)
    metrics.append(disc)
    if not math.isnan(disc.value):
        components["discriminator_similarity"] = 1.0 - 2.0 * max(0.0, disc.value - 0.5)

    # without the discriminator (too few entities) the score lacks its whole-sequence component: NaN
    score = float(np.mean(list(components.values()))) if "discriminator_similarity" in components else math.nan
    metrics.append(Metric(
        name="sequence_quality_score", value=score, goal="maximize", threshold=policy.thresholds.quality_min,
        meaning="Sequence quality: the mean of the event-column, static-column, length, gap, transition, "
                "autocorrelation and discriminator similarities (each 1 for a perfect match; the discriminator as "
                "1 - 2 max(0, AUC - 0.5)); held to the policy's quality minimum.",
        flags=() if "discriminator_similarity" in components else ("not scored: the discriminator could not run",),
        details={"components": _rounded(components), "formula": "unweighted mean of the components present",
                 "compared_against": "real_train (discriminator: real_holdout)"}))
    metrics.append(validity(syn, schema, policy))
    return AuditResult(audit="fidelity", metrics=tuple(metrics),
                       notes=("sequence fidelity: synthetic vs real training entities; the discriminator: synthetic vs real "
                              "holdout entities",))


def _info(name: str, value: float, meaning: str, details: dict[str, Any], flags: tuple[str, ...] = ()) -> Metric:
    return Metric(name=name, value=value, goal="maximize", role="info", meaning=meaning, details=details, flags=flags)


def _rounded(d: dict[str, float]) -> dict[str, float | None]:
    return {k: None if math.isnan(v) else round(v, 6) for k, v in d.items()}


def column_similarity(real: np.ndarray, syn: np.ndarray, col: Column) -> float:
    """TVComplement (categorical, missing a category) or KSComplement (numeric, missing below the domain)."""
    if col.type == "categorical":
        labels = np.asarray([*col.categories, "(missing)"], dtype=object)

        def as_text(x: np.ndarray) -> pd.Series:
            codes = np.where(np.isnan(x), len(col.categories), np.nan_to_num(x)).astype(np.int64)
            return pd.Series(labels[codes])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(TVComplement.compute(as_text(real), as_text(syn)))
    # encoded numeric values are scaled to [0, 1]: -1 sits below every present value
    return ks_similarity(np.where(np.isnan(real), -1.0, real), np.where(np.isnan(syn), -1.0, syn))


def ks_similarity(real: np.ndarray, syn: np.ndarray) -> float:
    """SDMetrics' KSComplement of two samples; NaN when either is empty."""
    if real.size == 0 or syn.size == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(KSComplement.compute(pd.Series(real, dtype=float), pd.Series(syn, dtype=float)))


def gap_similarity(real: EncodedSequences, syn: EncodedSequences) -> float:
    """KSComplement of the within-entity gaps; 0 when only the real data has gaps, NaN when it has none."""
    g_real, g_syn = real.gaps(), syn.gaps()
    g_real, g_syn = g_real[~np.isnan(g_real)], g_syn[~np.isnan(g_syn)]
    if g_real.size == 0:
        return math.nan
    if g_syn.size == 0:
        return 0.0
    return ks_similarity(g_real, g_syn)


def transition_tv(real_codes: np.ndarray, syn_codes: np.ndarray, k: int, real: EncodedSequences,
                  syn: EncodedSequences) -> float:
    """``sum_s pi(s) TV(P(.|s), Q(.|s))`` over the states s the real data leaves; NaN without real transitions."""
    a_r, b_r, _ = transition_pairs(real_codes, real)
    a_s, b_s, _ = transition_pairs(syn_codes, syn)
    if a_r.size == 0:
        return math.nan
    p = np.bincount(a_r * k + b_r, minlength=k * k).reshape(k, k).astype(np.float64)
    q = np.bincount(a_s * k + b_s, minlength=k * k).reshape(k, k).astype(np.float64)
    rows_p, rows_q = p.sum(axis=1), q.sum(axis=1)
    weight = rows_p / rows_p.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        p_n = p / np.maximum(rows_p, 1)[:, None]
        q_n = q / np.maximum(rows_q, 1)[:, None]
    tv_rows = np.where(rows_q > 0, 0.5 * np.abs(p_n - q_n).sum(axis=1), 1.0)
    return float((weight * tv_rows).sum())


def transition_similarity(real: EncodedSequences, syn: EncodedSequences, schema: Schema) -> tuple[float, dict[str, Any]]:
    """1 - the weighted transition TV of the joint state, with the per-column figures in the details."""
    per_column = {}
    for col in state_columns(schema):
        k = state_cardinality(col)
        per_column[col.name] = transition_tv(column_states(real, col), column_states(syn, col), k, real, syn)
    details: dict[str, Any] = {"state_columns": [c.name for c in state_columns(schema)],
                               "per_column_tv": _rounded(per_column)}
    codes_r, k = joint_states(real, schema)
    if k <= _MAX_JOINT_STATES:
        codes_s, _ = joint_states(syn, schema)
        tv = transition_tv(codes_r, codes_s, k, real, syn)
        details["joint_states"] = k
        details["transition_tv"] = None if math.isnan(tv) else round(tv, 6)
    else:
        defined = [v for v in per_column.values() if not math.isnan(v)]
        tv = float(np.mean(defined)) if defined else math.nan
        details["transition_tv"] = "mean over state columns (too many joint states)"
    return (math.nan if math.isnan(tv) else 1.0 - tv), details


def lag1_autocorrelation(x: np.ndarray, enc: EncodedSequences) -> float:
    """Pooled lag-1 correlation of consecutive present values within entities, each entity's mean removed."""
    ent = enc.entity_of_event
    valid = ~np.isnan(x)
    cnt = np.bincount(ent[valid], minlength=enc.n)
    mean = np.bincount(ent[valid], weights=x[valid], minlength=enc.n) / np.maximum(cnt, 1)
    centred = x - mean[ent]
    index = np.arange(x.shape[0])
    a, b, _ = transition_pairs(index, enc)
    ok = valid[a] & valid[b]
    u, v = centred[a[ok]], centred[b[ok]]
    if u.size < 3:
        return math.nan
    den = math.sqrt(float((u * u).sum()) * float((v * v).sum()))
    return float((u * v).sum() / den) if den > 0 else math.nan


def autocorrelation_similarity(real: EncodedSequences, syn: EncodedSequences) -> tuple[float, dict[str, Any]]:
    """Mean over numeric event columns of ``1 - |r_real - r_syn| / 2`` (0 where only the real one is defined)."""
    rows: dict[str, dict[str, float | None]] = {}
    scores = []
    for j, col in enumerate(real.event_columns):
        if col.type == "categorical":
            continue
        r_real, r_syn = lag1_autocorrelation(real.events[:, j], real), lag1_autocorrelation(syn.events[:, j], syn)
        if math.isnan(r_real):
            continue
        score = 0.0 if math.isnan(r_syn) else 1.0 - abs(r_real - r_syn) / 2.0
        scores.append(score)
        rows[col.name] = {"real": round(r_real, 6), "synthetic": None if math.isnan(r_syn) else round(r_syn, 6),
                          "similarity": round(score, 6)}
    return (float(np.mean(scores)) if scores else math.nan), {"columns": rows, "lag": 1,
                                                                "centring": "each entity's mean removed"}


def discriminator(real: EncodedSequences, syn: EncodedSequences, schema: Schema, rng: np.random.Generator,
                  n_boot: int) -> Metric:
    """Cross-validated real-vs-synthetic ROC AUC over per-entity features (see the module docstring)."""
    meaning = ("ROC AUC of a classifier telling real from synthetic entities by their whole sequences "
               "(per-entity features, 5-fold cross-validation; 0.5 means indistinguishable).")
    n = min(real.n, syn.n, MAX_DISCRIMINATOR_ENTITIES)
    if n < MIN_DISCRIMINATOR_ENTITIES:
        return Metric(name="discriminator_auc", value=math.nan, goal="minimize", role="info", meaning=meaning,
                      flags=(f"not run: fewer than {MIN_DISCRIMINATOR_ENTITIES} entities on one side",))
    f_real = entity_features(real, schema).matrix
    f_syn = entity_features(syn, schema).matrix
    f_real = f_real[np.sort(rng.choice(real.n, size=n, replace=False))]
    f_syn = f_syn[np.sort(rng.choice(syn.n, size=n, replace=False))]
    x = np.vstack([f_real, f_syn])
    y = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    seed = sub_seed(rng)
    model = HistGradientBoostingClassifier(random_state=seed)
    folds = StratifiedKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oof = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    auc, interval = auc_with_interval(oof[y == 1], oof[y == 0], n_boot=n_boot, seed=sub_seed(rng))
    return Metric(
        name="discriminator_auc", value=auc, goal="minimize", role="info", interval=interval, gated_on="upper",
        meaning=meaning,
        details={"entities_per_side": n, "features": int(x.shape[1]), "folds": _FOLDS,
                 "model": "HistGradientBoostingClassifier", "interval": f"bootstrap ({n_boot}) of out-of-fold scores"},
    )


def validity(syn: EncodedSequences, schema: Schema, policy: Policy) -> Metric:
    """Share of synthetic entities that keep the schema's structural bounds (see the module docstring)."""
    spec = schema.seq
    ok = (syn.lengths >= 1) & (syn.lengths <= spec.max_events)
    ent = syn.entity_of_event
    bad_order = (syn.order < spec.order_min) | (syn.order > spec.order_max)
    gaps = syn.gaps()
    bad_gap = ~np.isnan(gaps) & ((gaps < spec.gap_min) | (gaps > spec.gap_max))
    bad_entity = np.bincount(ent, weights=(bad_order | bad_gap).astype(np.float64), minlength=syn.n) > 0
    ok &= ~bad_entity
    return Metric(
        name="sequence_validity", value=float(ok.mean()), goal="maximize", threshold=policy.thresholds.diagnostic_min,
        meaning="Share of synthetic entities within the schema's public sequence bounds (1 to max_events events, "
                "order values and gaps between events within their bounds); 1 expected, held to the policy's "
                "diagnostic minimum.",
        details={"too_few_or_many_events": int((~((syn.lengths >= 1) & (syn.lengths <= spec.max_events))).sum()),
                 "entities_with_order_or_gap_outside": int(bad_entity.sum()),
                 "bounds": {"max_events": spec.max_events, "gap_min": spec.gap_min, "gap_max": spec.gap_max}},
    )
