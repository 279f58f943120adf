"""The workspace: a folder with the database, the release signing key and one folder per run."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from policies.loader import load_policy, policy_text
from policies.model import Policy
from privacy.errors import InputError
from release.atomic import write_atomic
from release.db import create_all, log_event, make_engine
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
        """One write-locked transaction (BEGIN IMMEDIATE on SQLite); commits or rolls back."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session


def init_workspace(root: Path, policy: str = "default") -> Workspace:
    """Create the database, the release key pair and the folders; refuse an existing workspace."""
    pol = load_policy(policy)  # validate before touching the disk
    text = policy_text(policy)
    if (root / DB_NAME).exists():
        raise InputError(f"a workspace already exists at {root}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "runs").mkdir(exist_ok=True)
    keys = root / "keys"
    keys.mkdir(exist_ok=True)
    os.chmod(keys, 0o700)
    if not (keys / f"{RELEASE_KEY}.key").exists():
        generate_keypair(keys, RELEASE_KEY)
    if not (keys / SALT_NAME).exists():
        write_atomic(keys / SALT_NAME, secrets.token_bytes(32), mode=0o600)
    write_atomic(root / "policy.yaml", text.encode())
    # the database is created under a temporary name and renamed last: its presence marks a
    # complete workspace
    tmp_db = root / f".{DB_NAME}.init"
    if tmp_db.exists():
        tmp_db.unlink()
    engine = make_engine(tmp_db)
    create_all(engine)
    ws = Workspace(root=root, engine=engine)
    with ws.transaction() as s:
        log_event(s, "workspace.init", policy=pol.name)
    engine.dispose()
    os.replace(tmp_db, root / DB_NAME)
    write_atomic(root / CONFIG_NAME, yaml.safe_dump({"synthgate_workspace": 1, "policy": pol.name}).encode())
    return open_workspace(root)


def open_workspace(root: Path) -> Workspace:
    """Open an initialised workspace; a clear error if there is none."""
    db = root / DB_NAME
    if not db.is_file():
        raise InputError(f"no workspace at {root} (run 'synthgate init' or pass --workspace)")
    engine = make_engine(db)
    # tables added by later versions (e.g. external_splits) appear in older workspaces; existing
    # tables are left as they are
    create_all(engine)
    return Workspace(root=root, engine=engine)
