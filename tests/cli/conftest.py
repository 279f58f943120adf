"""A workspace taken once through register -> synthesize -> audit, shared by the CLI tests."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"


@dataclass
class Env:
    root: Path
    ws: Path

    def run(self, *args: str, ws: Path | None = None) -> Result:
        return CliRunner().invoke(cli, ["--workspace", str(ws or self.ws), *args], catch_exceptions=False)

    def json(self, *args: str) -> dict:
        res = self.run(*args, "--json")
        assert res.exit_code == 0, res.output + res.stderr
        return json.loads(res.stdout)


    def as_admin(self, *args: str) -> Result:
        """A command signed by the workspace's admin, ``root`` (keys in ROOT/keys)."""
        return self.run(*args, "--admin", "root", "--admin-key", str(self.root / "keys" / "root.key"))


def _make_keys(env: Env, *names: str) -> dict[str, tuple[Path, Path]]:
    keys = {}
    for n in names:
        out = env.json("keys", "new", n, "--out", str(env.root / "keys"))
        keys[n] = (Path(out["private_key"]), Path(out["public_key"]))
        res = env.as_admin("steward", "add", n, "--public-key", out["public_key"])
        assert res.exit_code == 0, res.stderr
    return keys


def init_with_admin(env: Env, *init_args: str, requesters: tuple[str, ...] = ("carol",)) -> None:
    """``init`` with ``root`` as the first admin, who grants the requester role to ``requesters``."""
    assert env.run("keys", "new", "root", "--out", str(env.root / "keys")).exit_code == 0
    res = env.run("init", *init_args, "--admin", "root", "--admin-key", str(env.root / "keys" / "root.key"))
    assert res.exit_code == 0, res.stderr
    for name in requesters:
        res = env.as_admin("member", "add", name, "--role", "requester")
        assert res.exit_code == 0, res.stderr


@pytest.fixture(scope="session")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """One run of the health policy (two approvers, requester excluded), audited; copied per test."""
    root = tmp_path_factory.mktemp("audited")
    env = Env(root=root, ws=root / "ws")
    shutil.copy(DATA / "adult_2000.csv", root / "adult.csv")
    init_with_admin(env, "--policy", str(DATA / "test_policy.yaml"))
    assert env.run("register", "adult", str(root / "adult.csv"), "--schema", str(DATA / "adult_schema.yaml")).exit_code == 0
    out = env.json("synthesize", "adult", "--generator", "mst", "--epsilon", "1", "--seed", "3", "--requester", "carol")
    (root / "run_id").write_text(out["run_id"])
    res = env.run("audit", out["run_id"])
    (root / "audit_exit").write_text(str(res.exit_code))
    # which checks failed, so that a red CI run says why (the split seed is secret and random)
    doc = json.loads((env.ws / "runs" / out["run_id"] / "audit.json").read_text())
    failed = [f"{c['name']}={c['gated_value']} (threshold {c['threshold']})" for c in doc["gate"]["checks"] if not c["passed"]]
    (root / "audit_failed").write_text("; ".join(failed))
    _make_keys(env, "alice", "bob", "carol")
    return env


@pytest.fixture
def env(audited: Env, tmp_path: Path) -> Env:
    """A private copy of the audited workspace (tests may approve, release, tamper)."""
    shutil.copytree(audited.root, tmp_path / "copy")
    root = tmp_path / "copy"
    # the registered data path is absolute: point the copy's tests at the original file, unchanged
    return Env(root=root, ws=root / "ws")


@pytest.fixture
def run_id(env: Env) -> str:
    return (env.root / "run_id").read_text()


@pytest.fixture(scope="session")
def two_runs(audited: Env, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The audited workspace with a second audited run of the same source."""
    root = tmp_path_factory.mktemp("two_runs")
    shutil.copytree(audited.root, root, dirs_exist_ok=True)
    env = Env(root=root, ws=root / "ws")
    out = env.json("synthesize", "adult", "--generator", "mst", "--epsilon", "1", "--seed", "4", "--requester", "carol")
    assert env.run("audit", out["run_id"]).exit_code == 0
    (root / "run_id_b").write_text(out["run_id"])
    return env


@pytest.fixture
def env2(two_runs: Env, tmp_path: Path) -> Env:
    shutil.copytree(two_runs.root, tmp_path / "copy2")
    return Env(root=tmp_path / "copy2", ws=tmp_path / "copy2" / "ws")
