"""Alembic migrations of the workspace database (SQLite here; PostgreSQL in tests/cli/test_postgres.py).

A workspace made before Alembic (its tables from ``Base.metadata.create_all``) is upgraded on open
without losing a row; a new one is made by the revisions and matches the models.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import tomllib
from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner, Result

from policies.loader import load_policy, policy_text
from privacy.ledger import Base, charge
from privacy.spend import PrivacySpend
from release.cli.main import cli
from release.database import MIGRATIONS, head_revision
from release.db import Steward, log_event, make_engine
from release.keys import generate_keypair, key_id, load_public_key, public_key_pem
from release.sources import caps_of, get_source, register, source_policy
from release.workspace import CONFIG_NAME, DB_NAME, Workspace, init_workspace, open_workspace

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def legacy_workspace(root: Path, *, drop: tuple[str, ...] = ()) -> Workspace:
    """A workspace as ``init`` made it before Alembic (``create_all``), with a source, charges, a
    steward and events; ``drop``: tables to remove, as in a workspace older than them."""
    policy = str(DATA / "test_policy.yaml")
    pol = load_policy(policy)
    root.mkdir()
    (root / "runs").mkdir()
    (root / "keys").mkdir(mode=0o700)
    generate_keypair(root / "keys", "release")
    (root / "keys" / "commitment.salt").write_bytes(secrets.token_bytes(32))
    (root / "policy.yaml").write_text(policy_text(policy))
    engine = make_engine(root / DB_NAME)
    Base.metadata.create_all(engine)  # the path before Alembic
    ws = Workspace(root=root, engine=engine)  # not opened: no migration runs
    with ws.transaction() as s:
        log_event(s, "workspace.init", policy=pol.name)
    (root / CONFIG_NAME).write_text(yaml.safe_dump({"synthgate_workspace": 1, "policy": pol.name}))
    register(ws, "adult", DATA / "adult_2000.csv", DATA / "adult_schema.yaml")
    with ws.transaction() as s:
        src = get_source(s, "adult")
        for i in range(3):
            charge(s, src, PrivacySpend(epsilon=0.5, delta=1e-9), caps_of(source_policy(src)),
                   run_id=f"run-earlier-{i}", mechanism="earlier release")
            log_event(s, "budget.charge", f"run-earlier-{i}", source="adult", epsilon=0.5)
    generate_keypair(root.parent, "alice")
    pub = load_public_key(root.parent / "alice.pub")
    with ws.transaction() as s:  # a steward as synthgate registered them before roles
        s.add(Steward(name="alice", public_key_pem=public_key_pem(pub), keyid=key_id(pub)))
        log_event(s, "steward.add", steward="alice", keyid=key_id(pub))
    engine.dispose()
    con = sqlite3.connect(root / DB_NAME)
    # what the models gained after Alembic came is made by later revisions, not create_all
    con.execute("drop table role_grants")
    con.execute("alter table runs drop column heartbeat_at")
    for table in drop:
        assert con.execute(f"select count(*) from {table}").fetchone() == (0,)
        con.execute(f"drop table {table}")
    con.commit()
    con.close()
    return ws


def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(db)
    tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table' order by name")]
    out = {t: con.execute(f"select * from {t} order by 1").fetchall() for t in tables}
    con.close()
    return out


def test_a_new_workspace_is_at_head_and_matches_the_models(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    with ws.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert yaml.safe_load((ws.root / CONFIG_NAME).read_text()) == {"synthgate_workspace": 1, "policy": "default"}


@pytest.mark.parametrize("drop", [(), ("version_files", "external_splits")], ids=["current", "older"])
def test_a_workspace_from_before_alembic_is_upgraded_without_losing_data(tmp_path: Path,
                                                                           drop: tuple[str, ...]) -> None:
    ws = legacy_workspace(tmp_path / "ws", drop=drop)
    db = ws.root / DB_NAME
    before = dump(db)
    assert "alembic_version" not in before and len(before["charges"]) == 3 and len(before["events"]) == 6

    w = ["--workspace", str(ws.root)]
    b = json.loads(run(*w, "budget", "adult", "--json").stdout)  # opens, hence migrates
    assert b["spent_epsilon"] == pytest.approx(1.5) and [c["run_id"] for c in b["charges"]] == [
        f"run-earlier-{i}" for i in range(3)]
    after = dump(db)
    assert after.pop("alembic_version") == [(head_revision(),)]
    for table in drop:
        assert after.pop(table) == []  # created, empty
    # revision 0002: the steward registered before roles holds the steward role, granted by nobody
    grants = after.pop("role_grants")
    assert [(g[1], g[2], g[3], g[6]) for g in grants] == [("alice", "steward", before["stewards"][0][2], None)]
    assert after == before  # every row of every table kept, byte for byte
    log = json.loads(run(*w, "log", "verify", "--json").stdout)
    assert log["valid"] and log["entries"] == 6

    # and it works on: a new version, one more event on the same chain
    res = run(*w, "register", "adult", str(DATA / "adult_2000.csv"), "--schema", str(DATA / "adult_schema.yaml"))
    assert res.exit_code == 0, res.stderr
    assert json.loads(run(*w, "log", "verify", "--json").stdout)["entries"] == 7
    assert dump(db)["alembic_version"] == [(head_revision(),)]


def test_a_table_missing_a_column_is_refused_and_left_alone(tmp_path: Path) -> None:
    ws = legacy_workspace(tmp_path / "ws")
    con = sqlite3.connect(ws.root / DB_NAME)
    con.execute("alter table charges drop column mechanism")
    con.commit()
    con.close()
    before = dump(ws.root / DB_NAME)
    res = run("--workspace", str(ws.root), "budget")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "table 'charges' lacks column(s) mechanism" in res.stderr
    assert dump(ws.root / DB_NAME) == before  # the upgrade's transaction was rolled back


def test_a_revision_from_a_newer_synthgate_is_refused(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    ws.engine.dispose()
    con = sqlite3.connect(ws.root / DB_NAME)
    con.execute("update alembic_version set version_num = '9999'")
    con.commit()
    con.close()
    res = run("--workspace", str(ws.root), "budget")
    assert res.exit_code == 2 and "schema revision 9999, which this synthgate does not know" in res.stderr


def test_open_is_idempotent(tmp_path: Path) -> None:
    root = init_workspace(tmp_path / "ws").root
    before = dump(root / DB_NAME)
    for _ in range(2):
        open_workspace(root).engine.dispose()
    assert dump(root / DB_NAME) == before


def test_the_migrations_ship_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["release"]
    files = [p.relative_to(MIGRATIONS.parent) for p in MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files
    # modules of the release.migrations package ship as code; the rest must match a package-data pattern
    shipped = [f for f in files if (f.parent == Path("migrations") and f.suffix == ".py")
               or any(f.match(p) for p in patterns)]
    assert sorted(shipped) == sorted(files)
