"""Commands of trust: keys, stewards, approvals, release, verify, policies, the event log."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from policies.loader import available_policies, load_policy, policy_text
from privacy.errors import InputError, IntegrityError
from release.approvals import decide
from release.atomic import write_atomic
from release.cli.common import emit, get_workspace, json_option
from release.db import ROLES, check_event_log_head, verify_chain
from release.dsse import b64decode
from release.keys import (
    NO_PASSPHRASE,
    PASSPHRASE_ENV,
    PassphraseSource,
    encrypt_private_key,
    generate_keypair,
    using_passphrase,
    write_public_key,
)
from release.members import (
    bootstrap_admin,
    grant_role,
    list_members,
    load_admin,
    revocation_list,
    revoke_role,
    revoked_since,
    verify_admin_actions,
)
from release.publish import release
from release.verify import check_revocations, load_trusted, verify_bundle

F = TypeVar("F", bound=Callable[..., Any])


def _interactive() -> bool:
    """Whether a passphrase may be prompted for (stdin is a terminal)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def cli_passphrase(env_name: str | None) -> PassphraseSource:
    """The CLI's passphrase source: ``--passphrase-env NAME``, else $SYNTHGATE_PASSPHRASE, else a prompt
    on a terminal (hidden, confirmed when a key is written), else a one-line refusal."""

    def source(writing: bool) -> str:
        if env_name is not None:
            value = os.environ.get(env_name)
            if value is None:
                raise InputError(f"--passphrase-env {env_name}: the environment variable {env_name} is not set")
            return value
        value = os.environ.get(PASSPHRASE_ENV)
        if value is not None:
            return value
        if not _interactive():
            raise InputError(NO_PASSPHRASE)
        text = "Passphrase for the new private key" if writing else "Passphrase for the private key"
        return str(click.prompt(text, hide_input=True, confirmation_prompt=writing, err=True))

    return source


def passphrase_option(f: F) -> F:
    """``--passphrase-env NAME``: the private keys a command writes or reads use that passphrase source."""

    @functools.wraps(f)
    def wrapper(*args: Any, passphrase_env: str | None, **kwargs: Any) -> Any:
        if passphrase_env is not None and passphrase_env not in os.environ:
            raise InputError(f"--passphrase-env {passphrase_env}: the environment variable {passphrase_env} is not set")
        with using_passphrase(cli_passphrase(passphrase_env)):
            return f(*args, **kwargs)

    return click.option(
        "--passphrase-env", "passphrase_env", default=None, metavar="NAME",
        help=f"Read the private key passphrase from this environment variable (default: ${PASSPHRASE_ENV}, "
             "else a prompt on a terminal).")(wrapper)  # type: ignore[return-value]


@click.group("keys")
def keys_group() -> None:
    """Ed25519 signing keys."""


@keys_group.command("new")
@click.argument("name")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for NAME.key and NAME.pub.")
@passphrase_option
@json_option
def keys_new_cmd(name: str, out_dir: str, as_json: bool) -> None:
    """Create NAME.key (encrypted with a passphrase, mode 0600) and NAME.pub in a folder; never overwrites.

    Example: synthgate keys new alice --out ~/.synthgate
    """
    from release.sources import check_name

    check_name("key", name)
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    key, pub = generate_keypair(d, name)
    emit({"private_key": str(key), "public_key": str(pub)}, as_json,
         lambda: click.echo(f"private key {key} (encrypted; keep it and its passphrase secret), public key {pub}"))


@keys_group.command("encrypt")
@click.argument("file", type=click.Path(dir_okay=False))
@passphrase_option
@json_option
def keys_encrypt_cmd(file: str, as_json: bool) -> None:
    """Encrypt a private key written in clear by an older synthgate, in place (mode 0600).

    Example: synthgate keys encrypt alice.key
    """
    path = encrypt_private_key(Path(file))
    emit({"private_key": str(path), "encrypted": True}, as_json,
         lambda: click.echo(f"private key {path} is now encrypted"))


@keys_group.command("public")
@click.argument("file", type=click.Path(dir_okay=False))
@passphrase_option
@json_option
def keys_public_cmd(file: str, as_json: bool) -> None:
    """Write FILE.pub, the public half of FILE.key (after an interrupted `keys new`); never overwrites.

    Example: synthgate keys public ~/.synthgate/alice.key
    """
    pub, keyid = write_public_key(Path(file))
    emit({"private_key": file, "public_key": str(pub), "keyid": keyid}, as_json,
         lambda: click.echo(f"public key {pub} written (key {keyid[:16]})"))


@click.group("steward")
def steward_group() -> None:
    """Data stewards who approve releases."""


def admin_options(f: F) -> F:
    """``--admin NAME --admin-key FILE``: the admin who signs this action, and their private key."""
    f = click.option("--admin-key", "admin_key", required=True, type=click.Path(dir_okay=False),
                     help="The admin's private key file (its passphrase as for every key).")(f)
    return click.option("--admin", "admin", required=True, help="The admin who signs this action.")(f)


@steward_group.command("add")
@click.argument("name")
@click.option("--public-key", required=True, type=click.Path(dir_okay=False), help="The steward's NAME.pub.")
@admin_options
@passphrase_option
@json_option
@click.pass_context
def steward_add_cmd(ctx: click.Context, name: str, public_key: str, admin: str, admin_key: str,
                    as_json: bool) -> None:
    """Register a steward's public key; an admin signs the grant.

    Example: synthgate steward add alice --public-key alice.pub --admin root --admin-key root.key
    """
    ws = get_workspace(ctx)
    out = grant_role(ws, load_admin(admin, Path(admin_key)), name, "steward", Path(public_key))
    emit({**out, "steward": name}, as_json,
         lambda: click.echo(f"steward {name} registered (key {out['keyid'][:16]}), granted by {admin}"))


@steward_group.command("revoke")
@click.argument("name")
@click.option("--reason", required=True, help="Why the key is revoked (one line; logged and listed).")
@admin_options
@passphrase_option
@json_option
@click.pass_context
def steward_revoke_cmd(ctx: click.Context, name: str, reason: str, admin: str, admin_key: str,
                       as_json: bool) -> None:
    """Revoke a steward's key: their later approvals are refused, and their approvals of runs not
    yet released stop counting. Bundles released before still verify.

    Example: synthgate steward revoke bob --reason "laptop lost" --admin root --admin-key root.key
    """
    ws = get_workspace(ctx)
    out = revoke_role(ws, load_admin(admin, Path(admin_key)), name, "steward", reason)
    back = out["runs_back_to_awaiting_approval"]
    emit(out, as_json, lambda: click.echo(
        f"steward {name} revoked by {admin} (key {str(out['keyid'])[:16]}): {reason}"
        + (f"\nback to awaiting approval: {', '.join(back)}" if back else "")))


@steward_group.command("revocations")
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="File for the signed revocation list (JSON, a DSSE envelope); an older list there is replaced.")
@passphrase_option
@json_option
@click.pass_context
def steward_revocations_cmd(ctx: click.Context, out_file: str, as_json: bool) -> None:
    """Write the stewards' revoked keys, signed by the workspace's release key, for
    ``synthgate verify --revocations`` (offline readers).

    Example: synthgate steward revocations -o revocations.json
    """
    envelope = revocation_list(get_workspace(ctx))
    path = Path(out_file)
    write_atomic(path, (json.dumps(envelope, indent=2) + "\n").encode())
    n = len(json.loads(b64decode(envelope["payload"], "payload"))["revoked"])
    emit({"revocations": str(path), "revoked": n}, as_json,
         lambda: click.echo(f"{n} revoked steward key{'s' if n != 1 else ''} written to {path}"))


@click.group("member")
def member_group() -> None:
    """Members and their roles: admin, steward, requester."""


@member_group.command("bootstrap")
@click.argument("name")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="The first admin's private key (synthgate keys new NAME); the grant is self-signed.")
@passphrase_option
@json_option
@click.pass_context
def member_bootstrap_cmd(ctx: click.Context, name: str, key_file: str, as_json: bool) -> None:
    """Register the workspace's first admin; refused once the workspace has had an admin.

    Example: synthgate member bootstrap root --key root.key
    """
    signer = load_admin(name, Path(key_file))
    out = bootstrap_admin(get_workspace(ctx), signer)
    emit(out, as_json, lambda: click.echo(f"{name} is the first admin of this workspace (key {out['keyid'][:16]})"))


@member_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(ROLES)), help="The role to grant.")
@click.option("--public-key", default=None, type=click.Path(dir_okay=False),
              help="The member's NAME.pub (admins and stewards).")
@admin_options
@passphrase_option
@json_option
@click.pass_context
def member_add_cmd(ctx: click.Context, name: str, role: str, public_key: str | None, admin: str, admin_key: str,
                   as_json: bool) -> None:
    """Grant a role; an admin signs the grant.

    Example: synthgate member add carol --role requester --admin root --admin-key root.key
    """
    ws = get_workspace(ctx)
    out = grant_role(ws, load_admin(admin, Path(admin_key)), name, role,
                     Path(public_key) if public_key is not None else None)
    emit(out, as_json, lambda: click.echo(f"{name} is now a {role}, granted by {admin}"))


@member_group.command("revoke")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(ROLES)), help="The role to revoke.")
@click.option("--reason", required=True, help="Why (one line; logged and listed).")
@admin_options
@passphrase_option
@json_option
@click.pass_context
def member_revoke_cmd(ctx: click.Context, name: str, role: str, reason: str, admin: str, admin_key: str,
                      as_json: bool) -> None:
    """Revoke a role; an admin signs the revocation. The last admin cannot be revoked.

    Example: synthgate member revoke carol --role requester --reason "left the project" --admin root --admin-key root.key
    """
    ws = get_workspace(ctx)
    out = revoke_role(ws, load_admin(admin, Path(admin_key)), name, role, reason)
    emit(out, as_json, lambda: click.echo(f"{name}'s {role} role revoked by {admin}: {reason}"))


@member_group.command("list")
@json_option
@click.pass_context
def member_list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List every role granted, who granted it, and revocations.

    Example: synthgate member list
    """
    rows = list_members(get_workspace(ctx))

    def human() -> None:
        if not rows:
            click.echo("no members yet: synthgate member bootstrap NAME --key NAME.key registers the first admin")
        for r in rows:
            status = "active" if r["active"] else f"revoked {r['revoked_at']} by {r['revoked_by']}: {r['revoke_reason']}"
            key = f" key {r['keyid'][:16]}" if r["keyid"] else ""
            click.echo(f"{r['name']:<20} {r['role']:<10}{key} granted {r['granted_at']} by {r['granted_by'] or '-'}; "
                       f"{status}")

    emit(rows, as_json, human)


def _decision(ctx: click.Context, run_id: str, steward: str, key: str, decision: Literal["approve", "reject"],
              comment: str, as_json: bool) -> None:
    out = decide(get_workspace(ctx), run_id, steward, Path(key), decision, comment)
    emit(out, as_json, lambda: click.echo(
        f"{steward} {decision}d run {run_id}: {out['approvals']} of {out['approvals_required']} approvals; "
        f"state {out['state']}"))


@click.command("approve")
@click.argument("run_id")
@click.option("--steward", required=True, help="Registered steward name.")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="The steward's private key file.")
@click.option("--comment", default="", help="Why.")
@passphrase_option
@json_option
@click.pass_context
def approve_cmd(ctx: click.Context, run_id: str, steward: str, key: str, comment: str, as_json: bool) -> None:
    """Sign an approval of a run's statement digest.

    Example: synthgate approve run-0123456789ab --steward alice --key alice.key
    """
    _decision(ctx, run_id, steward, key, "approve", comment, as_json)


@click.command("reject")
@click.argument("run_id")
@click.option("--steward", required=True, help="Registered steward name.")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="The steward's private key file.")
@click.option("--reason", required=True, help="Why the run is rejected.")
@passphrase_option
@json_option
@click.pass_context
def reject_cmd(ctx: click.Context, run_id: str, steward: str, key: str, reason: str, as_json: bool) -> None:
    """Sign a rejection of a run; a rejected run cannot be released.

    Example: synthgate reject run-0123456789ab --steward bob --key bob.key --reason "too few rows"
    """
    _decision(ctx, run_id, steward, key, "reject", reason, as_json)


@click.command("release")
@click.argument("run_id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Bundle folder to create.")
@click.option("--tar", is_flag=True, help="Also write OUT.tar.gz.")
@passphrase_option
@json_option
@click.pass_context
def release_cmd(ctx: click.Context, run_id: str, out_dir: str, tar: bool, as_json: bool) -> None:
    """Write the signed release bundle of an approved run.

    Example: synthgate release run-0123456789ab --out bundle --tar
    """
    path = release(get_workspace(ctx), run_id, Path(out_dir), tar=tar)
    emit({"run_id": run_id, "bundle": str(path), "tar": str(Path(out_dir)) + ".tar.gz" if tar else None}, as_json,
         lambda: click.echo(f"bundle written to {path}" + (f" and {out_dir}.tar.gz" if tar else "")))


@click.command("verify")
@click.argument("bundle", type=click.Path())
@click.option("--trust", multiple=True, required=True, type=click.Path(),
              help="Trusted release public key (.pub) or a folder of them; repeatable.")
@click.option("--trust-steward", multiple=True, type=click.Path(),
              help="Pin stewards' public keys (.pub or folder): only their approvals count; repeatable.")
@click.option("--revocations", multiple=True, type=click.Path(),
              help="A signed list of revoked steward keys (synthgate steward revocations) from the workspace "
                   "that released the bundle: say which approving keys were revoked after the release, and "
                   "refuse the bundle if one was revoked before it; repeatable.")
@json_option
def verify_cmd(bundle: str, trust: tuple[str, ...], trust_steward: tuple[str, ...], revocations: tuple[str, ...],
               as_json: bool) -> None:
    """Verify a bundle offline: signature, every file hash, approvals, gate. Exit 5 if invalid.

    Example: synthgate verify bundle.tar.gz --trust release.pub --revocations revocations.json
    """
    trusted = load_trusted([Path(t) for t in trust])
    pinned = load_trusted([Path(t) for t in trust_steward]) if trust_steward else None
    v = verify_bundle(Path(bundle), trusted, trusted_stewards=pinned)
    try:
        revoked = check_revocations(v, [Path(r) for r in revocations], trusted) if revocations else []
    except IntegrityError as exc:
        raise IntegrityError(f"{bundle}: {exc}") from None
    pred = v.predicate
    out: dict[str, Any] = {"valid": True, "run_id": pred.get("run_id"), "source": pred.get("source"),
           "release_keyid": v.release_keyid, "files": v.files,
           "approvals": [a["steward"] for a in v.approvals if a["decision"] == "approve"],
           "stewards_pinned": pinned is not None, "spend": pred.get("spend"),
           "event_log_head": v.event_log_head.to_predicate() if v.event_log_head else None,
           "revocations_checked": len(revocations),
           "revoked_after_release": [r.__dict__ for r in revoked]}
    head = (f"event log head at release: {v.event_log_head.short()}" if v.event_log_head
            else "event log head: absent (the bundle records none)")
    notes = "".join(
        f"\nsteward {r.steward}: key {r.keyid[:16]} was revoked after this release, at {r.revoked_at} "
        f"(event log entry {r.revoke_event}{'; ' + r.reason if r.reason else ''}); the approval was valid when given"
        for r in revoked)
    if revocations and not revoked:
        notes = "\nno approving steward's key is in the revocation list"
    emit(out, as_json, lambda: click.echo(
        f"valid: run {out['run_id']} of {out['source']}, {len(v.files)} files, approved by "
        f"{', '.join(out['approvals'])}; epsilon {pred['spend']['epsilon']:g}, delta {pred['spend']['delta']:g}\n"
        f"{head}{notes}"))


@click.group("policy")
def policy_group() -> None:
    """Release policies."""


@policy_group.command("show")
@click.argument("name")
@json_option
def policy_show_cmd(name: str, as_json: bool) -> None:
    """Print a policy (bundled name or file), with the comments that justify each threshold.

    Example: synthgate policy show health
    """
    pol = load_policy(name)
    emit(pol.model_dump(mode="json"), as_json, lambda: click.echo(policy_text(name), nl=False))


@policy_group.command("list")
@json_option
def policy_list_cmd(as_json: bool) -> None:
    """List the bundled policies.

    Example: synthgate policy list
    """
    names = available_policies()
    emit(names, as_json, lambda: click.echo("\n".join(names)))


@click.group("log")
def log_group() -> None:
    """The workspace's hash-chained event log."""


@log_group.command("verify")
@click.option("--bundle", type=click.Path(), default=None,
              help="A bundle (folder or .tar.gz) released from this workspace: verify it with the workspace's "
                   "release key, then check that the event log head it recorded is an entry of this log.")
@json_option
@click.pass_context
def log_verify_cmd(ctx: click.Context, bundle: str | None, as_json: bool) -> None:
    """Recompute the event log's hash chain; exit 5 at the first broken entry.

    With --bundle, also exit 5 unless the bundle verifies with this workspace's release key and
    the log holds the head it recorded (a log edited, cut back or taken from another workspace).

    Example: synthgate log verify --bundle bundle.tar.gz
    """
    ws = get_workspace(ctx)
    with ws.transaction() as s:
        n = verify_chain(s)
        actions = verify_admin_actions(s)
    if bundle is None:
        emit({"valid": True, "entries": n, "admin_actions": actions}, as_json, lambda: click.echo(
            f"event log intact: {n} entries; {actions} signed admin action{'' if actions == 1 else 's'} verified"))
        return
    # this workspace's own key only: a bundle another key signed was not released from this log
    v = verify_bundle(Path(bundle), load_trusted([ws.release_pub_path]))
    head = v.event_log_head
    if head is None:
        raise InputError(f"{bundle}: the bundle records no event log head (written before synthgate recorded "
                         "one), so there is nothing to check against the log")
    try:
        with ws.transaction() as s:
            found = check_event_log_head(s, head)
            revoked = revoked_since(s, v, found.head_id)
    except IntegrityError as exc:
        raise IntegrityError(f"{bundle}: {exc}") from exc
    out = {"valid": True, "entries": found.entries, "admin_actions": actions, "bundle": bundle,
           "run_id": v.predicate.get("run_id"), "event_log_head": {"id": found.head_id, "hash": head.hash},
           "entries_after_head": found.later, "revoked_after_release": revoked}
    notes = "".join(f"\nsteward {r['steward']}: key {r['keyid'][:16]} was revoked after this release, at "
                    f"{r['revoked_at']} (event log entry {r['revoke_event']})" for r in revoked)
    emit(out, as_json, lambda: click.echo(
        f"event log intact: {found.entries} entries; bundle of run {out['run_id']} recorded entry "
        f"{found.head_id} (hash {head.hash[:16]}), which the log holds, with {found.later} "
        f"{'entry' if found.later == 1 else 'entries'} after it{notes}"))


COMMANDS = [keys_group, steward_group, member_group, approve_cmd, reject_cmd, release_cmd, verify_cmd, policy_group, log_group]
