"""dpdegree: an edge-level DP degree sequence (Hay et al. 2009) and a random graph that matches it.

Privacy argument
----------------
1. **Public first**: the node count ``N`` comes from the schema (public node set) or is bought
   with part of the budget (``nodes: bought``; ``common.buy_node_count``, sensitivity 2). Budget
   shares, the noise kind and the graph model are options. Nothing else is read before the noise.
2. **The query**: ``S_N(G)``, the degrees of ``G`` sorted in non-increasing order, padded with zeros
   (nodes without an edge) and cut to length ``N``. Directed: the out-degree and the in-degree
   sequences, each sorted, concatenated. With a bought node set ``N`` is the DP estimate: the
   query is chosen from an already released value, which adaptive composition allows; it reads
   nothing else (the true node count never sets the length).
3. **Sensitivity** (edge adjacency): adding edge ``(u, v)`` raises ``deg(u)`` and ``deg(v)`` by 1.
   Raising one entry of a multiset by 1 changes its sorted vector in exactly one position by +1
   (the last position holding the old value), so the full sorted sequence changes in two
   positions by +1 each, and cutting it to its first ``N`` positions keeps at most those two.
   Directed: ``out(u)`` and ``in(v)`` rise: one position of each sorted sequence. Either way
   **L1 sensitivity 2 and L2 sensitivity sqrt(2)**; removal is symmetric.
4. **Noise**: ``noise="gaussian"``: OpenDP's discrete Gaussian with ``sigma = sqrt(2) / sqrt(2
   rho_structure)`` (zCDP; rho from ``(epsilon, delta)`` by OpenDP's conversion, delta > 0).
   ``noise="laplace"``: OpenDP's discrete Laplace with scale ``2 / epsilon_structure``
   (pure epsilon-DP; the card's delta is 0 unless node attributes run through MST).
5. **Post-processing** (Hay et al.'s constrained inference): the noisy sequence is fitted by
   isotonic regression (non-increasing, pool-adjacent-violators via scikit-learn), rounded and
   clipped to ``[0, N - 1]``; undirected: an odd degree sum is made even by lowering the largest
   degree by one; directed: the larger of the two sums is lowered to the smaller (one from each of
   the largest entries, repeatedly).
6. **Node attributes** (when the schema has them, public node set only): ``common.fit_node_attributes``
   with the attribute share (MST on one row per node: attributes and degree class, rho divided by
   16 for the two substituted rows one edge makes: see ``common``). The unit becomes "one edge,
   or one node's attribute values". Parts compose by adding rho (Gaussian) or by basic composition
   of (epsilon, delta) (Laplace).

Node-level DP (``unit: node``)
------------------------------
The schema declares a public degree bound ``D`` (``max_degree``) and a bought node set; graphs with
a node above ``D`` are refused at registration (``conform_graph``), so every graph here has maximum
degree ``<= D``. Neighbouring graphs differ in one node ``w`` and all its edges.

1. **The query**: the degree histogram ``H(G) = (#nodes of degree j)_{j=0..D}`` (length ``D + 1``,
   public). Nothing else is read; the node count is not measured separately.
2. **Sensitivity**: removing ``w`` (degree ``k <= D``) takes ``w`` out of its bin (1 change) and moves
   each of its ``k`` neighbours down one bin (2 changes each): **L1 <= 2D + 1**. For L2 write
   ``n_j`` for the neighbours of degree ``j``; the change at bin ``j`` is ``n_{j+1} - n_j - [deg w
   = j]``. Since ``(a - b)^2 <= a^2 + b^2`` for ``a, b >= 0``, the neighbours alone give at most
   ``2 sum n_j^2 <= 2 k^2``, and ``w``'s own -1 adds ``-2 x_{deg w} + 1 <= 2 n_{deg w} + 1 <= 2k + 1``
   (``x`` the neighbours' vector); so **L2^2 <= 2D^2 + 2D + 1**, reached by a clique on ``D + 1``
   nodes (bin ``D`` loses ``D + 1``, bin ``D - 1`` gains ``D``). In an edge file a neighbour whose
   only edge was to ``w`` disappears instead of moving to bin 0, which only lowers both norms; with
   ``split_nodes`` (coins coupled by node) a removed holdout node changes the training histogram
   only in bin 0, by at most ``D``. Adding a node is the reverse. Enumerated in the tests.
3. **Noise**: discrete Gaussian with ``sigma = sqrt(2D^2 + 2D + 1) / sqrt(2 rho)`` (zCDP), or discrete
   Laplace with scale ``(2D + 1) / epsilon`` (pure epsilon); the whole budget goes to the histogram.
4. **Post-processing**: the node count is ``max(2, round(sum of the noisy bins))``; the noisy
   histogram is projected (least squares) onto the non-negative histograms with that sum, rounded
   by largest remainders, and expanded to a degree sequence (clipped to ``[0, n - 1]``; an odd sum
   loses one from the largest degree). Node ids are fresh (``"0"`` .. ``"n-1"``).

Sampling (post-processing, seeded numpy generator): the sorted sequence loses which node had
which degree, so degrees go to a uniformly random permutation of the node ids (directed: the
k-th largest out- and in-degree go to the same node, a comonotone pairing); then Chung-Lu
(``model="chung-lu"``, endpoints drawn proportionally to the degrees, about sum/2 distinct edges)
or the erased configuration model (``model="configuration"``: stubs matched uniformly,
self-loops and multi-edges erased). With a bought node set and ``n`` other than the estimate, the
``n`` degrees are drawn from the noisy sequence with replacement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.graph.common import (
    GraphBudget,
    GraphEpsilonBudget,
    NodeAttributeModel,
    buy_node_count,
    buy_node_count_laplace,
    check_sample_n,
    check_seed,
    chung_lu,
    configuration_model,
    degree_class_lows,
    fit_node_attributes,
    gaussian_measure,
    graph_rho,
    laplace_measure,
    plan_graph_budget,
    plan_graph_epsilon,
    public_labels,
)
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.marginal import library_versions, report
from privacy.graph_spec import GraphSpec
from privacy.graphs import GraphData
from privacy.schema import Schema
from privacy.spend import PrivacySpend

MODELS = ("chung-lu", "configuration")
NOISES = ("gaussian", "laplace")
#: the L1 and L2 sensitivity of the sorted degree sequence(s) under one edge added or removed
L1_SENSITIVITY = 2
L2_SENSITIVITY = math.sqrt(2.0)


def sorted_degrees(degrees: np.ndarray, length: int) -> np.ndarray:
    """Degrees sorted non-increasing, padded with zeros or cut to ``length`` (the query ``S_N``)."""
    d = np.sort(np.asarray(degrees, dtype=np.int64))[::-1][:length]
    return np.concatenate([d, np.zeros(length - d.size, dtype=np.int64)])


def isotonic_nonincreasing(y: np.ndarray) -> np.ndarray:
    """The least-squares non-increasing fit of ``y`` (pool adjacent violators)."""
    from sklearn.isotonic import IsotonicRegression

    y = np.asarray(y, dtype=np.float64)
    if y.size <= 1:
        return y.copy()
    return np.asarray(IsotonicRegression(increasing=False).fit_transform(np.arange(y.size), y), dtype=np.float64)


def lower_sum(seq: np.ndarray, k: int) -> np.ndarray:
    """Lower the sum of a non-negative integer sequence by ``k``: one from each largest entry, repeatedly."""
    s = np.asarray(seq, dtype=np.int64).copy()
    k = min(int(k), int(s.sum()))
    while k > 0:
        pos = np.flatnonzero(s > 0)
        take = pos[np.argsort(-s[pos], kind="stable")][:k]
        s[take] -= 1
        k -= take.size
    return s


def consistent_sequence(noisy: np.ndarray, n: int) -> np.ndarray:
    """Isotonic fit, rounded, clipped to ``[0, n - 1]``: a non-increasing integer sequence."""
    fit = isotonic_nonincreasing(noisy)
    return np.clip(np.rint(fit), 0, n - 1).astype(np.int64)


def _option(name: str, v: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise InputError(f"dpdegree: {name} ({v!r}) must be one of {', '.join(map(repr, allowed))}")
    return v


class DPDegreeGenerator:
    """The ``dpdegree`` graph generator (see the module docstring for the DP argument).

    Options: ``model`` (``"chung-lu"``, default, or ``"configuration"``), ``noise``
    (``"gaussian"``: zCDP, needs delta > 0, default; ``"laplace"``: pure epsilon), ``node_share``
    (budget fraction for the node count when the node set is bought, default 0.05) and
    ``attribute_share`` (fraction for node attributes when the schema has them, default 0.2).
    """

    name = "dpdegree"

    def __init__(self, *, model: str = "chung-lu", noise: str = "gaussian", node_share: float = 0.05,
                 attribute_share: float = 0.2) -> None:
        self.model = _option("model", model, MODELS)
        self.noise = _option("noise", noise, NOISES)
        for nm, v in (("node_share", node_share), ("attribute_share", attribute_share)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 < v < 1):
                raise InputError(f"dpdegree: {nm} ({v!r}) must be a number in (0, 1)")
        self.node_share = float(node_share)
        self.attribute_share = float(attribute_share)

    def check_schema(self, schema: Schema) -> None:
        """Refuse, from the schema alone (before any budget is charged), what dpdegree cannot do."""
        if not schema.is_graph:
            raise InputError("dpdegree needs a graph schema (kind: graph)")
        if schema.gspec.node_unit:
            if schema.columns:
                raise InputError("dpdegree: node attributes with unit node are not supported yet")
            if schema.gspec.directed or schema.gspec.max_degree is None or schema.gspec.public_nodes:
                raise InputError("dpdegree: unit node needs an undirected graph, max_degree and nodes: bought")
        if schema.columns and not schema.gspec.public_nodes:
            raise InputError("dpdegree: node attributes with nodes: bought are not supported yet "
                             "(declare the node set public)")

    def fit(self, data: GraphData, schema: Schema, spend: PrivacySpend, *,
            progress: Progress | None = None) -> "DPDegreeModel":
        """Fit on the conformed training graph, spending at most ``spend`` (edge-level DP)."""
        self.check_schema(schema)
        spec = schema.gspec
        if spec.node_unit:
            return self._fit_node_unit(data, schema, spend, progress)
        directed = spec.directed
        gaussian = self.noise == "gaussian"
        report(progress, "dpdegree: planning the budget", 0.0)
        if gaussian:
            rb = plan_graph_budget(spend, schema, node_share=self.node_share, attribute_share=self.attribute_share)
            eb = None
        else:
            eb = plan_graph_epsilon(spend, schema, node_share=self.node_share, attribute_share=self.attribute_share)
            rb = None

        # the node count: public, or bought (sensitivity 2)
        if spec.public_nodes:
            n = data.n_nodes
        elif rb is not None:
            n = buy_node_count(data, rb.rho_nodes)
        else:
            assert eb is not None
            n = buy_node_count_laplace(data, eb.eps_nodes)

        # the sorted sequence(s) of length n, measured with noise
        if directed:
            src = np.bincount(data.edges[:, 0]) if data.n_edges else np.zeros(0, dtype=np.int64)
            dst = np.bincount(data.edges[:, 1]) if data.n_edges else np.zeros(0, dtype=np.int64)
            true = np.concatenate([sorted_degrees(src, n), sorted_degrees(dst, n)])
        else:
            deg = np.bincount(data.edges.ravel()) if data.n_edges else np.zeros(0, dtype=np.int64)
            true = sorted_degrees(deg, n)
        report(progress, f"dpdegree: measuring the sorted degree sequence ({true.size} values)", 0.1)
        if rb is not None:
            noisy, scale, spent = gaussian_measure(true, L2_SENSITIVITY, rb.rho_structure)
        else:
            assert eb is not None
            noisy, scale, spent = laplace_measure(true, L1_SENSITIVITY, eb.eps_structure)
        del true

        # post-processing: constrained inference, integrality, the degree sum
        if directed:
            out_seq = consistent_sequence(noisy[:n], n)
            in_seq = consistent_sequence(noisy[n:], n)
            so, si = int(out_seq.sum()), int(in_seq.sum())
            if so > si:
                out_seq = lower_sum(out_seq, so - si)
            elif si > so:
                in_seq = lower_sum(in_seq, si - so)
            seqs: tuple[np.ndarray, ...] = (out_seq, in_seq)
        else:
            seq = consistent_sequence(noisy, n)
            if int(seq.sum()) % 2:
                seq = lower_sum(seq, 1)
            seqs = (seq,)
        del noisy

        attrs: NodeAttributeModel | None = None
        if schema.columns:
            report(progress, "dpdegree: node attributes through MST", 0.3)
            rho_attr = rb.rho_attributes if rb is not None else eb.rho_attributes  # type: ignore[union-attr]
            attrs = fit_node_attributes(data, schema, rho_attr, degree_class_lows(n), spend=spend)

        card = self._card(spec, spend, schema, n, rb, eb, scale, spent, attrs, seqs)
        report(progress, "dpdegree: done", 1.0)
        return DPDegreeModel(card=card, spec=spec, n_nodes=n, labels=public_labels(data, schema), sequences=seqs,
                             model=self.model, attributes=attrs)

    def _card(self, spec: GraphSpec, spend: PrivacySpend, schema: Schema, n: int, rb: Any, eb: Any, scale: float,
              spent: float, attrs: NodeAttributeModel | None, seqs: tuple[np.ndarray, ...]) -> GeneratorCard:
        gaussian = rb is not None
        seq_what = ("out- and in-degree sequences, each sorted non-increasing" if spec.directed
                    else "degree sequence sorted non-increasing")
        parts: list[str] = []
        if not spec.public_nodes:
            parts.append(
                "node count (distinct edge endpoints, sensitivity 2): "
                + (f"discrete Gaussian, rho {rb.rho_nodes:.6g}" if gaussian else f"discrete Laplace, epsilon "
                   f"{eb.eps_nodes:.6g}")
            )
        parts.append(
            f"{seq_what}, padded with zeros to length {n}: L1 sensitivity 2, L2 sensitivity sqrt(2) (one edge "
            f"raises two entries by 1); "
            + (f"discrete Gaussian sigma {scale:.6g}, rho {spent:.6g} (OpenDP's map)" if gaussian else
               f"discrete Laplace scale {scale:.6g}, epsilon {spent:.6g} (OpenDP's map)")
        )
        if attrs is not None:
            parts.append(
                f"node attributes: MST on one row per node (attributes and degree class) with rho "
                f"{attrs.rho_mst:.6g} = {attrs.rho:.6g} / 16: one edge changes the degree class of two nodes, two "
                f"substituted rows = 4 add/remove steps, zCDP group privacy 4^2"
            )
        if gaussian:
            total_rho = rb.rho_nodes + spent + (attrs.rho if attrs is not None else 0.0)
            accounting = (f"zero-concentrated DP: rho {rb.total:.6g} from OpenDP's conversion of (epsilon "
                          f"{spend.epsilon}, delta {spend.delta}); parts composed by adding rho (sum "
                          f"{total_rho:.6g}): " + "; ".join(parts) + ". Noise from OpenDP (OS entropy).")
            card_spend = PrivacySpend(epsilon=spend.epsilon, delta=spend.delta, rho=rb.total)
        else:
            eps_used = eb.eps_nodes + spent + eb.eps_attributes
            accounting = ("pure epsilon-DP parts (discrete Laplace) and, with node attributes, MST's zCDP part "
                          "converted to (epsilon_attributes, delta) by OpenDP; composed by basic composition "
                          f"(epsilon {eps_used:.6g}, delta {eb.delta:g}): " + "; ".join(parts)
                          + ". Noise from OpenDP (OS entropy).")
            card_spend = PrivacySpend(epsilon=min(float(spend.epsilon), eps_used), delta=eb.delta)
        unit = spec.privacy_unit()
        if attrs is not None:
            unit = f"{unit}, or one node's attribute values"
        params: dict[str, Any] = {
            "model": self.model,
            "noise": self.noise,
            "node_count": n,
            "node_count_source": "schema" if spec.public_nodes else "DP estimate",
            "l1_sensitivity": L1_SENSITIVITY,
            "l2_sensitivity": L2_SENSITIVITY,
            "noise_scale": scale,
            "spent_structure": spent,
            "shares": {"nodes": self.node_share if not spec.public_nodes else 0.0,
                       "attributes": self.attribute_share if attrs is not None else 0.0},
            "edges_expected": int(seqs[0].sum()) if spec.directed else int(seqs[0].sum()) // 2,
        }
        if gaussian:
            params.update(rho=rb.total, rho_parts={"nodes": rb.rho_nodes, "structure": rb.rho_structure,
                                                   "attributes": rb.rho_attributes})
        else:
            params.update(epsilon_parts={"nodes": eb.eps_nodes, "structure": eb.eps_structure,
                                         "attributes": eb.eps_attributes})
        if attrs is not None:
            params["attributes"] = attrs.describe()
        domain_sources = {
            "node count": "schema (public node set)" if spec.public_nodes
            else "DP measurement (distinct edge endpoints, noisy)",
            "sequence length": "the node count (public or its DP estimate)",
            "degree bounds [0, N-1]": "the node count",
            "degree sequence": "DP measurement (noisy sorted sequence, isotonic post-processing)",
            "sensitivities and noise scales": "the unit of privacy and the options (noise, shares)",
        }
        if attrs is not None:
            domain_sources["node attribute domains"] = "schema (columns)"
            domain_sources["degree classes"] = "public: log-spaced from the node count (0, 1, 2-3, 4-7, ...)"
            domain_sources["node attributes"] = "DP measurement (MST)"
        notes = (
            "noise comes from OpenDP's samplers (OS entropy) during fit; the seed only drives sampling",
            "the sorted sequence does not say which node had which degree: degrees go to a random "
            "permutation of the node ids at sampling" + (" (out- and in-degree comonotone)" if spec.directed else ""),
            f"graph construction: {self.model} (self-loops and multi-edges never emitted)",
        )
        return GeneratorCard(
            name=self.name, parameters=params, library_versions=library_versions(), spend=card_spend,
            accounting=accounting, unit_of_privacy=unit, domain_sources=domain_sources, notes=notes,
        )


    # -- node-level DP ---------------------------------------------------------------------------

    def _fit_node_unit(self, data: GraphData, schema: Schema, spend: PrivacySpend,
                       progress: Progress | None) -> "DPDegreeModel":
        """Node-level DP: the noisy degree histogram over 0..D (see the module docstring)."""
        spec = schema.gspec
        bound = spec.max_degree
        assert bound is not None  # check_schema
        gaussian = self.noise == "gaussian"
        report(progress, "dpdegree: planning the budget (unit: node)", 0.0)
        if gaussian:
            rb: GraphBudget | None = GraphBudget(rho_nodes=0.0, rho_attributes=0.0, rho_structure=graph_rho(spend))
            eb: GraphEpsilonBudget | None = None
        else:
            rb = None
            eb = GraphEpsilonBudget(eps_nodes=0.0, eps_attributes=0.0, eps_structure=float(spend.epsilon),
                                    delta=0.0, rho_attributes=0.0)
        l1, l2 = node_sensitivities(bound)
        true = degree_histogram(data, bound)
        report(progress, f"dpdegree: measuring the degree histogram ({true.size} bins)", 0.1)
        if rb is not None:
            noisy, scale, spent = gaussian_measure(true, l2, rb.rho_structure)
        else:
            assert eb is not None
            noisy, scale, spent = laplace_measure(true, l1, eb.eps_structure)
        del true
        counts = histogram_counts(noisy)
        del noisy
        n = int(counts.sum())
        seq = np.repeat(np.arange(bound + 1, dtype=np.int64), counts)[::-1]
        seq = np.clip(seq, 0, n - 1)
        if int(seq.sum()) % 2:
            seq = lower_sum(seq, 1)
        card = self._node_card(spec, spend, n, rb, eb, scale, spent, l1, l2, seq)
        report(progress, "dpdegree: done", 1.0)
        return DPDegreeModel(card=card, spec=spec, n_nodes=n, labels=None, sequences=(seq,), model=self.model,
                             attributes=None)

    def _node_card(self, spec: GraphSpec, spend: PrivacySpend, n: int, rb: "GraphBudget | None",
                   eb: "GraphEpsilonBudget | None", scale: float, spent: float, l1: int, l2: float,
                   seq: np.ndarray) -> GeneratorCard:
        bound = spec.max_degree
        what = (f"degree histogram over bins 0..{bound} (every node has degree at most {bound}, the schema's "
                f"max_degree): L1 sensitivity {l1} = 2D+1, L2 sensitivity sqrt({l2 * l2:.0f}) = "
                f"sqrt(2D^2+2D+1) (removing one node takes it out of its bin and moves each of its at most D "
                f"neighbours down one bin); ")
        if rb is not None:
            accounting = (f"zero-concentrated DP: rho {rb.total:.6g} from OpenDP's conversion of (epsilon "
                          f"{spend.epsilon}, delta {spend.delta}), all on one measurement: " + what
                          + f"discrete Gaussian sigma {scale:.6g}, rho {spent:.6g} (OpenDP's map). The node count "
                          "is the sum of the noisy histogram (post-processing). Noise from OpenDP (OS entropy).")
            card_spend = PrivacySpend(epsilon=spend.epsilon, delta=spend.delta, rho=rb.total)
        else:
            assert eb is not None
            accounting = ("pure epsilon-DP, one measurement: " + what
                          + f"discrete Laplace scale {scale:.6g}, epsilon {spent:.6g} (OpenDP's map). The node "
                          "count is the sum of the noisy histogram (post-processing). Noise from OpenDP (OS "
                          "entropy).")
            card_spend = PrivacySpend(epsilon=min(float(spend.epsilon), spent), delta=0.0)
        params: dict[str, Any] = {
            "model": self.model,
            "noise": self.noise,
            "unit": "node",
            "measurement": "degree histogram",
            "degree_bound": bound,
            "histogram_bins": int(bound) + 1 if bound is not None else None,
            "node_count": n,
            "node_count_source": "DP estimate (sum of the noisy degree histogram)",
            "l1_sensitivity": l1,
            "l2_sensitivity": l2,
            "noise_scale": scale,
            "spent_structure": spent,
            "edges_expected": int(seq.sum()) // 2,
        }
        if rb is not None:
            params.update(rho=rb.total, rho_parts={"structure": rb.rho_structure})
        else:
            params.update(epsilon_parts={"structure": eb.eps_structure if eb is not None else 0.0})
        domain_sources = {
            "degree bound D": "schema (max_degree; a graph with a node above it is refused at registration)",
            "histogram bins 0..D": "schema (max_degree)",
            "degree histogram": "DP measurement (noisy histogram, projected onto non-negative histograms)",
            "node count": "the sum of the noisy degree histogram (post-processing)",
            "node ids": "fresh ids 0..n-1 (the real node set is protected)",
            "sensitivities and noise scales": "the unit of privacy, max_degree and the options (noise)",
        }
        notes = (
            "noise comes from OpenDP's samplers (OS entropy) during fit; the seed only drives sampling",
            "node-level DP: the histogram does not say which node had which degree; the synthetic graph has "
            "fresh node ids",
            f"graph construction: {self.model} (self-loops and multi-edges never emitted)",
        )
        return GeneratorCard(
            name=self.name, parameters=params, library_versions=library_versions(), spend=card_spend,
            accounting=accounting, unit_of_privacy=spec.privacy_unit(), domain_sources=domain_sources, notes=notes,
        )


def node_sensitivities(bound: int) -> tuple[int, float]:
    """L1 and L2 sensitivity of the degree histogram over ``0..bound`` under one node added/removed."""
    d = int(bound)
    return 2 * d + 1, math.sqrt(2 * d * d + 2 * d + 1)


def degree_histogram(data: GraphData, bound: int) -> np.ndarray:
    """The number of nodes of each degree ``0..bound`` (every node, isolated ones included). Sensitive.

    A degree above ``bound`` is outside the unit-node domain (``conform_graph`` refuses such a graph at
    registration and induced subgraphs only lower degrees): refused here too rather than measured
    with a sensitivity that does not hold.
    """
    deg = data.degrees()
    if deg.size and int(deg.max()) > int(bound):
        raise InputError("dpdegree: the graph has a node above the schema's max_degree (outside the unit-node "
                         "domain; such a graph is refused at registration)")
    return np.bincount(deg, minlength=int(bound) + 1).astype(np.int64)


def histogram_counts(noisy: np.ndarray) -> np.ndarray:
    """Non-negative integer counts from a noisy histogram: the total ``max(2, round(sum))``, the least
    squares projection onto non-negative vectors with that total, rounded by largest remainders."""
    y = np.asarray(noisy, dtype=np.float64)
    total = max(2, int(round(float(y.sum()))))
    # projection onto {h >= 0, sum h = total}: h = max(y - tau, 0) for the tau that gives the total
    u = np.sort(y)[::-1]
    css = np.cumsum(u) - total
    k = np.arange(1, u.size + 1)
    rho = int(np.flatnonzero(u - css / k > 0)[-1])
    tau = css[rho] / (rho + 1)
    h = np.maximum(y - tau, 0.0)
    base = np.floor(h).astype(np.int64)
    short = total - int(base.sum())
    if short > 0:
        frac = h - base
        base[np.argsort(-frac, kind="stable")[:short]] += 1
    return base


class DPDegreeModel:
    """A fitted dpdegree model: the post-processed degree sequence(s) and the public node ids.

    Holds numpy arrays, small values and (with node attributes) MST's model; pickles with ``pickle``.
    """

    def __init__(self, *, card: GeneratorCard, spec: GraphSpec, n_nodes: int, labels: tuple[str, ...] | None,
                 sequences: tuple[np.ndarray, ...], model: str, attributes: NodeAttributeModel | None) -> None:
        self.card = card
        self.spec = spec
        self.n_nodes = n_nodes
        self.labels = labels
        self.sequences = sequences
        self.model = model
        self.attributes = attributes

    @property
    def estimated_rows(self) -> int:
        """The node count: public, or the DP estimate."""
        return self.n_nodes

    def sample(self, n: int, seed: int) -> GraphData:
        """One synthetic graph over ``n`` nodes; the same seed gives the same graph."""
        n = check_sample_n(n, self.n_nodes if self.labels is not None else None, "dpdegree")
        rng = np.random.default_rng(check_seed(seed))
        directed = self.spec.directed
        if n == self.n_nodes:
            seqs = self.sequences
        else:  # a bought node set and another size: degrees drawn from the noisy sequence
            idx = rng.integers(0, self.n_nodes, size=n)
            seqs = tuple(np.clip(s[idx], 0, n - 1) for s in self.sequences)
        perm = rng.permutation(n)
        degs = []
        for s in seqs:
            d = np.zeros(n, dtype=np.int64)
            d[perm] = s
            degs.append(d)
        if self.model == "chung-lu":
            m = int(degs[0].sum()) if directed else int(degs[0].sum()) // 2
            edges = chung_lu(degs[0], degs[1] if directed else None, m, directed, rng)
        else:
            d0 = degs[0]
            if not directed and int(d0.sum()) % 2:
                d0 = d0.copy()
                d0[int(np.argmax(d0))] -= 1
            edges = configuration_model(d0, degs[1] if directed else None, directed, rng)
        labels = self.labels if self.labels is not None else tuple(str(i) for i in range(n))
        nodes: pl.DataFrame | None = None
        if self.attributes is not None:
            realised = (np.bincount(edges.ravel(), minlength=n) if edges.size else np.zeros(n, dtype=np.int64))
            nodes = self.attributes.sample(realised, int(rng.integers(0, 2**62)))
        return GraphData(n_nodes=n, edges=edges, spec=self.spec, labels=labels, nodes=nodes)
