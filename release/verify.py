"""Offline verification of a release bundle: every byte, every signature, every recorded check.

``verify_bundle`` returns a ``VerifiedBundle`` or raises ``IntegrityError`` (exit 5) with the
reason; it never returns a bool. The steps are numbered in the code. What it needs:

* the bundle: a folder, or a ``.tar.gz`` / ``.tgz`` holding one folder (``release.bundle``);
* the trusted release public keys, from the reader (``load_trusted``), never from the bundle.

Predicate keys the verifier relies on (the writer of the predicate must provide them)::

    run_id                     str
    release_keyid              str, key id (64 hex) of the release key that signs the manifest
    policy                     {"approvals_required": int >= 1, ...}   (name, digest: informative)
    gate                       {"passed": true, "checks": [{"name": str, "passed": true, ...}, ...]}
    stewards                   {name: {"public_key_pem": str, "keyid": str}}
    approval_statement         {"run_id": str, "files": {name: sha256 hex}, ...} where files
                               covers release.bundle.APPROVAL_BOUND_FILES
    approval_statement_digest  sha256_hex(canonical_json(approval_statement))
    approvals                  [record from release.approval_sig.sign_decision, ...]

Optional: ``event_log_head`` ``{"id": int >= 0, "hash": 64 hex}``, the workspace event log's head at
release time (``release.bundle.EventLogHead``). Bundles from before issue 9 hold the bare hash
string (read with id None); older or hand-made ones may have none (``VerifiedBundle.event_log_head``
is then None). Verification only checks its form: the log itself is the workspace's, so matching it
is ``release.db.check_event_log_head``'s job (``synthgate log verify --bundle``), never this module's.

Trust in stewards' keys: the stewards' public keys are carried inside the signed manifest and are
trusted *because the release key signed them*; the approvals therefore add separation of duties
only as far as the release key is kept apart from the stewards. A reader who wants to pin steward
keys independently passes them as ``trusted_stewards`` (``synthgate verify --trust-steward``).

Revocation: a bundle says nothing of keys revoked after it was signed. ``check_revocations`` reads
revocation lists signed by the bundle's own release key (``synthgate steward revocations``) and
orders each revocation against the event log head the bundle recorded: revoked after the release
is reported and leaves the bundle valid; revoked at or before it is an ``IntegrityError``.

Stricter than generic DSSE on purpose: ``manifest.json`` must be byte-for-byte the text
``release.bundle.manifest_bytes`` writes for the parsed envelope (so whitespace, extra fields and
the unauthenticated keyid are checked too) and must carry exactly one signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from privacy.errors import InputError, IntegrityError
from release.approval_sig import verify_decision
from release.bundle import (
    APPROVAL_BOUND_FILES,
    EVENT_LOG_HEAD_KEY,
    MANIFEST_NAME,
    RELEASE_PREDICATE_TYPE,
    EventLogHead,
    file_name_problem,
    manifest_bytes,
)
from release.canonical import canonical_json, sha256_hex
from release.dsse import IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, verify_envelope
from release.keys import PUBLIC_SUFFIX, key_id, load_public_key, public_key_from_pem

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: ``release.db.GENESIS``, the chain's "previous hash" before its first entry (not imported: this
#: module stays free of the workspace database).
_EMPTY_LOG_HASH = "0" * 64
_CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifiedBundle:
    """What a verified bundle says; only ever built after every check passed."""

    #: The in-toto Statement (the signed manifest payload).
    statement: dict[str, Any]
    #: ``statement["predicate"]``.
    predicate: dict[str, Any]
    #: Key id (64 hex) of the trusted release key whose signature verified.
    release_keyid: str
    #: Names of the subject files (manifest.json excluded), sorted.
    files: tuple[str, ...]
    #: Every steward decision record in the manifest (``approval_sig`` records: run_id,
    #: statement_digest, decision, steward, comment, keyid, sig), each verified; rejections
    #: included, so filter on ``decision == "approve"``. Empty if step 5 was skipped.
    approvals: tuple[dict[str, str], ...]
    #: The workspace event log's head when the bundle was released; None if the bundle records none.
    event_log_head: EventLogHead | None = None


def load_trusted(paths: list[Path]) -> list[Ed25519PublicKey]:
    """Load trusted public keys: each path is a key file or a directory of ``*.pub`` files.

    Duplicate keys are kept once. ``InputError`` if a path is missing, a file is not an Ed25519
    public key, or no key is found at all.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(p for p in path.glob(f"*{PUBLIC_SUFFIX}") if p.is_file())
        elif path.exists():
            candidates = [path]
        else:
            raise InputError(f"{path}: file not found")
        for candidate in candidates:
            public_key = load_public_key(candidate)
            keys.setdefault(key_id(public_key), public_key)
    if not keys:
        where = ", ".join(str(p) for p in paths) or "(no paths given)"
        raise InputError(f"no trusted public keys (*{PUBLIC_SUFFIX}) found in {where}")
    return list(keys.values())


def _strict_json(data: bytes, what: str) -> Any:
    """Parse JSON refusing duplicate keys and NaN/Infinity, which different parsers read differently."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                raise IntegrityError(f"{what}: duplicate key {key!r}")
            obj[key] = value
        return obj

    def constant(name: str) -> Any:
        raise IntegrityError(f"{what}: {name} is not valid JSON")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"{what}: not UTF-8") from exc
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{what}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    except ValueError as exc:
        # e.g. an integer literal past Python's digit limit for int conversion
        raise IntegrityError(f"{what}: not valid JSON ({str(exc).splitlines()[0][:120]})") from exc
    except RecursionError as exc:
        raise IntegrityError(f"{what}: nested too deeply") from exc


def _extract_tar(archive: Path, dest: Path) -> Path:
    """Extract a bundle archive into ``dest`` after checking every member; return the bundle folder.

    Every member is checked before anything is written, and files are written by us (not by
    ``extractall``), so no member can land outside ``dest`` whatever this Python's tarfile does.
    """
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            top: str | None = None
            seen: set[str] = set()
            plan: list[tuple[tarfile.TarInfo, str]] = []
            for member in members:
                name = member.name
                if name.startswith(("/", "\\")) or os.path.isabs(name) or re.match(r"[A-Za-z]:", name):
                    raise IntegrityError(f"archive member {name!r} has an absolute path")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if ".." in parts or any("\\" in p for p in parts):
                    raise IntegrityError(f"archive member {name!r} escapes the bundle folder")
                if member.issym() or member.islnk():
                    raise IntegrityError(f"archive member {name!r} is a link (links are refused)")
                if not (member.isreg() or member.isdir()):
                    raise IntegrityError(f"archive member {name!r} is a device, fifo or other special file")
                if not parts:
                    continue  # "./" itself
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise IntegrityError(f"archive has more than one top-level entry ({top!r}, {parts[0]!r})")
                if len(parts) == 1 and not member.isdir():
                    raise IntegrityError(f"archive member {name!r} is not inside the bundle folder")
                if len(parts) > 2 or (len(parts) == 2 and member.isdir()):
                    raise IntegrityError(f"archive member {name!r}: a bundle has no sub-folders")
                key = "/".join(parts)
                if key in seen:
                    raise IntegrityError(f"archive member {name!r} appears twice")
                seen.add(key)
                if len(parts) == 2:
                    plan.append((member, parts[1]))
            if top is None:
                raise IntegrityError("archive is empty")
            # A few MB of gzip can declare terabytes of zeros: refuse before writing what cannot fit.
            declared = sum(member.size for member, _ in plan)
            free = shutil.disk_usage(dest).free
            if declared > free:
                raise IntegrityError(
                    f"archive declares {declared} bytes of files, more than the {free} bytes free "
                    f"where it would be unpacked ({dest.parent})"
                )
            root = dest / top
            root.mkdir()
            for member, file_name in plan:
                source = tar.extractfile(member)
                if source is None:
                    raise IntegrityError(f"archive member {member.name!r} cannot be read")
                with source, open(root / file_name, "xb") as target:
                    shutil.copyfileobj(source, target, _CHUNK)
            return root
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise IntegrityError(f"not a readable .tar.gz bundle ({exc})") from exc


def _file_sha256(path: Path) -> str:
    # Streamed: the synthetic data can be larger than we want to hold twice in memory.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise IntegrityError(message)


def _parse_subjects(statement: dict[str, Any]) -> dict[str, str]:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise IntegrityError("statement has no subject list")
    result: dict[str, str] = {}
    lowered: set[str] = set()
    for subject in subjects:
        _require(isinstance(subject, dict), "statement subject is not an object")
        name = subject.get("name")
        problem = file_name_problem(name)
        if problem is not None or not isinstance(name, str):
            raise IntegrityError(f"statement subject: {problem}")
        digest = subject.get("digest")
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise IntegrityError(f"subject {name!r} has no sha256 digest")
        _require(name.lower() not in lowered, f"subject {name!r} is listed twice")
        lowered.add(name.lower())
        result[name] = sha
    return result


def _event_log_head(predicate: dict[str, Any]) -> EventLogHead | None:
    """Step 8: the recorded event log head, if any, in one of the two forms synthgate has written."""
    if EVENT_LOG_HEAD_KEY not in predicate:
        return None
    value = predicate[EVENT_LOG_HEAD_KEY]
    if isinstance(value, str) and _HEX64.fullmatch(value):
        return EventLogHead(id=None, hash=value)  # written before issue 9: the bare hash
    if isinstance(value, dict) and set(value) == {"id", "hash"}:
        head_id, head_hash = value["id"], value["hash"]
        if (
            isinstance(head_id, int)
            and not isinstance(head_id, bool)
            and head_id >= 0
            and isinstance(head_hash, str)
            and _HEX64.fullmatch(head_hash)
            # id 0 is the empty log, whose head is the all-zero genesis hash, and only that
            and (head_id == 0) == (head_hash == _EMPTY_LOG_HASH)
        ):
            return EventLogHead(id=head_id, hash=head_hash)
    raise IntegrityError(f'predicate {EVENT_LOG_HEAD_KEY} is malformed (expected {{"id": int, "hash": 64 hex}})')


def _verify_approvals(
    predicate: dict[str, Any], trusted_stewards: list[Ed25519PublicKey] | None = None
) -> tuple[dict[str, str], ...]:
    """Step 5: every approval verifies against its steward's recorded key; the threshold is met.

    With ``trusted_stewards`` (keys the reader pins), only approvals by those keys count, so a
    workspace owner who registered stewards of their own cannot make up the dual control.
    """
    run_id = predicate.get("run_id")
    _require(isinstance(run_id, str) and bool(run_id), "predicate has no run_id")
    stewards = predicate.get("stewards")
    if not isinstance(stewards, dict):
        raise IntegrityError("predicate has no stewards map")
    steward_keys: dict[str, Ed25519PublicKey] = {}
    for name, entry in stewards.items():
        _require(isinstance(entry, dict), f"steward {name!r}: entry is not an object")
        pem, recorded_id = entry.get("public_key_pem"), entry.get("keyid")
        try:
            public_key = public_key_from_pem(pem)
        except InputError as exc:
            raise IntegrityError(f"steward {name!r}: {exc}") from exc
        _require(recorded_id == key_id(public_key), f"steward {name!r}: keyid does not match the public key")
        steward_keys[name] = public_key

    statement = predicate.get("approval_statement")
    if not isinstance(statement, dict):
        raise IntegrityError("predicate has no approval_statement")
    digest = predicate.get("approval_statement_digest")
    _require(
        digest == sha256_hex(canonical_json(statement)),
        "approval_statement_digest is not the digest of the approval statement",
    )
    _require(statement.get("run_id") == run_id, "approval statement is for another run")

    approvals = predicate.get("approvals")
    if not isinstance(approvals, list):
        raise IntegrityError("predicate has no approvals list")
    verified: list[dict[str, str]] = []
    approving_keys: set[str] = set()
    for record in approvals:
        steward = record.get("steward") if isinstance(record, dict) else None
        if not isinstance(steward, str) or steward not in steward_keys:
            raise IntegrityError(f"approval by {steward!r}: not a steward recorded in the manifest")
        verify_decision(record, steward_keys[steward])
        _require(
            record["run_id"] == run_id,
            f"approval of {steward!r} is for run {record['run_id']!r}, not {run_id!r}",
        )
        _require(
            record["statement_digest"] == digest,
            f"approval of {steward!r} signs another approval statement",
        )
        verified.append(dict(record))
        if record["decision"] == "approve":
            # Count keys, not names: one key listed under two steward names is one approver.
            approving_keys.add(record["keyid"])

    # the stewards signed the approval statement: the policy, gate and spend in the predicate must be
    # the ones they saw
    for key in ("policy", "gate", "spend", "generator", "schema"):
        _require(predicate.get(key) == statement.get(key), f"predicate {key} differs from the approved statement")
    policy = statement.get("policy")
    if trusted_stewards is not None:
        pinned = {key_id(k) for k in trusted_stewards}
        approving_keys &= pinned
    if isinstance(policy, dict) and policy.get("requester_may_approve") is False:
        requester = statement.get("requester")
        for record in verified:
            _require(
                not (record["decision"] == "approve" and record["steward"] == requester),
                f"the requester {requester!r} approved their own run, which the policy forbids",
            )
    required = policy.get("approvals_required") if isinstance(policy, dict) else None
    # An approval rule of zero would be trivially satisfied, so it is refused, not accepted.
    if not isinstance(required, int) or isinstance(required, bool) or required < 1:
        raise IntegrityError("policy.approvals_required must be an integer >= 1")
    _require(
        len(approving_keys) >= required,
        f"{len(approving_keys)} distinct {'pinned ' if trusted_stewards is not None else ''}steward "
        f"approval(s); the policy requires {required}",
    )
    return tuple(verified)


def _verify_folder(
    root: Path,
    trusted: list[Ed25519PublicKey],
    steward_keys_check: bool,
    trusted_stewards: list[Ed25519PublicKey] | None = None,
) -> VerifiedBundle:
    # (1) manifest.json is present, a regular file, and parses as JSON.
    manifest_path = root / MANIFEST_NAME
    _require(
        manifest_path.is_file() and not manifest_path.is_symlink(),
        f"{MANIFEST_NAME} is missing",
    )
    manifest_raw = manifest_path.read_bytes()
    envelope = _strict_json(manifest_raw, MANIFEST_NAME)

    # (2) The DSSE envelope verifies with one of the reader's trusted release keys, and the file is
    # exactly the text the writer produces (every byte checked, exactly one signature).
    payload, release_keyid = verify_envelope(envelope, trusted, expected_type=IN_TOTO_PAYLOAD_TYPE)
    _require(len(envelope["signatures"]) == 1, f"{MANIFEST_NAME} must carry exactly one signature")
    _require(
        manifest_raw == manifest_bytes(envelope),
        f"{MANIFEST_NAME} is not in the exact form synthgate writes (reformatted or extra fields)",
    )

    # (3) The payload is an in-toto Statement v1 of the synthgate release predicate.
    statement = _strict_json(payload, "manifest payload")
    _require(isinstance(statement, dict), "manifest payload is not a JSON object")
    _require(statement.get("_type") == STATEMENT_TYPE, "manifest payload is not an in-toto Statement v1")
    _require(
        statement.get("predicateType") == RELEASE_PREDICATE_TYPE,
        f"predicateType {statement.get('predicateType')!r} is not {RELEASE_PREDICATE_TYPE!r}",
    )
    predicate = statement.get("predicate")
    _require(isinstance(predicate, dict), "statement predicate is not an object")
    _require(
        predicate.get("release_keyid") == release_keyid,
        "predicate release_keyid is not the key that signed the manifest",
    )
    subjects = _parse_subjects(statement)

    # (4) Exactly the subject files are present, each regular and with the signed SHA-256.
    sizes: dict[str, int] = {}
    with os.scandir(root) as entries:
        for entry in entries:
            _require(
                entry.is_file(follow_symlinks=False),
                f"{entry.name!r} in the bundle is not a regular file (links and folders are refused)",
            )
            sizes[entry.name] = entry.stat(follow_symlinks=False).st_size
    present = sizes.keys() - {MANIFEST_NAME}
    extra = sorted(present - subjects.keys())
    missing = sorted(subjects.keys() - present)
    _require(not extra, f"file(s) not in the manifest: {', '.join(extra)}")
    _require(not missing, f"file(s) in the manifest are missing: {', '.join(missing)}")
    # Smallest first: a changed document is reported without first reading gigabytes of data.
    for name in sorted(subjects, key=lambda n: (sizes[n], n)):
        _require(_file_sha256(root / name) == subjects[name], f"{name}: SHA-256 does not match the manifest")

    # (5) Stewards' approvals verify and meet the policy's threshold.
    if steward_keys_check:
        approvals = _verify_approvals(predicate, trusted_stewards)
    else:
        warnings.warn(
            "verify_bundle(steward_keys_check=False): the stewards' approval signatures are NOT checked",
            UserWarning,
            stacklevel=3,
        )
        approvals = ()

    # (6) The approval statement binds the released data: the digests the stewards approved are
    # the digests of the files shipped, so swapped data fails even under a re-signed manifest.
    approval_statement = predicate.get("approval_statement")
    _require(isinstance(approval_statement, dict), "predicate has no approval_statement")
    approved_files = approval_statement.get("files")
    _require(isinstance(approved_files, dict), "approval statement has no files map")
    for name in APPROVAL_BOUND_FILES:
        _require(name in subjects, f"{name} is not in the bundle")
        _require(name in approved_files, f"approval statement does not name {name}")
    for name, digest in approved_files.items():
        _require(
            subjects.get(name) == digest,
            f"{name}: the shipped file is not the one the stewards approved",
        )

    # (7) Every recorded gate check passed, and the gate as a whole passed.
    gate = predicate.get("gate")
    _require(isinstance(gate, dict), "predicate has no gate record")
    checks = gate.get("checks")
    # An empty list of checks would pass trivially; a gate that checked nothing is refused.
    _require(isinstance(checks, list) and bool(checks), "gate record has no checks")
    for check in checks:
        _require(isinstance(check, dict), "gate check is not an object")
        _require(check.get("passed") is True, f"gate check {check.get('name')!r} did not pass")
    _require(gate.get("passed") is True, "the gate did not pass")

    # (8) The event log head, if recorded, is well formed (matching it to a log is the workspace's job).
    head = _event_log_head(predicate)

    return VerifiedBundle(
        statement=statement,
        predicate=predicate,
        release_keyid=release_keyid,
        files=tuple(sorted(subjects)),
        approvals=approvals,
        event_log_head=head,
    )


def verify_bundle(
    path: Path,
    trusted: list[Ed25519PublicKey],
    steward_keys_check: bool = True,
    *,
    trusted_stewards: list[Ed25519PublicKey] | None = None,
) -> VerifiedBundle:
    """Verify a bundle folder or ``.tar.gz`` against the reader's trusted release keys.

    Raises ``IntegrityError`` (exit 5) with the failing step's reason, ``InputError`` if ``path``
    does not exist or no trusted key is given. ``steward_keys_check=False`` skips step 5 (the
    approval signatures and threshold) and warns on every call: it is an unsafe escape hatch.
    """
    path = Path(path)
    if not trusted:
        raise InputError("no trusted release keys given")
    # (0) A bundle folder, or an archive holding exactly one, extracted safely into a temp dir.
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        if path.is_dir():
            return _verify_folder(path, trusted, steward_keys_check, trusted_stewards)
        if not path.name.endswith((".tar.gz", ".tgz")):
            raise IntegrityError("not a bundle folder or a .tar.gz archive")
        with tempfile.TemporaryDirectory(prefix="synthgate-verify-") as tmp:
            root = _extract_tar(path, Path(tmp))
            return _verify_folder(root, trusted, steward_keys_check, trusted_stewards)
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from exc


#: DSSE payloadType of the signed list of revoked steward keys (``synthgate steward revocations``).
REVOCATIONS_PAYLOAD_TYPE = "application/vnd.synthgate.revocations+json"
REVOCATIONS_CONTEXT = "synthgate-revocations-v1"
_MAX_REVOCATIONS_FILE = 16 * 1024 * 1024


@dataclass(frozen=True)
class RevokedAfter:
    """An approving steward's key that a revocation list names, revoked after the bundle's release."""

    steward: str
    keyid: str
    revoked_at: str
    revoke_event: int
    reason: str


def _revocation_entries(path: Path, trusted_keyid: str, trusted: list[Ed25519PublicKey]) -> list[dict[str, Any]]:
    """The entries of one signed revocation list, which the bundle's own release key must have signed."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_REVOCATIONS_FILE:
            raise IntegrityError(f"{path}: larger than a revocation list can be")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a revocation list") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        envelope = _strict_json(data, "revocation list")
        # only the key that signed the bundle: a list from another workspace says nothing of this one
        by_id = [k for k in trusted if key_id(k) == trusted_keyid]
        payload, _ = verify_envelope(envelope, by_id, expected_type=REVOCATIONS_PAYLOAD_TYPE)
        body = _strict_json(payload, "revocation list payload")
        _require(isinstance(body, dict) and body.get("context") == REVOCATIONS_CONTEXT,
                 f"not a revocation list (context {REVOCATIONS_CONTEXT})")
        entries = body.get("revoked")
        _require(isinstance(entries, list), "revocation list: 'revoked' is not a list")
        for e in entries:
            _require(
                isinstance(e, dict) and isinstance(e.get("steward"), str) and isinstance(e.get("keyid"), str)
                and isinstance(e.get("revoke_event"), int) and not isinstance(e.get("revoke_event"), bool)
                and isinstance(e.get("revoked_at"), str),
                "revocation list: an entry lacks steward, keyid, revoked_at or revoke_event")
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from None
    return entries


def check_revocations(bundle: VerifiedBundle, lists: list[Path], trusted: list[Ed25519PublicKey]) -> list[RevokedAfter]:
    """Compare a verified bundle's approvals with signed revocation lists of its workspace.

    A key revoked after the release (its revocation's log entry comes after the head the bundle
    recorded) leaves the bundle valid and is returned, to be reported. A key revoked at or before
    the release would mean an approval counted that should not have: ``IntegrityError``. A bundle
    that records no log entry id cannot be ordered against a revocation: ``IntegrityError`` too,
    since the reader asked about revocation and no answer can be given.
    """
    entries = [e for p in lists for e in _revocation_entries(p, bundle.release_keyid, trusted)]
    by_key: dict[str, dict[str, Any]] = {}
    for e in entries:
        by_key.setdefault(e["keyid"], e)
    head = bundle.event_log_head
    notes = []
    for a in bundle.approvals:
        if a.get("decision") != "approve" or a.get("keyid") not in by_key:
            continue
        e = by_key[a["keyid"]]
        when = f"revoked at {e['revoked_at']} (event log entry {e['revoke_event']})"
        if head is None or head.id is None:
            raise IntegrityError(f"the key of approving steward {a['steward']!r} was {when}, and the bundle "
                                 "records no event log entry to tell whether that came before its release")
        if e["revoke_event"] <= head.id:
            raise IntegrityError(f"the key of approving steward {a['steward']!r} was {when}, before this "
                                 f"release (event log entry {head.id}): the approval is not valid")
        notes.append(RevokedAfter(steward=str(a["steward"]), keyid=a["keyid"], revoked_at=e["revoked_at"],
                                  revoke_event=e["revoke_event"], reason=str(e.get("reason") or "")))
    return notes
