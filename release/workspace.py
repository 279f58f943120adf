"""The workspace: a folder with the database (or the name of its PostgreSQL database), the release
signing key and one folder per run."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, exc
from sqlalchemy.orm import Session

from policies.loader import load_policy, policy_text
from policies.model import Policy
from privacy.errors import InputError
from release.atomic import write_atomic
from release.database import (
    DatabaseConfig,
    check_unused,
    connection_error,
    migrate,
    parse_database,
    upgrade_in,
)
from release.db import lock_workspace, log_event, make_engine
from release.keys import generate_keypair, load_private_key

DB_NAME = "synthgate.db"
CONFIG_NAME = "workspace.yaml"
RELEASE_KEY = "release"
SALT_NAME = "commitment.salt"


def default_workspace() -> Path:
    return Path(os.environ.get("SYNTHGATE_WORKSPACE") or "synthgate-workspace")


@dataclass
class Workspace:
    """An opened workspace."""

    root: Path
    engine: Engine
    #: where the tables live (SQLite's file in the folder by default)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def release_key_path(self) -> Path:
        return self.keys_dir / f"{RELEASE_KEY}.key"

    @property
    def release_pub_path(self) -> Path:
        return self.keys_dir / f"{RELEASE_KEY}.pub"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    @property
    def policy_file(self) -> Path:
        return self.root / "policy.yaml"

    def policy(self) -> Policy:
        return load_policy(str(self.policy_file))

    def release_key(self):  # type: ignore[no-untyped-def]
        return load_private_key(self.release_key_path)

    def source_commitment(self, fingerprint: str) -> str:
        """HMAC-SHA256 of a data file's fingerprint under the workspace's secret salt.

        Bundles carry this instead of the raw SHA-256: a raw hash of the sensitive file is a perfect
        test for an adversary who knows every record but one (DP's adversary). The steward can
        open the commitment by revealing the salt.
        """
        salt = (self.keys_dir / SALT_NAME).read_bytes()
        return hmac.new(salt, fingerprint.encode(), hashlib.sha256).hexdigest()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One write-locked transaction, committed or rolled back: BEGIN IMMEDIATE on SQLite, the
        workspace's advisory lock on PostgreSQL (``release.db.lock_workspace``)."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                lock_workspace(session)
                yield session


def _read_config(root: Path) -> dict[str, Any]:
    path = root / CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(f"{path} is not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a mapping")
    return data


def workspace_database(root: Path) -> DatabaseConfig:
    """The database a workspace uses, from its ``workspace.yaml`` (SQLite when it names none)."""
    return DatabaseConfig.from_workspace(_read_config(root).get("database"), root / CONFIG_NAME)


def _exists(root: Path) -> bool:
    return (root / DB_NAME).exists() or bool(_read_config(root).get("database"))


def init_workspace(root: Path, policy: str = "default", *, database: str | None = None,
                   password_env: str | None = None) -> Workspace:
    """Create the database, the release key pair and the folders; refuse an existing workspace.

    ``database``: a PostgreSQL URL without a password (see ``release.database``), or None for the
    embedded SQLite file. Everything that can be refused (the policy, the URL, the server, its
    credentials, a database already in use) is refused before anything is written; a failure after
    that removes what this call created.
    """
    pol = load_policy(policy)  # validate before touching the disk
    text = policy_text(policy)
    db = parse_database(database, password_env)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} exists and is not a folder")
    if _exists(root):
        raise InputError(f"a workspace already exists at {root}")
    engine = None
    if db.is_postgres:
        engine = db.engine()
        try:
            check_unused(db, engine)
        except BaseException:
            engine.dispose()
            raise
    created: list[Path] = []
    try:
        _make_files(root, text, created)
        config = {"synthgate_workspace": 1, "policy": pol.name}
        if engine is not None:
            config["database"] = db.to_dict()
            # tables and the first event in one transaction, committed only once workspace.yaml (which
            # marks a PostgreSQL workspace as complete) is in place
            try:
                with engine.begin() as conn:
                    _create_tables(conn, pol.name)
                    _write_config(root, config, created)
            except exc.OperationalError as e:
                raise connection_error(db, e) from None
        else:
            # the database is created under a temporary name and renamed last: its presence marks a
            # complete SQLite workspace
            tmp_db = root / f".{DB_NAME}.init"
            if tmp_db.exists():
                tmp_db.unlink()
            created.append(tmp_db)
            engine = make_engine(tmp_db)
            with engine.begin() as conn:
                _create_tables(conn, pol.name)
            engine.dispose()
            os.replace(tmp_db, root / DB_NAME)
            created.append(root / DB_NAME)
            _write_config(root, config, created)
    except BaseException:
        for path in reversed(created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    finally:
        if engine is not None:
            engine.dispose()
    return open_workspace(root)


def _make_files(root: Path, policy_yaml: str, created: list[Path]) -> None:
    """The folders, the release key pair, the commitment salt and the policy (recorded in ``created``)."""
    if not root.exists():
        root.mkdir(parents=True)
        created.append(root)
    for sub in ("runs", "keys"):
        if not (root / sub).exists():
            (root / sub).mkdir()
            created.append(root / sub)
    keys = root / "keys"
    os.chmod(keys, 0o700)
    if not (keys / f"{RELEASE_KEY}.key").exists():
        created += [keys / f"{RELEASE_KEY}.key", keys / f"{RELEASE_KEY}.pub"]
        generate_keypair(keys, RELEASE_KEY)
    if not (keys / SALT_NAME).exists():
        created.append(keys / SALT_NAME)
        write_atomic(keys / SALT_NAME, secrets.token_bytes(32), mode=0o600)
    if not (root / "policy.yaml").exists():
        created.append(root / "policy.yaml")
    write_atomic(root / "policy.yaml", policy_yaml.encode())


def _create_tables(conn: Connection, policy_name: str) -> None:
    upgrade_in(conn)
    with Session(bind=conn) as s:
        log_event(s, "workspace.init", policy=policy_name)
        s.flush()


def _write_config(root: Path, config: dict[str, Any], created: list[Path]) -> None:
    if not (root / CONFIG_NAME).exists():
        created.append(root / CONFIG_NAME)
    write_atomic(root / CONFIG_NAME, yaml.safe_dump(config, sort_keys=False).encode())


def open_workspace(root: Path) -> Workspace:
    """Open an initialised workspace, bringing its database to the newest schema; a clear error if there
    is none."""
    db = workspace_database(root)
    if db.is_postgres:
        engine = db.engine()
    else:
        path = root / DB_NAME
        if not path.is_file():
            raise InputError(f"no workspace at {root} (run 'synthgate init' or pass --workspace)")
        engine = make_engine(path)
    try:
        # tables added by later versions (e.g. external_splits) appear in older workspaces, SQLite ones
        # from before Alembic included; existing tables and rows are kept
        migrate(engine, db)
    except BaseException:
        engine.dispose()
        raise
    return Workspace(root=root, engine=engine, database=db)
