"""The audits that refit the graph generator, with single edges as canaries and targets.

The unit of privacy of a graph release is one edge (DESIGN.md section 4, rule 3): neighbouring
graphs differ in one edge over the same node set. Both audits therefore add or leave out single
real edges, held-out ones (never training edges), and refit the audited generator with the run's
exact options and spend (``ctx.refitter``, whose ``fit_sample(graph: GraphData, schema, n_nodes,
seed)`` returns ``GraphData`` over the same public node set). Each edge is scored on a shadow
synthetic graph by ``audits.graph.membership.edge_scores``: present in it, plus an Adamic-Adar
common-neighbour tie-break. The score is fixed (no model is trained), so a copying generator is
caught by construction and a generator that ignores its edges scores at chance.

- ``run_graph_one_run`` (audit "one_run"): Steinke, Nasr and Jagielski, "Privacy Auditing with One
  (1) Training Run" (NeurIPS 2023). ``m`` holdout edges are canaries (the profile's
  ``one_run_canaries``, at most the holdout's size), each added to the real training graph by an
  independent fair coin of the audit seed; one refit; the ``k`` canaries scored highest are guessed
  "in", the ``k`` lowest "out"; ``audits.bounds.steinke_one_run_bound`` turns the correct guesses
  into an empirical epsilon lower bound (95%), gated (dp_claim) against the claimed epsilon.
- ``run_graph_game`` (audit "shadow_game", only when the profile has ``game_targets``): the
  shadow-model game of ``audits.shadow_game`` with edges as targets. Targets are holdout edges;
  2 x (train + test) fits on the real training graph, every target added to exactly half of the
  training fits and to each test fit by an independent fair coin. Per target the threshold is chosen
  on the training fits and counted once on the test fits; the AUCs, TPR at FPR 1% and the two
  epsilon lower bounds (per-target Clopper-Pearson with Bonferroni; pooled one-run bound) are those
  of ``audits.shadow_game``, called unchanged.

Both are reported as not run, with a note, without a generator to refit, when the profile disables
them, or when the node set was bought (fresh synthetic node ids cannot be aligned with real edges);
under node-level DP (``unit: node``) they are not run either: node-level attacks are not implemented yet.
Shadow fits read real edges only on the steward's side and are never released; they charge no budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from audits.bounds import bound_flags, steinke_one_run_bound
from audits.context import AuditContext
from audits.graph.membership import NODE_UNIT_NOTE, check_graphs, edge_scores
from audits.result import AuditResult, Metric
from audits.shadow import balanced_inclusion, in_workers, workers_for

# The per-target scoring and the metrics of the tabular game, reused as they are (private there).
from audits.shadow_game import game_metrics, target_result
from policies.model import Policy
from privacy.graphs import GraphData
from privacy.schema import Schema

_CONFIDENCE = 0.95

_MEANINGS = {
    "game_auc": "AUC of the shadow-model attack over all target edges: how well it tells a target edge in the "
                "training graph from out (0.5 is chance).",
    "game_worst_target_auc": "AUC against the most exposed single target edge (few trials: wide interval).",
    "game_tpr_at_fpr_1pct": "Share of member edges the attack finds while wrongly accusing at most 1% of non-member "
                            "edges.",
    "game_epsilon_lb": "Empirical epsilon lower bound (95%) from the privacy game on single edges; above the claimed "
                       "epsilon it proves the edge-level DP claim false.",
    "game_auc_dp_check": "The attack's AUC (lower end) must stay within what the claimed epsilon allows, "
                         "e^eps/(1+e^eps)+delta; above it the edge-level DP claim is false.",
}


class GraphRefitter(Protocol):
    """``ctx.refitter`` for graphs: refits the audited generator on a graph, samples one graph."""

    @property
    def name(self) -> str: ...

    def fit_sample(self, data: GraphData, schema: Schema, n: int, seed: int) -> GraphData: ...


def _sub_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _not_run(audit: str, why: str) -> AuditResult:
    return AuditResult(audit=audit, metrics=(), notes=(why,))


def _skip_reason(real_train: GraphData, ctx: AuditContext, what: str) -> str | None:
    if real_train.spec.node_unit:
        return f"{what} not run: {NODE_UNIT_NOTE}"
    if ctx.refitter is None:
        return f"{what} not run: no generator to refit (a file synthgate did not produce)"
    if not real_train.spec.public_nodes:
        return (f"{what} not run: the node set was bought, so shadow synthetic graphs have fresh node ids and an "
                f"attacker cannot align a real edge with them")
    return None


def _add_edges(train: GraphData, extra: np.ndarray) -> GraphData:
    return train.with_edges(np.concatenate([train.edges, extra.reshape(-1, 2)])) if len(extra) else train


# --------------------------------------------------------------------------------------------
# one-run audit


def run_graph_one_run(
    real_train: GraphData,
    real_holdout: GraphData,
    synthetic: GraphData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """The one-run audit with canary edges (see the module docstring); needs ``ctx.refitter``."""
    ctx = ctx or AuditContext()
    check_graphs(real_train, real_holdout, synthetic, schema)
    settings = policy.audit.membership[ctx.profile]  # type: ignore[index]
    why = _skip_reason(real_train, ctx, "one-run audit")
    if why is None and settings.one_run_canaries == 0:
        why = "one-run audit not run: disabled by the policy"
    if why is not None:
        return _not_run("one_run", why)
    refitter = ctx.refitter
    assert refitter is not None  # _skip_reason returned None
    m = min(settings.one_run_canaries, real_holdout.n_edges)
    k = min(settings.one_run_guesses, m // 2)
    if k == 0:
        return _not_run("one_run", "one-run audit not run: fewer than 2 holdout edges")

    rng = np.random.default_rng([policy.audit.seed, 404])
    pick = np.sort(rng.choice(real_holdout.n_edges, size=m, replace=False))
    canaries = real_holdout.edges[pick]
    included = rng.random(m) < 0.5
    shadow_train = _add_edges(real_train, canaries[included])
    if ctx.progress is not None:
        ctx.progress(f"one-run audit: 1 shadow fit of {refitter.name} with {m} canary edges")
    with threadpool_limits(1):
        shadow = refitter.fit_sample(shadow_train, schema, real_train.n_nodes, _sub_seed(rng))
    _check_shadow(shadow, real_train)

    scores = edge_scores(shadow, canaries)
    # ties (e.g. every canary absent) are broken by a seeded random order, never by the inclusion
    ranked = np.lexsort((rng.random(m), -scores))
    guess_in, guess_out = ranked[:k], ranked[m - k:]
    correct = int(included[guess_in].sum() + (~included[guess_out]).sum())
    delta = ctx.claim.delta if ctx.claim is not None else 0.0
    bound = steinke_one_run_bound(m, 2 * k, correct, delta, _CONFIDENCE)
    resolvable = steinke_one_run_bound(m, 2 * k, 2 * k, delta, _CONFIDENCE)
    threshold = ctx.claim.epsilon if ctx.claim is not None else None
    metric = Metric(
        name="one_run_epsilon_lb", value=bound, goal="minimize", threshold=threshold,
        role="gate" if ctx.claim is not None else "info", kind="dp_claim",
        flags=bound_flags(bound, resolvable, threshold, policy.thresholds.epsilon_lb_warn_fraction),
        meaning="Empirical epsilon lower bound (95%) from one shadow fit with canary edges, each added to the "
                "training graph by a coin flip (Steinke et al. 2023); above the claimed edge-level epsilon it "
                "proves the DP claim false.",
        details={
            "method": "one-run audit (Steinke, Nasr, Jagielski 2023); score: edge present in the shadow synthetic "
                      "graph + Adamic-Adar tie-break",
            "canaries": m, "canaries_included": int(included.sum()), "guesses": 2 * k, "correct": correct,
            "accuracy": _r(correct / (2 * k)), "max_resolvable_epsilon": _r(resolvable),
            "confidence": _CONFIDENCE, "delta": delta, "unit": "edge",
            "canary_source": "holdout edges (never training edges)",
        },
    )
    return AuditResult(audit="one_run", metrics=(metric,))


def _r(x: float) -> float:
    return round(float(x), 6)


def _check_shadow(shadow: GraphData, real: GraphData) -> None:
    if not isinstance(shadow, GraphData) or shadow.n_nodes != real.n_nodes:
        raise RuntimeError("the refitted generator did not return a graph over the public node set")


# --------------------------------------------------------------------------------------------
# shadow-model game


@dataclass(frozen=True)
class GraphShadowFit:
    """One shadow fit: its training graph and its sample seed."""

    data: GraphData
    seed: int


def run_graph_game(
    real_train: GraphData,
    real_holdout: GraphData,
    synthetic: GraphData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """The privacy game with edge targets against ``ctx.refitter`` (see the module docstring)."""
    ctx = ctx or AuditContext()
    check_graphs(real_train, real_holdout, synthetic, schema)
    settings = policy.audit.membership[ctx.profile]  # type: ignore[index]
    if schema.gspec.node_unit:
        return _not_run("shadow_game", f"privacy game not run: {NODE_UNIT_NOTE}")
    if settings.game_targets == 0:
        return _not_run("shadow_game", f"privacy game not run: the {ctx.profile} profile has no targets")
    why = _skip_reason(real_train, ctx, "privacy game")
    if why is not None:
        return _not_run("shadow_game", why)
    refitter = ctx.refitter
    assert refitter is not None  # _skip_reason returned None
    # the profile's game_targets switches the game on; graphs use their own, larger target count
    n_targets = min(settings.graph_game_targets, real_holdout.n_edges)
    if n_targets < 2:
        return _not_run("shadow_game", "privacy game not run: fewer than 2 holdout edges")

    rng = np.random.default_rng([policy.audit.seed, 505])
    targets = real_holdout.edges[np.sort(rng.choice(real_holdout.n_edges, size=n_targets, replace=False))]
    k_train, k_test = settings.game_train_fits, settings.game_test_fits
    test_coins = (rng.random((2 * k_test, n_targets)) < 0.5).astype(np.int8)
    inclusion = np.vstack([balanced_inclusion(k_train, n_targets, rng), test_coins])
    fits = [GraphShadowFit(data=_add_edges(real_train, targets[row.astype(bool)]), seed=_sub_seed(rng))
            for row in inclusion]

    def report(done: int, total: int) -> None:
        if ctx.progress is not None and (done == total or done % max(1, total // 10) == 0):
            ctx.progress(f"privacy game: {done}/{total} shadow fits of {refitter.name} (edge targets)")

    scores = run_graph_shadow_fits(refitter, fits, targets, schema, real_train.n_nodes,
                                   workers=workers_for(settings.workers), progress=report)
    n_train = 2 * k_train
    scores = standardise(scores, n_train)
    per_target = []
    for t in range(n_targets):
        per_target.append(target_result(t, False, scores[:n_train, t], inclusion[:n_train, t], scores[n_train:, t],
                                        inclusion[n_train:, t], ctx, n_targets, settings.bootstrap, rng))
    result = game_metrics(per_target, scores[n_train:], inclusion[n_train:], ctx, policy, settings.bootstrap, rng,
                          n_fits=len(fits), ref_rows=0, resample_targets=True)
    metrics = []
    for met in result.metrics:
        details = dict(met.details)
        details.pop("reference_rows", None)
        details["unit"] = "edge"
        details["shadow_training_graph"] = "the real training graph plus the targets of that fit"
        metrics.append(replace(met, meaning=_MEANINGS.get(met.name, met.meaning), details=details))
    return AuditResult(audit="shadow_game", metrics=tuple(metrics), notes=(
        "privacy game with single holdout edges as targets; fixed score (edge present + Adamic-Adar), thresholds "
        "chosen on the training fits",))


def standardise(scores: np.ndarray, n_train: int) -> np.ndarray:
    """Each target's scores (a column) centred and scaled by its training fits (balanced: half with the
    target, half without), so that targets whose pairs sit in denser neighbourhoods do not lift the
    pooled AUC by their level alone; the test fits never inform the transform."""
    train = scores[:n_train]
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    return (scores - mean) / np.where(sd > 1e-9, sd, 1.0)


def run_graph_shadow_fits(
    refitter: GraphRefitter,
    fits: Sequence[GraphShadowFit],
    targets: np.ndarray,
    schema: Schema,
    n_nodes: int,
    *,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Fit, sample and score every shadow fit (in ``workers`` processes): shape (fits, targets)."""
    return np.stack(in_workers(_fit_and_score, [(refitter, f, targets, schema, n_nodes) for f in fits],
                               workers=workers, progress=progress))


def _fit_and_score(refitter: GraphRefitter, fit: GraphShadowFit, targets: np.ndarray, schema: Schema,
                   n_nodes: int) -> np.ndarray:
    with threadpool_limits(1):
        shadow = refitter.fit_sample(fit.data, schema, n_nodes, fit.seed)
    _check_shadow(shadow, fit.data)
    return edge_scores(shadow, targets)
