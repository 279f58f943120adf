"""Edge membership inference: can an attacker tell a training edge from a held-out real edge?

The unit of privacy of a graph release is one edge (DESIGN.md section 4, rule 3), and
``privacy.graphs.split_edges`` puts each real edge in the holdout by its own independent coin. A
training edge (member) and a holdout edge (non-member) are therefore two real edges that differ
only in that coin: an attack that tells them apart beyond what the claimed epsilon allows refutes
the edge-level DP claim, exactly as a row membership attack does for tables.

The attack scores a candidate pair ``(u, v)`` by what the synthetic graph says about it::

    score(u, v) = present(u, v) + AA(u, v) / (1 + AA(u, v))

``present`` is 1 when the synthetic graph has the edge (for directed graphs, the edge ``u -> v``),
and ``AA`` is the Adamic-Adar index of the pair in the synthetic graph's undirected view, the sum
over common neighbours ``w`` of ``1 / log(deg w)`` (Adamic & Adar 2003; Liben-Nowell & Kleinberg
2007, the link-prediction baseline): a tie-break in ``[0, 1)`` among pairs that are both present or
both absent, high where the synthetic graph puts the pair in a dense neighbourhood. A generator that
copies its training edges puts every member at 1 or above and every non-member below: AUC 1.

Reported (audit "membership"):

- ``edge_membership_auc`` (gate): AUC of members vs non-members with a stratified bootstrap
  interval, gated on its upper end against ``policy.thresholds.edge_membership_auc_max``;
- ``edge_membership_tpr_at_fpr_1pct`` / ``_0_1pct`` (info): TPR at FPR 1% and 0.1% with
  Clopper-Pearson intervals, flagged underpowered when the non-members are too few to resolve them;
- ``edge_membership_auc_dp_check`` (gate, dp_claim, with a claim): the AUC's lower end must not
  exceed ``dp_auc_bound(eps, delta)`` = e^eps/(1+e^eps)+delta, the most any attack can reach;
- ``edge_link_auc`` (info): real edges vs real non-edges (uniform node pairs that are edges neither in
  the training nor in the holdout graph), scored the same way. It measures how much link structure
  the synthetic graph keeps, not membership: a useful generator scores well above 0.5 here.

When the synthetic graph's nodes are not the real ones (a bought node set: fresh ids), the attacker
cannot align a real pair with a synthetic one, and the audit reports itself not run. Under node-level
DP (``unit: node``; ``split_nodes`` puts whole nodes in the holdout) the edge attack tests nothing
the claim is about, and it reports itself not run too: node-level attacks are not implemented yet. The helpers
``check_graphs`` (input checks shared by every graph audit) and ``edge_scores`` (the attack's score,
reused by ``audits.graph.game``) live here.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from audits.bounds import auc_with_interval, dp_auc_bound, null_auc_half_width, roc_points, tpr_at_fpr
from audits.context import AuditContext
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.errors import InputError
from privacy.graphs import GraphData
from privacy.schema import Schema

_CONFIDENCE = 0.95
#: members and non-members each scored at most (seeded samples); scoring is cheap, so this is large
MAX_CANDIDATES = 5000
#: FPRs at which TPR is reported
FPRS = (0.01, 0.001)


# --------------------------------------------------------------------------------------------
# input checks


def check_graphs(real_train: object, real_holdout: object, synthetic: object, schema: Schema) -> None:
    """``InputError`` unless the three graphs fit ``schema`` and each other.

    The schema must be a graph schema; all three must be ``GraphData`` with the schema's
    directedness; train and holdout must share one node set (same count and ids), each have at
    least one edge, and share no edge (a holdout edge in the training graph means a wrong split);
    the synthetic graph must have nodes, and with a public node set exactly the real node ids.
    """
    if schema.kind != "graph":
        raise InputError(f"the graph audits need a graph schema, not a {schema.kind} one")
    spec = schema.gspec
    for name, g in (("training graph", real_train), ("holdout graph", real_holdout), ("synthetic graph", synthetic)):
        if not isinstance(g, GraphData):
            raise InputError(f"the {name} must be GraphData, not {type(g).__name__}")
        if g.directed != spec.directed:
            raise InputError(f"the {name} is {'directed' if g.directed else 'undirected'} but the schema says "
                             f"{'directed' if spec.directed else 'undirected'}")
    assert isinstance(real_train, GraphData) and isinstance(real_holdout, GraphData)
    assert isinstance(synthetic, GraphData)
    if spec.node_unit:
        _check_node_split(real_train, real_holdout, synthetic)
        return
    if real_train.n_nodes != real_holdout.n_nodes or real_train.labels != real_holdout.labels:
        raise InputError("the training and holdout graphs must have the same node set (split_edges keeps every node)")
    if real_train.n_nodes < 2:
        raise InputError("the real graph has fewer than 2 nodes")
    if real_train.n_edges == 0:
        raise InputError("the training graph has no edges")
    if real_holdout.n_edges == 0:
        raise InputError("the holdout graph has no edges")
    if synthetic.n_nodes == 0:
        raise InputError("the synthetic graph has no nodes")
    shared = np.intersect1d(edge_keys(real_train.edges, real_train.n_nodes),
                            edge_keys(real_holdout.edges, real_holdout.n_nodes)).size
    if shared:
        raise InputError(f"{shared} edges are in both the training and the holdout graph: not an edge split")
    if spec.public_nodes and (synthetic.n_nodes != real_train.n_nodes or synthetic.labels != real_train.labels):
        raise InputError("the synthetic graph's nodes are not the public node set of the real graph")


def _check_node_split(real_train: GraphData, real_holdout: GraphData, synthetic: GraphData) -> None:
    """``unit: node``: train and holdout are the subgraphs induced on disjoint node sets (``split_nodes``)."""
    shared = len(set(real_train.labels) & set(real_holdout.labels))
    if shared:
        raise InputError(f"{shared} nodes are in both the training and the holdout graph: not a node split")
    if real_train.n_nodes < 2:
        raise InputError("the training graph has fewer than 2 nodes")
    if real_train.n_edges == 0:
        raise InputError("the training graph has no edges")
    if synthetic.n_nodes == 0:
        raise InputError("the synthetic graph has no nodes")


#: why the edge attacks do not run under node-level DP
NODE_UNIT_NOTE = ("the unit of privacy is one node with all its edges and the synthetic graph has fresh node ids; "
                  "node-level attacks are not implemented yet (the edge attacks do not test a node-level claim)")


def aligned(real: GraphData, synthetic: GraphData) -> bool:
    """Whether node ``i`` of ``synthetic`` is node ``i`` of ``real`` (a public node set): the edge
    attacks need it."""
    return real.spec.public_nodes and synthetic.n_nodes == real.n_nodes and synthetic.labels == real.labels


def edge_keys(edges: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per (canonical) edge: ``u * n + v``."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return e[:, 0] * np.int64(n) + e[:, 1]


# --------------------------------------------------------------------------------------------
# the attack's score


def undirected_adjacency(g: GraphData) -> sp.csr_matrix:
    """The 0/1 adjacency of ``g``'s undirected view (``u -> v`` and ``v -> u`` are one neighbour)."""
    n = g.n_nodes
    e = g.edges
    a = sp.coo_matrix((np.ones(2 * len(e)), (np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]]))),
                      shape=(n, n)).tocsr()
    a.data[:] = 1.0
    a.eliminate_zeros()
    return a


def edge_scores(synthetic: GraphData, pairs: np.ndarray) -> np.ndarray:
    """``present(u, v) + AA / (1 + AA)`` per pair (see the module docstring); pairs as an (k, 2) array
    of node indices of ``synthetic``, in its orientation for directed graphs (any order otherwise)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        return np.zeros(0)
    n = synthetic.n_nodes
    lookup = pairs if synthetic.directed else np.sort(pairs, axis=1)
    present = np.isin(edge_keys(lookup, n), edge_keys(synthetic.edges, n)).astype(np.float64)
    a = undirected_adjacency(synthetic)
    deg = np.asarray(a.sum(axis=1)).ravel()
    # a common neighbour has degree >= 2, so log(deg) > 0 wherever the weight is used
    weight = np.where(deg >= 2, 1.0 / np.log(np.maximum(deg, 2.0)), 0.0)
    rows_u, rows_v = a[pairs[:, 0]], a[pairs[:, 1]]
    aa = np.asarray(rows_u.multiply(rows_v) @ weight).ravel()
    return present + aa / (1.0 + aa)


def sample_non_edges(real_train: GraphData, real_holdout: GraphData, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` uniform node pairs (distinct nodes; ordered for directed graphs) that are edges of
    neither graph, drawn with replacement (fewer when the graph is nearly complete)."""
    n = real_train.n_nodes
    known = np.union1d(edge_keys(real_train.edges, n), edge_keys(real_holdout.edges, n))
    out: list[np.ndarray] = []
    have = 0
    for _ in range(50):
        if have >= count:
            break
        draw = rng.integers(0, n, size=(2 * (count - have) + 16, 2))
        draw = draw[draw[:, 0] != draw[:, 1]]
        canon = draw if real_train.directed else np.sort(draw, axis=1)
        keep = canon[~np.isin(edge_keys(canon, n), known)]
        out.append(keep[: count - have])
        have += len(out[-1])
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def _sample_edges(g: GraphData, count: int, rng: np.random.Generator) -> np.ndarray:
    idx = np.sort(rng.choice(g.n_edges, size=count, replace=False)) if count < g.n_edges else np.arange(g.n_edges)
    return g.edges[idx]


# --------------------------------------------------------------------------------------------
# the audit


def run_graph_membership(
    real_train: GraphData,
    real_holdout: GraphData,
    synthetic: GraphData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """The edge membership attack of the module docstring (audit "membership")."""
    ctx = ctx or AuditContext()
    check_graphs(real_train, real_holdout, synthetic, schema)
    if schema.gspec.node_unit:
        return AuditResult(audit="membership", metrics=(), notes=(f"edge membership attack not run: {NODE_UNIT_NOTE}",))
    if not aligned(real_train, synthetic):
        return AuditResult(audit="membership", metrics=(), notes=(
            "edge membership attack not run: the synthetic graph has fresh node ids (the node set was bought), so "
            "an attacker cannot align a real edge with a synthetic one; the one-edge DP guarantee still holds",))
    settings = policy.audit.membership[ctx.profile]  # type: ignore[index]
    rng = np.random.default_rng([policy.audit.seed, 601])
    n = min(MAX_CANDIDATES, real_train.n_edges, real_holdout.n_edges)
    members = _sample_edges(real_train, n, rng)
    nonmembers = _sample_edges(real_holdout, n, rng)
    if ctx.progress is not None:
        ctx.progress(f"edge membership: scoring {n} training and {n} holdout edges on the synthetic graph")
    scores = edge_scores(synthetic, np.concatenate([members, nonmembers]))
    s_in, s_out = scores[:n], scores[n:]
    boot_seed = int(np.random.default_rng([policy.audit.seed, 601, 1]).integers(0, 2**31 - 1))
    value, (lo, hi) = auc_with_interval(s_in, s_out, n_boot=settings.bootstrap, confidence=_CONFIDENCE, seed=boot_seed)

    threshold = policy.thresholds.edge_membership_auc_max
    null_half = null_auc_half_width(n, n)
    flags: tuple[str, ...] = ()
    if null_half >= (threshold - 0.5) / 2:
        flags = (f"underpowered: {n} edges per side; even a non-leaking generator's interval reaches about "
                 f"{0.5 + null_half:.2f}",)
    details = {
        "attack": "present(u, v) in the synthetic graph + AA/(1+AA), AA the Adamic-Adar index of the pair in the "
                  "synthetic graph's undirected view",
        "members": "seeded sample of the training edges",
        "nonmembers": "seeded sample of the holdout edges (each real edge was held out by its own coin)",
        "candidates_per_side": n,
        "bootstrap": settings.bootstrap,
        "confidence": _CONFIDENCE,
        "members_present_share": round(float((s_in >= 1).mean()), 6),
        "nonmembers_present_share": round(float((s_out >= 1).mean()), 6),
        "unit": "edge",
        "roc": roc_points(s_in, s_out),
    }
    metrics = [Metric(
        name="edge_membership_auc", value=value, goal="minimize", threshold=threshold, interval=(lo, hi),
        gated_on="upper", flags=flags,
        meaning="How well an attacker who sees the synthetic graph tells a training edge from a held-out real edge "
                "(is the pair linked, and how many common neighbours it has, in the synthetic graph), as ROC AUC; "
                "0.5 is ideal (a coin flip), 1 means the synthetic graph copies the training edges.",
        details=details)]
    for fpr in FPRS:
        tpr, (t_lo, t_hi), n_neg = tpr_at_fpr(s_in, s_out, fpr, _CONFIDENCE)
        pct = f"{fpr * 100:g}"
        metrics.append(Metric(
            name=f"edge_membership_tpr_at_fpr_{pct.replace('.', '_')}pct", value=tpr, goal="minimize",
            interval=(t_lo, t_hi), role="info",
            flags=(f"underpowered: fewer than {math.ceil(1 / fpr)} non-member edges",) if fpr * n_neg < 1 else (),
            meaning=f"Share of training edges the attack flags while flagging at most {pct}% of held-out real edges "
                    f"(about {pct}% is ideal).",
            details={"fpr": fpr, "members": n, "nonmembers": n_neg, "interval": "Clopper-Pearson"}))
    if ctx.claim is not None:
        bound = dp_auc_bound(ctx.claim.epsilon, ctx.claim.delta)
        metrics.append(Metric(
            name="edge_membership_auc_dp_check", value=value, goal="minimize", threshold=bound, interval=(lo, hi),
            gated_on="lower", kind="dp_claim",
            meaning="No mechanism with the claimed edge-level epsilon and delta allows an edge membership AUC above "
                    "e^eps/(1+e^eps)+delta; a lower confidence bound above it proves the DP claim false.",
            details={"epsilon": ctx.claim.epsilon, "delta": ctx.claim.delta, "bound": round(bound, 6),
                     "candidates_per_side": n}))

    non_edges = sample_non_edges(real_train, real_holdout, 2 * n, rng)
    if len(non_edges):
        s_non = edge_scores(synthetic, non_edges)
        link, (l_lo, l_hi) = auc_with_interval(scores, s_non, n_boot=settings.bootstrap, confidence=_CONFIDENCE,
                                               seed=boot_seed + 1)
        metrics.append(Metric(
            name="edge_link_auc", value=link, goal="maximize", interval=(l_lo, l_hi), role="info",
            meaning="How well the same score tells real edges (training and held-out) from node pairs that are not "
                    "linked in the real graph. This measures how much link structure the synthetic graph keeps "
                    "(higher is more faithful), not membership: it is not a privacy risk.",
            details={"edges": int(len(scores)), "non_edges": int(len(non_edges)),
                     "non_edges_drawn": "uniform node pairs linked in neither the training nor the holdout graph"}))
    return AuditResult(audit="membership", metrics=tuple(metrics))
