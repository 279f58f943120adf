"""The audits that refit the generator, with whole entities as targets and canaries.

Both follow their tabular counterparts, with an entity (all its events) wherever those have a row;
the unit of privacy of a sequential release is the entity (DESIGN.md section 4, rule 3), so an
entity is what is added to or left out of a shadow fit.

- ``run_sequence_game``: the shadow-model privacy game of ``audits.shadow_game`` (Stadler et al.
  2022; Houssiau et al. 2022). Targets are holdout entities, the most isolated by the sequence
  distance plus random ones; the generator (``ctx.refitter``, whose ``fit_sample(data:
  SequenceData, schema, n_entities, seed)`` returns ``SequenceData``) is refitted on reference
  entities from the rest of the holdout, every target in exactly half of the training fits and in
  each test fit by an independent fair coin. Each synthetic set becomes features relative to each
  target (``target_features``: its sequence distance to the 1st, 2nd and 5th nearest synthetic
  entity, the share of synthetic entities identical to it, with its static values and with its
  number of events); per target a logistic regression trained on the training fits scores the test
  fits. The scoring, the AUCs, TPR at FPR 1% and the two empirical epsilon lower bounds checked
  against ``ctx.claim`` (per-target Clopper-Pearson with Bonferroni; pooled one-run bound of
  Steinke et al. 2023) are those of ``audits.shadow_game``, called unchanged.
- ``run_sequence_one_run``: the one-run audit of ``audits.one_run`` (Steinke, Nasr and Jagielski
  2023): holdout entities as canaries, each in the one shadow fit with probability 1/2; the attack
  scores a canary by ``log(d_ref + c) - log(d_syn + c)``, its sequence distance to the nearest
  entity of an attacker's reference set (other holdout entities) over that to the nearest synthetic
  entity (``c`` = 1e-6): a distance analogue of the density ratio of ``audits.domias``, high where the
  generator put an entity closer to the canary than typical real entities are.

Both are skipped, with a note, when ``ctx.refitter`` is None or the profile disables them, exactly
as the tabular audits are. The policy's profile settings are read as entity counts
(``game_reference_rows`` reference entities per fit, ``one_run_canaries`` canary entities).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numba
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from audits.bounds import bound_flags, steinke_one_run_bound
from audits.context import AuditContext
from audits.result import AuditResult, Metric
from audits.sequential.distance import DistanceSpace, nearest
from audits.sequential.features import EncodedSequences, encode
from audits.sequential.inputs import (
    SequenceRefitter,
    check_sequences,
    concat_entities,
    sample_entities,
    sub_seed,
    take_indices,
)
from audits.shadow import balanced_inclusion, in_workers, workers_for

# The per-target scoring and the metrics of the tabular game, reused as they are (private there).
from audits.shadow_game import game_metrics, target_result
from policies.model import Policy
from privacy.schema import Schema
from privacy.sequences import SequenceData

_CONFIDENCE = 0.95
#: nearest synthetic entities whose distances are features
_KNN = 5
#: offset of the one-run score's logarithms (distances are sums of scaled differences)
_SCORE_OFFSET = 1e-6
#: at most this many holdout entities are searched for the most isolated targets
_ISOLATION_POOL = 2000
_EXACT = 1e-9

_MEANINGS = {
    "game_auc": "AUC of the shadow-model attack over all target entities: how well it tells a target entity "
                "(all its events) in the training data from out (0.5 is chance).",
    "game_worst_target_auc": "AUC against the most exposed single target entity (few trials: wide interval).",
    "game_tpr_at_fpr_1pct": "Share of member entities the attack finds while wrongly accusing at most 1% of "
                            "non-member entities.",
    "game_epsilon_lb": "Empirical epsilon lower bound (95%) from the privacy game on whole entities; above the "
                       "claimed epsilon it proves the entity-level DP claim false.",
    "game_auc_dp_check": "The attack's AUC (lower end) must stay within what the claimed epsilon allows, "
                         "e^eps/(1+e^eps)+delta; above it the entity-level DP claim is false.",
}


@dataclass(frozen=True)
class SequenceShadowFit:
    """One shadow fit: its training entities, how many entities to sample, and the sample seed."""

    data: SequenceData
    n: int
    seed: int


def run_sequence_game(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """Play the privacy game with entity targets against ``ctx.refitter`` (see the module docstring)."""
    ctx = ctx or AuditContext()
    check_sequences(real_train, real_holdout, synthetic, schema)
    settings = policy.audit.membership[ctx.profile]  # type: ignore[index]
    if settings.game_targets == 0:
        return AuditResult(audit="shadow_game", metrics=(),
                           notes=(f"privacy game not run: the {ctx.profile} profile has no targets",))
    if ctx.refitter is None:
        return AuditResult(audit="shadow_game", metrics=(),
                           notes=("privacy game not run: no generator to refit (a file synthgate did not produce)",))
    refitter = ctx.refitter
    n_targets = min(settings.game_targets, real_holdout.n_entities // 4)
    if n_targets < 2:
        return AuditResult(audit="shadow_game", metrics=(),
                           notes=("privacy game not run: fewer than 8 holdout entities",))

    rng = np.random.default_rng([policy.audit.seed, 505])
    hold_enc = encode(real_holdout, schema)
    isolated = isolated_entities(hold_enc, schema, min(settings.game_isolated_targets, n_targets), rng)
    rest = np.setdiff1d(np.arange(real_holdout.n_entities), isolated)
    randoms = rng.choice(rest, size=n_targets - len(isolated), replace=False)
    chosen = np.sort(np.concatenate([np.asarray(isolated, dtype=np.int64), randoms.astype(np.int64)]))
    # ``take`` keeps the holdout's order: target t is the t-th chosen index
    targets = take_indices(real_holdout, chosen)
    is_isolated = np.isin(chosen, isolated)
    pool = take_indices(real_holdout, np.setdiff1d(rest, randoms))
    ref_n = min(settings.game_reference_rows, pool.n_entities)

    k_train, k_test = settings.game_train_fits, settings.game_test_fits
    test_coins = (rng.random((2 * k_test, n_targets)) < 0.5).astype(np.int8)
    inclusion = np.vstack([balanced_inclusion(k_train, n_targets, rng), test_coins])
    fits = []
    for row in inclusion:
        reference = sample_entities(pool, ref_n, np.random.default_rng(sub_seed(rng)))
        parts = [reference]
        if row.any():
            parts.append(targets.take(row.astype(bool)))
        data = concat_entities(parts)
        fits.append(SequenceShadowFit(data=data, n=data.n_entities, seed=sub_seed(rng)))

    def report(done: int, total: int) -> None:
        if ctx.progress is not None and (done == total or done % max(1, total // 10) == 0):
            ctx.progress(f"privacy game: {done}/{total} shadow fits of {refitter.name} (entity targets)")

    target_enc = encode(targets, schema)
    feats = run_sequence_shadow_fits(refitter, fits, target_enc, schema, workers=workers_for(settings.workers),
                                     progress=report)
    n_train = 2 * k_train
    per_target, test_scores = [], np.zeros((2 * k_test, n_targets))
    for t in range(n_targets):
        x_tr, y_tr = feats[:n_train, t, :], inclusion[:n_train, t]
        x_te, y_te = feats[n_train:, t, :], inclusion[n_train:, t]
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        folds = StratifiedKFold(n_splits=min(5, k_train), shuffle=True, random_state=sub_seed(rng))
        oof = cross_val_predict(clf, x_tr, y_tr, cv=folds, method="predict_proba")[:, 1]
        clf.fit(x_tr, y_tr)
        s = clf.predict_proba(x_te)[:, 1]
        test_scores[:, t] = s
        per_target.append(target_result(t, bool(is_isolated[t]), oof, y_tr, s, y_te, ctx, n_targets,
                                        settings.bootstrap, rng))
    result = game_metrics(per_target, test_scores, inclusion[n_train:], ctx, policy, settings.bootstrap, rng,
                          n_fits=len(fits), ref_rows=ref_n)
    metrics = []
    for m in result.metrics:
        details = dict(m.details)
        if "reference_rows" in details:
            details["reference_entities"] = details.pop("reference_rows")
        details["unit"] = "entity"
        metrics.append(replace(m, meaning=_MEANINGS.get(m.name, m.meaning), details=details))
    return AuditResult(audit="shadow_game", metrics=tuple(metrics),
                       notes=("privacy game with whole entities (all their events) as targets",))


def run_sequence_shadow_fits(
    refitter: SequenceRefitter,
    fits: Sequence[SequenceShadowFit],
    targets: EncodedSequences,
    schema: Schema,
    *,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Fit, sample and featurise every shadow fit (in ``workers`` processes): shape (fits, targets, F)."""
    in_worker = workers > 1 and len(fits) > 1
    return np.stack(in_workers(_fit_and_featurize, [(refitter, f, targets, schema, in_worker) for f in fits],
                               workers=workers, progress=progress))


def _fit_and_featurize(refitter: SequenceRefitter, fit: SequenceShadowFit, targets: EncodedSequences,
                       schema: Schema, in_worker: bool) -> np.ndarray:
    if in_worker:
        # one thread per worker process: the workers already use every core
        numba.set_num_threads(1)
    with threadpool_limits(1):
        synthetic = refitter.fit_sample(fit.data, schema, fit.n, fit.seed)
    return target_features(targets, encode(synthetic, schema), schema)


def target_features(targets: EncodedSequences, synthetic: EncodedSequences, schema: Schema) -> np.ndarray:
    """Features of a synthetic set relative to each target entity: shape (targets, 6).

    Sequence distance to the 1st, 2nd and 5th nearest synthetic entity; shares of synthetic entities
    identical to the target (distance 0), with its static values, and with its number of events.
    """
    k = min(_KNN, synthetic.n)
    nb = nearest(DistanceSpace.from_schema(schema), targets, synthetic, k=k, radius=_EXACT)
    pick = [0, min(1, k - 1), k - 1]
    dist = nb.distances[:, pick]
    exact = nb.within / synthetic.n
    same_statics = _same_rows(targets.statics, synthetic.statics).mean(axis=1)
    same_length = (targets.lengths[:, None] == synthetic.lengths[None, :]).mean(axis=1)
    return np.column_stack([dist, exact, same_statics, same_length]).astype(np.float64)


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) True where two rows are equal in every column (NaN equal to NaN)."""
    if a.shape[1] == 0:
        return np.ones((a.shape[0], b.shape[0]), dtype=bool)
    eq = (a[:, None, :] == b[None, :, :]) | (np.isnan(a)[:, None, :] & np.isnan(b)[None, :, :])
    return np.asarray(eq.all(axis=2))


def isolated_entities(enc: EncodedSequences, schema: Schema, count: int, rng: np.random.Generator) -> list[int]:
    """Indices of the ``count`` entities farthest (sequence distance) from any other entity of ``enc``.

    Above ``_ISOLATION_POOL`` entities a seeded sample is searched (against the same sample).
    """
    if count <= 0 or enc.n < 2:
        return []
    idx = np.arange(enc.n)
    if enc.n > _ISOLATION_POOL:
        idx = np.sort(rng.choice(enc.n, size=_ISOLATION_POOL, replace=False))
        enc = _subset(enc, idx)
    nb = nearest(DistanceSpace.from_schema(schema), enc, enc, k=1, exclude_self=True)
    order = np.argsort(-nb.distances[:, 0], kind="stable")
    return [int(idx[i]) for i in order[:count]]


def _subset(enc: EncodedSequences, idx: np.ndarray) -> EncodedSequences:
    rows = np.concatenate([np.arange(enc.offsets[i], enc.offsets[i + 1]) for i in idx]) if len(idx) else np.zeros(0, int)
    lengths = enc.lengths[idx]
    return replace(enc, lengths=lengths, offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   statics=enc.statics[idx], events=enc.events[rows], order=enc.order[rows],
                   order_scaled=enc.order_scaled[rows])


def run_sequence_one_run(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """The one-run audit with canary entities (see the module docstring); needs ``ctx.refitter``."""
    ctx = ctx or AuditContext()
    check_sequences(real_train, real_holdout, synthetic, schema)
    settings = policy.audit.membership[ctx.profile]  # type: ignore[index]
    if ctx.refitter is None or settings.one_run_canaries == 0:
        why = "no generator to refit (a file synthgate did not produce)" if ctx.refitter is None else "disabled by the policy"
        return AuditResult(audit="one_run", metrics=(), notes=(f"one-run audit not run: {why}",))
    refitter = ctx.refitter
    m = min(settings.one_run_canaries, real_holdout.n_entities // 2)
    k = min(settings.one_run_guesses, m // 2)
    if k == 0:
        return AuditResult(audit="one_run", metrics=(), notes=("one-run audit not run: fewer than 4 holdout entities",))

    rng = np.random.default_rng([policy.audit.seed, 404])
    order = rng.permutation(real_holdout.n_entities)
    canary_pos = np.sort(order[:m])
    coins = rng.random(m) < 0.5
    included = np.zeros(real_holdout.n_entities, dtype=bool)
    included[order[:m][coins]] = True
    if not included.any():
        included[order[0]] = True
    fit_data = real_holdout.take(included)
    reference = take_indices(real_holdout, order[m : m + max(int(included.sum()), 1)])
    if ctx.progress is not None:
        ctx.progress(f"one-run audit: 1 shadow fit of {refitter.name} on {fit_data.n_entities} entities")
    with threadpool_limits(1):
        shadow = refitter.fit_sample(fit_data, schema, fit_data.n_entities, sub_seed(rng))
    if shadow.n_entities == 0:
        return AuditResult(audit="one_run", metrics=(_nan_metric(ctx, policy, "the shadow fit returned no entities"),))

    canaries = encode(take_indices(real_holdout, canary_pos), schema)
    space = DistanceSpace.from_schema(schema)
    d_syn = nearest(space, canaries, encode(shadow, schema)).distances[:, 0]
    d_ref = nearest(space, canaries, encode(reference, schema)).distances[:, 0]
    scores = np.log(d_ref + _SCORE_OFFSET) - np.log(d_syn + _SCORE_OFFSET)
    truth = included[canary_pos]
    ranked = np.argsort(-scores, kind="stable")
    guess_in, guess_out = ranked[:k], ranked[m - k:]
    correct = int(truth[guess_in].sum() + (~truth[guess_out]).sum())
    delta = ctx.claim.delta if ctx.claim is not None else 0.0
    bound = steinke_one_run_bound(m, 2 * k, correct, delta, _CONFIDENCE)
    resolvable = steinke_one_run_bound(m, 2 * k, 2 * k, delta, _CONFIDENCE)
    threshold = ctx.claim.epsilon if ctx.claim is not None else None
    metric = Metric(
        name="one_run_epsilon_lb", value=bound, goal="minimize", threshold=threshold,
        role="gate" if ctx.claim is not None else "info", kind="dp_claim",
        meaning="Empirical epsilon lower bound (95%) from one shadow fit with canary entities (Steinke et al. "
                "2023); above the claimed epsilon it proves the entity-level DP claim false.",
        flags=bound_flags(bound, resolvable, threshold, policy.thresholds.epsilon_lb_warn_fraction),
        details={
            "method": "one-run audit (Steinke, Nasr, Jagielski 2023), nearest-entity distance-ratio attack",
            "canaries": m, "guesses": 2 * k, "correct": correct, "accuracy": round(correct / (2 * k), 6),
            "max_resolvable_epsilon": round(resolvable, 6), "confidence": _CONFIDENCE, "delta": delta,
            "shadow_fit_entities": fit_data.n_entities, "unit": "entity",
        },
    )
    return AuditResult(audit="one_run", metrics=(metric,))


def _nan_metric(ctx: AuditContext, policy: Policy, why: str) -> Metric:
    return Metric(name="one_run_epsilon_lb", value=math.nan, goal="minimize",
                  threshold=ctx.claim.epsilon if ctx.claim is not None else None,
                  role="gate" if ctx.claim is not None else "info", kind="dp_claim", flags=(f"error: {why}",),
                  meaning="Empirical epsilon lower bound (95%) from one shadow fit with canary entities.")
