"""Private keys encrypted with a passphrase: where it comes from, refusals, clear keys, and no leaks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cli_checks import one_line
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from release.cli import trust
from release.cli.main import cli
from release.keys import PASSPHRASE_ENV

if TYPE_CHECKING:  # the fixture type lives in conftest.py
    from conftest import Env

NO_PASSPHRASE = "no passphrase: set SYNTHGATE_PASSPHRASE or pass --passphrase-env NAME"


def _secret() -> str:
    import os

    return os.environ[PASSPHRASE_ENV]




def _db_dump(env: "Env") -> str:
    db = sqlite3.connect(env.ws / "synthgate.db")
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def _approve(env: "Env", run_id: str, name: str, *extra: str) -> Result:
    return env.run("approve", run_id, "--steward", name, "--key", str(env.root / "keys" / f"{name}.key"), *extra)


def _encrypted(path: Path) -> bool:
    data = path.read_bytes()
    if not data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
        return False
    with pytest.raises(TypeError):  # cryptography: a password is required
        serialization.load_pem_private_key(data, password=None)
    return True


def test_keys_new_and_the_release_key_are_encrypted(env: "Env") -> None:
    assert _encrypted(env.root / "keys" / "alice.key")
    assert _encrypted(env.ws / "keys" / "release.key")
    res = env.run("keys", "new", "dave", "--out", str(env.root / "keys"))
    assert res.exit_code == 0 and "encrypted" in res.stdout
    assert _secret() not in res.output + res.stderr
    assert _encrypted(env.root / "keys" / "dave.key")


def test_a_wrong_passphrase_is_refused_and_records_nothing(env: "Env", run_id: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    before = _db_dump(env)
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase")
    line = one_line(_approve(env, run_id, "alice"), 2)
    assert "alice.key: cannot decrypt the private key" in line and "not the passphrase" not in line
    assert _db_dump(env) == before
    line = one_line(env.run("release", run_id, "--out", str(env.root / "bundle")), 3)  # not approved yet
    assert not (env.root / "bundle").exists()


def test_passphrase_env_names_the_variable(env: "Env", run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = _secret()
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setenv("ALICE_PW", secret)
    res = _approve(env, run_id, "alice", "--passphrase-env", "ALICE_PW")
    assert res.exit_code == 0, res.stderr
    before = _db_dump(env)
    line = one_line(_approve(env, run_id, "bob", "--passphrase-env", "BOB_PW_UNSET"), 2)
    assert "BOB_PW_UNSET" in line and "not set" in line
    assert _db_dump(env) == before
    # the named variable wins over $SYNTHGATE_PASSPHRASE
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    monkeypatch.setenv("BOB_PW", secret)
    assert _approve(env, run_id, "bob", "--passphrase-env", "BOB_PW").exit_code == 0


def test_no_passphrase_and_no_terminal_is_refused(env: "Env", run_id: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    before = _db_dump(env)
    assert one_line(_approve(env, run_id, "alice"), 2).endswith(NO_PASSPHRASE)
    assert _db_dump(env) == before
    out = tmp_path / "new-keys"
    assert one_line(env.run("keys", "new", "erin", "--out", str(out)), 2).endswith(NO_PASSPHRASE)
    assert not list(out.glob("erin*"))
    ws = tmp_path / "ws"
    assert one_line(env.run("init", ws=ws), 2).endswith(NO_PASSPHRASE)
    assert not ws.exists()
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    assert "empty passphrase is refused" in one_line(env.run("keys", "new", "erin", "--out", str(out)), 2)
    assert not list(out.glob("erin*"))


def test_a_terminal_is_prompted_with_confirmation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setattr(trust, "_interactive", lambda: True)
    res = CliRunner().invoke(cli, ["keys", "new", "frank", "--out", str(tmp_path)], input="typed pw\ntyped pw\n",
                             catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    assert "typed pw" not in res.output + res.stderr  # hidden input
    key = serialization.load_pem_private_key((tmp_path / "frank.key").read_bytes(), password=b"typed pw")
    assert isinstance(key, Ed25519PrivateKey)


def test_an_old_clear_key_loads_with_a_warning_and_keys_encrypt_converts_it(env: "Env", run_id: str) -> None:
    path = env.root / "keys" / "alice.key"
    key = serialization.load_pem_private_key(path.read_bytes(), password=_secret().encode())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    res = _approve(env, run_id, "alice")
    assert res.exit_code == 0
    warning = one_line(res, 0)
    assert "stored in clear" in warning and f"synthgate keys encrypt {path}" in warning
    res = env.run("keys", "encrypt", str(path), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout) == {"private_key": str(path), "encrypted": True}
    assert _encrypted(path) and path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()
    assert "already encrypted" in one_line(env.run("keys", "encrypt", str(path)), 2)
    assert path.read_bytes() == before


def test_release_signs_with_the_encrypted_key_and_nothing_shows_the_passphrase(env: "Env", run_id: str) -> None:
    secret = _secret()
    outputs = []
    for name in ("alice", "bob"):
        res = _approve(env, run_id, name, "--json")
        assert res.exit_code == 0, res.stderr
        outputs.append(res.output + res.stderr)
    bundle = env.root / "bundle"
    res = env.run("release", run_id, "--out", str(bundle), "--tar", "--json")
    assert res.exit_code == 0, res.stderr
    outputs.append(res.output + res.stderr)
    res = env.run("verify", str(bundle), "--trust", str(env.ws / "keys" / "release.pub"), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["valid"] is True
    outputs.append(res.output + res.stderr)
    res = env.run("log", "verify", "--bundle", str(bundle))
    assert res.exit_code == 0, res.stderr
    for text in outputs:
        assert secret not in text
    assert secret not in _db_dump(env)
    for root in (env.ws, bundle, env.root / "keys"):
        for f in root.rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f
    assert secret.encode() not in Path(f"{bundle}.tar.gz").read_bytes()
