"""Commands of trust: keys, stewards, approvals, release, verify, policies, the event log."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from policies.loader import available_policies, load_policy, policy_text
from privacy.errors import InputError, IntegrityError
from release.approvals import add_steward, decide
from release.cli.common import emit, get_workspace, json_option
from release.db import check_event_log_head, verify_chain
from release.keys import (
    NO_PASSPHRASE,
    PASSPHRASE_ENV,
    PassphraseSource,
    encrypt_private_key,
    generate_keypair,
    using_passphrase,
)
from release.publish import release
from release.verify import load_trusted, verify_bundle

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


@click.group("steward")
def steward_group() -> None:
    """Data stewards who approve releases."""


@steward_group.command("add")
@click.argument("name")
@click.option("--public-key", required=True, type=click.Path(dir_okay=False), help="The steward's NAME.pub.")
@json_option
@click.pass_context
def steward_add_cmd(ctx: click.Context, name: str, public_key: str, as_json: bool) -> None:
    """Register a steward's public key.

    Example: synthgate steward add alice --public-key alice.pub
    """
    out = add_steward(get_workspace(ctx), name, Path(public_key))
    emit(out, as_json, lambda: click.echo(f"steward {name} registered (key {out['keyid'][:16]})"))


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
@json_option
def verify_cmd(bundle: str, trust: tuple[str, ...], trust_steward: tuple[str, ...], as_json: bool) -> None:
    """Verify a bundle offline: signature, every file hash, approvals, gate. Exit 5 if invalid.

    Example: synthgate verify bundle.tar.gz --trust release.pub
    """
    trusted = load_trusted([Path(t) for t in trust])
    pinned = load_trusted([Path(t) for t in trust_steward]) if trust_steward else None
    v = verify_bundle(Path(bundle), trusted, trusted_stewards=pinned)
    pred = v.predicate
    out: dict[str, Any] = {"valid": True, "run_id": pred.get("run_id"), "source": pred.get("source"),
           "release_keyid": v.release_keyid, "files": v.files,
           "approvals": [a["steward"] for a in v.approvals if a["decision"] == "approve"],
           "stewards_pinned": pinned is not None, "spend": pred.get("spend"),
           "event_log_head": v.event_log_head.to_predicate() if v.event_log_head else None}
    head = (f"event log head at release: {v.event_log_head.short()}" if v.event_log_head
            else "event log head: absent (the bundle records none)")
    emit(out, as_json, lambda: click.echo(
        f"valid: run {out['run_id']} of {out['source']}, {len(v.files)} files, approved by "
        f"{', '.join(out['approvals'])}; epsilon {pred['spend']['epsilon']:g}, delta {pred['spend']['delta']:g}\n"
        f"{head}"))


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
    if bundle is None:
        with ws.transaction() as s:
            n = verify_chain(s)
        emit({"valid": True, "entries": n}, as_json, lambda: click.echo(f"event log intact: {n} entries"))
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
    except IntegrityError as exc:
        raise IntegrityError(f"{bundle}: {exc}") from exc
    out = {"valid": True, "entries": found.entries, "bundle": bundle, "run_id": v.predicate.get("run_id"),
           "event_log_head": {"id": found.head_id, "hash": head.hash}, "entries_after_head": found.later}
    emit(out, as_json, lambda: click.echo(
        f"event log intact: {found.entries} entries; bundle of run {out['run_id']} recorded entry "
        f"{found.head_id} (hash {head.hash[:16]}), which the log holds, with {found.later} "
        f"{'entry' if found.later == 1 else 'entries'} after it"))


COMMANDS = [keys_group, steward_group, approve_cmd, reject_cmd, release_cmd, verify_cmd, policy_group, log_group]
