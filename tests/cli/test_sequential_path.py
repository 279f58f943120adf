"""Sequences through the whole path from the CLI: schema infer, register (events + static table),
synthesize with dpmarkov and dpar, audit, approve, release, verify; and the refusals on the way."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from workspace_roles import add_steward, init_with_admin

from audits.audit_schema import validate_audit_document
from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"


def _run(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def _json(ws: Path, *args: str) -> dict:
    res = _run(ws, *args, "--json")
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def seq_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("seq")
    ws = root / "ws"
    for name in ("pbcseq.csv", "berka_transactions.csv", "berka_accounts.csv"):
        shutil.copy(DATA / name, root / name)
    # the shared test policy caps a release at epsilon 1; sequences of a few hundred entities need
    # more to learn anything, as a steward's policy for them would allow
    policy = yaml.safe_load((DATA / "test_policy.yaml").read_text())
    policy["budget"].update(total_epsilon=20.0, per_release_epsilon=4.0)
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    init_with_admin(ws, root / "admin-keys", "--policy", str(root / "policy.yaml"))
    reg = _json(ws, "register", "pbc", str(root / "pbcseq.csv"), "--schema", str(DATA / "pbcseq_schema.yaml"),
                "--kind", "sequential")
    assert reg["kind"] == "sequential" and reg["sequences"]["entities"] == 312
    reg = _json(ws, "register", "bank", str(root / "berka_transactions.csv"), "--statics",
                str(root / "berka_accounts.csv"), "--schema", str(DATA / "berka_schema.yaml"))
    assert reg["sequences"]["entities"] == 150 and reg["sequences"]["truncated_events"] > 0
    return root, ws


def _through_release(root: Path, ws: Path, run_id: str, tag: str) -> Path:
    res = _run(ws, "audit", run_id)
    audit_path = ws / "runs" / run_id / "audit.json"
    assert audit_path.exists(), res.output + res.stderr
    doc = json.loads(audit_path.read_text())
    validate_audit_document(doc)
    assert doc["context"]["kind"] == "sequential"
    failed = [f"{c['name']}={c['gated_value']} (threshold {c['threshold']})" for c in doc["gate"]["checks"]
              if not c["passed"]]
    assert res.exit_code == 0, failed
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


def test_dpmarkov_pbcseq_from_register_to_verify(seq_ws: tuple[Path, Path]) -> None:
    root, ws = seq_ws
    out = _json(ws, "synthesize", "pbc", "--generator", "dpmarkov", "--epsilon", "2", "--seed", "4",
                "--requester", "carol", "--rows", "250")
    run_id = out["run_id"]
    card = json.loads((ws / "runs" / run_id / "card.json").read_text())
    assert card["name"] == "dpmarkov" and "one entity (id)" in card["unit_of_privacy"]
    assert card["spend"]["epsilon"] <= 2.0
    # --rows counts entities: 250 synthetic patients, each with 1..16 visits, fresh keys
    import polars as pl

    synth = pl.read_csv(ws / "runs" / run_id / "synthetic.csv", infer_schema=False)
    assert synth.get_column("id").n_unique() == 250
    assert synth.group_by("id").len().get_column("len").max() <= 16
    assert set(synth.columns) == set(pl.read_csv(DATA / "pbcseq.csv", infer_schema=False).columns)
    bundle = _through_release(root, ws, run_id, "m")
    statement = (bundle / "privacy-statement.md").read_text()
    assert "one entity (`id`) and all its events" in statement and "At most 16 events" in statement
    datasheet = (bundle / "datasheet.md").read_text()
    assert "Sequential data" in datasheet and "(may be missing)" in datasheet
    envelope = json.loads((bundle / "manifest.json").read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["schema"]["kind"] == "sequential"
    assert predicate["schema"]["sequence"]["max_events"] == 16


def test_dpar_berka_with_static_table_from_register_to_verify(seq_ws: tuple[Path, Path]) -> None:
    root, ws = seq_ws
    out = _json(ws, "synthesize", "bank", "--generator", "dpar", "--epsilon", "4", "--epochs", "2",
                "--device", "cpu", "--seed", "9", "--requester", "carol", "--rows", "120")
    run_id = out["run_id"]
    card = json.loads((ws / "runs" / run_id / "card.json").read_text())
    assert card["name"] == "dpar" and card["spend"]["epsilon"] <= 4.0
    budget = _json(ws, "budget", "bank")
    assert budget["spent_epsilon"] == pytest.approx(card["spend"]["epsilon"], rel=1e-9)
    bundle = _through_release(root, ws, run_id, "a")
    assert (bundle / "synthetic.csv").read_text().splitlines()[0].startswith("account_id,date,district_id,frequency")


def test_sequence_refusals_before_any_charge(seq_ws: tuple[Path, Path]) -> None:
    root, ws = seq_ws
    before = _json(ws, "budget", "pbc")["spent_epsilon"]
    # a tabular generator on a sequential source, and the reverse
    res = _run(ws, "synthesize", "pbc", "--generator", "mst", "--epsilon", "1")
    assert res.exit_code != 0 and "synthesizes tabular data but the source is sequential" in res.stderr
    assert "Traceback" not in res.output
    res = _run(ws, "synthesize", "pbc", "--generator", "dpmarkov", "--epsilon", "1", "--target", "stage")
    assert res.exit_code != 0 and "must be a static" in res.stderr
    res = _run(ws, "synthesize", "pbc", "--generator", "dpmarkov", "--epsilon", "1", "--epochs", "2")
    assert res.exit_code != 0 and "deep generators only" in res.stderr
    res = _run(ws, "synthesize", "pbc", "--generator", "dpar", "--epsilon", "1", "--markov-order", "2")
    assert res.exit_code != 0 and "dpmarkov generator only" in res.stderr
    assert _json(ws, "budget", "pbc")["spent_epsilon"] == before
    # a static table for a tabular schema; a kind that disagrees with the schema
    res = _run(ws, "register", "x", str(root / "pbcseq.csv"), "--schema", str(DATA / "adult_schema.yaml"),
               "--statics", str(root / "berka_accounts.csv"))
    assert res.exit_code != 0 and "sequential schemas only" in res.stderr
    res = _run(ws, "register", "x", str(root / "pbcseq.csv"), "--schema", str(DATA / "pbcseq_schema.yaml"),
               "--kind", "tabular")
    assert res.exit_code != 0 and "the schema says kind: sequential" in res.stderr
    # the same events under a new name would open a second budget for the same people
    res = _run(ws, "register", "pbc2", str(root / "pbcseq.csv"), "--schema", str(DATA / "pbcseq_schema.yaml"))
    assert res.exit_code != 0 and "already registered as source 'pbc'" in res.stderr


def test_unsorted_events_are_refused_at_registration(seq_ws: tuple[Path, Path]) -> None:
    root, ws = seq_ws
    lines = (DATA / "pbcseq.csv").read_text().splitlines()
    # swap patient 1's two visits
    lines[1], lines[2] = lines[2], lines[1]
    bad = root / "unsorted.csv"
    bad.write_text("\n".join(lines) + "\n")
    res = _run(ws, "register", "unsorted", str(bad), "--schema", str(DATA / "pbcseq_schema.yaml"))
    assert res.exit_code != 0 and "not in 'day' order" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1


def test_schema_infer_sequential_drafts_and_warns(tmp_path: Path) -> None:
    out = tmp_path / "draft.yaml"
    res = CliRunner().invoke(cli, ["schema", "infer", str(DATA / "pbcseq.csv"), "--kind", "sequential",
                                   "--entity", "id", "--order", "day", "--static", "sex", "--static", "age",
                                   "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["kind"] == "sequential" and info["max_events"] % 8 == 0
    assert "max_events" in res.stderr and "NOT public" in res.stderr
    draft = yaml.safe_load(out.read_text())
    assert draft["drafted_from_data"] is True and draft["sequence"]["static"] == ["sex", "age"]
    res = CliRunner().invoke(cli, ["schema", "infer", str(DATA / "pbcseq.csv"), "--kind", "sequential",
                                   "-o", str(out)])
    assert res.exit_code != 0 and "needs --entity and --order" in res.stderr
    res = CliRunner().invoke(cli, ["schema", "infer", str(DATA / "pbcseq.csv"), "--entity", "id", "-o", str(out)])
    assert res.exit_code != 0 and "need --kind sequential" in res.stderr
