"""Commands that neither train nor audit start fast: they import no ML, DP or dataframe library.

Each check runs in a fresh interpreter, so that modules other tests imported cannot hide an import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: top-level packages only the training, auditing and report paths may import (inside their functions)
HEAVY = ("torch", "opacus", "jax", "snsynth", "mbi", "sdmetrics", "anonymeter", "sklearn", "plotly", "polars")

_PROBE = r"""
import json, sys
import click
from click.testing import CliRunner
from release.cli.main import cli

runner = CliRunner()
failures = []

def walk(cmd, path):
    res = runner.invoke(cli, [*path, "--help"])
    if res.exit_code != 0:
        failures.append([path, res.exit_code, res.output])
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            walk(sub, [*path, name])

walk(cli, [])
for expected, args in json.loads(sys.argv[1]):
    res = runner.invoke(cli, args)
    if res.exit_code != expected:
        failures.append([args, res.exit_code, res.output])
heavy = set(json.loads(sys.argv[2]))
print(json.dumps({"failures": failures,
                  "heavy": sorted({m.split(".")[0] for m in sys.modules} & heavy)}))
"""


def _probe(commands: list[tuple[int, list[str]]]) -> dict[str, list]:
    """Import the CLI in a fresh interpreter, ask every command for its help, run ``commands`` (each
    with the exit code it must end with) and name the heavy packages that got imported."""
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(commands), json.dumps(HEAVY)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    result: dict[str, list] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_help_of_every_command_imports_no_heavy_library() -> None:
    result = _probe([])
    assert result["failures"] == []
    assert result["heavy"] == [], f"`synthgate --help` imported {result['heavy']}"


def test_light_commands_import_no_heavy_library(tmp_path: Path) -> None:
    ws, keys, missing = str(tmp_path / "ws"), tmp_path / "keys", str(tmp_path / "no-such-bundle")
    key, pub = str(keys / "alice.key"), str(keys / "alice.pub")
    # each command runs its body: the setup succeeds, the rest refuse an unknown run or bundle (exit 2)
    result = _probe([
        (0, ["--workspace", ws, "init"]),
        (0, ["--workspace", ws, "keys", "new", "alice", "--out", str(keys)]),
        (0, ["--workspace", ws, "member", "bootstrap", "alice", "--key", key]),
        (0, ["--workspace", ws, "steward", "add", "alice", "--public-key", pub, "--admin", "alice", "--admin-key", key]),
        (0, ["--workspace", ws, "member", "list"]),
        (0, ["--workspace", ws, "runs"]),
        (0, ["--workspace", ws, "runs", "--json"]),
        (0, ["--workspace", ws, "budget"]),
        (0, ["--workspace", ws, "log", "verify"]),
        (0, ["--workspace", ws, "policy", "list"]),
        (2, ["--workspace", ws, "review", "run-0123456789ab"]),
        (2, ["--workspace", ws, "approve", "run-0123456789ab", "--steward", "alice", "--key", key]),
        (2, ["--workspace", ws, "release", "run-0123456789ab", "--out", missing]),
        (2, ["verify", missing, "--trust", pub]),
    ])
    assert result["failures"] == []
    assert result["heavy"] == [], f"light commands imported {result['heavy']}"
