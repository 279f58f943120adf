"""Every command has help with an example, and README.md documents it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from release.cli.main import cli

README = (Path(__file__).parents[2] / "README.md").read_text()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, prefix + (name,))
        else:
            out.append((prefix + (name,), cmd))
    return out


COMMANDS = _commands(cli)


def test_the_issue_surface_exists() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"init", "schema infer", "register", "budget", "synthesize", "audit", "review", "keys new",
            "steward add", "approve", "reject", "release", "verify", "demo", "policy show"} <= names


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_and_readme(path: tuple[str, ...], cmd: click.Command) -> None:
    res = CliRunner().invoke(cli, [*path, "--help"])
    assert res.exit_code == 0
    assert "Example: synthgate" in (cmd.help or "")
    assert f"`{' '.join(path)}" in README, f"README.md does not document '{' '.join(path)}'"
