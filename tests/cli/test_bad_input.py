"""Bad input: one clear line on stderr, exit 2, no traceback, nothing stored changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from release.cli.main import cli

DATA = Path(__file__).parents[1] / "data"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert run("--workspace", str(ws), "init").exit_code == 0
    return ws


def _one_line_error(res, code: int = 2, match: str = "") -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert lines[0].startswith("synthgate: error:")
    assert match in lines[0], lines[0]


def _db_bytes(ws: Path) -> bytes:
    return (ws / "synthgate.db").read_bytes()


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "not found"),
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "neither CSV text nor Parquet"),
        (b"age;workclass;fnlwgt\n1;2;3\n", "';'"),
    ],
    ids=["missing-file", "empty-file", "non-csv", "wrong-delimiter"],
)
def test_register_bad_files(ws: Path, tmp_path: Path, content: bytes | None, match: str) -> None:
    f = tmp_path / "data.csv"
    if content is not None:
        f.write_bytes(content)
    before = _db_bytes(ws)
    res = run("--workspace", str(ws), "register", "adult", str(f), "--schema", str(DATA / "adult_schema.yaml"))
    _one_line_error(res, 2, match)
    assert _db_bytes(ws) == before


def test_schema_with_unknown_type(ws: Path, tmp_path: Path) -> None:
    s = tmp_path / "s.yaml"
    s.write_text((DATA / "adult_schema.yaml").read_text().replace("type: integer, min: 17", "type: timestamp, min: 17"))
    res = run("--workspace", str(ws), "register", "adult", str(DATA / "adult_2000.csv"), "--schema", str(s))
    _one_line_error(res, 2, "unknown type 'timestamp'")


def test_column_missing(ws: Path, tmp_path: Path) -> None:
    lines = (DATA / "adult_2000.csv").read_text().splitlines()
    f = tmp_path / "cut.csv"
    f.write_text("\n".join(",".join(ln.split(",")[:-1]) for ln in lines) + "\n")
    res = run("--workspace", str(ws), "register", "adult", str(f), "--schema", str(DATA / "adult_schema.yaml"))
    _one_line_error(res, 2, "missing columns: income")


def test_drafted_schema_is_refused_without_consent(ws: Path, tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    res = run("schema", "infer", str(DATA / "adult_2000.csv"), "-o", str(draft))
    assert res.exit_code == 0 and "NOT public" in res.stderr and "drafted_from_data: true" in draft.read_text()
    res = run("--workspace", str(ws), "register", "adult", str(DATA / "adult_2000.csv"), "--schema", str(draft))
    _one_line_error(res, 2, "drafted from the data")


@pytest.fixture
def registered(ws: Path) -> Path:
    res = run("--workspace", str(ws), "register", "adult", str(DATA / "adult_2000.csv"), "--schema",
              str(DATA / "adult_schema.yaml"))
    assert res.exit_code == 0, res.stderr
    return ws


@pytest.mark.parametrize(
    "args, code, match",
    [
        (["--generator", "dpgan", "--epsilon", "1"], 2, "unknown generator 'dpgan'"),
        (["--generator", "mst", "--epsilon", "0"], 2, "epsilon (0"),
        (["--generator", "mst", "--epsilon", "-1"], 2, "epsilon (-1"),
        (["--generator", "mst", "--epsilon", "nan"], 2, "epsilon (nan)"),
        (["--generator", "mst", "--epsilon", "abc"], 2, "abc"),
        (["--generator", "mst", "--epsilon", "1", "--delta", "2"], 2, "delta (2"),
        (["--generator", "mst", "--epsilon", "1", "--rows", "0"], 2, "--rows (0)"),
        (["--generator", "mst", "--epsilon", "5"], 4, "per-release cap 3"),
        (["--generator", "mst", "--epsilon", "1", "--time-limit", "3"], 2, "aim and the deep generators only"),
        (["--generator", "mst", "--epsilon", "1", "--max-rounds", "3"], 2, "aim generator only"),
        (["--generator", "aim", "--epsilon", "1", "--device", "cuda"], 2, "deep generators only"),
        (["--generator", "dpctgan", "--epsilon", "1", "--batch-size", "1"], 2, "batch size (1)"),
        (["--generator", "dpctgan", "--epsilon", "1", "--epochs", "0"], 2, "epochs (0)"),
        # the default policy recommends mst for Adult's shape: deep options are then refused
        (["--generator", "recommended", "--epsilon", "1", "--epochs", "3"], 2, "deep generators only"),
    ],
)
def test_synthesize_refusals_change_nothing(registered: Path, args: list[str], code: int, match: str) -> None:
    before = json.loads(run("--workspace", str(registered), "budget", "adult", "--json").stdout)
    res = run("--workspace", str(registered), "synthesize", "adult", *args)
    _one_line_error(res, code, match)
    after = json.loads(run("--workspace", str(registered), "budget", "adult", "--json").stdout)
    assert after == before and after["charges"] == []


def test_unknown_source(registered: Path) -> None:
    res = run("--workspace", str(registered), "synthesize", "nope", "--generator", "mst", "--epsilon", "1")
    _one_line_error(res, 2, "unknown source 'nope'")


@pytest.mark.parametrize("cmd", [["audit"], ["review"], ["release", "--out", "x"]])
def test_unknown_run(ws: Path, cmd: list[str]) -> None:
    res = run("--workspace", str(ws), cmd[0], "run-000000000000", *cmd[1:])
    _one_line_error(res, 2, "unknown run 'run-000000000000'")


def test_policy_with_unknown_key(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    # "\nholdout_fraction:" only: replacing inside "graph_holdout_fraction:" too made a duplicate key,
    # which the policy loader now refuses on its own
    p.write_text((DATA / "test_policy.yaml").read_text().replace("\nholdout_fraction:", "\ncolour: red\nholdout_fraction:"))
    res = run("--workspace", str(tmp_path / "ws"), "init", "--policy", str(p))
    _one_line_error(res, 2, "colour: unknown key")
    assert not (tmp_path / "ws" / "synthgate.db").exists()
    res = run("policy", "show", str(p))
    _one_line_error(res, 2, "unknown key")


def test_unknown_policy_name(tmp_path: Path) -> None:
    _one_line_error(run("--workspace", str(tmp_path / "w"), "init", "--policy", "nope"), 2, "unknown policy 'nope'")


def test_no_workspace(tmp_path: Path) -> None:
    _one_line_error(run("--workspace", str(tmp_path / "none"), "budget"), 2, "no workspace")


def test_usage_error_is_one_line(ws: Path) -> None:
    _one_line_error(run("--workspace", str(ws), "synthesize"), 2, "Missing argument")


def test_init_twice_refused_and_keys_kept(ws: Path) -> None:
    key = (ws / "keys" / "release.key").read_bytes()
    _one_line_error(run("--workspace", str(ws), "init"), 2, "already exists")
    assert (ws / "keys" / "release.key").read_bytes() == key
    assert (ws / "keys" / "release.key").stat().st_mode & 0o777 == 0o600


def test_keys_never_overwritten(tmp_path: Path) -> None:
    assert run("keys", "new", "alice", "--out", str(tmp_path)).exit_code == 0
    key = (tmp_path / "alice.key").read_bytes()
    res = run("keys", "new", "alice", "--out", str(tmp_path))
    assert res.exit_code == 2 and (tmp_path / "alice.key").read_bytes() == key


def test_bad_bundle_path(tmp_path: Path, ws: Path) -> None:
    res = run("verify", str(tmp_path / "nothing"), "--trust", str(ws / "keys" / "release.pub"))
    assert res.exit_code in (2, 5) and "Traceback" not in res.stderr


@pytest.mark.parametrize("generator", ["dpctgan", "dpdiffusion", "patectgan"])
def test_a_missing_gpu_is_refused_before_the_charge(registered: Path, generator: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = run("--workspace", str(registered), "synthesize", "adult", "--generator", generator, "--epsilon", "1",
              "--device", "cuda")
    _one_line_error(res, 2, "no CUDA GPU")
    after = json.loads(run("--workspace", str(registered), "budget", "adult", "--json").stdout)
    assert after["charges"] == [] and after["spent_epsilon"] == 0
