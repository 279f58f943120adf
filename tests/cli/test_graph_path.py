"""Graphs through the whole path from the CLI: schema infer, register (edge list, node table),
synthesize with dpdegree, dpdk2 and privgraph, audit, approve, release, verify; and the refusals."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner, Result
from workspace_roles import add_steward, init_with_admin

from audits.audit_schema import validate_audit_document
from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"
GRAPH = DATA / "graph"


def _run(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def _json(ws: Path, *args: str) -> dict:
    res = _run(ws, *args, "--json")
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def graph_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("graph")
    ws = root / "ws"
    for name in ("email-Eu-core.txt", "email_departments.csv", "karate_club_edges.csv", "karate_club_nodes.csv",
                 "les_miserables_edges.csv", "les_miserables_nodes.csv"):
        shutil.copy(GRAPH / name, root / name)
    policy = yaml.safe_load((DATA / "test_policy.yaml").read_text())
    policy["budget"].update(total_epsilon=20.0, per_release_epsilon=4.0)
    policy["recommended_generators"] = {"graph": "dpdk2"}
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    init_with_admin(ws, root / "admin-keys", "--policy", str(root / "policy.yaml"))
    reg = _json(ws, "register", "email", str(root / "email-Eu-core.txt"), "--schema", str(GRAPH / "email_schema.yaml"),
                "--kind", "graph")
    assert reg["kind"] == "graph" and reg["graph"]["nodes"] == 1005 and reg["graph"]["edges"] == 16064
    assert reg["graph"]["self_loops_dropped"] == 642
    return root, ws


def _through_release(root: Path, ws: Path, run_id: str, tag: str) -> Path:
    res = _run(ws, "audit", run_id)
    audit_path = ws / "runs" / run_id / "audit.json"
    assert audit_path.exists(), res.output + res.stderr
    doc = json.loads(audit_path.read_text())
    validate_audit_document(doc)
    assert doc["context"]["kind"] == "graph"
    names = {m["name"] for r in doc["results"] for m in r["metrics"]}
    assert {"graph_fidelity_score", "one_run_epsilon_lb"} <= names
    failed = [f"{c['name']}={c['gated_value']} (threshold {c['threshold']})" for c in doc["gate"]["checks"]
              if not c["passed"]]
    assert res.exit_code == 0, failed
    report = (ws / "runs" / run_id / "report.html").read_text()
    assert 'data-plot="degrees"' in report and "Degree distributions" in report
    keys = root / f"keys-{tag}"
    for name in ("alice", "bob"):
        k = _json(ws, "keys", "new", f"{name}{tag}", "--out", str(keys))
        add_steward(ws, root / "admin-keys", f"{name}{tag}", k["public_key"])
        _json(ws, "approve", run_id, "--steward", f"{name}{tag}", "--key", str(keys / f"{name}{tag}.key"))
    bundle = root / f"bundle-{tag}"
    _json(ws, "release", run_id, "--out", str(bundle))
    v = _json(ws, "verify", str(bundle), "--trust", str(ws / "keys" / "release.pub"))
    assert v["valid"] and v["run_id"] == run_id
    return bundle


@pytest.mark.parametrize("generator", ["dpdegree", "dpdk2", "privgraph"])
def test_graph_generators_from_register_to_verify(graph_ws: tuple[Path, Path], generator: str) -> None:
    root, ws = graph_ws
    out = _json(ws, "synthesize", "email", "--generator", generator, "--epsilon", "4", "--seed", "4",
                "--requester", "carol")
    run_id = out["run_id"]
    card = json.loads((ws / "runs" / run_id / "card.json").read_text())
    assert card["name"] == generator and "edge" in card["unit_of_privacy"]
    assert card["spend"]["epsilon"] <= 4.0
    d = ws / "runs" / run_id
    edges = pl.read_csv(d / "synthetic.csv", infer_schema=False)
    nodes = pl.read_csv(d / "synthetic-nodes.csv", infer_schema=False)
    assert edges.columns == ["source", "target"] and nodes.columns == ["node"]
    # the public node set: every id 0..1004, isolated nodes included; edges only between them
    assert nodes.get_column("node").to_list() == [str(i) for i in range(1005)]
    ids = set(nodes.get_column("node").to_list())
    assert set(edges.get_column("source").to_list()) <= ids and set(edges.get_column("target").to_list()) <= ids
    assert edges.height > 1000
    bundle = _through_release(root, ws, run_id, generator)
    assert (bundle / "synthetic-nodes.parquet").exists()
    statement = (bundle / "privacy-statement.md").read_text()
    assert "Unit of privacy: one undirected edge" in statement and "node set is public" in statement
    assert "Self-loops were dropped" in statement and "Repeated edges were merged" in statement
    datasheet = (bundle / "datasheet.md").read_text()
    assert "A synthetic undirected graph" in datasheet
    envelope = json.loads((bundle / "manifest.json").read_text())
    statement_json = json.loads(base64.b64decode(envelope["payload"]))
    names = {s["name"] for s in statement_json["subject"]}
    assert {"synthetic-nodes.parquet", "synthetic-nodes.csv", "synthetic.csv"} <= names
    assert statement_json["predicate"]["schema"]["kind"] == "graph"


def test_a_tampered_node_table_fails_verification(graph_ws: tuple[Path, Path]) -> None:
    root, ws = graph_ws
    bundles = sorted(root.glob("bundle-*"))
    if not bundles:
        pytest.skip("needs a released graph bundle from the path test")
    copy = root / "tampered"
    shutil.copytree(bundles[0], copy)
    p = copy / "synthetic-nodes.csv"
    p.write_text(p.read_text().replace("\n5\n", "\n5000\n"))
    res = _run(ws, "verify", str(copy), "--trust", str(ws / "keys" / "release.pub"))
    assert res.exit_code != 0 and "synthetic-nodes.csv" in res.stderr


def test_node_table_with_attributes_registers(graph_ws: tuple[Path, Path]) -> None:
    root, ws = graph_ws
    reg = _json(ws, "register", "karate", str(root / "karate_club_edges.csv"), "--nodes",
                str(root / "karate_club_nodes.csv"), "--schema", str(GRAPH / "karate_schema.yaml"))
    assert reg["graph"]["nodes"] == 34 and reg["graph"]["edges"] == 78


def test_node_attributes_synthesized_and_audited(graph_ws: tuple[Path, Path]) -> None:
    root, ws = graph_ws
    budgets = _run(ws, "budget", "--json")
    if "karate" not in {b["source"] for b in json.loads(budgets.stdout)}:
        _json(ws, "register", "karate", str(root / "karate_club_edges.csv"), "--nodes",
              str(root / "karate_club_nodes.csv"), "--schema", str(GRAPH / "karate_schema.yaml"))
    out = _json(ws, "synthesize", "karate", "--generator", "dpdegree", "--epsilon", "4", "--seed", "2", "--requester", "carol")
    d = ws / "runs" / out["run_id"]
    card = json.loads((d / "card.json").read_text())
    assert "attribute" in card["unit_of_privacy"]
    nodes = pl.read_csv(d / "synthetic-nodes.csv", infer_schema=False)
    assert nodes.columns == ["node", "club"] and nodes.height == 34
    assert set(nodes.get_column("club").to_list()) <= {"Mr. Hi", "Officer"}
    # privgraph synthesizes the node attributes too (MST on attributes + degree class, part of the spend)
    before = _json(ws, "budget", "karate")["spent_epsilon"]
    pg = _json(ws, "synthesize", "karate", "--generator", "privgraph", "--epsilon", "1", "--seed", "2", "--requester", "carol")
    pg_dir = ws / "runs" / pg["run_id"]
    pg_card = json.loads((pg_dir / "card.json").read_text())
    assert pg_card["name"] == "privgraph" and "attribute" in pg_card["unit_of_privacy"]
    assert pg_card["spend"]["epsilon"] <= 1.0 and "(4) node attributes" in pg_card["accounting"]
    pg_nodes = pl.read_csv(pg_dir / "synthetic-nodes.csv", infer_schema=False)
    assert pg_nodes.columns == ["node", "club"] and pg_nodes.height == 34
    assert set(pg_nodes.get_column("club").to_list()) <= {"Mr. Hi", "Officer"}
    assert _json(ws, "budget", "karate")["spent_epsilon"] == pytest.approx(before + 1.0)
    _run(ws, "audit", out["run_id"])  # 78 edges: the gate's outcome is not the point here
    doc = json.loads((d / "audit.json").read_text())
    names = {m["name"] for r in doc["results"] for m in r["metrics"]}
    assert {"node_club_tvd", "node_club_degree_tvd"} <= names


def test_graph_refusals_before_any_charge(graph_ws: tuple[Path, Path]) -> None:
    root, ws = graph_ws
    before = _json(ws, "budget", "email")["spent_epsilon"]
    res = _run(ws, "synthesize", "email", "--generator", "mst", "--epsilon", "1")
    assert res.exit_code != 0 and "synthesizes tabular data but the source is graph" in res.stderr
    res = _run(ws, "synthesize", "email", "--generator", "dpdegree", "--epsilon", "1", "--rows", "50")
    assert res.exit_code != 0 and "--rows is not used for graphs" in res.stderr
    assert _json(ws, "budget", "email")["spent_epsilon"] == before
    res = _run(ws, "register", "x", str(root / "email-Eu-core.txt"), "--schema", str(DATA / "adult_schema.yaml"),
               "--nodes", str(root / "email_departments.csv"))
    assert res.exit_code != 0 and "graph schemas only" in res.stderr
    # SNAP's file with a schema that forbids self-loops: one line, counts only
    strict = yaml.safe_load((GRAPH / "email_schema.yaml").read_text())
    strict["graph"]["self_loops"] = "error"
    (root / "strict.yaml").write_text(yaml.safe_dump(strict))
    res = _run(ws, "register", "strict", str(root / "email-Eu-core.txt"), "--schema", str(root / "strict.yaml"))
    assert res.exit_code == 2 and "642 self-loops" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    res = _run(ws, "register", "email2", str(root / "email-Eu-core.txt"), "--schema", str(GRAPH / "email_schema.yaml"))
    assert res.exit_code != 0 and "already registered as source 'email'" in res.stderr
    res = _run(ws, "audit-file", "email", str(root / "email-Eu-core.txt"))
    assert res.exit_code == 2 and "needs --nodes" in res.stderr


def test_recommended_generator_for_graphs(graph_ws: tuple[Path, Path]) -> None:
    root, ws = graph_ws
    out = _json(ws, "synthesize", "email", "--generator", "recommended", "--epsilon", "1", "--seed", "1", "--requester", "carol")
    assert out["generator"] == "dpdk2"
    # a directed graph: the policy's recommendation cannot take it, and says so before any charge
    # (254 edges: a 10% edge holdout keeps enough edges on both sides whatever the secret split)
    schema = {"kind": "graph", "graph": {"directed": True, "id_type": "string", "max_degree": 40,
                                         "edges": {"format": "csv"}, "ignore": ["weight"]}}
    (root / "lesmis.yaml").write_text(yaml.safe_dump(schema))
    _json(ws, "register", "lesmis", str(root / "les_miserables_edges.csv"), "--nodes",
          str(root / "les_miserables_nodes.csv"), "--schema", str(root / "lesmis.yaml"))
    res = _run(ws, "synthesize", "lesmis", "--generator", "recommended", "--epsilon", "1")
    assert res.exit_code == 2 and "recommends 'dpdk2', which cannot take this source" in res.stderr
    assert "dpdk2 for directed graphs is not supported yet" in res.stderr
    assert _json(ws, "budget", "lesmis")["spent_epsilon"] == 0
    out = _json(ws, "synthesize", "lesmis", "--generator", "dpdegree", "--epsilon", "1", "--seed", "1", "--requester", "carol")
    edges = pl.read_csv(ws / "runs" / out["run_id"] / "synthetic.csv", infer_schema=False)
    names = set(pl.read_csv(root / "les_miserables_nodes.csv").get_column("node").to_list())
    assert set(edges.get_column("source").to_list()) <= names


def test_schema_infer_graph_drafts_and_warns(tmp_path: Path) -> None:
    out = tmp_path / "draft.yaml"
    res = CliRunner().invoke(cli, ["schema", "infer", str(GRAPH / "karate_club_edges.csv"), "--kind", "graph",
                                   "--nodes", str(GRAPH / "karate_club_nodes.csv"), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["kind"] == "graph" and info["max_degree"] % 8 == 0 and info["nodes"] == "public"
    assert "degree cap" in res.stderr and "NOT public" in res.stderr
    draft = yaml.safe_load(out.read_text())
    assert draft["drafted_from_data"] is True and draft["graph"]["ignore"] == ["weight"]
    assert draft["columns"]["club"]["categories"] == ["Mr. Hi", "Officer"]
    res = CliRunner().invoke(cli, ["schema", "infer", str(GRAPH / "email-Eu-core.txt"), "--directed", "-o", str(out)])
    assert res.exit_code != 0 and "need --kind graph" in res.stderr
