"""Graph generators dpdegree and dpdk2, and their shared pieces (privacy.generators.graph.common)."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

from privacy.errors import InputError
from privacy.generators.graph import common, dpdegree, dpdk2
from privacy.generators.graph.common import chung_lu, project_degree_cap
from privacy.generators.graph.dpdegree import DPDegreeGenerator, isotonic_nonincreasing, sorted_degrees
from privacy.generators.graph.dpdk2 import (
    Classes,
    DPDK2Generator,
    class_highs,
    class_jdd,
    class_stubs,
    construct_2k,
    degree_classes,
    fit_jdd,
    jdd,
    sorted_capped_degrees,
    uniform_sensitivity,
    upper_cells,
)
from privacy.graphs import GraphData, canonical_edges, read_graph
from privacy.schema import Schema
from privacy.spend import PrivacySpend

DATA = Path(__file__).resolve().parents[1] / "data" / "graph"
SPEND = PrivacySpend(epsilon=2.0, delta=1e-6)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic)


@pytest.fixture(scope="module")
def karate() -> tuple[GraphData, Schema]:
    schema = Schema.from_dict({"kind": "graph", "graph": {"edges": {"format": "csv"}, "ignore": ["weight"],
                                                          "directed": False, "max_degree": 12},
                               "columns": {"club": {"type": "categorical", "categories": ["Mr. Hi", "Officer"]}}})
    g = read_graph(DATA / "karate_club_edges.csv", DATA / "karate_club_nodes.csv", schema)[0]
    return g, schema


@pytest.fixture(scope="module")
def karate_plain() -> tuple[GraphData, Schema]:
    schema = Schema.from_dict({"kind": "graph", "graph": {"edges": {"format": "csv"}, "ignore": ["weight"],
                                                          "directed": False, "node_count": 34, "max_degree": 12}})
    return read_graph(DATA / "karate_club_edges.csv", None, schema)[0], schema


@pytest.fixture(scope="module")
def lesmis() -> tuple[GraphData, Schema]:
    schema = Schema.from_dict({"kind": "graph", "graph": {"edges": {"format": "csv"}, "ignore": ["weight"],
                                                          "id_type": "string", "directed": False,
                                                          "max_degree": 20}})
    return read_graph(DATA / "les_miserables_edges.csv", DATA / "les_miserables_nodes.csv", schema)[0], schema


def _email(**graph: Any) -> tuple[GraphData, Schema]:
    block = {"directed": False, "self_loops": "drop", "duplicates": "merge", **graph}
    if block.get("nodes") != "bought":
        block.setdefault("node_count", 1005)
    schema = Schema.from_dict({"kind": "graph", "graph": block})
    return read_graph(DATA / "email-Eu-core.txt", None, schema)[0], schema


@pytest.fixture(scope="module")
def email() -> tuple[GraphData, Schema]:
    return _email(max_degree=345)


def _neighbours(g: GraphData, rng: np.random.Generator, n_add: int) -> list[np.ndarray]:
    """Every one-edge removal and ``n_add`` random one-edge additions (canonical edge arrays)."""
    out = [np.delete(g.edges, i, axis=0) for i in range(g.n_edges)]
    have = {tuple(e) for e in g.edges.tolist()}
    while len(out) < g.n_edges + n_add:
        u, v = (int(x) for x in rng.integers(0, g.n_nodes, size=2))
        if not g.directed:
            u, v = min(u, v), max(u, v)
        if u != v and (u, v) not in have:
            have.add((u, v))
            out.append(canonical_edges(np.vstack([g.edges, [[u, v]]]), g.directed))
    return out


def _edge_set(e: np.ndarray) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in e.tolist()}


# -- common ---------------------------------------------------------------------------------------


def test_budget_split_takes_shares_only_where_needed(karate: Any, email: Any) -> None:
    _, ks = karate
    b = common.plan_graph_budget(SPEND, ks)
    rho = common.graph_rho(SPEND)
    assert b.rho_nodes == 0 and math.isclose(b.rho_attributes, 0.2 * rho) and math.isclose(b.total, rho)
    b2 = common.plan_graph_budget(SPEND, email[1])
    assert b2.rho_attributes == 0 and math.isclose(b2.rho_structure, rho)
    bought = _email(nodes="bought")[1]
    b3 = common.plan_graph_budget(SPEND, bought)
    assert math.isclose(b3.rho_nodes, 0.05 * rho)
    e = common.plan_graph_epsilon(PrivacySpend(epsilon=1.0), email[1])
    assert e.delta == 0 and e.eps_structure == 1.0
    with pytest.raises(InputError, match="delta"):
        common.graph_rho(PrivacySpend(epsilon=1.0))
    with pytest.raises(InputError, match="delta"):
        common.plan_graph_epsilon(PrivacySpend(epsilon=1.0), ks)


def test_buy_node_count_is_near_and_at_least_two(email: Any) -> None:
    g, _ = email
    true = common.endpoint_count(g)
    assert abs(common.buy_node_count(g, 10.0) - true) <= 5
    assert abs(common.buy_node_count_laplace(g, 10.0) - true) <= 5
    tiny = g.with_edges(g.edges[:1])
    assert common.buy_node_count_laplace(tiny, 1e-3) >= 2


def test_chung_lu_canonical_close_and_fast() -> None:
    rng = np.random.default_rng(0)
    w = rng.pareto(2.0, size=10_000) + 1
    t = time.perf_counter()
    e = chung_lu(w, None, 100_000, False, rng)
    assert time.perf_counter() - t < 5
    assert np.array_equal(e, canonical_edges(e, False))
    assert 99_000 <= e.shape[0] <= 100_000
    d = chung_lu(w, w[::-1], 50_000, True, rng)
    assert np.array_equal(d, canonical_edges(d, True)) and d.shape[0] == 50_000
    assert chung_lu(np.zeros(5), None, 3, False, rng).shape == (0, 2)
    assert chung_lu(np.ones(4), None, 100, False, rng).shape[0] == 6  # every possible edge, no more


@pytest.mark.parametrize("cap", [2, 4, 7])
def test_projection_changes_at_most_three_edges(karate_plain: Any, lesmis: Any, cap: int) -> None:
    rng = np.random.default_rng(cap)
    for g, _ in (karate_plain, lesmis):
        p0, _ = project_degree_cap(g, cap)
        assert p0.degrees().max() <= cap
        base = _edge_set(p0.edges)
        for e in _neighbours(g, rng, 300):
            p1 = _edge_set(project_degree_cap(g.with_edges(e), cap)[0].edges)
            assert len(base ^ p1) <= 3
            # the only edge that can enter is the changed one
            grown, shrunk = (p1, base) if len(e) > g.n_edges else (base, p1)
            assert len(grown - shrunk) <= 1


def test_projection_order_is_public() -> None:
    labels = tuple(str(i) for i in range(1000))
    k = common.label_rank(labels)
    assert np.unique(k).size == 1000 and np.array_equal(k, common.label_rank(labels))


def test_projection_with_a_bought_node_set_changes_at_most_three_edges() -> None:
    # with a bought node set an edge to a new node shifts every later node's index: the rank must
    # follow the ids, not the indices (a review found 68 changed edges with index ranks)
    from privacy.graphs import conform_graph

    schema = Schema.from_dict({"kind": "graph", "graph": {"nodes": "bought", "id_type": "string"}})
    lines = (DATA / "les_miserables_edges.csv").read_text().splitlines()[1:]
    pairs = [ln.split(",")[:2] for ln in lines]
    text = "\n".join(f"{a} {b}" for a, b in pairs) + "\n"

    def projected(t: str, cap: int) -> set[tuple[str, str]]:
        g = conform_graph(t.encode(), None, schema)[0]
        p, _ = project_degree_cap(g, cap)
        return {tuple(sorted((g.labels[u], g.labels[v]))) for u, v in p.edges.tolist()}  # type: ignore[misc]

    names = sorted({x for p in pairs for x in p})
    for cap in (3, 6):
        base = projected(text, cap)
        for a in names[::3]:
            for new in ("Aaaa", "Mmmm", "Zzzz"):  # new nodes sorting before, among and after the others
                changed = projected(text + f"{a} {new}\n", cap) ^ base
                assert len(changed) <= 3, (cap, a, new, len(changed))


# -- sensitivities by enumeration ---------------------------------------------------------------------


def test_sorted_degree_sequence_sensitivity(karate_plain: Any, lesmis: Any) -> None:
    rng = np.random.default_rng(1)
    for g, _ in (karate_plain, lesmis):
        s0 = sorted_degrees(g.degrees(), g.n_nodes)
        for e in _neighbours(g, rng, 200):
            s1 = sorted_degrees(g.with_edges(e).degrees(), g.n_nodes)
            d = np.abs(s1 - s0)
            assert d.sum() == 2 and math.isclose(float(np.sqrt((d ** 2).sum())), dpdegree.L2_SENSITIVITY)
        # cut to a shorter (bought) length: never more
        s0c = sorted_degrees(g.degrees(), 10)
        for e in _neighbours(g, rng, 50)[:50]:
            assert np.abs(sorted_degrees(g.with_edges(e).degrees(), 10) - s0c).sum() <= 2


def test_directed_sorted_sequences_sensitivity() -> None:
    schema = Schema.from_dict({"kind": "graph", "graph": {"edges": {"format": "csv"}, "ignore": ["weight"],
                                                          "directed": True, "node_count": 34}})
    g = read_graph(DATA / "karate_club_edges.csv", None, schema)[0]

    def seq(h: GraphData) -> np.ndarray:
        return np.concatenate([sorted_degrees(h.out_degrees(), 34), sorted_degrees(h.in_degrees(), 34)])

    s0 = seq(g)
    for e in _neighbours(g, np.random.default_rng(2), 200):
        assert np.abs(seq(g.with_edges(e)) - s0).sum() == 2


@pytest.mark.parametrize("cap,bins", [(3, "exact"), (6, "exact"), (12, "exact"), (20, "log"), (40, "log")])
def test_jdd_sensitivity_through_projection(karate_plain: Any, lesmis: Any, cap: int, bins: str) -> None:
    rng = np.random.default_rng(cap)
    worst_l1, worst_w = 0, 0.0
    for g, _ in (karate_plain, lesmis):
        c = min(cap, g.n_nodes - 1)
        lows = degree_classes(c, bins)
        highs = class_highs(lows, c)
        rows, cols = np.triu_indices(lows.size)
        w = np.maximum(highs[rows], highs[cols]).astype(np.float64)
        j0 = jdd(project_degree_cap(g, c)[0], lows)
        for e in _neighbours(g, rng, 400):
            d = np.abs(jdd(project_degree_cap(g.with_edges(e), c)[0], lows) - j0)
            l1 = int(d.sum())
            weighted = float((d[rows, cols] / w).sum())
            assert l1 <= uniform_sensitivity(c)
            assert weighted <= dpdk2.WEIGHTED_BOUND + 1e-9
            worst_l1, worst_w = max(worst_l1, l1), max(worst_w, weighted)
    assert worst_l1 > 0 and worst_w > 1  # the enumeration did exercise moves


@pytest.mark.parametrize("cap,e", [(3, 1), (6, 2), (12, 2), (20, 2), (40, 2), (12, 4), (40, 4)])
def test_soft_jdd_sensitivity_through_projection(karate_plain: Any, lesmis: Any, cap: int, e: int) -> None:
    rng = np.random.default_rng(cap + e)
    worst = 0.0
    for g, _ in (karate_plain, lesmis):
        c = min(cap, g.n_nodes - 1)
        classes = Classes.make(c, "soft", e)
        bound = classes.sensitivity()  # exact integer parts of 1 / Q^2
        assert bound <= (8 * e + 3) * classes.unit * 1.01
        j0 = class_jdd(project_degree_cap(g, c)[0], classes)
        assert j0.dtype == np.int64
        # every edge spreads a mass of 1; the class stubs are sum d phi(d)
        assert int(j0.sum()) == project_degree_cap(g, c)[0].n_edges * classes.unit
        stubs, _ = class_stubs(project_degree_cap(g, c)[0].degrees(), classes)
        assert np.allclose((j0.sum(axis=0) + j0.sum(axis=1)) / classes.unit, stubs)
        for ed in _neighbours(g, rng, 400):
            l1 = int(np.abs(class_jdd(project_degree_cap(g.with_edges(ed), c)[0], classes) - j0).sum())
            assert l1 <= bound
            worst = max(worst, l1 / classes.unit)
    assert worst > 3  # the enumeration did exercise moves


def test_soft_classes_cover_the_degrees() -> None:
    for cap, e in ((1, 2), (2, 2), (50, 2), (345, 2), (345, 4)):
        classes = Classes.make(cap, "soft", e)
        d = np.arange(0, cap + 1)
        lo, fr = classes.member(d)
        assert lo[0] == -1 and (lo[1:] >= 0).all() and (lo[1:] + 1 < classes.k).all()
        assert ((fr >= 0) & (fr < 1)).all()
        if cap >= e:
            assert (lo[1:e + 1] == np.arange(e)).all() and (fr[1:e + 1] == 0).all()  # 1..E exact
    assert Classes.make(128, "soft", 2).k <= 12  # coarse: about E classes per e-fold


def test_capped_degree_sequence_sensitivity(karate_plain: Any, lesmis: Any) -> None:
    rng = np.random.default_rng(3)
    for g, _ in (karate_plain, lesmis):
        for cap, length in ((4, g.n_nodes), (12, g.n_nodes), (6, 10)):
            s0 = sorted_capped_degrees(g, length, cap)
            assert s0.size == length and s0.max() <= cap
            for ed in _neighbours(g, rng, 100):
                assert np.abs(sorted_capped_degrees(g.with_edges(ed), length, cap) - s0).sum() <= dpdk2.DEGREE_SENSITIVITY


def test_fit_jdd_meets_the_stubs_and_bounds() -> None:
    rng = np.random.default_rng(0)
    k = 8
    rows, cols = upper_cells(k)
    stubs = rng.integers(10, 1000, k).astype(np.float64)
    capacity = np.full(rows.size, 1e9)
    target = rng.normal(100, 300, rows.size)  # noisy: negative cells too
    x = fit_jdd(target, rng.uniform(1, 50, rows.size), stubs, capacity, rows, cols)
    got = np.bincount(rows, x, minlength=k) + np.bincount(cols, x, minlength=k)
    assert x.min() >= 0 and np.allclose(got, stubs, atol=0.5)
    capacity = np.full(rows.size, 5.0)
    x = fit_jdd(target, np.ones(rows.size), np.full(k, 20.0), capacity, rows, cols)
    assert x.max() <= 5.0 + 1e-9 and x.min() >= 0


def test_construct_2k_fills_the_edges() -> None:
    rng = np.random.default_rng(1)
    classes = Classes.make(40, "soft", 2)
    degree = np.sort(np.clip(rng.zipf(2.2, 2000), 0, 40))[::-1]
    if degree.sum() % 2:
        degree[0] -= 1
    stubs, nodes = class_stubs(degree, classes)
    rows, cols = upper_cells(classes.k)
    est = fit_jdd(dpdk2.independence_jdd(stubs, rows, cols), np.ones(rows.size), stubs,
                  dpdk2.cell_capacity(nodes, rows, cols), rows, cols)
    j = dpdk2.integer_jdd(est, rows, cols, classes.k)
    e = construct_2k(j, degree, 2500, classes, np.random.default_rng(2))
    assert np.array_equal(e, canonical_edges(e, False)) and e.max() < 2500
    assert e.shape[0] >= 0.97 * degree.sum() / 2
    out_deg = np.bincount(e.ravel(), minlength=2500)
    assert _ks(np.concatenate([degree, np.zeros(500, np.int64)]), out_deg) < 0.03


# -- the isotonic step --------------------------------------------------------------------------------


def test_isotonic_nonincreasing() -> None:
    y = np.array([5.0, 6.0, 3.0, 4.0, 1.0])
    fit = isotonic_nonincreasing(y)
    assert np.all(np.diff(fit) <= 1e-12)
    assert np.allclose(fit, [5.5, 5.5, 3.5, 3.5, 1.0])
    seq = dpdegree.consistent_sequence(np.array([40.0, -3.0, 2.5, 7.0, -9.0]), 5)
    assert seq.dtype == np.int64 and seq.max() <= 4 and seq.min() >= 0 and np.all(np.diff(seq) <= 0)
    assert dpdegree.lower_sum(np.array([3, 3, 1]), 3).tolist() == [2, 2, 0]


# -- the generators -----------------------------------------------------------------------------------

GENERATORS = [
    ("dpdegree", lambda: DPDegreeGenerator()),
    ("dpdegree-laplace-config", lambda: DPDegreeGenerator(noise="laplace", model="configuration")),
    ("dpdk2", lambda: DPDK2Generator()),
    ("dpdk2-uniform-exact", lambda: DPDK2Generator(weights="uniform", bins="exact")),
    ("dpdk2-weighted-log", lambda: DPDK2Generator(bins="log", threshold=2.0)),
]


@pytest.mark.parametrize("name,make", GENERATORS, ids=[g[0] for g in GENERATORS])
def test_card_output_and_determinism(lesmis: Any, name: str, make: Any) -> None:
    g, schema = lesmis
    fitted = make().fit(g, schema, SPEND)
    card = fitted.card
    assert card.spend.epsilon <= SPEND.epsilon * (1 + 1e-9) and card.spend.delta <= SPEND.delta
    assert "edge" in card.unit_of_privacy and "sensitivity" in card.accounting.lower()
    assert "OpenDP" in card.accounting
    assert "node count" in card.domain_sources and "schema" in card.domain_sources["node count"]
    assert fitted.estimated_rows == g.n_nodes
    out = fitted.sample(g.n_nodes, 7)
    assert out.labels == g.labels and out.n_nodes == g.n_nodes
    assert np.array_equal(out.edges, canonical_edges(out.edges, False))
    assert out.edges.size == 0 or (out.edges.min() >= 0 and out.edges.max() < g.n_nodes)
    assert np.array_equal(out.edges, fitted.sample(g.n_nodes, 7).edges)
    clone = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(clone.sample(g.n_nodes, 7).edges, out.edges)
    with pytest.raises(InputError, match=f"the node set is public: n must be {g.n_nodes}"):
        fitted.sample(g.n_nodes + 1, 0)
    with pytest.raises(InputError):
        fitted.sample(g.n_nodes, -1)


def test_fitted_model_keeps_no_edge_list(lesmis: Any) -> None:
    g, schema = lesmis
    for gen in (DPDegreeGenerator(), DPDK2Generator()):
        fitted = gen.fit(g, schema, SPEND)
        for v in vars(fitted).values():
            assert not isinstance(v, GraphData)
            if isinstance(v, np.ndarray):
                assert v.shape != g.edges.shape or not np.array_equal(v, g.edges)


def test_laplace_card_is_pure_epsilon(lesmis: Any) -> None:
    g, schema = lesmis
    for gen in (DPDegreeGenerator(noise="laplace"), DPDK2Generator()):
        card = gen.fit(g, schema, PrivacySpend(epsilon=1.0)).card
        assert card.spend.delta == 0 and card.spend.epsilon <= 1.0


def test_gaussian_card_reports_rho(lesmis: Any) -> None:
    g, schema = lesmis
    card = DPDegreeGenerator().fit(g, schema, SPEND).card
    assert card.spend.rho is not None and math.isclose(card.spend.rho, common.graph_rho(SPEND))
    assert card.parameters["spent_structure"] <= card.spend.rho


def _capture(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[tuple[Any, ...]]:
    """Record what each noise call was given besides the values (sensitivity, budget, length)."""
    calls: list[tuple[Any, ...]] = []
    for fn in ("gaussian_measure", "laplace_measure"):
        real = getattr(module, fn, None)
        if real is None:
            continue

        def spy(values: np.ndarray, sens: Any, budget: float, _real: Any = real, _fn: str = fn) -> Any:
            calls.append((_fn, np.asarray(values).shape, sens, budget))
            return _real(values, sens, budget)

        monkeypatch.setattr(module, fn, spy)
    return calls


@pytest.mark.parametrize("module,make", [(dpdegree, lambda: DPDegreeGenerator()),
                                         (dpdegree, lambda: DPDegreeGenerator(noise="laplace")),
                                         (dpdk2, lambda: DPDK2Generator())])
def test_one_edge_changes_nothing_chosen_before_noise(monkeypatch: pytest.MonkeyPatch, karate_plain: Any,
                                                      module: Any, make: Any) -> None:
    g, schema = karate_plain
    calls = _capture(monkeypatch, module)
    gen = make()
    gen.fit(g, schema, SPEND)
    first = list(calls)
    # a hub gains an edge, and a leaf loses its only one: the most a single edge can do to the degrees
    deg = g.degrees()
    hub, leaf = int(np.argmax(deg)), int(np.argmin(np.where(deg > 0, deg, 99)))
    others = [v for v in range(g.n_nodes) if v != hub and not ((g.edges == [min(v, hub), max(v, hub)]).all(1)).any()]
    for e in (canonical_edges(np.vstack([g.edges, [[hub, others[0]]]]), False),
              g.edges[~((g.edges == leaf).any(axis=1))][: g.n_edges - 1]):
        calls.clear()
        gen.fit(g.with_edges(e), schema, SPEND)
        assert calls == first


def test_large_epsilon_is_close(email: Any) -> None:
    g, schema = email
    real_deg = g.degrees()
    real_assort = nx.degree_assortativity_coefficient(g.to_networkx())
    big = PrivacySpend(epsilon=1e5, delta=1e-6)
    out = DPDegreeGenerator(model="configuration", noise="laplace").fit(g, schema, big).sample(g.n_nodes, 1)
    assert _ks(real_deg, out.degrees()) < 0.06
    assert abs(out.n_edges - g.n_edges) < 0.1 * g.n_edges
    for gen in (DPDK2Generator(threshold=0.0, bins="exact"), DPDK2Generator()):
        out = gen.fit(g, schema, big).sample(g.n_nodes, 1)
        assert _ks(real_deg, out.degrees()) < 0.06
        assert abs(nx.degree_assortativity_coefficient(out.to_networkx()) - real_assort) < 0.05
        assert abs(out.n_edges - g.n_edges) < 0.03 * g.n_edges


@pytest.mark.parametrize("make", [lambda: DPDegreeGenerator(), lambda: DPDegreeGenerator(noise="laplace"),
                                  lambda: DPDK2Generator(), lambda: DPDK2Generator(weights="uniform", bins="log")])
def test_tiny_epsilon_still_valid(karate_plain: Any, make: Any) -> None:
    g, schema = karate_plain
    out = make().fit(g, schema, PrivacySpend(epsilon=0.01, delta=1e-9)).sample(34, 3)
    assert out.n_nodes == 34 and np.array_equal(out.edges, canonical_edges(out.edges, False))
    assert out.edges.size == 0 or out.edges.max() < 34


def test_node_attributes(karate: Any) -> None:
    g, schema = karate
    for gen in (DPDegreeGenerator(), DPDK2Generator()):
        fitted = gen.fit(g, schema, PrivacySpend(epsilon=4.0, delta=1e-6))
        card = fitted.card
        assert "attribute" in card.unit_of_privacy
        assert "/ 16" in card.accounting and card.parameters["attributes"]["group_factor"] == 16
        assert card.spend.epsilon <= 4.0 * (1 + 1e-9)
        out = fitted.sample(34, 5)
        assert out.nodes is not None and out.nodes.columns == ["club"] and out.nodes.height == 34
        assert set(out.nodes.get_column("club").to_list()) <= {"Mr. Hi", "Officer"}
        assert out.labels == g.labels
        assert pickle.loads(pickle.dumps(fitted)).sample(34, 5).nodes.equals(out.nodes)


def test_bought_node_set() -> None:
    g, schema = _email(nodes="bought", max_degree=200)
    for gen in (DPDegreeGenerator(), DPDegreeGenerator(noise="laplace"), DPDK2Generator()):
        fitted = gen.fit(g, schema, PrivacySpend(epsilon=2.0, delta=1e-6))
        n = fitted.estimated_rows
        assert abs(n - common.endpoint_count(g)) < 200
        assert "DP" in fitted.card.domain_sources["node count"]
        assert "estimated" in fitted.card.unit_of_privacy
        out = fitted.sample(n, 1)
        assert out.labels == tuple(str(i) for i in range(n))
        small = fitted.sample(300, 1)
        assert small.n_nodes == 300 and (small.edges.size == 0 or small.edges.max() < 300)


def test_directed_dpdegree_and_dpdk2_refusal() -> None:
    g, schema = _email(directed=True, max_degree=100)
    out = DPDegreeGenerator().fit(g, schema, SPEND).sample(1005, 0)
    assert np.array_equal(out.edges, canonical_edges(out.edges, True))
    assert abs(out.n_edges - g.n_edges) < 0.15 * g.n_edges
    with pytest.raises(InputError, match="directed graphs is not supported yet"):
        DPDK2Generator().fit(g, schema, SPEND)


@pytest.mark.parametrize("make,match", [
    (lambda: DPDegreeGenerator(model="erdos"), "model"),
    (lambda: DPDegreeGenerator(noise="exponential"), "noise"),
    (lambda: DPDegreeGenerator(node_share=1.5), "node_share"),
    (lambda: DPDK2Generator(max_degree=0), "max_degree"),
    (lambda: DPDK2Generator(weights="heavy"), "weights"),
    (lambda: DPDK2Generator(bins="linear"), "bins"),
    (lambda: DPDK2Generator(threshold=-1), "threshold"),
    (lambda: DPDK2Generator(degree_share=1.0), "degree_share"),
])
def test_bad_options(make: Any, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_refusals_at_fit(email: Any) -> None:
    g, _ = email
    no_cap = _email()[1]
    with pytest.raises(InputError, match="degree cap") as info:
        DPDK2Generator().fit(g, no_cap, SPEND)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="delta"):
        DPDegreeGenerator().fit(g, no_cap, PrivacySpend(epsilon=1.0))
    fitted = DPDK2Generator(max_degree=50).fit(g, no_cap, SPEND)  # the option alone is enough
    assert fitted.card.parameters["max_degree_source"] == "option"


def test_email_fit_is_fast(email: Any) -> None:
    g, schema = email
    for gen in (DPDegreeGenerator(), DPDegreeGenerator(noise="laplace"), DPDK2Generator()):
        t = time.perf_counter()
        fitted = gen.fit(g, schema, SPEND)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        fitted.sample(g.n_nodes, 0)
        assert fit_s < 10 and time.perf_counter() - t < 5, (gen.name, fit_s)


# -- node-level DP (unit: node): the degree histogram ---------------------------------------------


def _node_schema(bound: int, path: str = "les_miserables_edges.csv") -> Schema:
    return Schema.from_dict({"kind": "graph", "graph": {
        "unit": "node", "nodes": "bought", "max_degree": bound, "id_type": "string",
        "edges": {"format": "csv", "source": "source", "target": "target"}, "ignore": ["weight"]}})


def _node_graph(path: str, bound: int) -> tuple[GraphData, Schema]:
    schema = _node_schema(bound)
    return read_graph(DATA / path, None, schema)[0], schema


def _hist(g: GraphData, bound: int) -> np.ndarray:
    return dpdegree.degree_histogram(g, bound)


def _without(g: GraphData, w: int, *, file_level: bool) -> GraphData:
    """``g`` less node ``w`` and its edges; ``file_level``: as an edge file would have it, neighbours
    left without any edge disappear too (an edge file cannot hold an isolated node)."""
    from privacy.graphs import induced_subgraph

    keep = np.ones(g.n_nodes, dtype=bool)
    keep[w] = False
    if file_level:
        deg = g.degrees()
        nbrs = np.concatenate([g.edges[g.edges[:, 0] == w, 1], g.edges[g.edges[:, 1] == w, 0]])
        keep[nbrs[deg[nbrs] == 1]] = False
    return induced_subgraph(g, keep)


def _with_node(g: GraphData, nbrs: np.ndarray) -> GraphData:
    """``g`` plus a new node joined to ``nbrs``."""
    w = g.n_nodes
    extra = np.stack([np.asarray(nbrs, dtype=np.int64), np.full(len(nbrs), w, dtype=np.int64)], axis=1)
    return GraphData(n_nodes=w + 1, edges=canonical_edges(np.vstack([g.edges, extra]), False), spec=g.spec,
                     labels=(*g.labels, "__new__"))


def _worst(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[int, int]:
    l1 = max(int(np.abs(a - b).sum()) for a, b in pairs)
    l2sq = max(int(((a - b) ** 2).sum()) for a, b in pairs)
    return l1, l2sq


@pytest.mark.parametrize("path,bound", [("karate_club_edges.csv", 17), ("karate_club_edges.csv", 40),
                                        ("les_miserables_edges.csv", 36), ("les_miserables_edges.csv", 40)])
def test_node_histogram_sensitivity_by_enumeration(path: str, bound: int) -> None:
    from privacy.graphs import induced_subgraph, split_nodes

    g, _ = _node_graph(path, bound)
    l1_bound, l2_bound = dpdegree.node_sensitivities(bound)
    h = _hist(g, bound)
    pairs = []
    # every node removed, keeping its neighbours (graph level) and as an edge file drops them
    for w in range(g.n_nodes):
        for file_level in (False, True):
            pairs.append((h, _hist(_without(g, w, file_level=file_level), bound)))
    # additions: a new node joined to up to D nodes of degree < D (random sets, and sets of one degree,
    # the L2 worst case)
    rng = np.random.default_rng(0)
    deg = g.degrees()
    room = np.flatnonzero(deg < bound)
    for _ in range(400):
        k = int(rng.integers(1, min(bound, room.size) + 1))
        pairs.append((h, _hist(_with_node(g, rng.choice(room, size=k, replace=False)), bound)))
    for d in np.unique(deg[room]):
        same = room[deg[room] == d][:bound]
        pairs.append((h, _hist(_with_node(g, same), bound)))
    # through the node split, coins coupled by node id: a removed node on either side
    for seed in range(3):
        train, _ = split_nodes(g, 0.3, seed)
        coin = {lab: True for lab in train.labels}
        ht = _hist(train, bound)
        for w in range(g.n_nodes):
            smaller = _without(g, w, file_level=True)
            keep = np.array([lab in coin for lab in smaller.labels])
            pairs.append((ht, _hist(induced_subgraph(smaller, keep), bound)))
    l1, l2sq = _worst(pairs)
    assert l1 <= l1_bound and l2sq <= round(l2_bound ** 2)
    # removals alone stay within the bound for the graph's own maximum degree
    top = int(g.degrees().max())
    assert _worst(pairs[: 2 * g.n_nodes])[0] <= 2 * top + 1


@pytest.mark.parametrize("bound", [1, 2, 3, 5, 8])
def test_node_histogram_sensitivity_is_tight_on_a_clique(bound: int) -> None:
    """Removing one node of a clique on D + 1 nodes reaches L1 = 2D + 1 and L2^2 = 2D^2 + 2D + 1."""
    n = bound + 1
    edges = np.array([(u, v) for u in range(n) for v in range(u + 1, n)], dtype=np.int64).reshape(-1, 2)
    g = GraphData(n_nodes=n, edges=edges, spec=_node_schema(bound).gspec, labels=tuple(map(str, range(n))))
    h = _hist(g, bound)
    l1_bound, l2_bound = dpdegree.node_sensitivities(bound)
    worst = _worst([(h, _hist(_without(g, w, file_level=False), bound)) for w in range(n)])
    assert worst == (l1_bound, round(l2_bound ** 2))


def test_node_histogram_refuses_a_degree_above_the_bound() -> None:
    g, _ = _node_graph("karate_club_edges.csv", 17)
    with pytest.raises(InputError, match="above the schema's max_degree"):
        dpdegree.degree_histogram(g, 16)


def test_histogram_counts_post_processing() -> None:
    exact = np.array([0, 3, 5, 2, 0, 1], dtype=np.float64)
    assert dpdegree.histogram_counts(exact).tolist() == [0, 3, 5, 2, 0, 1]
    noisy = np.array([-4.0, 7.4, 2.2, -1.0, 3.3, -0.5])
    counts = dpdegree.histogram_counts(noisy)
    assert counts.dtype == np.int64 and (counts >= 0).all() and int(counts.sum()) == round(noisy.sum())
    assert counts[0] == 0 and counts[1] == counts.max()
    assert int(dpdegree.histogram_counts(np.array([-9.0, -3.0, 1.0])).sum()) == 2


@pytest.mark.parametrize("noise", ["laplace", "gaussian"])
def test_dpdegree_node_unit_card_mechanism_and_output(monkeypatch: pytest.MonkeyPatch, noise: str) -> None:
    bound = 40
    g, schema = _node_graph("les_miserables_edges.csv", bound)
    calls = _capture(monkeypatch, dpdegree)
    spend = PrivacySpend(epsilon=3.0, delta=1e-6)
    model = DPDegreeGenerator(noise=noise).fit(g, schema, spend)
    card = model.card
    assert card.unit_of_privacy == ("one node with all its edges (add/remove one node; every node has degree at "
                                    "most 40)")
    assert card.parameters["l1_sensitivity"] == 2 * bound + 1 == 81
    assert math.isclose(card.parameters["l2_sensitivity"] ** 2, 2 * bound ** 2 + 2 * bound + 1)
    assert card.parameters["unit"] == "node" and card.parameters["degree_bound"] == bound
    assert "max_degree" not in card.parameters  # the statement's edge-level degree-cap sentence does not apply
    # one measurement: the histogram over 0..D, at the node-level sensitivity, with the whole budget
    assert len(calls) == 1
    fn, shape, sens, budget = calls[0]
    assert shape == (bound + 1,)
    if noise == "laplace":
        assert fn == "laplace_measure" and sens == 81 and budget == 3.0
        assert card.spend.delta == 0.0 and card.spend.epsilon <= 3.0
        assert "pure epsilon-DP" in card.accounting and "2D+1" in card.accounting
    else:
        assert fn == "gaussian_measure" and math.isclose(sens, math.sqrt(3281))
        assert math.isclose(budget, common.graph_rho(spend))
        assert card.spend.epsilon <= 3.0 and card.spend.delta <= 1e-6
        assert card.parameters["spent_structure"] <= card.spend.rho
    # nothing before the noise depends on the graph: another graph, the same call
    other, _ = _node_graph("karate_club_edges.csv", bound)
    calls.clear()
    DPDegreeGenerator(noise=noise).fit(other, _node_schema(bound), spend)
    assert calls[0][1:] == (shape, sens, budget)
    # output: fresh ids 0..n-1, n the noisy histogram's sum, a valid canonical graph; seeded sampling
    n = model.estimated_rows
    assert n >= 2 and card.parameters["node_count"] == n
    syn = model.sample(n, 5)
    assert syn.n_nodes == n and syn.labels == tuple(str(i) for i in range(n))
    assert syn.n_edges == 0 or ((syn.edges[:, 0] < syn.edges[:, 1]).all() and syn.edges.max() < n)
    assert np.array_equal(model.sample(n, 5).edges, syn.edges)
    assert model.sample(50, 1).n_nodes == 50
    pickle.loads(pickle.dumps(model))


def test_dpdegree_node_unit_is_close_at_large_epsilon() -> None:
    g, schema = _node_graph("les_miserables_edges.csv", 36)
    model = DPDegreeGenerator(noise="laplace", model="configuration").fit(g, schema, PrivacySpend(epsilon=2000.0))
    assert abs(model.estimated_rows - g.n_nodes) <= 3
    assert abs(int(model.sequences[0].sum()) - 2 * g.n_edges) <= 20
    syn = model.sample(model.estimated_rows, 0)
    assert abs(syn.n_edges - g.n_edges) <= 40


def test_node_unit_refusals_before_any_charge() -> None:
    schema = _node_schema(40)
    with pytest.raises(InputError, match="dpdk2: unit node is not supported yet \\(use dpdegree\\)"):
        DPDK2Generator().check_schema(schema)
    attrs = Schema.from_dict({**schema.to_dict(), "columns": {"c": {"type": "categorical", "categories": ["a"]}}})
    with pytest.raises(InputError, match="dpdegree: node attributes with unit node are not supported yet"):
        DPDegreeGenerator().check_schema(attrs)
    DPDegreeGenerator().check_schema(schema)
