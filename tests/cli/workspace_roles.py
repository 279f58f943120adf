"""Test helper: a workspace with its first admin, ``root``, who grants the other roles.

Since roles (issue 9) a steward is added, and a requester may spend the budget, only by a signed
admin action; the CLI test modules that set up their own workspace use these helpers.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from release.cli.main import cli

ADMIN = "root"


def _run(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def admin_args(keys: Path) -> tuple[str, ...]:
    """The options that sign a command as ``root`` (its key in ``keys``)."""
    return ("--admin", ADMIN, "--admin-key", str(keys / f"{ADMIN}.key"))


def init_with_admin(ws: Path, keys: Path, *init_args: str, requesters: tuple[str, ...] = ("carol",)) -> None:
    """``init`` with ``root`` as the first admin (key made in ``keys``), then the requester role."""
    if not (keys / f"{ADMIN}.key").exists():
        res = CliRunner().invoke(cli, ["keys", "new", ADMIN, "--out", str(keys)], catch_exceptions=False)
        assert res.exit_code == 0, res.stderr
    res = _run(ws, "init", *init_args, *admin_args(keys))
    assert res.exit_code == 0, res.stderr
    for name in requesters:
        res = _run(ws, "member", "add", name, "--role", "requester", *admin_args(keys))
        assert res.exit_code == 0, res.stderr


def add_steward(ws: Path, keys: Path, name: str, public_key: str | Path) -> None:
    """Register a steward, signed by ``root`` (whose key is in ``keys``)."""
    res = _run(ws, "steward", "add", name, "--public-key", str(public_key), *admin_args(keys))
    assert res.exit_code == 0, res.stderr
