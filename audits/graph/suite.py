"""The graph audit suite: every graph audit in order, timed, for the same gate as tables.

``run_graph_audits`` is the graph counterpart of ``audits.suite.run_audits``: its first result is
the same ``profile_check``, and the results go unchanged through ``audits.suite``'s
``gate_checks``, ``gate_passed`` and ``audit_document``. The audits keep the tabular audit names
(``membership``, ``one_run``, ``shadow_game``, ``fidelity``), so that reports and reviews that list
the membership attacks find them; the unit of every attack is one edge, and every metric's meaning
says so. Thresholds are the policy's own:

=================================  ==================================  =================================
metric                             role                                threshold
=================================  ==================================  =================================
edge_membership_auc                gate (upper end of the interval)    ``edge_membership_auc_max``
edge_membership_auc_dp_check       gate (dp_claim) with a claim        e^eps/(1+e^eps)+delta (lower end)
edge_membership_tpr_at_fpr_1pct    info                                -
edge_membership_tpr_at_fpr_0_1pct  info                                -
edge_link_auc                      info (structure, not privacy)       -
one_run_epsilon_lb                 gate (dp_claim) with a claim        the claimed epsilon
game_auc                           gate (thorough profile)             ``game_auc_max``
game_tpr_at_fpr_1pct               gate from 1,000 non-member trials   ``game_tpr_at_1pct_max``
game_epsilon_lb                    gate (dp_claim) with a claim        the claimed epsilon
game_auc_dp_check                  gate (dp_claim) with a claim        e^eps/(1+e^eps)+delta
game_worst_target_auc              info                                -
graph_fidelity_score               gate                                ``graph_fidelity_min``
the fidelity components            info                                -
=================================  ==================================  =================================

The edge attacks need the synthetic graph's nodes to be the real ones (a public node set); with a
bought node set they report themselves not run, and only fidelity is measured. Under node-level DP
(``unit: node``: train and holdout are induced subgraphs on disjoint node sets) the edge attacks,
the one-run audit and the game report themselves not run (node-level attacks are not implemented
yet); fidelity runs as usual. There is no
anonymeter or utility audit for graphs yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from audits.context import AuditContext
from audits.graph.fidelity import run_graph_fidelity
from audits.graph.game import run_graph_game, run_graph_one_run
from audits.graph.membership import check_graphs, run_graph_membership
from audits.result import AuditResult
from audits.suite import run_in_order
from policies.model import Policy
from privacy.errors import InputError
from privacy.graphs import GraphData
from privacy.schema import Schema

__all__ = ["GRAPH_AUDITS", "GraphAuditFunction", "check_graphs", "run_graph_audits"]


class GraphAuditFunction(Protocol):
    """The signature every graph audit shares."""

    def __call__(
        self,
        real_train: GraphData,
        real_holdout: GraphData,
        synthetic: GraphData,
        schema: Schema,
        policy: Policy,
        ctx: AuditContext | None = None,
    ) -> AuditResult: ...


#: The graph audits in the order they run: the cheap edge attack first, the refitting audits next
#: (the one-run audit can already refute a DP claim before the game's many fits), fidelity last.
GRAPH_AUDITS: tuple[tuple[str, GraphAuditFunction], ...] = (
    ("membership", run_graph_membership),
    ("one_run", run_graph_one_run),
    ("shadow_game", run_graph_game),
    ("fidelity", run_graph_fidelity),
)


def run_graph_audits(
    real_train: GraphData,
    real_holdout: GraphData,
    synthetic: GraphData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[AuditResult]:
    """Run every audit in ``GRAPH_AUDITS`` order; ``progress(name)`` is called before each starts.

    Each result carries its wall-clock ``seconds``; the first checks the membership profile against
    the policy. Usage errors (``InputError``: a schema that is not a graph schema, graphs over
    different node sets, a graph without edges) propagate before any audit runs.
    """
    ctx = ctx or AuditContext()
    if ctx.profile not in policy.audit.membership:
        raise InputError(f"unknown membership profile {ctx.profile!r} (known: fast, thorough)")
    check_graphs(real_train, real_holdout, synthetic, schema)
    return run_in_order(GRAPH_AUDITS, real_train, real_holdout, synthetic, schema, policy, ctx, progress=progress)
