"""Key pairs on disk: modes, never overwriting, loading errors, key ids."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privacy.errors import InputError
from release import keys
from release.keys import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    public_key_from_pem,
    public_key_pem,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_private_0600_and_public_0644(tmp_path: Path) -> None:
    old = os.umask(0o077)  # a strict umask must not make the public key unreadable
    try:
        private_path, public_path = generate_keypair(tmp_path / "keys", "release")
    finally:
        os.umask(old)
    assert private_path == tmp_path / "keys" / "release.key"
    assert public_path == tmp_path / "keys" / "release.pub"
    assert _mode(private_path) == 0o600
    assert _mode(public_path) == 0o644
    assert private_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    # No temporary files are left behind.
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["release.key", "release.pub"]


def test_generated_pair_matches_and_signs(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair(tmp_path, "steward-alice")
    private = load_private_key(private_path)
    public = load_public_key(public_path)
    assert isinstance(private, Ed25519PrivateKey)
    assert isinstance(public, Ed25519PublicKey)
    public.verify(private.sign(b"message"), b"message")
    assert key_id(private.public_key()) == key_id(public)


@pytest.mark.parametrize("existing", ["release.key", "release.pub"])
def test_generate_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists; refusing to overwrite a key"):
        generate_keypair(tmp_path, "release")
    assert (tmp_path / existing).read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == [existing]


def test_generate_twice_refuses_and_keeps_first_key(tmp_path: Path) -> None:
    private_path, _ = generate_keypair(tmp_path, "release")
    before = private_path.read_bytes()
    with pytest.raises(InputError, match="release.key: already exists"):
        generate_keypair(tmp_path, "release")
    assert private_path.read_bytes() == before


def test_publish_race_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A key that appears between the existence check and the publish is still not overwritten,
    # and the half-published pair is removed.
    real_publish = keys._publish_no_clobber

    def racing_publish(tmp: Path, final: Path) -> None:
        if final.suffix == ".pub":
            final.write_bytes(b"someone else's")
        real_publish(tmp, final)

    monkeypatch.setattr(keys, "_publish_no_clobber", racing_publish)
    with pytest.raises(InputError, match="release.pub: already exists"):
        generate_keypair(tmp_path, "release")
    assert (tmp_path / "release.pub").read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.pub"]


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "-flag", "x" * 101])
def test_generate_refuses_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="key name"):
        generate_keypair(tmp_path, name)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.key: file not found"):
        load_private_key(tmp_path / "nope.key")
    with pytest.raises(InputError, match="nope.pub: file not found"):
        load_public_key(tmp_path / "nope.pub")


def test_load_private_refuses_public_and_other_algorithms(tmp_path: Path) -> None:
    _, public_path = generate_keypair(tmp_path, "k")
    with pytest.raises(InputError, match="not an Ed25519 private key"):
        load_private_key(public_path)
    ec_path = tmp_path / "ec.key"
    ec_path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(InputError, match="ec.key: not an Ed25519 private key"):
        load_private_key(ec_path)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("hello")
    with pytest.raises(InputError, match="garbage.key: not an Ed25519 private key"):
        load_private_key(garbage)


def test_load_private_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "enc.key"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(InputError, match="enc.key: cannot decrypt the private key") as info:
        load_private_key(path)
    assert "\n" not in str(info.value) and os.environ[keys.PASSPHRASE_ENV] not in str(info.value)
    with keys.using_passphrase("pw"):
        assert isinstance(load_private_key(path), Ed25519PrivateKey)


def test_load_public_refuses_private_and_other_algorithms(tmp_path: Path) -> None:
    private_path, _ = generate_keypair(tmp_path, "k")
    with pytest.raises(InputError, match="not an Ed25519 public key"):
        load_public_key(private_path)
    ec_pub = tmp_path / "ec.pub"
    ec_pub.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InputError, match="ec.pub: not an Ed25519 public key"):
        load_public_key(ec_pub)


def test_key_id_is_sha256_of_raw_public_key() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert len(raw) == 32
    assert key_id(public) == hashlib.sha256(raw).hexdigest()
    assert len(key_id(public)) == 64


def test_public_key_pem_round_trip() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    text = public_key_pem(public)
    assert text.startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id(public_key_from_pem(text)) == key_id(public)
    with pytest.raises(InputError, match="not a PEM public key"):
        public_key_from_pem("not pem")
    ec_text = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(InputError, match="not an Ed25519 public key"):
        public_key_from_pem(ec_text)


# -- passphrases ---------------------------------------------------------------------------------------------


def _clear_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key


def test_generated_private_key_is_encrypted_with_the_passphrase(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair(tmp_path, "k")
    data = private_path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):  # cryptography: a password is required
        serialization.load_pem_private_key(data, password=None)
    key = serialization.load_pem_private_key(data, password=os.environ[keys.PASSPHRASE_ENV].encode())
    assert isinstance(key, Ed25519PrivateKey)
    assert key_id(key.public_key()) == key_id(load_public_key(public_path))
    assert os.environ[keys.PASSPHRASE_ENV].encode() not in data


def test_no_or_empty_passphrase_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    with pytest.raises(InputError, match="no passphrase: set SYNTHGATE_PASSPHRASE or pass --passphrase-env NAME"):
        generate_keypair(tmp_path / "a", "k")
    assert not (tmp_path / "a").exists()
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "")
    with pytest.raises(InputError, match="empty passphrase is refused"):
        generate_keypair(tmp_path / "b", "k")
    assert not (tmp_path / "b").exists()
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "x" * 1024)
    with pytest.raises(InputError, match="longer than 1023 bytes"):
        generate_keypair(tmp_path / "c", "k")
    assert not (tmp_path / "c").exists()


def test_using_passphrase_overrides_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    with keys.using_passphrase("own secret"):
        private_path, _ = generate_keypair(tmp_path, "k")
        assert isinstance(load_private_key(private_path), Ed25519PrivateKey)
    with pytest.raises(InputError, match="no passphrase"):
        load_private_key(private_path)


def test_clear_key_loads_with_a_warning_and_encrypt_converts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.key"
    key = _clear_key(path)
    loaded = load_private_key(path)
    assert key_id(loaded.public_key()) == key_id(key.public_key())
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "stored in clear" in err and f"synthgate keys encrypt {path}" in err
    keys.encrypt_private_key(path)
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.key"]
    assert key_id(load_private_key(path).public_key()) == key_id(key.public_key())
    assert capsys.readouterr().err == ""
    before = path.read_bytes()
    with pytest.raises(InputError, match="old.key: already encrypted"):
        keys.encrypt_private_key(path)
    assert path.read_bytes() == before
