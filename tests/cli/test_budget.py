"""The budget: refused charges change nothing, crashes keep the charge (concurrency: test_concurrency.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from privacy.generators.tabular import registry
from privacy.ledger import charge
from privacy.spend import PrivacySpend
from release.cli.main import cli
from release.sources import caps_of, get_source, source_policy
from release.workspace import open_workspace

DATA = Path(__file__).parents[1] / "data"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copy(DATA / "adult_2000.csv", tmp_path / "adult.csv")
    assert run("--workspace", str(ws), "init", "--policy", str(DATA / "test_policy.yaml")).exit_code == 0
    res = run("--workspace", str(ws), "register", "adult", str(tmp_path / "adult.csv"), "--schema",
              str(DATA / "adult_schema.yaml"))
    assert res.exit_code == 0, res.stderr
    return ws


def budget(ws: Path) -> dict:
    return json.loads(run("--workspace", str(ws), "budget", "adult", "--json").stdout)


def test_spend_recorded_when_fitting_crashes(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom:
        def fit(self, *a: object, **k: object) -> None:
            raise RuntimeError("simulated crash inside the generator")

    monkeypatch.setattr(registry, "get_generator", lambda name, **o: Boom())
    monkeypatch.setattr("release.synthesize.get_generator", lambda name, **o: Boom())
    res = run("--workspace", str(ws), "synthesize", "adult", "--generator", "mst", "--epsilon", "1")
    assert res.exit_code == 1 and "simulated crash" in res.stderr and "budget stays charged" in res.stderr
    b = budget(ws)
    assert b["spent_epsilon"] == 1.0 and len(b["charges"]) == 1
    run_id = b["charges"][0]["run_id"]
    info = json.loads(run("--workspace", str(ws), "review", run_id, "--json").stdout)
    assert info["state"] == "failed" and "simulated crash" in info["error"]


def prefill(ws: Path, epsilon: float, delta: float = 1e-9) -> None:
    """Record earlier spending straight through the ledger (as past runs would have)."""
    w = open_workspace(ws)
    with w.transaction() as s:
        src = get_source(s, "adult")
        caps = caps_of(source_policy(src))
        left, i = epsilon, 0
        while left > 1e-12:  # in chunks within the per-release cap
            step = min(left, caps.per_release_epsilon)
            charge(s, src, PrivacySpend(epsilon=step, delta=delta), caps, run_id=f"run-earlier-{i}",
                   mechanism="earlier release")
            left, i = left - step, i + 1


def test_changed_data_is_refused_before_anything_is_charged(ws: Path) -> None:
    data = ws.parent / "adult.csv"
    data.write_text(data.read_text().replace("United-States", "Mexico", 1))
    res = run("--workspace", str(ws), "synthesize", "adult", "--generator", "mst", "--epsilon", "0.5")
    assert res.exit_code == 5 and "changed since it was registered" in res.stderr
    assert budget(ws)["charges"] == []
    data.unlink()
    res = run("--workspace", str(ws), "synthesize", "adult", "--generator", "mst", "--epsilon", "0.5")
    assert res.exit_code == 2 and "missing" in res.stderr
    assert budget(ws)["charges"] == []


def test_bad_generator_options_are_refused_before_the_charge(ws: Path) -> None:
    res = run("--workspace", str(ws), "synthesize", "adult", "--generator", "aim", "--epsilon", "0.5",
              "--max-rounds", "0")
    assert res.exit_code == 2 and "max_rounds" in res.stderr
    assert budget(ws)["charges"] == []


def test_charge_past_total_cap_changes_nothing(ws: Path) -> None:
    prefill(ws, 3.0)
    before = budget(ws)
    assert before["spent_epsilon"] == 3.0 and before["remaining_epsilon"] == 0.0
    res = run("--workspace", str(ws), "synthesize", "adult", "--generator", "mst", "--epsilon", "0.01")
    assert res.exit_code == 4 and "0 epsilon left of 3" in res.stderr
    assert budget(ws) == before


def test_a_new_version_shares_the_account(ws: Path) -> None:
    prefill(ws, 1.0)
    data = ws.parent / "adult.csv"
    text = data.read_text()
    data.write_text(text + text.splitlines()[-1] + "\n")  # a new version: one more row
    res = run("--workspace", str(ws), "register", "adult", str(data), "--schema", str(DATA / "adult_schema.yaml"),
              "--json")
    out = json.loads(res.stdout)
    assert out["version"] == 2 and out["new_account"] is False
    b = budget(ws)
    assert b["spent_epsilon"] == 1.0 and b["remaining_epsilon"] == 2.0
