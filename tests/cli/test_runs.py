"""`synthgate runs`: every run with its state, source, kind, generator, epsilon and gate decision."""

from __future__ import annotations

import json

from click.testing import CliRunner

from release.cli.main import cli


def test_runs_lists_the_audited_run(env, run_id) -> None:
    rows = json.loads(env.run("runs", "--json").stdout)
    assert [r["run_id"] for r in rows] == [run_id]
    row = rows[0]
    audit_exit = (env.root / "audit_exit").read_text()
    # the state and the decision agree with the audit's outcome
    if audit_exit == "0":
        assert row["state"] == "awaiting_approval" and row["decision"] == "passed"
    else:
        assert row["state"] == "gate_failed" and row["decision"] == "failed"
    assert row["source"] == "adult" and row["kind"] == "tabular" and row["generator"] == "mst"
    assert row["epsilon"] <= 1.0 and row["approvals"] == 0 and row["requester"] == "carol"
    assert row["error"] is None  # why a run failed: none for an audited one (tests/cli/test_heartbeat.py)


def test_runs_filters_and_refuses_unknown_sources(env2) -> None:
    rows = json.loads(env2.run("runs", "--json").stdout)
    assert len(rows) == 2 and rows[0]["created_at"] >= rows[1]["created_at"]
    assert len(json.loads(env2.run("runs", "--source", "adult", "--json").stdout)) == 2
    assert json.loads(env2.run("runs", "--state", "released", "--json").stdout) == []
    res = env2.run("runs", "--source", "nope")
    assert res.exit_code == 2 and "unknown source 'nope'" in res.stderr and "Traceback" not in res.output
    res = env2.run("runs", "--state", "sleeping")
    assert res.exit_code == 2


def test_runs_human_output_survives_no_color(env, run_id) -> None:
    res = CliRunner(env={"NO_COLOR": "1"}).invoke(cli, ["--workspace", str(env.ws), "runs"])
    assert res.exit_code == 0, res.output
    assert run_id in res.stdout and ("PASS" in res.stdout or "FAIL" in res.stdout)
    assert "\x1b[" not in res.stdout  # no colour codes in a non-terminal
