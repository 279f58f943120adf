"""Utility of synthetic sequences: train on synthetic entities, test on real holdout entities (TSTR),
against the same model trained on real training entities (TRTR).

Two prediction tasks, each a ratio of ROC AUCs, because accuracy flatters a majority-class predictor
(policy-thresholds.md). Binary: the AUC of the second class; more classes: one-vs-rest AUCs over the
classes present in the test set, averaged plainly for the outcome (as ``audits.utility.macro_auc``)
and weighted by class frequency for the next event, whose many rare states (one-vs-rest AUCs from a
handful of examples) made the plain mean swing by 0.15 between fits on samples of the same data:

- ``utility_auc_ratio``: the outcome ``ctx.target`` (else the schema's target), a categorical static
  column, predicted from the entity's feature vector (``features.entity_features``, without the
  target's own features): what a study of outcomes from histories would do.
- ``next_event_auc_ratio``: the next event's joint state (``sequence.state``, else the categorical
  event columns) predicted from the entity's static features, the position in the sequence, the
  previous event's values, the gap before it and the state two events back: what a model of the
  process would do. Every event after an entity's first is one example.

The model is scikit-learn's HistGradientBoostingClassifier (seeded; missing values handled
natively; shrunk boosting, see ``MODEL_PARAMETERS``), as in the tabular utility audit. Both fits use the same number of examples (at most
``MAX_FIT_ROWS``, seeded samples). Both ratios are gated on ``thresholds.utility_ratio_min``: the
meaning carries over from tables, "the synthetic data trains models about as good as the real data".
The 95% interval is a percentile bootstrap over holdout entities (all of an entity's examples
together, since they are not independent), with the two fitted models kept fixed: it covers the
test sample's noise, not the fits'.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from audits.context import AuditContext
from audits.result import AuditResult, Metric
from audits.sequential.features import (
    EncodedSequences,
    encode,
    entity_features,
    joint_states,
    state_columns,
    transition_pairs,
)
from audits.sequential.inputs import check_sequences, sub_seed
from audits.utility import resolve_target
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema
from privacy.sequences import SequenceData

Average = Literal["macro", "weighted"]

#: examples each model is fitted on, at most (the same for both)
MAX_FIT_ROWS = 10_000
#: below this many fitting examples, or synthetic entities they come from, the ratio is NaN and fails
#: the gate: both models are fitted on as many examples, and two models fitted on three examples each
#: are equally useless (ratio 1)
MIN_FIT_EXAMPLES = 20
#: test examples of the next-event task, at most (whole entities are sampled)
MAX_TEST_ROWS = 20_000
#: bootstrap resamples of the holdout entities for the intervals
BOOTSTRAP = 100
#: Shrunk boosting, fixed length. With scikit-learn's defaults (100 iterations at rate 0.1) the
#: next-event model overfitted the rare states' probabilities, and its AUC on the holdout swung
#: between 0.72 and 0.90 for fits on two samples of the same real entities (whole Berka); 50
#: iterations at 0.05 gave 0.90 and 0.90 (0.87-0.89 on the test slices) in half the time. Early
#: stopping is not used: its stratified split fails on a state seen once.
MODEL_PARAMETERS: dict[str, Any] = {"max_iter": 50, "learning_rate": 0.05}
#: below this TRTR AUC the real-data model barely beats chance and the ratio says little
_WEAK_BASELINE_AUC = 0.55

_OUTCOME_MEANING = (
    "Ratio of the ROC AUC on real held-out entities of a model predicting the outcome column from each "
    "entity's sequence features, trained on synthetic entities, to that of the same model trained on real "
    "training entities (1 means no loss of predictive utility)."
)
_NEXT_MEANING = (
    "Ratio of the ROC AUC on real held-out entities' events of a model predicting the next event's state "
    "from the previous events, trained on synthetic sequences, to that of the same model trained on real "
    "training sequences (1 means no loss of predictive utility)."
)


def run_sequence_utility(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """Outcome and next-event TSTR/TRTR ratios (see the module docstring)."""
    check_sequences(real_train, real_holdout, synthetic, schema)
    target = resolve_target(schema, ctx.target if ctx is not None else None)
    if target is not None and target not in schema.seq.static:
        raise InputError(f"utility target {target!r} must be a static (per-entity) column of the sequences")
    enc = {"train": encode(real_train, schema), "holdout": encode(real_holdout, schema),
           "synthetic": encode(synthetic, schema)}
    rng = np.random.default_rng([policy.audit.seed, 707])
    metrics = [outcome_utility(enc, schema, target, policy, rng), next_event_utility(enc, schema, policy, rng)]
    return AuditResult(audit="utility", metrics=tuple(metrics))


def outcome_utility(enc: dict[str, EncodedSequences], schema: Schema, target: str | None, policy: Policy,
                    rng: np.random.Generator) -> Metric:
    """TSTR/TRTR AUC ratio for the static ``target``; info-only NaN without a target."""
    if target is None:
        return Metric(name="utility_auc_ratio", value=math.nan, goal="maximize",
                      threshold=policy.thresholds.utility_ratio_min, role="info", meaning=_OUTCOME_MEANING,
                      flags=("no target column",), details={"target": None})
    col = schema.column(target)
    j = [c.name for c in schema.static_columns].index(target)
    classes = len(col.categories)

    def xy(e: EncodedSequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        feats = entity_features(e, schema).without({target}).matrix
        y = e.statics[:, j]
        keep = ~np.isnan(y)  # a nullable target: entities without an outcome are not examples
        return feats[keep], y[keep].astype(np.int64), np.flatnonzero(keep)

    x_tr, y_tr, _ = xy(enc["train"])
    x_sy, y_sy, g_sy = xy(enc["synthetic"])
    x_te, y_te, groups = xy(enc["holdout"])
    details: dict[str, Any] = {"target": target, "classes": classes, "features": int(x_tr.shape[1])}
    return _ratio_metric("utility_auc_ratio", _OUTCOME_MEANING, (x_tr, y_tr), (x_sy, y_sy, g_sy), (x_te, y_te, groups),
                         classes, policy, rng, details)


def next_event_examples(e: EncodedSequences, schema: Schema) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, next state, entity) for every event after an entity's first (see the module docstring)."""
    codes, _ = joint_states(e, schema)
    idx = np.arange(e.events.shape[0])
    prev, cur, ent = transition_pairs(idx, e)
    if cur.size == 0:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    position = (cur - e.offsets[:-1][ent]).astype(np.float64)
    before_prev = np.where(position >= 2, prev - 1, -1)
    gaps = e.gaps()
    statics = entity_features(e, schema)
    static_part = statics.matrix[:, [i for i, s in enumerate(statics.sources) if s in schema.seq.static]]
    two_back = np.where(before_prev >= 0, codes[np.maximum(before_prev, 0)].astype(np.float64), np.nan)
    x = np.column_stack([
        static_part[ent],
        position / schema.seq.max_events,
        e.events[prev],
        e.order_scaled[prev],
        gaps[prev] / max(1, schema.seq.gap_max),
        codes[prev].astype(np.float64),
        two_back,
    ])
    return x, codes[cur], ent


def next_event_utility(enc: dict[str, EncodedSequences], schema: Schema, policy: Policy,
                       rng: np.random.Generator) -> Metric:
    """TSTR/TRTR AUC ratio for the next event's joint state."""
    _, n_states = joint_states(enc["train"], schema)
    x_tr, y_tr, _ = next_event_examples(enc["train"], schema)
    x_sy, y_sy, g_sy = next_event_examples(enc["synthetic"], schema)
    x_te, y_te, g_te = next_event_examples(enc["holdout"], schema)
    if len(y_te) > MAX_TEST_ROWS:
        # whole entities, so that the bootstrap's clusters stay intact
        ents = np.unique(g_te)
        keep_ents = rng.permutation(ents)[: max(1, len(ents) * MAX_TEST_ROWS // len(y_te))]
        keep = np.isin(g_te, keep_ents)
        x_te, y_te, g_te = x_te[keep], y_te[keep], g_te[keep]
    details: dict[str, Any] = {"state_columns": [c.name for c in state_columns(schema)], "states": n_states}
    if len(y_tr) == 0 or len(y_te) == 0:
        return Metric(name="next_event_auc_ratio", value=math.nan, goal="maximize",
                      threshold=policy.thresholds.utility_ratio_min, role="info", meaning=_NEXT_MEANING,
                      flags=("no real entity has two events: nothing to predict",), details=details)
    return _ratio_metric("next_event_auc_ratio", _NEXT_MEANING, (x_tr, y_tr), (x_sy, y_sy, g_sy), (x_te, y_te, g_te),
                         n_states, policy, rng, details, average="weighted")


def _ratio_metric(name: str, meaning: str, real: tuple[np.ndarray, np.ndarray],
                  syn: tuple[np.ndarray, np.ndarray, np.ndarray],
                  test: tuple[np.ndarray, np.ndarray, np.ndarray], classes: int, policy: Policy,
                  rng: np.random.Generator, details: dict[str, Any], average: Average = "macro") -> Metric:
    x_te, y_te, groups = test
    n_fit = min(MAX_FIT_ROWS, len(real[1]), len(syn[1]))
    flags: list[str] = []
    seed = policy.audit.seed
    syn_entities = len(np.unique(syn[2]))
    if n_fit < MIN_FIT_EXAMPLES or syn_entities < MIN_FIT_EXAMPLES:
        # both models would be fitted on this few examples: two useless models have a ratio near 1
        flags.append(f"not run: {n_fit} examples from {syn_entities} synthetic entities to fit on "
                     f"(at least {MIN_FIT_EXAMPLES} of each needed)")
        p_real = p_syn = None
    else:
        try:
            p_real, notes_real = _fit_predict(*_cap(real, n_fit, rng), x_te, classes, seed)
            p_syn, notes_syn = _fit_predict(*_cap((syn[0], syn[1]), n_fit, rng), x_te, classes, seed)
        except Exception as exc:  # noqa: BLE001 - a failed fit fails the gate, never the suite
            first = (str(exc).strip().splitlines() or [""])[0]
            flags.append(f"error: {type(exc).__name__}: {first}"[:200])
            p_real = p_syn = None
        else:
            if notes_real:
                details["real_model"] = notes_real
            if notes_syn:
                details["synthetic_model"] = notes_syn
    present = np.unique(y_te)
    if p_real is None or p_syn is None:
        ratio, auc_real, auc_syn, interval = math.nan, math.nan, math.nan, None
    elif len(present) < 2:
        flags.append("AUC undefined: the holdout holds one class")
        ratio, auc_real, auc_syn, interval = math.nan, math.nan, math.nan, None
    else:
        ones = np.ones((1, len(y_te)))
        auc_real, auc_syn = float(ovr_auc(y_te, p_real, ones, average)[0]), float(ovr_auc(y_te, p_syn, ones, average)[0])
        ratio = auc_syn / auc_real if auc_real > 0 else math.nan
        interval = _bootstrap_ratio(y_te, p_real, p_syn, groups, rng, average)
        if auc_real < _WEAK_BASELINE_AUC:
            flags.append(f"weak baseline: the real-data model's AUC is {auc_real:.3f}")
    details.update({
        "auc": "binary ROC AUC" if classes == 2 else f"{average} one-vs-rest ROC AUC over the classes in the holdout",
        "auc_tstr": _r(auc_syn), "auc_trtr": _r(auc_real), "fit_examples_each": n_fit,
        "model": f"HistGradientBoostingClassifier {MODEL_PARAMETERS}", "interval": f"bootstrap ({BOOTSTRAP}) over holdout entities",
    })
    return Metric(name=name, value=ratio, goal="maximize", threshold=policy.thresholds.utility_ratio_min,
                  interval=interval, meaning=meaning, flags=tuple(flags), details=details)


def _cap(xy: tuple[np.ndarray, np.ndarray], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = xy
    if len(y) <= n:
        return x, y
    pick = np.sort(rng.choice(len(y), size=n, replace=False))
    return x[pick], y[pick]


def _fit_predict(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, classes: int, seed: int) -> tuple[np.ndarray, list[str]]:
    proba = np.zeros((len(x_test), classes))
    seen = np.unique(y)
    notes: list[str] = []
    if len(seen) < 2:
        # a one-class training set gives a constant predictor (AUC 0.5), not a crash
        proba[:, int(seen[0])] = 1.0
        return proba, ["one class only: constant predictor"]
    model = HistGradientBoostingClassifier(random_state=seed, early_stopping=False, **MODEL_PARAMETERS)
    with threadpool_limits(limits=1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
        proba[:, model.classes_.astype(int)] = model.predict_proba(x_test)
    return proba, notes


def _bootstrap_ratio(y: np.ndarray, p_real: np.ndarray, p_syn: np.ndarray, groups: np.ndarray,
                     rng: np.random.Generator, average: Average) -> tuple[float, float] | None:
    """Percentile interval of the AUC ratio over resamples of whole holdout entities.

    A resample is a multinomial weight per entity (its examples share it); each class's weighted
    Mann-Whitney AUC is computed for every resample at once from one sort of its scores, as in
    ``audits.bounds.auc_with_interval``.
    """
    _, inverse = np.unique(groups, return_inverse=True)
    n_ent = int(inverse.max()) + 1
    boot_rng = np.random.default_rng(sub_seed(rng))
    weights = boot_rng.multinomial(n_ent, np.full(n_ent, 1.0 / n_ent), size=BOOTSTRAP).astype(np.float64)[:, inverse]
    a_real, a_syn = ovr_auc(y, p_real, weights, average), ovr_auc(y, p_syn, weights, average)
    ok = np.isfinite(a_real) & np.isfinite(a_syn) & (a_real > 0)
    if ok.sum() < BOOTSTRAP // 2:
        return None
    lo, hi = np.quantile(a_syn[ok] / a_real[ok], [0.025, 0.975])
    return float(lo), float(hi)


def ovr_auc(y: np.ndarray, proba: np.ndarray, weights: np.ndarray, average: Average = "macro") -> np.ndarray:
    """One-vs-rest ROC AUC (ties one half) under each row of example ``weights`` (B, n), averaged over
    the classes with weight on both sides: plainly ("macro", as ``audits.utility.macro_auc``) or by
    each class's weight of positives ("weighted", scikit-learn's ``average="weighted"``)."""
    per_class, prevalence = [], []
    for c in np.unique(y):
        s = proba[:, c]
        order = np.argsort(s, kind="stable")
        s_sorted, pos = s[order], (y[order] == c)
        w = weights[:, order]
        neg_cum = np.zeros((w.shape[0], w.shape[1] + 1))
        np.cumsum(w * ~pos, axis=1, out=neg_cum[:, 1:])
        below = np.searchsorted(s_sorted, s_sorted, side="left")
        through = np.searchsorted(s_sorted, s_sorted, side="right")
        wins = 0.5 * (neg_cum[:, below] + neg_cum[:, through])
        w_pos, w_neg = (w * pos).sum(axis=1), neg_cum[:, -1]
        defined = (w_pos > 0) & (w_neg > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class.append(np.where(defined, (w * pos * wins).sum(axis=1) / (w_pos * w_neg), 0.0))
        prevalence.append(np.where(defined, w_pos if average == "weighted" else 1.0, 0.0))
    auc, share = np.vstack(per_class), np.vstack(prevalence)
    total = share.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(total > 0, (auc * share).sum(axis=0) / total, np.nan), dtype=np.float64)


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)
