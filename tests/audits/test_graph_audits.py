"""The graph audits on real graphs: email-Eu-core (1,005 nodes, about 16,000 undirected edges) and the
karate club (34 nodes, read as directed), with hand-checked figures on a six-node graph.

Against the real training graph stand a copy of it (the leakiest generator: every attack must catch it),
a configuration model of the whole real graph (right degrees, no individual edge: a generator that
ignores its edges, which every privacy attack must pass) and an Erdos-Renyi graph (fidelity must drop).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import polars as pl
import pytest
from graph_refitters import (
    ErdosRenyiRefitter,
    GraphCopyRefitter,
    IgnoringGraphRefitter,
    configuration_model,
    erdos_renyi,
)

from audits.context import AuditContext, Claim
from audits.graph.fidelity import (
    average_clustering,
    compare_graphs,
    degree_assortativity,
    louvain_modularity,
    path_lengths,
    run_graph_fidelity,
    triangle_count,
)
from audits.graph.game import run_graph_game, run_graph_one_run
from audits.graph.membership import edge_scores, run_graph_membership, undirected_adjacency
from audits.graph.suite import GRAPH_AUDITS, run_graph_audits
from audits.report.figures import degree_ccdf, graph_figures
from audits.result import AuditResult, Metric
from audits.suite import audit_document, gate_passed
from policies import load_policy
from policies.model import MembershipSettings, Policy
from privacy.errors import InputError
from privacy.graphs import GraphData, read_graph, split_edges
from privacy.schema import Schema

DATA = Path(__file__).resolve().parents[1] / "data" / "graph"
CLAIM = Claim(epsilon=1.0, delta=1e-9)


def _ctx(refitter: object | None = None, **kwargs: Any) -> AuditContext:
    """An audit context with a graph refitter (``AuditContext.refitter`` is typed for tables)."""
    return AuditContext(refitter=refitter, **kwargs)


def _metric(result: AuditResult, name: str) -> Metric:
    return next(m for m in result.metrics if m.name == name)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy("default")


@pytest.fixture(scope="module")
def email_schema() -> Schema:
    return Schema.from_dict({"kind": "graph", "graph": {"directed": False, "node_count": 1005,
                                                        "self_loops": "drop", "duplicates": "merge"}})


@pytest.fixture(scope="module")
def email(email_schema: Schema) -> GraphData:
    return read_graph(DATA / "email-Eu-core.txt", None, email_schema)[0]


@pytest.fixture(scope="module")
def email_split(email: GraphData) -> tuple[GraphData, GraphData]:
    return split_edges(email, 0.1, 7)


@pytest.fixture(scope="module")
def karate_schema() -> Schema:
    return Schema.from_dict({"kind": "graph", "graph": {
        "directed": True, "node_count": 34, "edges": {"format": "csv", "source": "source", "target": "target"},
        "ignore": ["weight"]}})


@pytest.fixture(scope="module")
def karate(karate_schema: Schema) -> GraphData:
    return read_graph(DATA / "karate_club_edges.csv", None, karate_schema)[0]


# ------------------------------------------------------------------------------------------------
# privacy attacks: the copy is caught, the generator that ignores its edges passes


@pytest.fixture(scope="module")
def copy_results(email_split: tuple[GraphData, GraphData], email_schema: Schema, policy: Policy) -> list[AuditResult]:
    train, holdout = email_split
    ctx = _ctx(GraphCopyRefitter(), claim=CLAIM)
    return run_graph_audits(train, holdout, train, email_schema, policy, ctx)


@pytest.fixture(scope="module")
def ignoring_results(email: GraphData, email_split: tuple[GraphData, GraphData], email_schema: Schema,
                     policy: Policy) -> list[AuditResult]:
    train, holdout = email_split
    ctx = _ctx(IgnoringGraphRefitter(email), claim=CLAIM)
    return run_graph_audits(train, holdout, configuration_model(email, 3), email_schema, policy, ctx)


def _by_audit(results: list[AuditResult]) -> dict[str, AuditResult]:
    return {r.audit: r for r in results}


def test_suite_order_and_document(copy_results: list[AuditResult]) -> None:
    assert [r.audit for r in copy_results] == ["protocol", *[name for name, _ in GRAPH_AUDITS]]
    doc = audit_document(copy_results, {"kind": "graph"})
    assert doc["gate"]["passed"] is False
    for result in copy_results:
        for metric in result.metrics:
            assert metric.meaning, metric.name
    assert _by_audit(copy_results)["shadow_game"].notes[0].startswith("privacy game not run")


def test_copy_is_caught(copy_results: list[AuditResult]) -> None:
    res = _by_audit(copy_results)
    auc = _metric(res["membership"], "edge_membership_auc")
    assert auc.value > 0.99 and auc.passed is False
    assert _metric(res["membership"], "edge_membership_auc_dp_check").passed is False
    assert _metric(res["membership"], "edge_membership_tpr_at_fpr_1pct").value > 0.99
    one_run = _metric(res["one_run"], "one_run_epsilon_lb")
    assert one_run.kind == "dp_claim" and one_run.value > CLAIM.epsilon and one_run.passed is False
    assert one_run.details["correct"] == one_run.details["guesses"]
    assert not gate_passed(copy_results)
    # the copy is the training graph: fidelity is perfect, and the gate still fails on privacy
    assert _metric(res["fidelity"], "graph_fidelity_score").value == pytest.approx(1.0)


def test_generator_ignoring_edges_passes(ignoring_results: list[AuditResult]) -> None:
    res = _by_audit(ignoring_results)
    auc = _metric(res["membership"], "edge_membership_auc")
    assert auc.passed is True and abs(auc.value - 0.5) < 0.05
    assert _metric(res["membership"], "edge_membership_auc_dp_check").passed is True
    assert _metric(res["one_run"], "one_run_epsilon_lb").passed is True
    # same degree sequence: structure above chance, though no edge is kept
    link = _metric(res["membership"], "edge_link_auc")
    assert link.role == "info" and link.value > 0.6
    assert _metric(res["fidelity"], "degree_ks").value < 0.1


# ------------------------------------------------------------------------------------------------
# fidelity


def test_fidelity_self_and_erdos_renyi(email_split: tuple[GraphData, GraphData], email_schema: Schema,
                                       policy: Policy) -> None:
    train, holdout = email_split
    same = run_graph_fidelity(train, holdout, train, email_schema, policy)
    assert _metric(same, "graph_fidelity_score").value == pytest.approx(1.0)
    assert all(m.value == pytest.approx(0.0) for m in same.metrics if m.name != "graph_fidelity_score")
    er = run_graph_fidelity(train, holdout, erdos_renyi(train, train.n_edges, 1), email_schema, policy)
    score = _metric(er, "graph_fidelity_score")
    assert score.value < 0.6 and score.passed is False
    assert _metric(er, "clustering_rel_error").value > 0.8
    assert _metric(er, "degree_ks").value > 0.3
    assert set(score.details["components"]) == {m.name for m in er.metrics} - {"graph_fidelity_score", "degree_emd"}


@pytest.fixture(scope="module")
def small() -> tuple[GraphData, GraphData, Schema]:
    """Real: a triangle 0-1-2 with a tail 2-3-4 and an isolated node 5. Synthetic: the path 0-1-2-3-4-5."""
    schema = Schema.from_dict({"kind": "graph", "graph": {"directed": False, "node_count": 6}})
    spec = schema.gspec
    labels = tuple(str(i) for i in range(6))
    real = GraphData(n_nodes=6, edges=np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4]], dtype=np.int64),
                     spec=spec, labels=labels)
    syn = GraphData(n_nodes=6, edges=np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], dtype=np.int64),
                    spec=spec, labels=labels)
    return real, syn, schema


def _cdf_gap(a: list[float], b: list[float]) -> float:
    """Largest gap between two empirical CDFs, by hand over every value (inf included)."""
    values = sorted(set(a) | set(b))
    return float(max(abs(Fraction(sum(x <= v for x in a), len(a)) - Fraction(sum(x <= v for x in b), len(b)))
                     for v in values))


def test_fidelity_hand_computed(small: tuple[GraphData, GraphData, Schema]) -> None:
    real, syn, _ = small
    got = {c.name: c for c in compare_graphs(real, syn, seed=0)}
    # degrees: real [2, 2, 3, 2, 1, 0], synthetic [1, 2, 2, 2, 2, 1]: CDFs differ by 1/6 at 0 and at 2
    assert got["degree_ks"].value == pytest.approx(1 / 6)
    assert got["degree_ks"].similarity == pytest.approx(5 / 6)
    # sorted degrees [0,1,2,2,2,3] vs [1,1,2,2,2,2]: EMD 2/6, over the real mean degree 10/6
    assert got["degree_emd"].value == pytest.approx(0.2)
    # clustering: nodes 0 and 1 have 1, node 2 has 1/3, the rest 0 -> 7/18; the path has 0
    assert average_clustering(undirected_adjacency(real)) == pytest.approx(7 / 18)
    assert average_clustering(undirected_adjacency(real)) == pytest.approx(nx.average_clustering(real.to_networkx()))
    assert got["clustering_rel_error"].value == pytest.approx(1.0)
    assert triangle_count(undirected_adjacency(real)) == 1.0
    assert got["triangle_rel_error"].value == pytest.approx(1.0) and got["triangle_rel_error"].similarity == 0.0
    # assortativity as networkx computes it
    r = nx.degree_assortativity_coefficient(real.to_networkx())
    s = nx.degree_assortativity_coefficient(syn.to_networkx())
    assert degree_assortativity(real) == pytest.approx(r)
    assert degree_assortativity(syn) == pytest.approx(s)
    assert got["assortativity_abs_diff"].value == pytest.approx(abs(r - s))
    # path lengths from every node (6 < the 64 sources), unreachable pairs as infinity
    lengths = {}
    for name, g in (("real", real), ("syn", syn)):
        sp_len = dict(nx.all_pairs_shortest_path_length(g.to_networkx()))
        lengths[name] = [float(sp_len[u].get(v, math.inf)) for u in range(6) for v in range(6) if u != v]
        mine = path_lengths(undirected_adjacency(g), np.arange(6))
        assert sorted(mine.tolist()) == sorted(lengths[name])
    assert got["path_length_ks"].value == pytest.approx(_cdf_gap(lengths["real"], lengths["syn"]))
    # modularity sum_c L_c/m - (d_c/2m)^2: the real graph's best partition {0,1,2},{3,4},{5} gives
    # (3/5 - 0.49) + (1/5 - 0.09) = 0.22; on the path Louvain (a heuristic) ends in {0,1},{2,3},{4,5}:
    # 3 x 1/5 - (0.09 + 0.16 + 0.09) = 0.26, or in the optimum {0,1,2},{3,4,5}: 2 x (2/5 - 0.25) = 0.30
    assert louvain_modularity(undirected_adjacency(real), 0) == pytest.approx(0.22)
    q_syn = louvain_modularity(undirected_adjacency(syn), 0)
    assert q_syn == pytest.approx(0.26) or q_syn == pytest.approx(0.30)
    assert got["modularity_rel_error"].value == pytest.approx((q_syn - 0.22) / 0.22)
    # spectrum: the top 4 (= n - 2) adjacency eigenvalues
    l_r = np.linalg.eigvalsh(nx.to_numpy_array(real.to_networkx()))[::-1][:4]
    l_s = np.linalg.eigvalsh(nx.to_numpy_array(syn.to_networkx()))[::-1][:4]
    assert got["spectrum_distance"].value == pytest.approx(np.linalg.norm(l_s - l_r) / np.linalg.norm(l_r))
    # components: 2 (one isolated node) vs 1; largest shares 5/6 vs 1
    assert got["component_count_rel_error"].value == pytest.approx(0.5)
    assert got["largest_component_share_diff"].value == pytest.approx(1 / 6)


def test_fidelity_score_is_mean_of_similarities(small: tuple[GraphData, GraphData, Schema], policy: Policy) -> None:
    real, syn, schema = small
    holdout = real.with_edges(np.array([[4, 5]]))
    res = run_graph_fidelity(real, holdout, syn, schema, policy)
    sims = [m.details["similarity"] for m in res.metrics if m.details.get("similarity") is not None]
    assert len(sims) == 9
    assert _metric(res, "graph_fidelity_score").value == pytest.approx(np.mean(sims), abs=1e-5)
    assert _metric(res, "graph_fidelity_score").threshold == policy.thresholds.graph_fidelity_min


def test_edge_scores_by_hand(small: tuple[GraphData, GraphData, Schema]) -> None:
    real, _, _ = small
    # (0, 1) is an edge with common neighbour 2 (degree 3): 1 + AA/(1+AA), AA = 1/log 3
    # (0, 3) is not an edge, common neighbour 2: AA/(1+AA); (4, 5): nothing
    aa = 1 / math.log(3)
    got = edge_scores(real, np.array([[0, 1], [3, 0], [4, 5]]))
    assert got == pytest.approx([1 + aa / (1 + aa), aa / (1 + aa), 0.0])


# ------------------------------------------------------------------------------------------------
# directed graphs, bought node sets


def test_directed_graph(karate: GraphData, karate_schema: Schema, policy: Policy) -> None:
    train, holdout = split_edges(karate, 0.2, 3)
    # a directed edge is present only in its own direction
    e = train.edges[0]
    assert edge_scores(train, np.array([e]))[0] >= 1
    assert edge_scores(train, np.array([e[::-1]]))[0] < 1
    copy = run_graph_audits(train, holdout, train, karate_schema, policy,
                            _ctx(GraphCopyRefitter(), claim=CLAIM))
    res = _by_audit(copy)
    assert _metric(res["membership"], "edge_membership_auc").value == pytest.approx(1.0)
    fid = res["fidelity"]
    assert "directed" in fid.notes[0]
    assert set(_metric(fid, "degree_ks").details["per_kind"]) == {"in", "out"}
    assert _metric(fid, "graph_fidelity_score").value == pytest.approx(1.0)
    er = run_graph_audits(train, holdout, erdos_renyi(train, train.n_edges, 4), karate_schema, policy,
                          _ctx(ErdosRenyiRefitter(), claim=CLAIM))
    res = _by_audit(er)
    assert _metric(res["one_run"], "one_run_epsilon_lb").value < CLAIM.epsilon
    assert _metric(res["fidelity"], "graph_fidelity_score").value < 0.9
    assert degree_assortativity(train) == pytest.approx(nx.degree_assortativity_coefficient(train.to_networkx()))


def test_bought_node_set(policy: Policy) -> None:
    schema = Schema.from_dict({"kind": "graph", "graph": {
        "directed": False, "nodes": "bought", "id_type": "string",
        "edges": {"format": "csv", "source": "source", "target": "target"}, "ignore": ["weight"]}})
    real = read_graph(DATA / "les_miserables_edges.csv", None, schema)[0]
    train, holdout = split_edges(real, 0.2, 1)
    fresh = configuration_model(real, 2)
    syn = GraphData(n_nodes=real.n_nodes - 3, edges=fresh.edges[(fresh.edges < real.n_nodes - 3).all(axis=1)],
                    spec=schema.gspec, labels=tuple(str(i) for i in range(real.n_nodes - 3)))
    results = _by_audit(run_graph_audits(train, holdout, syn, schema, policy,
                                         _ctx(GraphCopyRefitter(), claim=CLAIM)))
    assert results["membership"].metrics == () and "not run" in results["membership"].notes[0]
    assert results["one_run"].metrics == () and "bought" in results["one_run"].notes[0]
    assert not math.isnan(_metric(results["fidelity"], "graph_fidelity_score").value)


# ------------------------------------------------------------------------------------------------
# the refitting audits in detail


def test_one_run_needs_a_refitter(email_split: tuple[GraphData, GraphData], email_schema: Schema,
                                  policy: Policy) -> None:
    train, holdout = email_split
    res = run_graph_one_run(train, holdout, train, email_schema, policy, AuditContext(claim=CLAIM))
    assert res.metrics == () and "no generator to refit" in res.notes[0]
    # without a claim the bound is reported, not gated
    res = run_graph_one_run(train, holdout, train, email_schema, policy, _ctx(GraphCopyRefitter()))
    assert _metric(res, "one_run_epsilon_lb").role == "info"


GAME = MembershipSettings(domias_candidates=200, bootstrap=100, one_run_canaries=200, one_run_guesses=20,
                          game_targets=12, game_isolated_targets=0, game_train_fits=4, game_test_fits=8,
                          game_reference_rows=20, workers=1, graph_game_targets=40)


@pytest.fixture(scope="module")
def game_policy(policy: Policy) -> Policy:
    audit = policy.audit.model_copy(update={"membership": {"fast": GAME, "thorough": GAME}})
    return policy.model_copy(update={"audit": audit})


def test_game_copy_fails_and_ignoring_passes(email: GraphData, email_split: tuple[GraphData, GraphData],
                                             email_schema: Schema, game_policy: Policy) -> None:
    train, holdout = email_split
    copy = run_graph_game(train, holdout, train, email_schema, game_policy,
                          _ctx(GraphCopyRefitter(), claim=CLAIM, profile="thorough"))
    assert _metric(copy, "game_auc").value == pytest.approx(1.0)
    assert _metric(copy, "game_epsilon_lb").value > CLAIM.epsilon
    assert _metric(copy, "game_epsilon_lb").passed is False
    assert _metric(copy, "game_auc_dp_check").passed is False
    assert _metric(copy, "game_auc").details["unit"] == "edge"
    # graphs use their own target count (game_targets only switches the game on)
    assert len(_metric(copy, "game_worst_target_auc").details["per_target"]) == 40
    assert "reference_rows" not in _metric(copy, "game_auc").details
    ignoring = run_graph_game(train, holdout, train, email_schema, game_policy,
                              _ctx(IgnoringGraphRefitter(email), claim=CLAIM, profile="thorough"))
    assert _metric(ignoring, "game_epsilon_lb").passed is True
    assert _metric(ignoring, "game_auc_dp_check").passed is True
    lo, hi = _metric(ignoring, "game_auc").interval  # type: ignore[misc]
    assert lo < 0.5 + 0.1 and hi > 0.5 - 0.1


def test_game_not_run_in_fast_profile(email_split: tuple[GraphData, GraphData], email_schema: Schema,
                                      policy: Policy) -> None:
    train, holdout = email_split
    res = run_graph_game(train, holdout, train, email_schema, policy, _ctx(GraphCopyRefitter()))
    assert res.metrics == () and "no targets" in res.notes[0]


# ------------------------------------------------------------------------------------------------
# bad inputs


def test_bad_inputs(small: tuple[GraphData, GraphData, Schema], policy: Policy) -> None:
    real, syn, schema = small
    holdout = real.with_edges(np.array([[4, 5]]))
    run_graph_membership(real, holdout, syn, schema, policy)  # fine
    tabular = Schema.from_dict({"columns": {"x": {"type": "integer", "min": 0, "max": 1}}})
    with pytest.raises(InputError, match="graph schema"):
        run_graph_audits(real, holdout, syn, tabular, policy)
    with pytest.raises(InputError, match="GraphData"):
        run_graph_audits(real, holdout, pl.DataFrame({"x": [1]}), schema, policy)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no edges"):
        run_graph_audits(real.with_edges(np.zeros((0, 2))), holdout, syn, schema, policy)
    with pytest.raises(InputError, match="no edges"):
        run_graph_audits(real, holdout.with_edges(np.zeros((0, 2))), syn, schema, policy)
    with pytest.raises(InputError, match="both the training and the holdout"):
        run_graph_audits(real, real, syn, schema, policy)
    other = GraphData(n_nodes=5, edges=np.array([[0, 1]], dtype=np.int64), spec=real.spec,
                      labels=tuple(str(i) for i in range(5)))
    with pytest.raises(InputError, match="same node set"):
        run_graph_audits(real, other, syn, schema, policy)
    with pytest.raises(InputError, match="public node set"):
        run_graph_audits(real, holdout, other, schema, policy)
    directed = Schema.from_dict({"kind": "graph", "graph": {"directed": True, "node_count": 6}})
    with pytest.raises(InputError, match="undirected"):
        run_graph_audits(real, holdout, syn, directed, policy)
    with pytest.raises(InputError, match="profile"):
        run_graph_audits(real, holdout, syn, schema, policy, AuditContext(profile="quick"))


def test_empty_synthetic_graph(small: tuple[GraphData, GraphData, Schema], policy: Policy) -> None:
    real, _, schema = small
    holdout = real.with_edges(np.array([[4, 5]]))
    empty = real.with_edges(np.zeros((0, 2)))
    res = _by_audit(run_graph_audits(real, holdout, empty, schema, policy))
    score = _metric(res["fidelity"], "graph_fidelity_score")
    assert not math.isnan(score.value) and score.value < 0.6
    assert _metric(res["membership"], "edge_membership_auc").value == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------
# the degree figure


def test_degree_figure(email_split: tuple[GraphData, GraphData], email_schema: Schema,
                       small: tuple[GraphData, GraphData, Schema]) -> None:
    train, _ = email_split
    syn = erdos_renyi(train, train.n_edges, 1)
    (fig,) = graph_figures(train, syn, email_schema)
    assert fig.key == "degrees" and fig.section == "fidelity"
    steward, release = fig.steward, fig.release
    assert release is not None
    names = [t["name"] for t in steward["data"]]
    assert any(n.startswith("real") for n in names) and any(n.startswith("synthetic") for n in names)
    # side by side on log scales, the same y axis for both panels
    assert steward["layout"]["xaxis"]["type"] == "log" and steward["layout"]["yaxis"]["type"] == "log"
    assert steward["layout"]["yaxis2"]["matches"] == "y"
    # the real graph's degrees are the steward's: the released figure draws the synthetic graph only
    assert all(t["name"].startswith("synthetic") for t in release["data"])
    real_x = {x for t in steward["data"] if t["name"] == "real (training split)" for x in t["x"]}
    assert real_x == set(np.unique(train.degrees()[train.degrees() > 0]).tolist())
    shares = next(t["y"] for t in steward["data"] if t["name"] == "real (training split)")
    assert sum(shares) == pytest.approx(float((train.degrees() > 0).mean()), abs=1e-4)
    # an edgeless synthetic graph still gives a figure
    real, _, schema = small
    (empty,) = graph_figures(real, real.with_edges(np.zeros((0, 2))), schema)
    assert empty.release is not None and empty.release["data"][0]["x"] == []
    d, p = degree_ccdf(real.degrees())
    assert d.tolist() == [1, 2, 3] and p == pytest.approx([5 / 6, 4 / 6, 1 / 6])


def test_node_unit_reports_the_edge_attacks_not_run(policy: Policy) -> None:
    from privacy.graphs import split_nodes

    schema = Schema.from_dict({"kind": "graph", "graph": {
        "unit": "node", "nodes": "bought", "max_degree": 40, "id_type": "string",
        "edges": {"format": "csv", "source": "source", "target": "target"}, "ignore": ["weight"]}})
    real = read_graph(DATA / "les_miserables_edges.csv", None, schema)[0]
    train, holdout = split_nodes(real, 0.2, 1)
    assert train.labels != holdout.labels  # disjoint node sets: the edge split's checks do not apply
    fresh = configuration_model(train, 2)
    syn = GraphData(n_nodes=train.n_nodes, edges=fresh.edges, spec=schema.gspec,
                    labels=tuple(str(i) for i in range(train.n_nodes)))
    results = _by_audit(run_graph_audits(train, holdout, syn, schema, policy,
                                         _ctx(GraphCopyRefitter(), claim=CLAIM)))
    for name in ("membership", "one_run", "shadow_game"):
        assert results[name].metrics == ()
        note = results[name].notes[0]
        assert "not run" in note and "node-level attacks are not implemented yet" in note, (name, note)
    assert not math.isnan(_metric(results["fidelity"], "graph_fidelity_score").value)
    # a holdout that shares nodes with the training graph is not a node split
    with pytest.raises(InputError, match="not a node split"):
        run_graph_audits(train, train, syn, schema, policy, _ctx())
