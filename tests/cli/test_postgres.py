"""A team workspace on PostgreSQL: init --database, the whole path, and one-line refusals.

The tests that need a server read its URL from ``SYNTHGATE_TEST_POSTGRES_URL`` (``scripts/pg_ci.sh
start`` prints it; ``.ci/run`` sets it) and skip without it, unless ``SYNTHGATE_REQUIRE_POSTGRES=1``,
where a missing server fails them. Each test gets a database of its own, dropped after.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from release.cli.main import cli
from release.database import head_revision

DATA = Path(__file__).parents[1] / "data"
PG_ENV = "SYNTHGATE_TEST_POSTGRES_URL"
REQUIRE_ENV = "SYNTHGATE_REQUIRE_POSTGRES"

SMALL_SCHEMA = """\
kind: tabular
name: small
target: income
columns:
  sex: {type: categorical, categories: [Female, Male]}
  race: {type: categorical, categories: [White, Asian-Pac-Islander, Amer-Indian-Eskimo, Other, Black]}
  relationship: {type: categorical, categories: [Wife, Own-child, Husband, Not-in-family, Other-relative, Unmarried]}
  income: {type: categorical, categories: ["<=50K", ">50K"]}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(res: Result, code: int, match: str) -> None:
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("synthgate: error:"), res.stderr
    assert "Traceback" not in res.stderr
    assert match in lines[0], lines[0]


def small_source(folder: Path) -> tuple[Path, Path]:
    """200 rows and four categorical columns of the Adult sample: MST fits it in seconds."""
    data, schema = folder / "small.csv", folder / "small.yaml"
    cols = ["sex", "race", "relationship", "income"]
    pl.read_csv(DATA / "adult_2000.csv").head(200).select(cols).write_csv(data)
    schema.write_text(SMALL_SCHEMA)
    return data, schema


def loose_policy(folder: Path) -> Path:
    """The test policy with every audit threshold out of reach (the DP-claim checks stay): on 130
    training rows of four small categorical columns the audits' figures are mostly noise, and these
    tests are about storage, not the audits."""
    pol = yaml.safe_load((DATA / "test_policy.yaml").read_text())
    for key in pol["thresholds"]:
        if key.endswith("_max") or key == "exact_match_margin":
            pol["thresholds"][key] = 1.0
        elif key.endswith("_min") and key != "anonymeter_min_queries":
            pol["thresholds"][key] = 0.0
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(pol, sort_keys=False))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {PG_ENV} is not set (start one with scripts/pg_ci.sh start)")
        pytest.skip(f"no PostgreSQL server ({PG_ENV} unset)")
    return url


def admin_engine(url: str, database: str | None = None):  # type: ignore[no-untyped-def]
    u = make_url(url).set(drivername="postgresql+psycopg")
    if database is not None:
        u = u.set(database=database)
    return create_engine(u, isolation_level="AUTOCOMMIT")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty database on the test server: its URL (no password), dropped after the test."""
    base = server_url()
    name = "synthgate_test_" + secrets.token_hex(6)
    admin = admin_engine(base)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the variable is set, so the server must be there
        admin.dispose()
        pytest.fail(f"cannot create a test database on {base}: {exc}")
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_scalar(url: str, sql: str) -> object:
    eng = admin_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        eng.dispose()


# -- refusals that need no server ------------------------------------------------------------------


@pytest.mark.parametrize("url, match", [
    ("postgresql://alice:secret@127.0.0.1/sg", "holds a password"),
    ("postgresql://alice@127.0.0.1/sg?password=secret", "holds a password"),
    ("mysql://alice@127.0.0.1/sg", "is not supported"),
    ("sqlite:///x.db", "always WORKSPACE/synthgate.db"),
    ("postgresql://alice@127.0.0.1:notaport/sg", "is not a database URL"),
    ("not a url", "is not a database URL"),
    ("postgresql://alice@127.0.0.1", "names no database"),
    ("postgresql://alice@127.0.0.1:{closed}/sg", "cannot use the workspace database"),
], ids=["password", "password-query", "mysql", "sqlite-url", "bad-port", "garbage", "no-database", "unreachable"])
def test_bad_database_is_one_line_and_writes_nothing(tmp_path: Path, url: str, match: str) -> None:
    ws = tmp_path / "ws"
    res = run("--workspace", str(ws), "init", "--database", url.format(closed=closed_port()))
    one_line_error(res, 2, match)
    assert "secret" not in res.stderr
    assert not ws.exists()


def test_password_env_needs_a_name_and_a_postgres_url(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    one_line_error(run("--workspace", str(ws), "init", "--database-password-env", "PW"), 2, "needs a PostgreSQL")
    one_line_error(run("--workspace", str(ws), "init", "--database", "postgresql://a@127.0.0.1/x",
                       "--database-password-env", "not a name"), 2, "not an environment variable name")
    assert not ws.exists()


# -- on a server -----------------------------------------------------------------------------------


def test_whole_path_on_postgres(tmp_path: Path, pg_url: str) -> None:
    ws = tmp_path / "ws"
    data, schema = small_source(tmp_path)
    w = ("--workspace", str(ws))
    keys = tmp_path / "keys"
    assert run("keys", "new", "root", "--out", str(keys)).exit_code == 0
    admin = ("--admin", "root", "--admin-key", str(keys / "root.key"))
    out = json.loads(run(*w, "init", "--database", pg_url, "--policy", str(loose_policy(tmp_path)), *admin,
                         "--json").stdout)
    assert out["database"] == pg_url
    # the folder names the database and holds the keys; the tables are on the server
    assert yaml.safe_load((ws / "workspace.yaml").read_text())["database"] == {"url": pg_url}
    assert not (ws / "synthgate.db").exists() and (ws / "keys" / "release.key").exists()
    assert pg_scalar(pg_url, "select version_num from alembic_version") == head_revision()
    assert run(*w, "member", "add", "carol", "--role", "requester", *admin).exit_code == 0

    assert run(*w, "register", "small", str(data), "--schema", str(schema)).exit_code == 0
    # a seed past 32 bits (PostgreSQL's INTEGER) and the secret 62-bit split seed
    res = run(*w, "synthesize", "small", "--generator", "mst", "--epsilon", "1", "--rows", "100",
              "--seed", str(2**40), "--requester", "carol", "--json")
    assert res.exit_code == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    res = run(*w, "audit", run_id)
    assert res.exit_code == 0, res.stdout[-3000:] + res.stderr
    for name in ("alice", "bob"):
        pub = json.loads(run("keys", "new", name, "--out", str(keys), "--json").stdout)["public_key"]
        assert run(*w, "steward", "add", name, "--public-key", pub, *admin).exit_code == 0
        res = run(*w, "approve", run_id, "--steward", name, "--key", str(keys / f"{name}.key"))
        assert res.exit_code == 0, res.stderr
    bundle = tmp_path / "bundle"
    assert run(*w, "release", run_id, "--out", str(bundle), "--tar").exit_code == 0
    v = json.loads(run("verify", f"{bundle}.tar.gz", "--trust", str(ws / "keys" / "release.pub"), "--json").stdout)
    assert v["valid"] and v["run_id"] == run_id
    log = json.loads(run(*w, "log", "verify", "--bundle", f"{bundle}.tar.gz", "--json").stdout)
    assert log["valid"] and log["entries_after_head"] == 1 and log["admin_actions"] == 4
    # roles on the server too: a revocation after the release is reported, the bundle stays valid
    res = run(*w, "steward", "revoke", "bob", "--reason", "left", *admin)
    assert res.exit_code == 0, res.stderr
    log = json.loads(run(*w, "log", "verify", "--bundle", f"{bundle}.tar.gz", "--json").stdout)
    assert [r["steward"] for r in log["revoked_after_release"]] == ["bob"] and log["admin_actions"] == 5
    assert pg_scalar(pg_url, "select count(*) from role_grants where revoked_at is not null") == 1
    b = json.loads(run(*w, "budget", "small", "--json").stdout)
    assert b["spent_epsilon"] == pytest.approx(1.0) and len(b["charges"]) == 1
    assert pg_scalar(pg_url, f"select seed from runs where id = '{run_id}'") == 2**40
    assert pg_scalar(pg_url, "select count(*) from events") == log["entries"]


def test_schema_on_postgres_matches_the_models(tmp_path: Path, pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from release.db import Base

    assert run("--workspace", str(tmp_path / "ws"), "init", "--database", pg_url).exit_code == 0
    eng = admin_engine(pg_url)
    try:
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        eng.dispose()
    assert diff == []


def test_a_used_database_is_refused(tmp_path: Path, pg_url: str) -> None:
    assert run("--workspace", str(tmp_path / "a"), "init", "--database", pg_url).exit_code == 0
    res = run("--workspace", str(tmp_path / "b"), "init", "--database", pg_url)
    one_line_error(res, 2, "already holds a synthgate workspace")
    assert not (tmp_path / "b").exists()
    one_line_error(run("--workspace", str(tmp_path / "a"), "init", "--database", pg_url), 2, "already exists")


def test_no_such_database_is_one_line(tmp_path: Path, pg_url: str) -> None:
    url = str(make_url(pg_url).set(database=make_url(pg_url).database + "_missing"))
    one_line_error(run("--workspace", str(tmp_path / "ws"), "init", "--database", url), 2, "does not exist")
    assert not (tmp_path / "ws").exists()


def test_an_unreachable_server_later_is_one_line(tmp_path: Path, pg_url: str) -> None:
    ws = tmp_path / "ws"
    assert run("--workspace", str(ws), "init", "--database", pg_url).exit_code == 0
    cfg = yaml.safe_load((ws / "workspace.yaml").read_text())
    cfg["database"]["url"] = str(make_url(pg_url).set(port=closed_port()))
    (ws / "workspace.yaml").write_text(yaml.safe_dump(cfg))
    one_line_error(run("--workspace", str(ws), "budget"), 2, "cannot use the workspace database")


def test_the_account_row_lock_serialises_two_charges(tmp_path: Path, pg_url: str) -> None:
    """Two plain sessions (not the workspace's transactions, so only the ledger's own row lock is
    in play): the second charge waits for the first to commit, then sees it and is refused."""
    from sqlalchemy.orm import Session

    from privacy.errors import BudgetError
    from privacy.ledger import charge
    from privacy.spend import PrivacySpend
    from release.sources import caps_of, get_source, source_policy
    from release.workspace import open_workspace

    ws = tmp_path / "ws"
    data, schema = small_source(tmp_path)
    assert run("--workspace", str(ws), "init", "--database", pg_url, "--policy", str(loose_policy(tmp_path))
               ).exit_code == 0
    assert run("--workspace", str(ws), "register", "small", str(data), "--schema", str(schema)).exit_code == 0
    engine = open_workspace(ws).engine

    def charge_one(s: Session, run_id: str) -> None:
        src = get_source(s, "small")
        charge(s, src, PrivacySpend(epsilon=1.0, delta=1e-9), caps_of(source_policy(src)), run_id=run_id,
               mechanism="test")

    for i in range(2):  # 2 of the cap's 3 spent
        with Session(engine) as s, s.begin():
            charge_one(s, f"run-earlier-{i}")
    outcome: list[object] = []

    def second() -> None:
        with Session(engine) as s, s.begin():
            try:
                charge_one(s, "run-second")
                outcome.append("granted")
            except BudgetError as e:
                outcome.append(e)

    first = Session(engine)
    first.begin()
    charge_one(first, "run-first")  # holds the account row, not committed yet
    t = threading.Thread(target=second)
    t.start()
    t.join(1.5)
    assert t.is_alive() and outcome == []  # waiting on the row lock
    first.commit()
    first.close()
    t.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], BudgetError), outcome
    assert "0 epsilon left" in str(outcome[0])
    engine.dispose()


@pytest.fixture
def password_role(pg_url: str) -> Iterator[tuple[str, str]]:
    """A role that must give its password (pg_ci.sh trusts only the test user), owning the test database."""
    role, password = "sg_pw_" + secrets.token_hex(4), secrets.token_urlsafe(12)
    db = make_url(pg_url).database
    admin = admin_engine(pg_url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        conn.execute(text(f'ALTER DATABASE "{db}" OWNER TO {role}'))
    try:
        yield role, password
    finally:
        inside = admin_engine(pg_url, database=db)
        with inside.connect() as conn:
            conn.execute(text(f"REASSIGN OWNED BY {role} TO CURRENT_USER"))
            conn.execute(text(f"DROP OWNED BY {role}"))
        inside.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_credentials_come_from_the_environment(tmp_path: Path, pg_url: str, password_role: tuple[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    role, password = password_role
    url = str(make_url(pg_url).set(username=role))
    ws = tmp_path / "ws"
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    one_line_error(run("--workspace", str(ws), "init", "--database", url), 2, "no password supplied")
    monkeypatch.setenv("PGPASSWORD", "wrong")
    one_line_error(run("--workspace", str(ws), "init", "--database", url), 2, "password authentication failed")
    assert not ws.exists()

    # libpq's PGPASSWORD
    monkeypatch.setenv("PGPASSWORD", password)
    assert run("--workspace", str(ws), "init", "--database", url).exit_code == 0
    assert password not in (ws / "workspace.yaml").read_text()
    assert run("--workspace", str(ws), "budget").exit_code == 0

    # an environment variable the workspace names
    monkeypatch.delenv("PGPASSWORD")
    ws2 = tmp_path / "ws2"
    url2 = str(make_url(pg_url).set(username=role, database=make_url(pg_url).database))
    res = run("--workspace", str(ws2), "init", "--database", url2, "--database-password-env", "SG_TEST_PW")
    one_line_error(res, 2, "$SG_TEST_PW, which is not set")
    monkeypatch.setenv("SG_TEST_PW", password)
    # the same database is in use by ws: refused after the password worked
    one_line_error(run("--workspace", str(ws2), "init", "--database", url2, "--database-password-env",
                       "SG_TEST_PW"), 2, "already holds")
    (ws / "workspace.yaml").write_text(yaml.safe_dump(
        {**yaml.safe_load((ws / "workspace.yaml").read_text()), "database": {"url": url, "password_env": "SG_TEST_PW"}}))
    assert run("--workspace", str(ws), "budget").exit_code == 0
    assert password not in (ws / "workspace.yaml").read_text()
    monkeypatch.delenv("SG_TEST_PW")
    one_line_error(run("--workspace", str(ws), "budget"), 2, "$SG_TEST_PW, which is not set")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_failed_init_leaves_no_folder(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch,
                                        request: pytest.FixtureRequest) -> None:
    import release.workspace

    extra = ["--database", request.getfixturevalue("pg_url")] if backend == "postgresql" else []

    def boom(*_a: object) -> None:
        raise release.workspace.InputError("simulated failure while creating the tables")

    monkeypatch.setattr(release.workspace, "_create_tables", boom)
    ws = tmp_path / "ws"
    one_line_error(run("--workspace", str(ws), "init", *extra), 2, "simulated failure")
    assert not ws.exists()
    if extra:
        assert pg_scalar(extra[1], "select count(*) from pg_tables where schemaname = 'public'") == 0
    monkeypatch.undo()
    assert run("--workspace", str(ws), "init", *extra).exit_code == 0
