"""Roles: who may request runs, approve them and administer the workspace, and revocation.

Three roles, recorded in the workspace database (``release.db.RoleGrant``):

- **admin**: grants and revokes roles. Every grant and revocation is an *admin action*: a record
  signed with the admin's Ed25519 key and kept, with its signature, in the event log entry that
  records it. The record names the event log's head when it was signed, so a signed action
  cannot be replayed later (the head has moved on), and ``verify_admin_actions`` replays the
  whole log and checks every action against the admins of that moment.
- **steward**: approves or rejects runs (``release.approvals``), with a registered key.
- **requester**: asks for runs (``synthgate synthesize --requester``) and spends the budget. A
  requester granted with a public key must present the private key (``--requester-key``), so that
  no one else can spend the budget in their name or dodge "the requester may not approve" by
  naming another requester; one granted by name alone is checked by name only.

The first admin is registered by a self-signed action (``bootstrap_admin``, or ``init --admin``),
accepted only while the workspace has never had an admin: whoever can write to a new workspace
first may claim it, and the log shows who did. Until then the workspace is being set up: no
steward can be added, so nothing can be approved or released, and requesters are not checked.
Workspaces from before roles keep their stewards (the migration grants them the role).

Revoking a steward ends the key's part in every release not yet made: its later approvals are
refused, and its earlier approvals of runs not yet released stop counting (a run that falls below
its policy's approvals goes back to awaiting approval). A bundle released before the revocation
still verifies; the signed revocation list (``revocation_list``, ``synthgate steward revocations``)
lets ``synthgate verify --revocations`` say, offline, that a key was revoked after the release
(or refuse a bundle whose approval came from a key already revoked, which synthgate never writes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from privacy.errors import GateError, InputError, IntegrityError
from privacy.ledger import Source, utcnow
from release.canonical import canonical_json
from release.db import ROLES, Approval, Event, RoleGrant, Run, Steward, chain_head_entry, log_event
from release.dsse import b64decode, b64encode, pae, sign_envelope
from release.keys import key_id, load_private_key, load_public_key, public_key_from_pem, public_key_pem
from release.sources import check_name, source_policy
from release.verify import REVOCATIONS_CONTEXT, REVOCATIONS_PAYLOAD_TYPE, VerifiedBundle
from release.workspace import Workspace

ADMIN_PAYLOAD_TYPE = "application/vnd.synthgate.admin-action+json"
ADMIN_CONTEXT = "synthgate-admin-v1"
#: event kinds that carry a signed admin action
ACTION_EVENTS = ("member.grant", "member.revoke")
#: roles that sign with a key of their own (a requester's name is checked, not a key)
KEYED_ROLES = ("admin", "steward")
_MAX_REASON = 2000


@dataclass(frozen=True)
class AdminSigner:
    """An admin about to act: the name they claim and the private key that must prove it."""

    name: str
    key: Ed25519PrivateKey


def load_admin(name: str, key_file: Path) -> AdminSigner:
    """Read an admin's private key (asking for its passphrase) before any transaction opens."""
    check_name("admin", name)
    return AdminSigner(name=name, key=load_private_key(key_file))


def action_message(record: dict[str, Any]) -> bytes:
    """The exact bytes an admin signs: DSSE PAE over the canonical JSON of the action record."""
    return pae(ADMIN_PAYLOAD_TYPE, canonical_json({"context": ADMIN_CONTEXT, **record}))


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"role {role!r} must be one of {', '.join(ROLES)}")
    return role


def active_grant(s: Session, name: str, role: str) -> RoleGrant | None:
    """The member's active grant of ``role``, or None."""
    return s.scalars(select(RoleGrant).where(RoleGrant.name == name, RoleGrant.role == role,
                                             RoleGrant.revoked_at.is_(None))).first()


def latest_grant(s: Session, name: str, role: str) -> RoleGrant | None:
    """The member's newest grant of ``role``, active or revoked."""
    return s.scalars(select(RoleGrant).where(RoleGrant.name == name, RoleGrant.role == role)
                     .order_by(RoleGrant.id.desc())).first()


def has_admin(s: Session) -> bool:
    """Whether the workspace has ever had an admin (roles are enforced from then on)."""
    return bool(s.scalar(select(func.count()).select_from(RoleGrant).where(RoleGrant.role == "admin")))


def _when(g: RoleGrant) -> str:
    return g.revoked_at.isoformat(timespec="seconds") if g.revoked_at else "?"


def revoked_note(g: RoleGrant) -> str:
    """``revoked at T by ADMIN (reason)``: what a refusal says about a revoked grant."""
    return f"revoked at {_when(g)} by {g.revoked_by}" + (f" ({g.revoke_reason})" if g.revoke_reason else "")


def require_requester(s: Session, name: str, key: Ed25519PrivateKey | None = None) -> str | None:
    """Refuse a requester without an active requester role, once the workspace has an admin.

    A requester granted with a public key must present the private key (``key``); their key id
    is returned, to be logged with the run. A requester granted by name alone is checked by name.
    """
    if not has_admin(s):
        return None
    g = active_grant(s, name, "requester")
    if g is not None:
        if g.keyid is None:
            return None
        if key is None:
            raise GateError(f"requester {name!r} was registered with a key: give it with --requester-key FILE")
        if key_id(key.public_key()) != g.keyid:
            raise IntegrityError(f"the key given is not the one registered for requester {name!r}")
        return g.keyid
    old = latest_grant(s, name, "requester")
    if old is not None:
        raise GateError(f"requester {name!r} may no longer request runs: the role was {revoked_note(old)}")
    raise GateError(f"{name!r} is not a registered requester (an admin grants it: synthgate member add {name} "
                    "--role requester --admin NAME --admin-key FILE)")


def require_steward(s: Session, name: str) -> Steward:
    """The steward's registered key, if the steward role is active; a one-line refusal otherwise."""
    st = s.get(Steward, name)
    if st is None:
        raise InputError(f"steward {name!r} is not registered (synthgate steward add)")
    if active_grant(s, name, "steward") is None:
        old = latest_grant(s, name, "steward")
        note = revoked_note(old) if old is not None else "not granted"
        raise GateError(f"steward {name!r} may no longer decide: the key {st.keyid[:16]} was {note}")
    return st


def _sign(s: Session, signer: AdminSigner, action: dict[str, Any]) -> dict[str, Any]:
    """The signed action record, bound to the log's current head (taken under the write lock)."""
    record = {**action, "admin": signer.name, "log_head": chain_head_entry(s).hash}
    return {"record": record, "keyid": key_id(signer.key.public_key()),
            "sig": b64encode(signer.key.sign(action_message(record)))}


def _verify_action(signed: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    record = signed.get("record")
    if not isinstance(record, dict):
        raise IntegrityError("malformed admin action: no record")
    if signed.get("keyid") != key_id(public_key):
        raise IntegrityError(f"admin action by {record.get('admin')!r}: signed by another key than the admin's")
    sig = b64decode(signed.get("sig"), "admin action signature")
    try:
        public_key.verify(sig, action_message(record))
    except InvalidSignature:
        raise IntegrityError(f"admin action by {record.get('admin')!r}: signature does not verify") from None


def _authorise(s: Session, signer: AdminSigner) -> RoleGrant:
    """The signer's active admin grant, whose key must be the signer's key."""
    if not has_admin(s):
        raise GateError("this workspace has no admin yet: register the first one with "
                        "synthgate member bootstrap NAME --key NAME.key (or init --admin)")
    g = active_grant(s, signer.name, "admin")
    if g is None:
        old = latest_grant(s, signer.name, "admin")
        if old is not None:
            raise GateError(f"{signer.name!r} is no longer an admin: the role was {revoked_note(old)}")
        raise GateError(f"{signer.name!r} is not an admin of this workspace; only an admin grants or revokes roles")
    if g.keyid != key_id(signer.key.public_key()):
        raise IntegrityError(f"the key given is not the one registered for admin {signer.name!r}")
    return g


def _record(s: Session, kind: str, signed: dict[str, Any]) -> Event:
    rec = signed["record"]
    return log_event(s, kind, name=rec["name"], role=rec["role"], admin=rec["admin"], signed=signed)


def bootstrap_admin(ws: Workspace, signer: AdminSigner) -> dict[str, Any]:
    """Register the workspace's first admin, self-signed; refused once any admin has existed."""
    name = signer.name
    pub = signer.key.public_key()
    with ws.transaction() as s:
        if has_admin(s):
            raise GateError("this workspace already has an admin; an admin grants the role to others "
                            "(synthgate member add NAME --role admin --public-key FILE --admin NAME --admin-key FILE)")
        signed = _sign(s, signer, {"action": "grant", "name": name, "role": "admin", "keyid": key_id(pub),
                                   "public_key_pem": public_key_pem(pub), "reason": "first admin"})
        ev = _record(s, "member.grant", signed)
        s.add(RoleGrant(name=name, role="admin", keyid=key_id(pub), public_key_pem=public_key_pem(pub),
                        granted_by=name, grant_event=ev.id))
    return {"name": name, "role": "admin", "keyid": key_id(pub), "granted_by": name, "event": ev.id}


def grant_role(ws: Workspace, signer: AdminSigner, name: str, role: str,
               public_key_file: Path | None = None) -> dict[str, Any]:
    """Grant ``role`` to ``name`` by a signed admin action; stewards and admins need a public key.

    A steward's name and key are registered once for good (approvals and bundles name them): a
    revoked steward is not granted again under the same name.
    """
    check_name("member", name)
    _check_role(role)
    pub = None
    if role in KEYED_ROLES:
        if public_key_file is None:
            raise InputError(f"a {role} needs a public key: --public-key NAME.pub")
        pub = load_public_key(public_key_file)
    elif public_key_file is not None:
        # a requester with a key must present it to synthesize (require_requester)
        pub = load_public_key(public_key_file)
    kid = key_id(pub) if pub is not None else None
    pem = public_key_pem(pub) if pub is not None else None
    with ws.transaction() as s:
        _authorise(s, signer)
        if active_grant(s, name, role) is not None:
            raise InputError(f"{name!r} already holds the {role} role")
        if role == "steward":
            if s.get(Steward, name) is not None:
                raise InputError(f"steward {name!r} was registered before (and revoked); a steward name is "
                                 "used once, so that approvals and bundles name one key: choose another name")
            if s.scalars(select(Steward).where(Steward.keyid == kid)).first() is not None:
                raise InputError("this public key is already registered to another steward")
        if kid is not None and s.scalars(select(RoleGrant).where(RoleGrant.keyid == kid,
                                                                  RoleGrant.name != name)).first() is not None:
            raise InputError("this public key is already registered to another member")
        signed = _sign(s, signer, {"action": "grant", "name": name, "role": role, "keyid": kid,
                                   "public_key_pem": pem, "reason": ""})
        ev = _record(s, "member.grant", signed)
        if role == "steward":
            assert pem is not None and kid is not None
            s.add(Steward(name=name, public_key_pem=pem, keyid=kid))
        s.add(RoleGrant(name=name, role=role, keyid=kid, public_key_pem=pem, granted_by=signer.name,
                        grant_event=ev.id))
    return {"name": name, "role": role, "keyid": kid, "granted_by": signer.name, "event": ev.id}


def revoke_role(ws: Workspace, signer: AdminSigner, name: str, role: str, reason: str) -> dict[str, Any]:
    """Revoke ``name``'s ``role`` by a signed admin action, with a reason.

    Revoking a steward also withdraws their approvals from every run not yet released: a run that
    no longer has the approvals its policy requires goes back to ``awaiting_approval``.
    """
    check_name("member", name)
    _check_role(role)
    if not isinstance(reason, str) or not reason.strip():
        raise InputError("a revocation needs a reason (--reason)")
    if len(reason) > _MAX_REASON or "\n" in reason or "\r" in reason:
        raise InputError(f"--reason must be one line of at most {_MAX_REASON} characters")
    with ws.transaction() as s:
        _authorise(s, signer)
        g = active_grant(s, name, role)
        if g is None:
            old = latest_grant(s, name, role)
            if old is not None:
                raise InputError(f"{name!r}'s {role} role was already {revoked_note(old)}")
            raise InputError(f"{name!r} does not hold the {role} role")
        if role == "admin":
            admins = s.scalar(select(func.count()).select_from(RoleGrant).where(
                RoleGrant.role == "admin", RoleGrant.revoked_at.is_(None))) or 0
            if admins <= 1:
                raise GateError(f"{name!r} is the last admin: grant the role to another member before revoking it")
        signed = _sign(s, signer, {"action": "revoke", "name": name, "role": role, "keyid": g.keyid,
                                   "public_key_pem": None, "reason": reason})
        ev = _record(s, "member.revoke", signed)
        g.revoked_at = utcnow()
        g.revoked_by = signer.name
        g.revoke_reason = reason
        g.revoke_event = ev.id
        s.flush()
        withdrawn = _withdraw_approvals(s, name) if role == "steward" else []
    return {"name": name, "role": role, "keyid": g.keyid, "revoked_by": signer.name, "reason": reason,
            "event": ev.id, "runs_back_to_awaiting_approval": withdrawn}


def counted_approvers(s: Session, run: Run) -> set[str]:
    """Stewards whose approval of the run's current statement counts: active, signed over it."""
    names = set()
    for a in s.scalars(select(Approval).where(Approval.run_id == run.id, Approval.decision == "approve")):
        if json.loads(a.record_json).get("statement_digest") != run.statement_digest:
            continue
        if active_grant(s, a.steward, "steward") is None:
            continue
        names.add(a.steward)
    return names


def approval_rows(s: Session, run_id: str) -> list[dict[str, Any]]:
    """A run's decisions for people (review, runs, reports): steward, decision, comment, time, and
    whether the approval was withdrawn by the revocation of the steward's key."""
    rows = []
    for a in s.scalars(select(Approval).where(Approval.run_id == run_id).order_by(Approval.id)):
        revoked = active_grant(s, a.steward, "steward") is None
        rows.append({"steward": a.steward, "decision": a.decision,
                     "comment": json.loads(a.record_json).get("comment", ""),
                     "at": a.created_at.isoformat() if a.created_at else None,
                     "withdrawn": a.decision == "approve" and revoked})
    return rows


def _withdraw_approvals(s: Session, steward: str) -> list[str]:
    """After a steward's revocation: approved runs, not yet released, that now lack approvals."""
    back = []
    run_ids = [a.run_id for a in s.scalars(select(Approval).where(Approval.steward == steward,
                                                                   Approval.decision == "approve"))]
    for run_id in sorted(set(run_ids)):
        run = s.get(Run, run_id)
        if run is None or run.state != "approved":
            continue
        src = s.get(Source, run.source_id)
        assert src is not None
        required = source_policy(src).approvals.required
        if len(counted_approvers(s, run)) < required:
            run.state = "awaiting_approval"
            log_event(s, "run.state", run_id, state=run.state,
                      reason=f"steward {steward}'s approval was withdrawn by the revocation of the key")
            back.append(run_id)
    return back


def list_members(ws: Workspace) -> list[dict[str, Any]]:
    """Every grant, oldest first: name, role, key id, granted by/at, and revocation if any."""
    with ws.transaction() as s:
        return [
            {"name": g.name, "role": g.role, "keyid": g.keyid, "active": g.revoked_at is None,
             "granted_at": g.granted_at.isoformat(timespec="seconds"), "granted_by": g.granted_by,
             "grant_event": g.grant_event,
             "revoked_at": g.revoked_at.isoformat(timespec="seconds") if g.revoked_at else None,
             "revoked_by": g.revoked_by, "revoke_reason": g.revoke_reason, "revoke_event": g.revoke_event}
            for g in s.scalars(select(RoleGrant).order_by(RoleGrant.id))
        ]


def verify_admin_actions(s: Session) -> int:
    """Replay the event log's admin actions in order; return how many were checked.

    Each must be signed by an admin active at that point of the log (the first admin by their own
    key, while no admin existed before), over the log head just before its entry; every grant
    and revocation in ``role_grants`` must be the one its action recorded. ``IntegrityError``
    at the first that is not.
    """
    admins: dict[str, str] = {}  # name -> public key PEM, as the log has granted so far
    ever_admin = False
    recorded: dict[int, dict[str, Any]] = {}
    n = 0
    for ev in s.scalars(select(Event).where(Event.kind.in_(ACTION_EVENTS)).order_by(Event.id)):
        try:
            signed = json.loads(ev.detail_json)["signed"]
            rec = signed["record"]
            admin = rec["admin"]
        except (KeyError, TypeError, ValueError):
            raise IntegrityError(f"event log entry {ev.id} ({ev.kind}): no signed admin action") from None
        where = f"event log entry {ev.id} ({ev.kind} {rec.get('role')} {rec.get('name')!r} by {admin!r})"
        if rec.get("log_head") != ev.prev_hash:
            raise IntegrityError(f"{where}: signed over another log head than the entry before it (replayed?)")
        first = not ever_admin and ev.kind == "member.grant" and rec.get("role") == "admin" and rec.get("name") == admin
        pem = rec.get("public_key_pem") if first else admins.get(admin)
        if not isinstance(pem, str):
            raise IntegrityError(f"{where}: {admin!r} was not an admin at that point of the log")
        try:
            _verify_action(signed, public_key_from_pem(pem))
        except (IntegrityError, InputError) as exc:
            raise IntegrityError(f"{where}: {exc}") from None
        if rec.get("role") == "admin":
            if ev.kind == "member.grant":
                admins[rec["name"]] = rec["public_key_pem"]
                ever_admin = True
            else:
                admins.pop(rec["name"], None)
        recorded[ev.id] = rec
        n += 1
    grants = list(s.scalars(select(RoleGrant).order_by(RoleGrant.id)))
    # every action the log signed is in the table: a grant removed or a revocation undone by hand
    by_event = {g.grant_event: g for g in grants if g.grant_event is not None}
    by_event.update({g.revoke_event: g for g in grants if g.revoke_event is not None})
    for event_id, rec in recorded.items():
        g = by_event.get(event_id)
        if g is None or (g.name, g.role) != (rec["name"], rec["role"]):
            raise IntegrityError(f"the {rec['action']} of {rec['name']!r}'s {rec['role']} role at event log entry "
                                 f"{event_id} is not the one a signed admin action recorded: the roles table "
                                 "lost it")
    # stewards from before roles (the migration's grants, by nobody) were logged as "steward.add",
    # always before the first admin action: a grant by nobody needs such an entry, and one appended
    # later (or inserted and re-chained past a signed action) does not qualify
    first_action = min(recorded, default=None)
    legacy = set()
    for ev in s.scalars(select(Event).where(Event.kind == "steward.add").order_by(Event.id)):
        if first_action is not None and ev.id > first_action:
            continue
        d = json.loads(ev.detail_json)
        legacy.add((d.get("steward"), d.get("keyid")))
    for g in grants:
        if g.grant_event is None and g.granted_by is None:
            if g.role != "steward" or (g.name, g.keyid) not in legacy:
                raise IntegrityError(f"{g.role} grant of {g.name!r} is not the one a signed admin action recorded "
                                     "(nor a steward registered before roles)")
            continue
        rec = recorded.get(g.grant_event or -1)
        if rec is None or rec.get("action") != "grant" or (rec["name"], rec["role"], rec.get("keyid")) != (
                g.name, g.role, g.keyid) or rec["admin"] != g.granted_by:
            raise IntegrityError(f"{g.role} grant of {g.name!r} is not the one a signed admin action recorded")
        if g.revoked_at is not None or g.revoke_event is not None:
            rev = recorded.get(g.revoke_event or -1)
            if rev is None or rev.get("action") != "revoke" or (rev["name"], rev["role"]) != (g.name, g.role):
                raise IntegrityError(f"revocation of {g.name!r}'s {g.role} role is not the one a signed admin "
                                     "action recorded")
    return n


def revocation_list(ws: Workspace) -> dict[str, Any]:
    """The stewards' revoked keys as a DSSE envelope signed by the workspace's release key.

    Each entry names the steward, key id, time, reason and the event log entry of the
    revocation; ``event_log_head`` is the head when the list was issued. A reader compares a
    revocation's entry with a bundle's recorded head (``verify --revocations``).
    """
    with ws.transaction() as s:
        revoked = [
            {"steward": g.name, "keyid": g.keyid, "revoked_at": _when(g), "revoked_by": g.revoked_by,
             "reason": g.revoke_reason, "revoke_event": g.revoke_event}
            for g in s.scalars(select(RoleGrant).where(RoleGrant.role == "steward", RoleGrant.revoked_at.is_not(None))
                               .order_by(RoleGrant.revoke_event))
        ]
        head = chain_head_entry(s)
    payload = {"context": REVOCATIONS_CONTEXT, "issued_at": utcnow().isoformat(timespec="seconds"),
               "event_log_head": head.to_predicate(), "revoked": revoked}
    return sign_envelope(canonical_json(payload), REVOCATIONS_PAYLOAD_TYPE, ws.release_key())


def revoked_since(s: Session, bundle: VerifiedBundle, head_id: int) -> list[dict[str, Any]]:
    """For ``log verify --bundle``: the bundle's approving keys revoked in this log, each after
    ``head_id`` (the bundle's recorded head); ``IntegrityError`` for one revoked at or before it."""
    keys = {a["keyid"]: a["steward"] for a in bundle.approvals if a.get("decision") == "approve"}
    out = []
    for g in s.scalars(select(RoleGrant).where(RoleGrant.role == "steward", RoleGrant.revoked_at.is_not(None))
                       .order_by(RoleGrant.revoke_event)):
        if g.keyid not in keys or g.revoke_event is None:
            continue
        if g.revoke_event <= head_id:
            raise IntegrityError(f"the key of approving steward {keys[g.keyid]!r} was revoked at event log entry "
                                 f"{g.revoke_event}, before this release (entry {head_id})")
        out.append({"steward": g.name, "keyid": g.keyid, "revoked_at": _when(g), "revoke_event": g.revoke_event,
                    "reason": g.revoke_reason})
    return out
