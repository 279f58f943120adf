"""``synthgate demo``."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli.common import emit, err_console, json_option, progress
from release.demo import run_demo


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Bundle folder to create (default: inside a temporary folder).")
@json_option
def demo_cmd(out_dir: str | None, as_json: bool) -> None:
    """Run the whole path on a bundled sample of UCI Adult and verify the bundle.

    Example: synthgate demo --out adult-bundle
    """
    result = run_demo(Path(out_dir) if out_dir else None, say=lambda m: err_console.print(m), progress=progress)
    emit(result, as_json, lambda: click.echo(
        f"done in {result['seconds']} s: verified bundle at {result['bundle']} "
        f"(verify again: synthgate verify {result['bundle']} --trust {result['release_public_key']})"))


COMMANDS = [demo_cmd]
