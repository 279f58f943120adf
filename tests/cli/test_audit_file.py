"""audit-file and export-train: vetting synthetic data made outside synthgate."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl


def test_copy_of_the_exported_training_split_is_a_dp_failure(env) -> None:
    out = env.root / "train.csv"
    info = env.json("export-train", "adult", "-o", str(out))
    assert out.is_file() and info["rows"] == pl.read_csv(out).height
    # a "vendor" that returns the training rows it was given, claiming epsilon 0.5
    res = env.run("audit-file", "adult", str(out), "--generator-spec", "name=vendor,epsilon=0.5,delta=1e-9", "--json")
    assert res.exit_code == 3
    assert "DP failure" in res.stderr and "domias_auc_dp_check" in res.stderr
    doc = json.loads(res.stdout)
    assert doc["dp_failure"] is True and doc["gate_passed"] is False
    failed = {c["name"] for c in doc["checks"] if not c["passed"]}
    assert {"domias_auc", "domias_auc_dp_check", "exact_match_train_minus_holdout"} <= failed
    audit = json.loads(open(doc["audit"]).read())
    assert audit["context"]["generator"] == "vendor" and audit["context"]["split"].startswith("external split")
    assert audit["gate"]["dp_failure"] is True
    # the retraining audits are named as not run, not silently skipped
    notes = {r["audit"]: r["notes"] for r in audit["results"]}
    assert "not run" in notes["one_run"][0] and "not run" in notes["shadow_game"][0]
    # its report: the claim is the outside party's, and nothing here can be approved
    page = env.run("report", doc["audit_id"]).stdout
    assert "Decision: FAIL (DP FAILURE)" in page and "Claimed by the outside party" in page
    assert "not applicable (no run to approve)" in page
    assert "A file audit: nothing here can be approved or released." not in page  # that is the audit-time copy's
    bound = (Path(doc["audit"]).parent / "report.html").read_text()
    assert "A file audit: nothing here can be approved or released." in bound
    assert "Steward's copy" in (Path(doc["audit"]).parent / "report-steward.html").read_text()
    assert json.loads(env.run("report", doc["audit_id"], "--format", "json").stdout) == audit


def test_export_is_stable_and_logged(env) -> None:
    a, b = env.root / "a.csv", env.root / "b.csv"
    env.json("export-train", "adult", "-o", str(a))
    env.json("export-train", "adult", "-o", str(b))
    # one external split per source version: the same rows both times
    assert a.read_bytes() == b.read_bytes()
    assert env.run("log", "verify").exit_code == 0


def test_a_runs_own_synthetic_data_passes_against_its_split(env, run_id: str) -> None:
    syn = env.ws / "runs" / run_id / "synthetic.csv"
    res = env.run("audit-file", "adult", str(syn), "--split-of", run_id, "--generator-spec", "epsilon=1,delta=1e-9",
                  "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["gate_passed"] is True and doc["dp_failure"] is False


def test_bad_input_is_one_line(env, run_id: str) -> None:
    syn = str(env.ws / "runs" / run_id / "synthetic.csv")
    cases = [
        (["audit-file", "adult", str(env.root / "missing.csv")], "no such file"),
        (["audit-file", "nosuch", syn], "unknown source"),
        (["audit-file", "adult", syn, "--generator-spec", "epsilon=abc"], "must be numbers"),
        (["audit-file", "adult", syn, "--generator-spec", "eps=1"], "expected name=..."),
        (["audit-file", "adult", syn, "--generator-spec", "epsilon=-1"], "epsilon must be > 0"),
        (["audit-file", "adult", syn, "--split-of", "run-000000000000"], "is not a run of source"),
    ]
    for args, needle in cases:
        res = env.run(*args)
        assert res.exit_code == 2, (args, res.stderr)
        assert needle in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_a_file_with_wrong_columns_is_refused(env) -> None:
    bad = env.root / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    res = env.run("audit-file", "adult", str(bad))
    assert res.exit_code == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
