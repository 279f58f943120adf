"""The whole release path through the CLI on 2,000 real Adult rows, MST at epsilon 1."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from audits.audit_schema import validate_audit_document

if TYPE_CHECKING:  # the fixture type lives in conftest.py
    from conftest import Env


def test_audit_passed_and_review_shows_every_check(env: Env, run_id: str) -> None:
    failed = (env.root / "audit_failed").read_text()
    assert (env.root / "audit_exit").read_text() == "0", f"the audit of the shared run failed its gate: {failed}"
    info = env.json("review", run_id)
    assert info["state"] == "awaiting_approval"
    assert info["spend"] == {"epsilon": 1.0, "delta": 1e-9}
    names = {c["name"] for c in info["gate_checks"]}
    assert {"dcr_share", "quality_score", "diagnostic_score", "utility_auc_ratio", "linkability"} <= names
    assert all(c["passed"] for c in info["gate_checks"])
    # the membership attacks and the DP-claim checks of the run's own generator (fast profile)
    assert {"membership_profile", "domias_auc", "domias_auc_dp_check", "one_run_epsilon_lb"} <= names
    kinds = {c["name"]: c["kind"] for c in info["gate_checks"]}
    assert kinds["one_run_epsilon_lb"] == "dp_claim" and kinds["domias_auc"] == "threshold"
    attacks = {(a["audit"], a["name"]) for a in info["attacks"]}
    assert {("domias", "domias_tpr_at_fpr_1pct"), ("one_run", "one_run_epsilon_lb"), ("membership", "dcr_share")} <= attacks
    # the fast profile has no game: reported as not run, not left out silently
    assert any(a["audit"] == "shadow_game" and "not run" in a["flags"][0] for a in info["attacks"])
    human = env.run("review", run_id)
    assert human.exit_code == 0 and "dcr_share" in human.stdout and "domias_tpr_at_fpr_1pct" in human.stdout


def test_budget_json_keys(env: Env, run_id: str) -> None:
    b = env.json("budget", "adult")
    assert b["spent_epsilon"] == 1.0 and b["spent_delta"] == 1e-9
    assert b["remaining_epsilon"] == 2.0
    assert b["charges"][0]["run_id"] == run_id


def test_approve_release_verify(env: Env, run_id: str) -> None:
    keys = env.root / "keys"
    # the requester may not approve under the health policy
    res = env.run("approve", run_id, "--steward", "carol", "--key", str(keys / "carol.key"))
    assert res.exit_code == 3 and "forbids the requester" in res.stderr
    # not yet approved: no release
    out = env.json("approve", run_id, "--steward", "alice", "--key", str(keys / "alice.key"), "--comment", "ok")
    assert out["state"] == "awaiting_approval" and out["approvals"] == 1
    res = env.run("release", run_id, "--out", str(env.root / "early"))
    assert res.exit_code == 3 and not (env.root / "early").exists()
    # the same steward twice does not count twice
    res = env.run("approve", run_id, "--steward", "alice", "--key", str(keys / "alice.key"))
    assert res.exit_code == 3 and "already decided" in res.stderr
    out = env.json("approve", run_id, "--steward", "bob", "--key", str(keys / "bob.key"))
    assert out["state"] == "approved"
    bundle = env.root / "bundle"
    out = env.json("release", run_id, "--out", str(bundle), "--tar")
    files = sorted(p.name for p in bundle.iterdir())
    assert files == sorted(["synthetic.parquet", "synthetic.csv", "report.html", "audit.json",
                            "privacy-statement.md", "datasheet.md", "manifest.json"])
    pub = env.ws / "keys" / "release.pub"
    for target in (bundle, Path(str(bundle) + ".tar.gz")):
        v = env.json("verify", str(target), "--trust", str(pub))
        assert v["valid"] and v["run_id"] == run_id and sorted(v["approvals"]) == ["alice", "bob"]
    # a key the reader does not trust
    res = env.run("verify", str(bundle), "--trust", str(keys / "alice.pub"))
    assert res.exit_code == 5
    statement = (bundle / "privacy-statement.md").read_text()
    assert "(1, 1e-09)-differential privacy" in statement and "not** differentially private" in statement
    env_log = env.json("log", "verify")
    assert env_log["valid"] and env_log["entries"] > 8
    with tarfile.open(str(bundle) + ".tar.gz") as tf:
        assert all(not m.name.startswith("/") for m in tf.getmembers())


def test_reject_blocks_release(env: Env, run_id: str) -> None:
    keys = env.root / "keys"
    out = env.json("reject", run_id, "--steward", "bob", "--key", str(keys / "bob.key"), "--reason", "columns too coarse")
    assert out["state"] == "rejected"
    res = env.run("approve", run_id, "--steward", "alice", "--key", str(keys / "alice.key"))
    assert res.exit_code == 3
    res = env.run("release", run_id, "--out", str(env.root / "b"))
    assert res.exit_code == 3 and "rejected" in res.stderr


def test_audit_json_and_report_written(env: Env, run_id: str) -> None:
    d = env.ws / "runs" / run_id
    doc = json.loads((d / "audit.json").read_text())
    assert doc["gate"]["passed"] is True
    validate_audit_document(doc)
    html = (d / "report.html").read_text()
    assert "<script src" not in html and run_id in html
    # the released view and the steward's copy; the figures that need the real data stay beside them
    assert "real (training split)" not in html
    assert "Steward's copy: do not release." in (d / "report-steward.html").read_text()
    assert json.loads((d / "figures.json").read_text())["synthgate_figures"] == 1


def test_target_is_fixed_once_chosen(env: Env, run_id: str) -> None:
    res = env.run("audit", run_id, "--target", "sex")
    assert res.exit_code == 2 and "cannot change" in res.stderr


def test_no_decision_while_a_run_is_being_audited(env: Env, run_id: str) -> None:
    import sqlite3

    db = sqlite3.connect(env.ws / "synthgate.db")
    db.execute("update runs set state = 'auditing' where id = ?", (run_id,))
    db.commit()
    db.close()
    res = env.run("approve", run_id, "--steward", "alice", "--key", str(env.root / "keys" / "alice.key"))
    assert res.exit_code == 3 and "auditing" in res.stderr


@pytest.mark.slow  # 100 s of refits on 2 cores; the worker path itself is tested in tests/audits/test_retraining_audits.py
def test_thorough_audit_refits_the_runs_generator_in_workers(env: Env, run_id: str) -> None:
    # the whole retraining path from the command line: the run's own generator (MST, its options
    # and spend) pickled into worker processes, the game's figures in audit.json and review
    res = env.run("audit", run_id, "--profile", "thorough", "--json")
    assert res.exit_code in (0, 3), res.stderr  # 6 refits cannot make the game's gate meaningful
    doc = json.loads((env.ws / "runs" / run_id / "audit.json").read_text())
    assert doc["context"]["membership_profile"] == "thorough"
    game = next(r for r in doc["results"] if r["audit"] == "shadow_game")
    names = {m["name"] for m in game["metrics"]}
    assert {"game_auc", "game_epsilon_lb", "game_auc_dp_check", "game_worst_target_auc"} <= names
    lb = next(m for m in game["metrics"] if m["name"] == "game_epsilon_lb")
    # MST at eps 1 is not refuted, whatever the noise of so few fits
    assert lb["passed"] is True and lb["value"] <= 1.0
    # and the report says how little so few fits can show
    assert any("low resolution" in f for f in lb["flags"])
    per_target = next(m for m in game["metrics"] if m["name"] == "game_worst_target_auc")["details"]["per_target"]
    assert len(per_target) == 6 and sum(t["kind"] == "isolated" for t in per_target) == 2
