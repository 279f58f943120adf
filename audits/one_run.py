"""One-run audit: an empirical epsilon lower bound from a single shadow fit with many canaries.

Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023): take m
canary records, include each in the training data independently with probability 1/2, fit once,
let an attack guess "in" for the k canaries it scores highest and "out" for the k lowest, and
count the correct guesses. Under (epsilon, delta)-DP that count is stochastically dominated by a
binomial with success probability e^eps/(1+e^eps) (plus a delta term), so a count too high for the
claimed epsilon refutes the claim: ``audits.bounds.steinke_one_run_bound`` turns it into a bound.

Here the canaries are holdout rows (never the training split), the fit uses the audited run's
generator with its exact options and spend (``ctx.refitter``), and the attack is the density-ratio
score of ``audits.domias`` with the remaining holdout rows as the attacker's reference: the
attacker knows every non-canary record, as the theorem allows. Which rows are canaries and which
were included depends only on the audit seed, never on the scores.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from audits.bounds import bound_flags, steinke_one_run_bound
from audits.context import AuditContext
from audits.domias import density_ratio_scores
from audits.membership import check_frames
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.schema import Schema

_CONFIDENCE = 0.95


def run_one_run(
    real_train: pl.DataFrame,
    real_holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """The one-run audit of the audited generator (needs ``ctx.refitter``; reported as not run otherwise)."""
    ctx = ctx or AuditContext()
    check_frames(real_train, real_holdout, synthetic, schema)
    settings = policy.audit.membership[ctx.profile]  # type: ignore[index]
    if ctx.refitter is None or settings.one_run_canaries == 0:
        why = "no generator to refit (a file synthgate did not produce)" if ctx.refitter is None else "disabled by the policy"
        return AuditResult(audit="one_run", metrics=(), notes=(f"one-run audit not run: {why}",))

    rng = np.random.default_rng([policy.audit.seed, 404])
    # canaries and the attacker's reference both come from the holdout, disjoint
    m = min(settings.one_run_canaries, real_holdout.height // 2)
    k = min(settings.one_run_guesses, m // 2)
    order = rng.permutation(real_holdout.height)
    canaries = real_holdout[order[:m].tolist()]
    included = rng.random(m) < 0.5
    fit_data = canaries.filter(pl.Series(included))
    reference = real_holdout[order[m : m + max(int(included.sum()), 1)].tolist()]
    if ctx.progress is not None:
        ctx.progress(f"one-run audit: 1 shadow fit of {ctx.refitter.name} on {fit_data.height} rows")
    shadow_seed = int(rng.integers(0, 2**31 - 1))
    synthetic_shadow = _fit_once(ctx, fit_data, schema, shadow_seed)

    scores = density_ratio_scores(canaries, reference, synthetic_shadow, schema, seed=policy.audit.seed)
    ranked = np.argsort(-scores, kind="stable")
    guess_in, guess_out = ranked[:k], ranked[m - k :] if k else ranked[:0]
    correct = int(included[guess_in].sum() + (~included[guess_out]).sum())
    delta = ctx.claim.delta if ctx.claim is not None else 0.0
    bound = steinke_one_run_bound(m, 2 * k, correct, delta, _CONFIDENCE)
    resolvable = steinke_one_run_bound(m, 2 * k, 2 * k, delta, _CONFIDENCE)

    threshold = ctx.claim.epsilon if ctx.claim is not None else None
    role = "gate" if ctx.claim is not None else "info"
    flags = bound_flags(bound, resolvable, threshold, policy.thresholds.epsilon_lb_warn_fraction)
    metric = Metric(
        name="one_run_epsilon_lb",
        value=bound,
        goal="minimize",
        threshold=threshold,
        role=role,  # type: ignore[arg-type]
        kind="dp_claim",
        meaning=(
            "Empirical epsilon lower bound (95%) from one shadow fit with canaries (Steinke et al. 2023); "
            "above the claimed epsilon it proves the DP claim false."
        ),
        flags=flags,
        details={
            "method": "one-run audit (Steinke, Nasr, Jagielski 2023), density-ratio attack",
            "canaries": m,
            "guesses": 2 * k,
            "correct": correct,
            "accuracy": round(correct / (2 * k), 6) if k else None,
            "max_resolvable_epsilon": round(resolvable, 6),
            "confidence": _CONFIDENCE,
            "delta": delta,
            "shadow_fit_rows": fit_data.height,
        },
    )
    return AuditResult(audit="one_run", metrics=(metric,))


def _fit_once(ctx: AuditContext, data: pl.DataFrame, schema: Schema, seed: int) -> pl.DataFrame:
    assert ctx.refitter is not None
    # one fit: no worker pool; the synthetic rows themselves are needed, not target features
    return ctx.refitter.fit_sample(data, schema, data.height, seed)
