"""Ed25519 key pairs on disk: generation that never overwrites or half-writes a key, and loading.

A key pair is two PEM files in one directory: ``<name>.key`` (PKCS#8 encrypted with a passphrase,
mode 0600) and ``<name>.pub`` (SubjectPublicKeyInfo, mode 0644). A key is named in data by its key id, the hex
SHA-256 of the raw 32-byte public key; show its first 16 characters to people, keep all 64 in data.

The passphrase comes from the current *passphrase source* (``using_passphrase``): the CLI installs one
that reads ``--passphrase-env NAME``, ``SYNTHGATE_PASSPHRASE`` or a prompt; without one, the library
reads ``SYNTHGATE_PASSPHRASE``. It is asked for only when a key is written or an encrypted key is
read, and it never appears in a message. A clear key written by an older synthgate still loads, with
a one-line warning on stderr (``synthgate keys encrypt FILE`` encrypts it). A ``NAME.key`` left without
its ``NAME.pub`` (a ``keys new`` killed between the two files) gets its public half back from
``write_public_key`` (``synthgate keys public NAME.key``).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privacy.errors import InputError
from release.atomic import fsync_dir
from release.canonical import sha256_hex
from release.crashpoints import crash_point

# A key name becomes a file name: keep it to characters that are safe in every shell and on
# every file system, and never let it carry a path separator or start with a dot.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"

#: the environment variable read for the passphrase when no other source is named
PASSPHRASE_ENV = "SYNTHGATE_PASSPHRASE"
NO_PASSPHRASE = f"no passphrase: set {PASSPHRASE_ENV} or pass --passphrase-env NAME"
_ENCRYPTED_LABEL = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_MAX_PASSPHRASE = 1023  # bytes: cryptography refuses longer passwords

#: where the passphrase comes from: called with ``writing=True`` when a key is about to be written
PassphraseSource = Callable[[bool], str]


def env_passphrase(writing: bool) -> str:
    """The default source: ``SYNTHGATE_PASSPHRASE``, else a one-line ``InputError``."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        raise InputError(NO_PASSPHRASE)
    return value


_source: ContextVar[PassphraseSource | None] = ContextVar("synthgate_passphrase_source", default=None)


@contextmanager
def using_passphrase(source: PassphraseSource | str) -> Iterator[None]:
    """Within the block, keys are written and read with this passphrase (a string) or source."""
    if isinstance(source, str):
        passphrase = source

        def fixed(writing: bool) -> str:
            return passphrase

        source = fixed
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)


def _passphrase(writing: bool) -> bytes:
    value = (_source.get() or env_passphrase)(writing)
    if writing and not value:
        raise InputError("an empty passphrase is refused: a private key is never written in clear")
    raw = value.encode("utf-8", "surrogateescape")  # any bytes the environment held
    if writing and len(raw) > _MAX_PASSPHRASE:
        raise InputError(f"the passphrase is longer than {_MAX_PASSPHRASE} bytes (the limit of PKCS#8 encryption here)")
    return raw


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id: lower-case hex SHA-256 of the raw 32-byte Ed25519 public key (64 characters)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM SubjectPublicKeyInfo text (what ``.pub`` files and manifests hold)."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_from_pem(text: str) -> Ed25519PublicKey:
    """Parse PEM SubjectPublicKeyInfo text; ``InputError`` unless it is an Ed25519 public key."""
    if not isinstance(text, str):
        raise InputError("public key PEM must be text")
    try:
        key = serialization.load_pem_public_key(text.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("not an Ed25519 public key")
    return key


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, not a key file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc


def _one_pem_block(path: Path, data: bytes) -> None:
    # cryptography reads the first PEM block and ignores the rest: a file with two keys is ambiguous
    if data.count(b"-----BEGIN ") > 1:
        raise InputError(f"{path}: holds more than one PEM block; give one key per file")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load a PEM PKCS#8 Ed25519 private key, decrypting it with the current passphrase.

    A clear (unencrypted) key still loads, with a one-line warning on stderr. Every failure (a
    wrong passphrase included) is a one-line ``InputError`` that never shows the passphrase.
    """
    key, encrypted = _load_private(path)
    if not encrypted:
        print(f"synthgate: warning: {path} is stored in clear (unencrypted); encrypt it with: synthgate keys encrypt {path}",
              file=sys.stderr)
    return key


def _load_private(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    data = _read(path)
    _one_pem_block(path, data)
    encrypted = _ENCRYPTED_LABEL in data
    try:
        if encrypted:
            password = _passphrase(False)
            try:
                key = serialization.load_pem_private_key(data, password=password)
            except ValueError as exc:
                # cryptography cannot tell a wrong passphrase from damaged ciphertext
                raise InputError(f"{path}: cannot decrypt the private key (wrong passphrase, or a damaged "
                                 "key file)") from exc
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        # an encrypted key in another container than PKCS#8
        raise InputError(f"{path}: not a PKCS#8 Ed25519 private key (an encrypted key in another format)") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path}: not an Ed25519 private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key")
    return key, encrypted


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a PEM SubjectPublicKeyInfo Ed25519 public key; one-line ``InputError`` otherwise."""
    data = _read(path)
    _one_pem_block(path, data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path}: not an Ed25519 public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path}: not an Ed25519 public key")
    return key


def _write_temp(directory: Path, final_name: str, data: bytes, mode: int) -> Path:
    """Write ``data`` to a fresh temporary file in ``directory`` and return its path.

    O_EXCL so we never write through a file (or symlink) someone else put there; the mode is given
    at creation so a private key is never readable by others, not even for an instant.
    """
    tmp = directory / f".{final_name}.tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        # The umask can only remove bits; fchmod makes the public key 0644 whatever the umask is.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if fd != -1:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _publish_no_clobber(tmp: Path, final: Path) -> None:
    """Give the complete temporary file its final name, refusing to replace an existing file.

    ``os.link`` is atomic and fails if ``final`` exists, so a key that appeared after our check is
    still never overwritten. File systems without hard links fall back to check-then-``os.replace``
    (still atomic, so never half-written, with a tiny window for a concurrent writer).
    """
    try:
        os.link(tmp, final)
    except FileExistsError as exc:
        raise InputError(f"{final}: already exists; refusing to overwrite a key") from exc
    except OSError:
        if final.exists():
            raise InputError(f"{final}: already exists; refusing to overwrite a key") from None
        os.replace(tmp, final)


def _encrypted_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(_passphrase(True)))


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Generate an Ed25519 key pair as ``directory/name.key`` (0600, encrypted with the current
    passphrase) and ``directory/name.pub`` (0644).

    Refuses (``InputError``) if either file exists: a key is never overwritten. Each file is
    written to a temporary name in the same directory and then linked into place, so a crash
    leaves either no key or a complete one. The directory is created (mode 0700) if missing.
    Returns ``(private_path, public_path)``.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(
            f"key name {name!r} must be 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    private_path = directory / f"{name}{PRIVATE_SUFFIX}"
    public_path = directory / f"{name}{PUBLIC_SUFFIX}"
    if (private_path.exists() or private_path.is_symlink()) and not (public_path.exists() or public_path.is_symlink()):
        # the crash point "keys.between_files": the private half was published, the public one not
        raise InputError(
            f"{private_path}: already exists; refusing to overwrite a key (it has no {public_path.name}: an earlier "
            f"`synthgate keys new` was interrupted; `synthgate keys public {private_path}` writes the public half)"
        )
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path}: already exists; refusing to overwrite a key")

    key = Ed25519PrivateKey.generate()
    # the passphrase (a prompt, perhaps) before anything is created: a refusal leaves no trace
    private_pem = _encrypted_pem(key)
    public_pem = public_key_pem(key.public_key()).encode("ascii")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    temps: list[Path] = []
    published: list[Path] = []
    try:
        tmp_private = _write_temp(directory, private_path.name, private_pem, 0o600)
        temps.append(tmp_private)
        tmp_public = _write_temp(directory, public_path.name, public_pem, 0o644)
        temps.append(tmp_public)
        crash_point("keys.before_publish")
        _publish_no_clobber(tmp_private, private_path)
        published.append(private_path)
        crash_point("keys.between_files")
        _publish_no_clobber(tmp_public, public_path)
        published.append(public_path)
        fsync_dir(directory)
    except BaseException:
        # Undo only what this call published: a private key without its public half is useless
        # and confusing, and the files are ours because the no-clobber publish succeeded.
        for path in published:
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return private_path, public_path


def write_public_key(private_path: Path) -> tuple[Path, str]:
    """Write the public half of ``NAME.key`` as ``NAME.pub`` beside it (0644) and return ``(path, key id)``.

    For a pair whose ``keys new`` was killed after the private key was published: the private key
    is read (decrypted with the current passphrase), and its public key is written to a temporary
    file and linked into place like ``generate_keypair`` does, so it is never half-written and an
    existing ``NAME.pub`` is never overwritten (``InputError``).
    """
    private_path = Path(private_path)
    if private_path.suffix != PRIVATE_SUFFIX:
        raise InputError(f"{private_path}: a private key file's name must end in {PRIVATE_SUFFIX} "
                         f"(its public half is written as NAME{PUBLIC_SUFFIX})")
    public_path = private_path.with_suffix(PUBLIC_SUFFIX)
    if public_path.exists() or public_path.is_symlink():
        raise InputError(f"{public_path}: already exists; refusing to overwrite a key")
    public_key = load_private_key(private_path).public_key()
    directory = private_path.parent
    tmp = _write_temp(directory, public_path.name, public_key_pem(public_key).encode("ascii"), 0o644)
    try:
        _publish_no_clobber(tmp, public_path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(directory)
    return public_path, key_id(public_key)


def encrypt_private_key(path: Path) -> Path:
    """Rewrite a clear private key file encrypted with the current passphrase (writing), atomically.

    The new file replaces the old one in one rename and has mode 0600; an already encrypted key
    (or anything that is not a clear Ed25519 key) is refused and left as it is.
    """
    path = Path(path)
    data = _read(path)
    _one_pem_block(path, data)
    if _ENCRYPTED_LABEL in data:
        raise InputError(f"{path}: already encrypted")
    key, _ = _load_private(path)
    pem = _encrypted_pem(key)
    directory = path.parent
    tmp = _write_temp(directory, path.name, pem, 0o600)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return path
