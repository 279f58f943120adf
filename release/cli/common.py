"""Options and output shared by every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from release.workspace import Workspace, default_workspace, open_workspace

F = TypeVar("F", bound=Callable[..., Any])

#: progress and human messages go to stderr so that --json output on stdout stays clean
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (keys in README.md).")(f)


def workspace_path(ctx: click.Context) -> Path:
    root = ctx.find_root().params.get("workspace")
    return Path(root) if root else default_workspace()


def get_workspace(ctx: click.Context) -> Workspace:
    return open_workspace(workspace_path(ctx))


def emit(data: dict[str, Any] | list[Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def progress(message: str, fraction: float | None = None) -> None:
    if fraction is None:
        err_console.print(f"[dim]·[/dim] {message}")
    else:
        err_console.print(f"[dim]·[/dim] {message} [dim]({100 * fraction:.0f}%)[/dim]")


def fail_line(message: str) -> None:
    sys.stderr.write(f"synthgate: error: {message}\n")
