"""The README's first command, end to end (slow: about two minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from release.cli.main import cli


@pytest.mark.slow
def test_demo_ends_with_a_verified_bundle(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "bundle"), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verified"] and out["gate_passed"]
    assert (tmp_path / "bundle" / "manifest.json").is_file() and Path(out["tar"]).is_file()
    res = CliRunner().invoke(cli, ["verify", out["tar"], "--trust", out["release_public_key"]])
    assert res.exit_code == 0
