"""audit-file and export-train for graph sources: the training edges and node table out, an outside
party's synthetic graph (edge list + node table) in, audited against the external edge split."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import networkx as nx
import polars as pl
import pytest
import yaml
from click.testing import CliRunner, Result

from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"
GRAPH = DATA / "graph"
EDGES = 16064  # email-Eu-core, undirected, self-loops dropped and directions merged
NODES = 1005


def _run(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def _json(ws: Path, *args: str) -> dict:
    res = _run(ws, *args, "--json")
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout)


def _refused(ws: Path, *args: str, needle: str) -> None:
    res = _run(ws, *args)
    assert res.exit_code == 2, (args, res.output, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in res.output + res.stderr, err
    assert needle in err, err


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A workspace with email-Eu-core and adult registered, and email's training edges exported."""
    root = tmp_path_factory.mktemp("graph-file")
    ws = root / "ws"
    shutil.copy(GRAPH / "email-Eu-core.txt", root / "email-Eu-core.txt")
    shutil.copy(DATA / "adult_2000.csv", root / "adult.csv")
    policy = yaml.safe_load((DATA / "test_policy.yaml").read_text())
    policy["budget"].update(total_epsilon=20.0, per_release_epsilon=4.0)
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    assert _run(ws, "init", "--policy", str(root / "policy.yaml")).exit_code == 0
    reg = _json(ws, "register", "email", str(root / "email-Eu-core.txt"), "--schema", str(GRAPH / "email_schema.yaml"),
                "--kind", "graph")
    assert reg["graph"]["edges"] == EDGES
    assert _run(ws, "register", "adult", str(root / "adult.csv"), "--schema",
                str(DATA / "adult_schema.yaml")).exit_code == 0
    info = _json(ws, "export-train", "email", "-o", str(root / "train-edges.csv"), "--nodes-out",
                 str(root / "train-nodes.csv"))
    return root, ws, info


def test_export_writes_the_training_edges_and_the_node_table(exported: tuple[Path, Path, dict]) -> None:
    root, ws, info = exported
    edges = pl.read_csv(root / "train-edges.csv")
    nodes = pl.read_csv(root / "train-nodes.csv")
    assert edges.columns == ["source", "target"] and nodes.columns == ["node"]
    # one coin per edge with graph_holdout_fraction 0.1: sd about 38 edges
    assert abs(edges.height - 0.9 * EDGES) < 300
    assert info["edges"] == info["rows"] == edges.height and info["holdout_fraction"] == 0.1
    assert info["nodes"] == nodes.height == NODES and sorted(nodes["node"].to_list()) == list(range(NODES))
    assert (edges["source"] < edges["target"]).all()
    # one external split per source version: the same edges the second time
    again = _json(ws, "export-train", "email", "-o", str(root / "again.csv"), "--nodes-out", str(root / "again-n.csv"))
    assert again["edges"] == info["edges"]
    assert (root / "again.csv").read_bytes() == (root / "train-edges.csv").read_bytes()
    assert _run(ws, "log", "verify").exit_code == 0


def test_a_copy_of_the_training_edges_fails_the_gate(exported: tuple[Path, Path, dict]) -> None:
    root, ws, _ = exported
    res = _run(ws, "audit-file", "email", str(root / "train-edges.csv"), "--nodes", str(root / "train-nodes.csv"),
               "--generator-spec", "name=copier,epsilon=1,delta=1e-9", "--json")
    assert res.exit_code == 3, res.stderr
    out = json.loads(res.stdout)
    assert out["gate_passed"] is False and out["dp_failure"] is True
    failed = {c["name"] for c in out["checks"] if not c["passed"]}
    assert {"edge_membership_auc", "edge_membership_auc_dp_check"} <= failed
    doc = json.loads(Path(out["audit"]).read_text())
    metrics = {m["name"]: m for r in doc["results"] for m in r["metrics"]}
    assert metrics["edge_membership_auc"]["value"] > 0.95
    assert doc["context"]["kind"] == "graph" and doc["context"]["generator"] == "copier"
    assert doc["context"]["conformed"]["edges"] == pl.read_csv(root / "train-edges.csv").height
    # the same copy as Parquet, its node table in another order: re-indexed to the real node order
    pl.read_csv(root / "train-edges.csv").write_parquet(root / "copy.parquet")
    ids = list(range(NODES))
    random.Random(5).shuffle(ids)
    pl.DataFrame({"node": ids}).write_csv(root / "copy-nodes.csv")
    res = _run(ws, "audit-file", "email", str(root / "copy.parquet"), "--nodes", str(root / "copy-nodes.csv"), "--json")
    assert res.exit_code == 3, res.stderr
    doc = json.loads(Path(json.loads(res.stdout)["audit"]).read_text())
    metrics = {m["name"]: m for r in doc["results"] for m in r["metrics"]}
    assert metrics["edge_membership_auc"]["value"] > 0.95 and metrics["graph_fidelity_score"]["value"] > 0.99


def test_a_configuration_model_is_audited(exported: tuple[Path, Path, dict]) -> None:
    root, ws, _ = exported
    edges = pl.read_csv(root / "train-edges.csv")
    g = nx.Graph()
    g.add_nodes_from(range(NODES))
    g.add_edges_from(zip(edges["source"].to_list(), edges["target"].to_list(), strict=True))
    degrees = [d for _, d in sorted(g.degree())]
    cm = nx.Graph(nx.configuration_model(degrees, seed=7))  # parallel edges merged
    cm.remove_edges_from(list(nx.selfloop_edges(cm)))
    # the schema's own edge format (SNAP pairs), and a node table in another order than the real one
    lines = ["# a vendor's synthetic email graph"] + [f"{u}\t{v}" for u, v in cm.edges()]
    (root / "cm.txt").write_text("\n".join(lines) + "\n")
    ids = list(range(NODES))
    random.Random(3).shuffle(ids)
    pl.DataFrame({"node": ids}).write_parquet(root / "cm-nodes.parquet")
    res = _run(ws, "audit-file", "email", str(root / "cm.txt"), "--nodes", str(root / "cm-nodes.parquet"), "--json")
    assert res.exit_code in (0, 3), res.stderr
    out = json.loads(res.stdout)
    doc = json.loads(Path(out["audit"]).read_text())
    assert doc["context"]["kind"] == "graph" and doc["context"]["split"].startswith("external split")
    assert doc["context"]["conformed"]["nodes"] == NODES
    metrics = {m["name"]: m for r in doc["results"] for m in r["metrics"]}
    assert "graph_fidelity_score" in metrics
    # degrees kept, edges rewired: the membership attack sees little
    assert metrics["edge_membership_auc"]["value"] < 0.7
    notes = {r["audit"]: r["notes"] for r in doc["results"]}
    assert "not run" in notes["one_run"][0] and "not run" in notes["shadow_game"][0]
    report = (Path(out["audit"]).parent / "report.html").read_text()
    assert 'data-plot="degrees"' in report and "Degree distributions" in report


def test_refusals_are_one_line(exported: tuple[Path, Path, dict]) -> None:
    root, ws, _ = exported
    edges, nodes = str(root / "train-edges.csv"), str(root / "train-nodes.csv")
    _refused(ws, "audit-file", "email", edges, needle="needs --nodes")
    _refused(ws, "audit-file", "adult", str(root / "adult.csv"), "--nodes", nodes, needle="--nodes is for graph")
    _refused(ws, "audit-file", "email", edges, "--nodes", str(root / "missing.csv"), needle="no such file")
    _refused(ws, "export-train", "email", "-o", str(root / "x.csv"), needle="needs --nodes-out")
    _refused(ws, "export-train", "adult", "-o", str(root / "x.csv"), "--nodes-out", str(root / "y.csv"),
             needle="--nodes-out is for graph")
    # a node table over other ids: the real ids shifted by 2,000
    pl.DataFrame({"node": [i + 2000 for i in range(NODES)]}).write_csv(root / "other-nodes.csv")
    other = pl.read_csv(root / "train-edges.csv").select(pl.all() + 2000)
    other.write_csv(root / "other-edges.csv")
    _refused(ws, "audit-file", "email", str(root / "other-edges.csv"), "--nodes", str(root / "other-nodes.csv"),
             needle="not in the public node set")
    # a few of the public ids missing
    pl.DataFrame({"node": list(range(5, NODES))}).write_csv(root / "short-nodes.csv")
    pl.DataFrame({"source": [5, 6], "target": [6, 7]}).write_csv(root / "short-edges.csv")
    _refused(ws, "audit-file", "email", str(root / "short-edges.csv"), "--nodes", str(root / "short-nodes.csv"),
             needle="are missing")
    # an edge to a node the node table does not list (every node of the exported edges but 0..4)
    assert 0 in pl.read_csv(edges)["source"].to_list()
    _refused(ws, "audit-file", "email", edges, "--nodes", str(root / "short-nodes.csv"), needle="edge endpoints")
