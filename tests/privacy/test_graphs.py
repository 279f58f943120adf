"""Graph data model: the schema's graph block, reading edge lists and node tables, errors, the edge split."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from privacy.errors import InputError, IntegrityError
from privacy.graphs import (
    GraphData,
    canonical_edges,
    conform_graph,
    load_graph_verified,
    parse_synthetic_graph,
    read_graph,
    split_edges,
    split_nodes,
)
from privacy.infer import draft_yaml, infer_graph_schema
from privacy.schema import Schema

DATA = Path(__file__).resolve().parents[1] / "data" / "graph"
EMAIL = DATA / "email-Eu-core.txt"

BASE = {"kind": "graph", "graph": {"directed": False, "node_count": 6, "self_loops": "error", "duplicates": "error"}}


def schema(**graph: object) -> Schema:
    raw = copy.deepcopy(BASE)
    raw["graph"].update(graph)  # type: ignore[union-attr]
    return Schema.from_dict(raw)


def conform(text: str, sch: Schema | None = None, nodes: str | None = None) -> tuple[GraphData, object]:
    return conform_graph(text.encode(), None if nodes is None else nodes.encode(), sch or schema(), path_hint="e")


def test_real_snap_files_conform_to_the_published_sizes() -> None:
    g, r, fp, nfp = read_graph(EMAIL, None, Schema.load(DATA / "email_schema.yaml"))
    # SNAP documents 1,005 nodes; undirected without self-loops: 16,064 edges (the PrivGraph paper's figure)
    assert (g.n_nodes, g.n_edges) == (1005, 16064)
    assert r.self_loops_dropped == 642 and r.duplicates_merged == 8865 and r.isolated_nodes == 19
    assert len(fp) == 64 and nfp is None
    assert (g.edges[:, 0] < g.edges[:, 1]).all()
    assert len(np.unique(g.edges, axis=0)) == g.n_edges
    assert g.degrees().sum() == 2 * g.n_edges
    directed = Schema.from_dict({"kind": "graph", "graph": {"directed": True, "node_count": 1005, "self_loops": "drop"}})
    gd = read_graph(EMAIL, None, directed)[0]
    assert gd.n_edges == 25571 - 642  # the directed file has no repeated (u, v) line


def test_node_table_with_attributes_and_string_ids() -> None:
    g, r, _, nfp = read_graph(DATA / "karate_club_edges.csv", DATA / "karate_club_nodes.csv",
                              Schema.load(DATA / "karate_schema.yaml"))
    assert (g.n_nodes, g.n_edges) == (34, 78) and nfp is not None
    assert g.nodes is not None and g.nodes.columns == ["club"]
    assert set(g.nodes.get_column("club").to_list()) == {"Mr. Hi", "Officer"}
    lm = read_graph(DATA / "les_miserables_edges.csv", DATA / "les_miserables_nodes.csv",
                    Schema.load(DATA / "les_miserables_schema.yaml"))[0]
    assert (lm.n_nodes, lm.n_edges) == (77, 254)
    assert "Valjean" in lm.labels
    frame = lm.node_frame()
    assert frame.height == 77 and frame.columns == ["node"]
    edges = lm.edge_frame()
    assert edges.columns == ["source", "target"] and edges.height == 254


@pytest.mark.parametrize(
    ("text", "sch", "match"),
    [
        ("0 1\n1 1\n", None, "1 self-loops"),
        ("0 1\n1 0\n", None, r"1 duplicate edges \(\(u, v\) and \(v, u\)"),
        ("0 1\n2 7\n", None, "1 edge endpoints are not in the public node set"),
        ("0 1\n2 x\n", None, "1 node ids are not integers"),
        ("0 1 3\n2 3\n", None, "1 lines are not two whitespace-separated node ids"),
        ("# only a comment\n", None, "no edges"),
        ("source,target\n0,1\n,2\n", {"edges": {"format": "csv"}}, "1 edges have no 'source' id"),
        ("source,target,w\n0,1,3\n", {"edges": {"format": "csv"}}, "columns not in the schema"),
        ("a,b\n0,1\n", {"edges": {"format": "csv"}}, "missing columns: source, target"),
    ],
)
def test_bad_edge_files_get_one_line(text: str, sch: dict | None, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        conform(text, schema(**sch) if sch else None)
    assert "\n" not in str(info.value)


def test_declared_rules_drop_and_merge() -> None:
    g, r = conform("0 1\n1 0\n2 2\n3 4\n", schema(self_loops="drop", duplicates="merge"))
    assert g.edges.tolist() == [[0, 1], [3, 4]]
    assert r.self_loops_dropped == 1 and r.duplicates_merged == 1 and r.isolated_nodes == 2  # type: ignore[attr-defined]
    d, _ = conform("0 1\n1 0\n", schema(directed=True))
    assert d.edges.tolist() == [[0, 1], [1, 0]]  # directed: two edges


def test_integer_ids_are_canonical_text() -> None:
    g, _ = conform("000 1\n2 03\n")
    assert g.edges.tolist() == [[0, 1], [2, 3]]


def test_schema_block_is_validated() -> None:
    with pytest.raises(InputError, match="unit must be 'edge' or 'node'"):
        schema(unit="vertex")
    with pytest.raises(InputError, match="node_count makes the node set public"):
        schema(nodes="bought")
    with pytest.raises(InputError, match="unknown keys: colour"):
        schema(colour="red")
    with pytest.raises(InputError, match="'ignore' is for csv edge files"):
        schema(ignore=["w"])
    with pytest.raises(InputError, match="max_degree must be in"):
        schema(max_degree=0)
    with pytest.raises(InputError, match="do not list it under 'columns'"):
        Schema.from_dict({**BASE, "columns": {"node": {"type": "categorical", "categories": ["a"]}}})
    with pytest.raises(InputError, match="takes no 'target'"):
        Schema.from_dict({**BASE, "target": "x", "columns": {"x": {"type": "categorical", "categories": ["a"]}}})
    with pytest.raises(InputError, match="takes no 'graph' block"):
        Schema.from_dict({"columns": {"a": {"type": "categorical", "categories": ["x"]}}, "graph": BASE["graph"]})
    s = schema(max_degree=8)
    assert Schema.from_dict(s.to_dict()) == s


def test_public_node_set_needs_a_count_or_a_table() -> None:
    sch = Schema.from_dict({"kind": "graph", "graph": {"nodes": "public"}})
    with pytest.raises(InputError, match="needs graph 'node_count'"):
        conform("0 1\n", sch)
    attrs = Schema.from_dict({"kind": "graph", "graph": {"edges": {"format": "csv"}},
                              "columns": {"c": {"type": "categorical", "categories": ["a", "b"]}}})
    with pytest.raises(InputError, match="no node table was given"):
        conform("source,target\n1,2\n", attrs)
    with pytest.raises(InputError, match="1 node ids appear more than once"):
        conform("source,target\n1,2\n", attrs, "node,c\n1,a\n1,b\n2,a\n")
    with pytest.raises(InputError, match="1 edge endpoints are not in the public node set"):
        conform("source,target\n1,3\n", attrs, "node,c\n1,a\n2,b\n")
    g, _ = conform("source,target\n1,2\n", attrs, "node,c\n1,a\n2,b\n3,a\n")
    assert g.n_nodes == 3 and g.nodes is not None and g.nodes.get_column("c").to_list() == ["a", "b", "a"]


def test_bought_node_set_reads_ids_from_the_edges() -> None:
    sch = Schema.from_dict({"kind": "graph", "graph": {"nodes": "bought", "id_type": "string"}})
    g, _ = conform("alice bob\nbob carol\n", sch)
    assert g.labels == ("alice", "bob", "carol") and g.n_edges == 2
    with pytest.raises(InputError, match="nodes: bought is not supported yet"):
        conform("a b\n", sch, "node\na\nb\n")


def test_split_is_one_coin_per_edge_and_keeps_every_node() -> None:
    g = read_graph(EMAIL, None, Schema.load(DATA / "email_schema.yaml"))[0]
    train, holdout = split_edges(g, 0.1, seed=5)
    assert train.n_nodes == holdout.n_nodes == g.n_nodes
    assert train.n_edges + holdout.n_edges == g.n_edges
    assert 0.08 < holdout.n_edges / g.n_edges < 0.12
    both = np.concatenate([train.edges, holdout.edges])
    assert len(np.unique(both, axis=0)) == g.n_edges
    again = split_edges(g, 0.1, seed=5)[1]
    assert np.array_equal(again.edges, holdout.edges)
    # removing one edge removes its coin only: every other edge keeps its side (coins follow the
    # canonical order, so only edges after it shift coins; the split is still a Poisson subsample)
    assert not np.array_equal(split_edges(g, 0.1, seed=6)[1].edges, holdout.edges)
    tiny = conform("0 1\n2 3\n")[0]
    with pytest.raises(InputError, match="too small"):
        split_edges(tiny, 0.5, 1)


def test_verified_load_refuses_changed_bytes(tmp_path: Path) -> None:
    sch = Schema.load(DATA / "email_schema.yaml")
    p = tmp_path / "e.txt"
    p.write_bytes(EMAIL.read_bytes())
    _, _, fp, _ = read_graph(p, None, sch)
    assert load_graph_verified(p, sch, fp).n_edges == 16064
    p.write_bytes(EMAIL.read_bytes() + b"1 2\n")
    with pytest.raises(IntegrityError, match="changed since it was registered"):
        load_graph_verified(p, sch, fp)


def test_synthetic_round_trip_keeps_isolated_nodes_and_ids() -> None:
    sch = Schema.load(DATA / "karate_schema.yaml")
    g = read_graph(DATA / "karate_club_edges.csv", DATA / "karate_club_nodes.csv", sch)[0]
    sub = g.with_edges(g.edges[:5])
    buf_e, buf_n = io.BytesIO(), io.BytesIO()
    sub.edge_frame().write_parquet(buf_e)
    sub.node_frame().write_parquet(buf_n)
    back = parse_synthetic_graph(buf_e.getvalue(), buf_n.getvalue(), sch)
    assert back.n_nodes == 34 and back.labels == sub.labels
    assert np.array_equal(back.edges, sub.edges)
    assert back.nodes is not None and back.nodes.equals(sub.nodes)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="needs its node table"):
        parse_synthetic_graph(buf_e.getvalue(), None, sch)


def test_canonical_edges() -> None:
    e = canonical_edges(np.array([[3, 1], [1, 3], [2, 2], [0, 5]]), directed=False)
    assert e.tolist() == [[0, 5], [1, 3]]
    assert canonical_edges(np.zeros((0, 2)), directed=True).shape == (0, 2)


def test_infer_drafts_a_flagged_schema(tmp_path: Path) -> None:
    s = infer_graph_schema(EMAIL)
    assert s.drafted_from_data and s.is_graph
    assert s.gspec.node_count == 1005 and s.gspec.self_loops == "drop" and s.gspec.duplicates == "merge"
    assert s.gspec.max_degree is not None and s.gspec.max_degree % 8 == 0
    text = draft_yaml(s)
    assert "degree cap" in text and "drafted_from_data: true" in text
    k = infer_graph_schema(DATA / "karate_club_edges.csv", nodes_path=DATA / "karate_club_nodes.csv")
    assert k.gspec.edge_format == "csv" and k.gspec.ignore == ("weight",) and k.names == ["club"]
    p = tmp_path / "s.yaml"
    p.write_text(text)
    assert Schema.load(p).gspec == s.gspec


def test_edge_frame_of_an_empty_graph() -> None:
    g = conform("0 1\n")[0].with_edges(np.zeros((0, 2), dtype=np.int64))
    assert g.edge_frame().height == 0 and g.node_frame().height == 6
    assert isinstance(g.edge_frame(), pl.DataFrame)


# -- node-level DP (unit: node) -------------------------------------------------------------------

NODE_UNIT: dict[str, Any] = {"kind": "graph", "graph": {"unit": "node", "nodes": "bought", "max_degree": 3, "id_type": "string"}}


def node_schema(**graph: object) -> Schema:
    raw = copy.deepcopy(NODE_UNIT)
    raw["graph"].update(graph)
    return Schema.from_dict(raw)


def test_node_unit_schema_needs_a_degree_bound_and_a_bought_node_set() -> None:
    s = node_schema()
    assert s.gspec.node_unit and Schema.from_dict(s.to_dict()) == s
    assert s.gspec.privacy_unit() == ("one node with all its edges (add/remove one node; every node has degree "
                                      "at most 3)")
    assert not schema().gspec.node_unit
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"max_degree": None}, "unit 'node' needs a public degree bound max_degree"),
        ({"nodes": "public", "node_count": 6, "id_type": "integer"}, "unit 'node' needs nodes: bought"),
        ({"nodes": "public"}, "unit 'node' needs nodes: bought"),
        ({"directed": True}, "unit 'node' for directed graphs is not supported yet"),
        ({"max_degree": 0}, "max_degree must be in"),
    ]
    for change, message in refusals:
        with pytest.raises(InputError, match=message) as err:
            node_schema(**change)
        assert "\n" not in str(err.value)


def test_node_unit_refuses_a_node_above_the_degree_bound() -> None:
    star = "hub a\nhub b\nhub c\nhub d\nx a\ny a\nz a\n"  # hub and a have degree 4 > 3
    with pytest.raises(InputError) as err:
        conform(star, node_schema())
    msg = str(err.value)
    assert msg == "e: 2 nodes have degree above the schema's max_degree 3 (unit: node covers graphs of degree " \
                  "at most max_degree)"
    assert "hub" not in msg and "\n" not in msg
    g, r = conform(star, node_schema(max_degree=4))
    assert g.n_nodes == 8 and int(g.degrees().max()) == 4
    # edge-level schemas keep max_degree as a cap for generators: no refusal at conform
    edge = Schema.from_dict({"kind": "graph", "graph": {"nodes": "bought", "id_type": "string", "max_degree": 3}})
    assert conform(star, edge)[0].n_edges == 7
    # a stored synthetic graph may exceed the bound by chance (post-processing): read back without refusal
    nodes = "node\n" + "\n".join(g.labels) + "\n"
    back = parse_synthetic_graph(g.edge_frame().write_csv().encode(), nodes.encode(), node_schema())
    assert back.n_edges == 7 and back.spec == node_schema().gspec


def test_split_nodes_is_one_coin_per_node_and_keeps_induced_subgraphs() -> None:
    sch = Schema.from_dict({"kind": "graph", "graph": {
        "unit": "node", "nodes": "bought", "max_degree": 40, "id_type": "string",
        "edges": {"format": "csv", "source": "source", "target": "target"}, "ignore": ["weight"]}})
    g = read_graph(DATA / "les_miserables_edges.csv", None, sch)[0]
    train, holdout = split_nodes(g, 0.2, seed=4)
    # every node on exactly one side, by its own coin (index order = sorted ids)
    from privacy.split import split_mask

    mask = split_mask(g.n_nodes, 0.2, 4)
    assert holdout.labels == tuple(lab for lab, h in zip(g.labels, mask) if h)
    assert train.labels == tuple(lab for lab, h in zip(g.labels, mask) if not h)
    assert train.n_nodes + holdout.n_nodes == g.n_nodes and not set(train.labels) & set(holdout.labels)
    # induced subgraphs: exactly the real edges with both ends on that side
    real = {frozenset((g.labels[u], g.labels[v])) for u, v in g.edges.tolist()}
    for part in (train, holdout):
        side = set(part.labels)
        got = {frozenset((part.labels[u], part.labels[v])) for u, v in part.edges.tolist()}
        assert got == {e for e in real if e <= side}
        assert (part.edges[:, 0] < part.edges[:, 1]).all() if part.n_edges else True
    crossing = sum(1 for e in real if len(e & set(train.labels)) == 1)
    assert train.n_edges + holdout.n_edges + crossing == g.n_edges
    # deterministic for the seed; another seed, another split
    again = split_nodes(g, 0.2, seed=4)
    assert again[0].labels == train.labels and np.array_equal(again[0].edges, train.edges)
    assert split_nodes(g, 0.2, seed=5)[1].labels != holdout.labels
    # the source's unit decides the split
    from privacy.dataset import split_source

    assert split_source(g, sch, 0.2, 4)[1].labels == holdout.labels
    with pytest.raises(InputError, match="too small to split into training and holdout nodes"):
        split_nodes(conform("a b\nc d\n", node_schema())[0], 0.5, 1)
