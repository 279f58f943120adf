"""The whole release path through the CLI with a deep generator (dpctgan, DP-SGD on the CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from workspace_roles import add_steward, init_with_admin

from privacy.generators.tabular.deep.accounting import order_epsilon, rdp_at, rdp_budget
from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"


def _run(ws: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def _json(ws: Path, *args: str) -> dict:
    res = _run(ws, *args, "--json")
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def deep_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deep")
    ws = root / "ws"
    shutil.copy(DATA / "adult_2000.csv", root / "adult.csv")
    # the path, the accounting and the gate's mechanics are under test here, not a small DP-GAN's
    # fidelity: dpctgan at epsilon 1 on 1,300 training rows and 4 epochs scores ~0.5 in sdmetrics
    # quality, at the shared test policy's floor, so this copy of the policy asks for 0.3
    policy = yaml.safe_load((DATA / "test_policy.yaml").read_text())
    policy["thresholds"]["quality_min"] = 0.3
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    init_with_admin(ws, root / "admin-keys", "--policy", str(root / "policy.yaml"))
    assert _run(ws, "register", "adult", str(root / "adult.csv"), "--schema", str(DATA / "adult_schema.yaml")).exit_code == 0
    return root, ws


def test_dpctgan_synthesize_audit_approve_release_verify(deep_ws: tuple[Path, Path]) -> None:
    root, ws = deep_ws
    out = _json(ws, "synthesize", "adult", "--generator", "dpctgan", "--epsilon", "1", "--epochs", "4",
                "--batch-size", "200", "--device", "cpu", "--seed", "5", "--requester", "carol",
                # a fixed sample size: the default (the DP row estimate from a 5% share of epsilon 1)
                # ranged down to ~800 rows, and one CI run's audit then failed (see the issue 5 note)
                "--rows", "1300")
    run_id = out["run_id"]
    card = json.loads((ws / "runs" / run_id / "card.json").read_text())
    p = card["parameters"]
    # the ledger holds the guarantee: the RDP budget at the fixed order, converted at that order,
    # recomputed here from the card; the run's RDP at that order is within the budget (was: the
    # optimised-order epsilon of the run's history, which is not a guarantee when the plan depends on
    # the noisy count)
    history = [tuple(h) for h in p["preprocess_history"]] + [(p["noise_multiplier"], p["sample_rate"], p["steps"])]
    budget = rdp_budget(1.0, p["delta"], p["rdp_order"])
    eps = order_epsilon(budget, p["rdp_order"], p["delta"])
    assert eps == pytest.approx(card["spend"]["epsilon"], rel=1e-9)
    assert rdp_at(history, p["rdp_order"]) <= budget
    assert 1.0 - 1e-9 <= eps <= 1.0
    budget = _json(ws, "budget", "adult")
    assert budget["spent_epsilon"] == pytest.approx(eps, rel=1e-9)
    info = _json(ws, "review", run_id)
    assert info["spend"]["epsilon"] == pytest.approx(eps, rel=1e-9)
    # the reservation and, where the accountant reported less, its settlement
    rows = [c for c in budget["charges"] if c["run_id"] == run_id]
    assert rows[0]["epsilon"] == 1.0
    assert sum(c["epsilon"] for c in rows) == pytest.approx(eps, rel=1e-9)

    res = _run(ws, "audit", run_id)
    assert (ws / "runs" / run_id / "audit.json").exists(), res.output + res.stderr
    doc = json.loads((ws / "runs" / run_id / "audit.json").read_text())
    failed = [f"{c['name']}={c['gated_value']}" for c in doc["gate"]["checks"] if not c["passed"]]
    assert res.exit_code == 0, failed
    keys = root / "keys"
    for name in ("alice", "bob"):
        k = _json(ws, "keys", "new", name, "--out", str(keys))
        add_steward(ws, root / "admin-keys", name, k["public_key"])
        _json(ws, "approve", run_id, "--steward", name, "--key", str(keys / f"{name}.key"))
    bundle = root / "bundle"
    _json(ws, "release", run_id, "--out", str(bundle))
    v = _json(ws, "verify", str(bundle), "--trust", str(ws / "keys" / "release.pub"))
    assert v["valid"] and v["run_id"] == run_id
    statement = (bundle / "privacy-statement.md").read_text()
    assert "dpctgan" in statement and "RDPAccountant" in statement


def test_deep_options_are_refused_for_marginal_generators(deep_ws: tuple[Path, Path]) -> None:
    _root, ws = deep_ws
    res = _run(ws, "synthesize", "adult", "--generator", "mst", "--epsilon", "1", "--epochs", "3")
    assert res.exit_code != 0 and "deep generators only" in res.stderr
    before = _json(ws, "budget", "adult")["spent_epsilon"]
    res = _run(ws, "synthesize", "adult", "--generator", "dpctgan", "--epsilon", "1", "--batch-size", "1")
    assert res.exit_code != 0 and "batch size" in res.stderr and "Traceback" not in res.output
    # refused before the charge
    assert _json(ws, "budget", "adult")["spent_epsilon"] == before


def test_a_generator_reporting_more_than_was_charged_is_refused() -> None:
    from privacy.errors import SynthgateError
    from privacy.spend import PrivacySpend
    from release.synthesize import check_within

    charged = PrivacySpend(epsilon=1.0, delta=1e-9)
    check_within(charged, PrivacySpend(epsilon=0.98, delta=1e-9))
    check_within(charged, charged)
    with pytest.raises(SynthgateError, match="more than the 1, 1e-09 charged"):
        check_within(charged, PrivacySpend(epsilon=1.01, delta=1e-9))
    with pytest.raises(SynthgateError):
        check_within(charged, PrivacySpend(epsilon=1.0, delta=2e-9))
