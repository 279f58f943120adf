"""Trust through the CLI: tampered bundles, forged, misdirected and replayed approvals."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from privacy.errors import IntegrityError
from release.approval_sig import sign_decision
from release.approvals import record_decision
from release.keys import load_private_key
from release.workspace import open_workspace

if TYPE_CHECKING:  # the fixture type lives in conftest.py
    from conftest import Env


def _approve_both(env: "Env", run_id: str) -> None:
    for name in ("alice", "bob"):
        res = env.run("approve", run_id, "--steward", name, "--key", str(env.root / "keys" / f"{name}.key"))
        assert res.exit_code == 0, res.stderr


@pytest.fixture
def released(env: "Env", run_id: str) -> Path:
    _approve_both(env, run_id)
    bundle = env.root / "bundle"
    assert env.run("release", run_id, "--out", str(bundle)).exit_code == 0
    return bundle


def _verify(env: "Env", bundle: Path):  # type: ignore[no-untyped-def]
    return env.run("verify", str(bundle), "--trust", str(env.ws / "keys" / "release.pub"))


def test_every_one_byte_change_is_caught(env: "Env", released: Path) -> None:
    assert _verify(env, released).exit_code == 0
    for f in sorted(released.iterdir()):
        copy = env.root / f"tampered-{f.name}"
        shutil.copytree(released, copy)
        target = copy / f.name
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        res = _verify(env, copy)
        assert res.exit_code == 5, f"changing a byte of {f.name} went unnoticed"
        assert len(res.stderr.strip().splitlines()) == 1


def test_added_or_removed_file_is_caught(env: "Env", released: Path) -> None:
    extra = env.root / "extra"
    shutil.copytree(released, extra)
    (extra / "notes.txt").write_text("hello")
    assert _verify(env, extra).exit_code == 5
    missing = env.root / "missing"
    shutil.copytree(released, missing)
    (missing / "datasheet.md").unlink()
    assert _verify(env, missing).exit_code == 5


def test_gate_failed_run_cannot_be_approved(env: "Env", run_id: str) -> None:
    # make the source's policy demand an impossible quality and audit again
    db = sqlite3.connect(env.ws / "synthgate.db")
    (policy_json,) = db.execute("select policy_json from sources").fetchone()
    pol = json.loads(policy_json)
    pol["thresholds"]["quality_min"] = 0.999
    db.execute("update sources set policy_json = ?", (json.dumps(pol),))
    db.commit()
    db.close()
    res = env.run("audit", run_id)
    assert res.exit_code == 3 and "quality_score" in res.stderr
    res = env.run("approve", run_id, "--steward", "alice", "--key", str(env.root / "keys" / "alice.key"))
    assert res.exit_code == 3 and "gate failed" in res.stderr


def test_approval_with_an_unregistered_key_is_refused(env: "Env", run_id: str) -> None:
    out = env.json("keys", "new", "mallory", "--out", str(env.root / "keys"))
    res = env.run("approve", run_id, "--steward", "alice", "--key", out["private_key"])
    assert res.exit_code == 5 and "not signed by the key registered for steward 'alice'" in res.stderr
    res = env.run("approve", run_id, "--steward", "mallory", "--key", out["private_key"])
    assert res.exit_code == 2 and "not registered" in res.stderr
    assert env.json("review", run_id)["approvals"] == []


def test_approval_copied_from_another_run_is_refused(env2: "Env") -> None:
    run_a = (env2.root / "run_id").read_text()
    run_b = (env2.root / "run_id_b").read_text()
    ws = open_workspace(env2.ws)
    digest_a = env2.json("review", run_a)["statement_digest"]
    record = sign_decision(load_private_key(env2.root / "keys" / "alice.key"), run_id=run_a,
                           statement_digest=digest_a, decision="approve", steward="alice", comment="")
    # pointed at run B, the signature no longer covers it
    with pytest.raises(IntegrityError, match="not signed by the key registered"):
        record_decision(ws, {**record, "run_id": run_b})
    # written straight into run B's approvals in the database, it is caught before release
    assert env2.run("approve", run_a, "--steward", "alice", "--key", str(env2.root / "keys" / "alice.key")).exit_code == 0
    db = sqlite3.connect(env2.ws / "synthgate.db")
    (rec_json,) = db.execute("select record_json from approvals where run_id = ?", (run_a,)).fetchone()
    db.execute("insert into approvals (run_id, steward, decision, record_json, created_at) values (?, 'alice', 'approve', ?, '2026-01-01 00:00:00')", (run_b, rec_json))
    db.commit()
    db.close()
    res = env2.run("approve", run_b, "--steward", "bob", "--key", str(env2.root / "keys" / "bob.key"))
    # the forged row signs run A's statement, so it does not count towards run B's two approvals
    assert res.exit_code == 0 and json.loads(env2.run("review", run_b, "--json").stdout)["state"] == "awaiting_approval"
    assert env2.run("release", run_b, "--out", str(env2.root / "forged")).exit_code == 3
    # even with the state forced too, release re-checks every stored approval
    db = sqlite3.connect(env2.ws / "synthgate.db")
    db.execute("update runs set state = 'approved' where id = ?", (run_b,))
    db.commit()
    db.close()
    res = env2.run("release", run_b, "--out", str(env2.root / "forged"))
    assert res.exit_code == 5 and "another run" in res.stderr
    assert not (env2.root / "forged").exists()


def test_swapped_synthetic_data_is_caught(env2: "Env") -> None:
    run_a = (env2.root / "run_id").read_text()
    run_b = (env2.root / "run_id_b").read_text()
    _approve_both(env2, run_a)
    bundle = env2.root / "bundle"
    assert env2.run("release", run_a, "--out", str(bundle)).exit_code == 0
    shutil.copy(env2.ws / "runs" / run_b / "synthetic.parquet", bundle / "synthetic.parquet")
    res = _verify(env2, bundle)
    assert res.exit_code == 5 and "synthetic.parquet" in res.stderr


def test_pinned_steward_keys(env: "Env", released: Path) -> None:
    keys = env.root / "keys"
    pub = str(env.ws / "keys" / "release.pub")
    ok = env.run("verify", str(released), "--trust", pub, "--trust-steward", str(keys / "alice.pub"),
                 "--trust-steward", str(keys / "bob.pub"), "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["stewards_pinned"] is True
    # a reader who trusts only alice does not accept bob's approval as the second one
    res = env.run("verify", str(released), "--trust", pub, "--trust-steward", str(keys / "alice.pub"))
    assert res.exit_code == 5 and "1 distinct pinned steward approval" in res.stderr


def test_a_copy_of_a_source_under_another_name_is_refused(env: "Env") -> None:
    data = sqlite3.connect(env.ws / "synthgate.db").execute("select path from dataset_versions").fetchone()[0]
    res = env.run("register", "adult-copy", data, "--schema", str(Path(__file__).parents[1] / "data" / "adult_schema.yaml"))
    assert res.exit_code == 2 and "already registered as source 'adult'" in res.stderr


def test_released_bundle_carries_a_commitment_not_the_raw_hash(env: "Env", released: Path) -> None:
    fp = sqlite3.connect(env.ws / "synthgate.db").execute("select fingerprint from dataset_versions").fetchone()[0]
    for f in released.iterdir():
        assert fp not in f.read_text(errors="ignore"), f.name
    manifest = (released / "manifest.json").read_text()
    assert "source_commitment" not in manifest or fp not in manifest
