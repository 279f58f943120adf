"""Writing a release bundle: the files, plus ``manifest.json``, a signed in-toto Statement over them.

Layout (DESIGN.md section 6)::

    <out_dir>/
        synthetic.parquet  synthetic.csv  report.html  audit.json  privacy-statement.md  datasheet.md
        manifest.json      DSSE envelope (JSON, indent 2) whose payload is an in-toto Statement v1:
                           one subject per other file (name + sha256), predicateType
                           RELEASE_PREDICATE_TYPE, and the caller's predicate

and optionally ``<out_dir>.tar.gz`` holding the same folder as its single top-level entry.
The predicate may carry ``event_log_head`` (``EventLogHead``): the workspace event log's newest
entry when the bundle was released, so that the workspace can later show its log still holds it.
The statement payload is canonical JSON (``release.canonical``), so the signed bytes are
reproducible from the parsed statement. ``release.verify`` checks a bundle; what it needs in the
predicate is listed in its module docstring.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.errors import InputError
from release.atomic import fsync_dir
from release.canonical import canonical_json, sha256_hex
from release.crashpoints import crash_point, owner_alive, process_owner
from release.dsse import IN_TOTO_PAYLOAD_TYPE, make_statement, sign_envelope

MANIFEST_NAME = "manifest.json"
RELEASE_PREDICATE_TYPE = "https://synthgate.dev/release/v1"
#: Files whose digests the stewards' approval statement must name (``approval_statement["files"]``),
#: so that an approval is bound to the exact data and reports released.
APPROVAL_BOUND_FILES = ("synthetic.parquet", "synthetic.csv", "audit.json", "report.html")

# Flat, portable names: no separators, no leading dot (hidden, or "." / ".."), no spaces or
# control characters that would make a listing ambiguous.
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

#: Predicate key of the event log's chain head at release time (``EventLogHead.to_predicate``).
EVENT_LOG_HEAD_KEY = "event_log_head"

#: The file in a partial folder (``.NAME.partial-<8 hex>`` beside the bundle) that names its writer:
#: ``{"bundle": NAME, "writer": process_owner()}``. The bundle is built in ``NAME/`` inside it, the
#: archive as ``NAME.tar.gz``; a writer killed before it cleaned up leaves the folder behind, and
#: ``remove_stale_partials`` takes it away once that writer is provably gone.
PARTIAL_MARKER = "writer.json"
_PARTIAL_TAG_RE = r"\.partial-[0-9a-f]{8}"
_MARKER_MAX = 64 * 1024


@dataclass(frozen=True)
class EventLogHead:
    """The newest entry of a workspace's hash-chained event log, as a bundle records it.

    ``release.publish`` reads it in the transaction that checks the run, so it is the last event
    *before* the run's own ``run.released`` event (which is written after the bundle, and names
    this head). ``id`` 0 with the all-zero hash stands for an empty log. ``id`` is None only for
    bundles from before issue 9, whose predicate held the bare hash.
    """

    id: int | None
    hash: str

    def to_predicate(self) -> dict[str, Any]:
        """The predicate value: ``{"id": int, "hash": 64 hex}``."""
        return {"id": self.id, "hash": self.hash}

    def short(self) -> str:
        """For people: ``entry 42 (hash 0123456789abcdef)``."""
        if self.id is None:
            return f"hash {self.hash[:16]} (no entry id: an older bundle)"
        return f"entry {self.id} (hash {self.hash[:16]})"


def file_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a bundle file name, or None if it can (shared with the verifier)."""
    if not isinstance(name, str):
        return f"file name {name!r} is not a string"
    if name.lower() == MANIFEST_NAME:
        # Case-insensitive: on macOS and Windows "Manifest.json" would overwrite the manifest.
        return f"file name {name!r} is reserved for the manifest"
    if "/" in name or "\\" in name or os.path.isabs(name):
        return f"file name {name!r} must be a flat name (no path separators, not absolute)"
    if ".." in name:
        return f"file name {name!r} must not contain '..'"
    if not _FILE_NAME_RE.fullmatch(name):
        return f"file name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def manifest_bytes(envelope: dict[str, Any]) -> bytes:
    """The exact text of ``manifest.json`` for an envelope: its DSSE fields only, indent 2, final newline.

    The verifier rebuilds this text from the parsed envelope and requires byte equality, so every
    byte of the manifest is checked (whitespace, field names, the unauthenticated keyid).
    """
    canonical = {
        "payloadType": envelope["payloadType"],
        "payload": envelope["payload"],
        "signatures": [{"keyid": s.get("keyid", ""), "sig": s["sig"]} for s in envelope["signatures"]],
    }
    return (json.dumps(canonical, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def tar_path_for(out_dir: Path) -> Path:
    """Where ``write_bundle(..., tar=True)`` puts the archive: ``<out_dir>.tar.gz`` beside the folder."""
    out_dir = Path(os.path.abspath(out_dir))
    return out_dir.with_name(out_dir.name + ".tar.gz")


def _write_new_file(path: Path, data: bytes) -> None:
    # "xb": the temporary directory is ours and fresh, so an existing file means a duplicate name.
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _tar_info(name: str, *, size: int = 0, is_dir: bool = False) -> tarfile.TarInfo:
    # Fixed owner, mode and time: the archive depends only on the bundle's bytes (reproducible).
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_tar(src_dir: Path, top: str, names: list[str], dest: Path) -> None:
    """Write a deterministic ``.tar.gz`` of ``src_dir``'s ``names`` under one folder ``top``."""
    with open(dest, "xb") as raw:
        # filename="" and mtime=0 keep the temporary path and the clock out of the gzip header.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as archive:
                archive.addfile(_tar_info(top, is_dir=True))
                for name in sorted(names):
                    path = src_dir / name
                    with open(path, "rb") as handle:
                        archive.addfile(_tar_info(f"{top}/{name}", size=path.stat().st_size), handle)
        raw.flush()
        os.fsync(raw.fileno())


def _check_destination(out_dir: Path) -> None:
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise InputError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: exists and is not empty; refusing to write a bundle into it")


def _stale_partial(path: Path, name: str) -> bool:
    """Whether ``path`` is provably a partial folder of bundle ``name`` whose writer is gone.

    Only a real folder (no link) holding our marker and nothing but what ``write_bundle`` puts
    there, whose marker names this bundle and a writer that ``owner_alive`` says has ended: a
    writer on another host, or one this host cannot tell about, keeps its folder.
    """
    try:
        if path.is_symlink() or not path.is_dir():
            return False
        names = set(os.listdir(path))
        if PARTIAL_MARKER not in names or not names <= {PARTIAL_MARKER, name, f"{name}.tar.gz"}:
            return False
        marker = path / PARTIAL_MARKER
        if marker.is_symlink() or not marker.is_file():
            return False
        with open(marker, "rb") as handle:
            doc = json.loads(handle.read(_MARKER_MAX))
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or doc.get("bundle") != name:
        return False
    return owner_alive(doc.get("writer")) is False


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Remove the partial folders of bundle ``out_dir`` (same parent, same name) left by writers that died.

    ``write_bundle`` calls it before it writes: a release killed midway (``kill -9``, a power cut)
    cannot clean up, and its ``.NAME.partial-*`` folder would stay forever. Best effort: what
    cannot be removed stays, and nothing that is not provably ours is touched. Returns the
    folders removed.
    """
    out_dir = Path(os.path.abspath(out_dir))
    pattern = re.compile(re.escape(f".{out_dir.name}") + _PARTIAL_TAG_RE)
    try:
        candidates = [entry.name for entry in os.scandir(out_dir.parent) if pattern.fullmatch(entry.name)]
    except OSError:
        return []
    removed = []
    for candidate in sorted(candidates):
        path = out_dir.parent / candidate
        if _stale_partial(path, out_dir.name):
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.lexists(path):
                removed.append(path)
    return removed


def write_bundle(
    out_dir: Path,
    files: dict[str, bytes],
    predicate: dict[str, Any],
    release_key: Ed25519PrivateKey,
    *,
    tar: bool = False,
) -> Path:
    """Write a signed release bundle folder at ``out_dir`` (and ``<out_dir>.tar.gz`` if ``tar``).

    ``files`` maps flat file names to their bytes (``manifest.json`` is reserved and written
    here). ``predicate`` is stored as-is in the signed statement; ``release.verify`` documents the
    keys it must hold. Atomic: everything is built in a temporary folder beside ``out_dir`` (same
    file system) and renamed into place, so a failure leaves neither a partial folder nor a
    partial archive; a process killed midway leaves its hidden ``.NAME.partial-*`` folder, which
    the next write of the same NAME beside it removes (``remove_stale_partials``). Refuses
    (``InputError``) bad names, an ``out_dir`` that exists and is not empty, an existing archive
    path, or a predicate that is not canonical JSON. Returns ``out_dir``.
    """
    out_dir = Path(os.path.abspath(out_dir))
    if not out_dir.name:
        raise InputError(f"{out_dir}: a bundle needs a folder name")
    if not isinstance(files, dict) or not files:
        raise InputError("a bundle needs at least one file")
    if not isinstance(predicate, dict):
        raise InputError("the bundle predicate must be a dict")
    if not isinstance(release_key, Ed25519PrivateKey):
        raise InputError("the release key must be an Ed25519 private key")
    seen: set[str] = set()
    for name, data in files.items():
        problem = file_name_problem(name)
        if problem:
            raise InputError(f"cannot write bundle: {problem}")
        if name.lower() in seen:
            raise InputError(f"cannot write bundle: file names {name!r} differ only in case from another")
        seen.add(name.lower())
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"cannot write bundle: content of {name!r} must be bytes")
    _check_destination(out_dir)
    archive = tar_path_for(out_dir)
    if tar and (archive.exists() or archive.is_symlink()):
        raise InputError(f"{archive}: already exists; refusing to overwrite it")

    # Sign before touching the disk: a predicate that cannot be encoded fails with nothing written.
    subjects = [(name, sha256_hex(bytes(files[name]))) for name in sorted(files)]
    statement = make_statement(subjects, RELEASE_PREDICATE_TYPE, predicate)
    try:
        payload = canonical_json(statement)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot write bundle: the predicate is not canonical JSON ({exc})") from exc
    manifest = manifest_bytes(sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, release_key))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    existed_empty = out_dir.is_dir()
    # what an earlier writer killed midway left here: its partial folder, once that writer is gone
    remove_stale_partials(out_dir)
    # Same parent, so the final os.replace is a rename on one file system, hence atomic. The bundle
    # is built in NAME/ inside a private (0700) partial folder whose marker names this process, so
    # that whatever a crash leaves is one folder that a later write can prove is stale.
    # (8 hex digits: the name is as long as mkdtemp's were, so the longest bundle name still fits)
    partial = out_dir.parent / f".{out_dir.name}.partial-{secrets.token_hex(4)}"
    os.mkdir(partial, 0o700)
    tmp_dir = partial / out_dir.name
    tmp_archive = partial / archive.name
    published_dir = False
    try:
        marker = {"bundle": out_dir.name, "writer": process_owner()}
        _write_new_file(partial / PARTIAL_MARKER, json.dumps(marker, sort_keys=True).encode("utf-8"))
        os.mkdir(tmp_dir, 0o700)
        for i, name in enumerate(sorted(files)):
            _write_new_file(tmp_dir / name, bytes(files[name]))
            if i == 1:
                crash_point("bundle.mid_files")
        _write_new_file(tmp_dir / MANIFEST_NAME, manifest)
        # the folder was made 0700 while it filled up; a release is meant to be read by others.
        os.chmod(tmp_dir, 0o755)
        fsync_dir(tmp_dir)
        if tar:
            _write_tar(tmp_dir, out_dir.name, [*files, MANIFEST_NAME], tmp_archive)
        try:
            # rename(2) replaces an empty directory but fails on a non-empty one, so a folder that
            # filled up since our check is still never clobbered.
            os.replace(tmp_dir, out_dir)
        except OSError as exc:
            raise InputError(f"{out_dir}: cannot move the bundle into place ({exc.strerror})") from exc
        published_dir = True
        if tar:
            crash_point("bundle.before_archive")
            try:
                # link: atomic and fails if the archive appeared meanwhile (never overwritten).
                os.link(tmp_archive, archive)
            except FileExistsError as exc:
                raise InputError(f"{archive}: already exists; refusing to overwrite it") from exc
            except OSError:
                # No hard links on this file system: check, then rename (still atomic).
                if archive.exists() or archive.is_symlink():
                    raise InputError(f"{archive}: already exists; refusing to overwrite it") from None
                os.replace(tmp_archive, archive)
        fsync_dir(out_dir.parent)
    except BaseException:
        if published_dir:
            # The folder is ours (the rename succeeded); without its archive the release is partial.
            shutil.rmtree(out_dir, ignore_errors=True)
            if existed_empty:
                out_dir.mkdir(exist_ok=True)
        raise
    finally:
        # the marker, the archive's temporary copy, and the folder if it never got its name
        shutil.rmtree(partial, ignore_errors=True)
    return out_dir
