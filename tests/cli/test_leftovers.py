"""What a killed command leaves behind, and input too long for the database.

- ``keys new`` killed between its two files leaves NAME.key without NAME.pub: the next ``keys new``
  says so and ``keys public`` writes the public half.
- ``release`` killed while it writes the bundle leaves a hidden ``.NAME.partial-*`` folder: the next
  write of the same bundle name removes it once its writer is provably gone, and keeps it otherwise.
- Text bound for a VARCHAR(n) column (PostgreSQL refuses longer values, SQLite stores them) is
  refused at input, with one line and exit 2, before anything is charged or written.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import String
from test_postgres import DATA, loose_policy, one_line_error, pg_url  # noqa: F401  (pg_url: a fixture)

from privacy.ledger import Base
from release.bundle import PARTIAL_MARKER
from release.cli.main import cli
from release.crashpoints import CRASH_ENV, _boot_id, _proc_stat
from release.keys import PASSPHRASE_ENV, key_id, load_private_key, load_public_key
from release.sources import MAX_TARGET_CHARS

if TYPE_CHECKING:  # the fixture type lives in conftest.py
    from conftest import Env

ROOT = Path(__file__).parents[2]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def killed_at(point: str, *argv: str) -> None:
    """Run the CLI in a process of its own that SIGKILLs itself at crash point ``point``."""
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "release.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-2000:])


# -- keys: NAME.key without NAME.pub ---------------------------------------------------------------


def test_keys_new_killed_between_the_files_is_recoverable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kdir = tmp_path / "keys"
    killed_at("keys.between_files", "keys", "new", "k", "--out", str(kdir))
    key, pub = kdir / "k.key", kdir / "k.pub"
    assert key.exists() and not pub.exists()

    # the next keys new says what happened and what to run
    res = run("keys", "new", "k", "--out", str(kdir))
    one_line_error(res, 2, "an earlier `synthgate keys new` was interrupted")
    assert f"`synthgate keys public {key}` writes the public half" in res.stderr
    assert not pub.exists()

    # a wrong passphrase writes nothing and never shows up in the message
    secret = os.environ[PASSPHRASE_ENV]
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase")
    res = run("keys", "public", str(key))
    one_line_error(res, 2, "cannot decrypt the private key")
    assert "not the passphrase" not in res.stderr and not pub.exists()

    # the passphrase options of the other keys commands
    monkeypatch.setenv("K_PW", secret)
    res = run("keys", "public", str(key), "--passphrase-env", "K_PW", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    monkeypatch.setenv(PASSPHRASE_ENV, secret)
    expected = key_id(load_private_key(key).public_key())
    assert out == {"private_key": str(key), "public_key": str(pub), "keyid": expected}
    assert key_id(load_public_key(pub)) == expected
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert sorted(p.name for p in kdir.iterdir() if not p.name.startswith(".")) == ["k.key", "k.pub"]

    # never overwrites, and the pair is whole now: keys new refuses as for any existing key
    before = pub.read_bytes()
    one_line_error(run("keys", "public", str(key)), 2, "k.pub: already exists; refusing to overwrite a key")
    assert pub.read_bytes() == before
    one_line_error(run("keys", "new", "k", "--out", str(kdir)), 2, "k.key: already exists; refusing to overwrite")


def test_keys_public_prints_the_key_id_and_refuses_other_files(tmp_path: Path) -> None:
    assert run("keys", "new", "a", "--out", str(tmp_path)).exit_code == 0
    (tmp_path / "a.pub").unlink()
    res = run("keys", "public", str(tmp_path / "a.key"))
    assert res.exit_code == 0, res.stderr
    keyid = key_id(load_public_key(tmp_path / "a.pub"))
    assert res.stdout.strip() == f"public key {tmp_path / 'a.pub'} written (key {keyid[:16]})"
    one_line_error(run("keys", "public", str(tmp_path / "a.pub")), 2, "must end in .key")
    one_line_error(run("keys", "public", str(tmp_path / "nope.key")), 2, "nope.key: file not found")
    assert not (tmp_path / "nope.pub").exists()


# -- bundles: the partial folder of a killed release -----------------------------------------------


def _approve_both(env: "Env", run_id: str) -> None:
    for name in ("alice", "bob"):
        res = env.run("approve", run_id, "--steward", name, "--key", str(env.root / "keys" / f"{name}.key"))
        assert res.exit_code == 0, res.stderr


def _partials(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.partial-"))


def _owner(pid: int) -> dict[str, Any]:
    """What ``process_owner`` records, for another process."""
    st = _proc_stat(pid)
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": st[1] if st else None}


def _fake_partial(folder: Path, name: str, writer: dict[str, Any], *, bundle: str | None = None,
                  extra: str | None = None, marker: bool = True) -> Path:
    path = folder / f".{name}.partial-{secrets.token_hex(4)}"
    (path / name).mkdir(parents=True)
    (path / name / "synthetic.csv").write_text("a,b\n1,2\n")
    if marker:
        (path / PARTIAL_MARKER).write_text(json.dumps({"bundle": bundle or name, "writer": writer}))
    if extra:
        (path / extra).write_text("not ours")
    return path


def test_a_killed_release_leaves_a_partial_folder_that_the_next_release_removes(env: "Env", run_id: str) -> None:
    _approve_both(env, run_id)
    target = env.root / "bundle"
    killed_at("bundle.mid_files", "--workspace", str(env.ws), "release", run_id, "--out", str(target), "--tar")
    left = _partials(env.root, "bundle")
    assert len(left) == 1 and not target.exists()
    res = env.run("release", run_id, "--out", str(target), "--tar")
    assert res.exit_code == 0, res.stderr
    assert _partials(env.root, "bundle") == []
    assert env.run("verify", f"{target}.tar.gz", "--trust", str(env.ws / "keys" / "release.pub")).exit_code == 0


def test_only_provably_stale_partial_folders_are_removed(env: "Env", run_id: str) -> None:
    _approve_both(env, run_id)
    root = env.root
    ended = subprocess.Popen(["sleep", "60"])
    dead = _owner(ended.pid)
    ended.kill()
    ended.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        stale = _fake_partial(root, "bundle", dead)
        kept = [
            _fake_partial(root, "bundle", _owner(live.pid)),  # its writer still runs
            _fake_partial(root, "bundle", {**dead, "host": "another-host"}),  # this host cannot tell
            _fake_partial(root, "bundle", dead, bundle="other"),  # the marker names another bundle
            _fake_partial(root, "bundle", dead, extra="notes.txt"),  # holds what we never write
            _fake_partial(root, "bundle", dead, marker=False),  # no marker
            _fake_partial(root, "other", dead),  # another bundle name
        ]
        odd = root / f".bundle.partial-{'x' * 8}"  # not a name we make
        (odd / "bundle").mkdir(parents=True)
        (odd / PARTIAL_MARKER).write_text(json.dumps({"bundle": "bundle", "writer": dead}))
        link = root / f".bundle.partial-{secrets.token_hex(4)}"  # a link to a stale-looking folder
        link.symlink_to(_fake_partial(root / "elsewhere", "bundle", dead))
        kept += [odd, link, link.resolve()]

        res = env.run("release", run_id, "--out", str(root / "bundle"))
        assert res.exit_code == 0, res.stderr
        assert not stale.exists()
        for path in kept:
            assert path.exists() or path.is_symlink(), path
        # once the live writer is gone, the next write of that name takes its folder away too
        live.kill()
        live.wait()
        assert env.run("release", run_id, "--out", str(root / "bundle2")).exit_code == 0
        assert kept[0].exists()  # another name: bundle2's write leaves bundle's folders alone
        from release.bundle import remove_stale_partials

        assert remove_stale_partials(root / "bundle") == [kept[0]]
        assert all(p.exists() or p.is_symlink() for p in kept[1:])
    finally:
        live.kill()
        live.wait()


# -- text longer than its database column ----------------------------------------------------------

# Every length-limited column and the longest user-supplied text that can reach it (and how it is
# bounded). A new VARCHAR column fails this test until its inputs are accounted for.
REACHES = {
    "sources.name": 100,  # check_name
    "sources.policy_name": 100,  # Policy.name max_length
    "sources.policy_digest": 64,  # sha256 hex
    "charges.run_id": 16,  # "run-" + 12 hex
    "charges.mechanism": 200,  # registry generator name + fixed text and numbers (under 140)
    "dataset_versions.fingerprint": 64,
    "version_files.role": 7,  # "statics" or "nodes"
    "version_files.fingerprint": 64,
    "runs.id": 16,
    "runs.generator": 64,  # the registry's names (checked before the charge)
    "runs.requester": 100,  # check_name
    "runs.target": MAX_TARGET_CHARS,  # check_target_name: --target, the schema's, the policy's
    "runs.state": 32,
    "runs.statement_digest": 64,
    "stewards.name": 100,  # check_name
    "stewards.keyid": 64,
    "role_grants.name": 100,  # check_name
    "role_grants.role": 16,  # one of ROLES
    "role_grants.keyid": 64,
    "role_grants.granted_by": 100,  # check_name (the admin)
    "role_grants.revoked_by": 100,  # check_name (the admin)
    "approvals.run_id": 16,
    "approvals.steward": 100,  # a registered steward
    "approvals.decision": 16,
    "events.at": 40,
    "events.kind": 64,
    "events.run_id": 16,
    "events.prev_hash": 64,
    "events.hash": 64,
}


def test_every_length_limited_column_is_accounted_for() -> None:
    import release.db  # noqa: F401  (the tables)

    limited = {f"{t.name}.{c.name}": c.type.length for t in Base.metadata.tables.values() for c in t.columns
               if isinstance(c.type, String) and c.type.length is not None}
    assert set(limited) == set(REACHES)
    assert {k: n for k, n in REACHES.items() if n > limited[k]} == {}
    assert limited["runs.target"] == MAX_TARGET_CHARS


LONG = "t" * (MAX_TARGET_CHARS + 1)
LONGEST = "u" * MAX_TARGET_CHARS


def long_column_source(folder: Path, *, target: str | None = None) -> tuple[Path, Path]:
    """200 Adult rows whose columns include one named LONGEST (200 characters) and one LONG (201)."""
    data, schema = folder / "long.csv", folder / "long.yaml"
    frame = pl.read_csv(DATA / "adult_2000.csv").head(200).select(["sex", "race", "relationship", "income"])
    frame.rename({"relationship": LONGEST, "income": LONG}).write_csv(data)
    doc: dict[str, Any] = {"kind": "tabular", "name": "long", "columns": {
        "sex": {"type": "categorical", "categories": ["Female", "Male"]},
        "race": {"type": "categorical",
                 "categories": ["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"]},
        LONGEST: {"type": "categorical", "categories": ["Wife", "Own-child", "Husband", "Not-in-family",
                                                        "Other-relative", "Unmarried"]},
        LONG: {"type": "categorical", "categories": ["<=50K", ">50K"]}}}
    if target is not None:
        doc["target"] = target
    schema.write_text(yaml.safe_dump(doc, sort_keys=False))
    return data, schema


def _spent(w: tuple[str, ...], source: str) -> Any:
    return json.loads(run(*w, "budget", source, "--json").stdout)["spent_epsilon"]


def _check_long_targets(tmp_path: Path, w: tuple[str, ...]) -> None:
    data, schema = long_column_source(tmp_path)
    res = run(*w, "register", "long", str(data), "--schema", str(schema))
    assert res.exit_code == 0, res.stderr
    synth = (*w, "synthesize", "long", "--generator", "mst", "--epsilon", "0.5", "--rows", "50",
             "--requester", "carol", "--json")
    res = run(*synth, "--target", LONG)
    one_line_error(res, 2, "--target 'tttt")
    assert f"is {MAX_TARGET_CHARS + 1} characters long; a target column name may have at most" in res.stderr
    assert _spent(w, "long") == 0 and json.loads(run(*w, "runs", "--json").stdout) == []
    # 200 characters fit
    res = run(*synth, "--target", LONGEST)
    assert res.exit_code == 0, res.stderr
    assert _spent(w, "long") == pytest.approx(0.5)
    # audit --target of a run without a target: refused before the audit starts or writes anything
    res = run(*synth)
    assert res.exit_code == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    one_line_error(run(*w, "audit", run_id, "--target", LONG), 2, "--target 'tttt")
    assert json.loads(run(*w, "review", run_id, "--json").stdout)["state"] == "synthesized"
    assert not (Path(w[1]) / "runs" / run_id / "audit.json").exists()
    assert _spent(w, "long") == pytest.approx(1.0)


def test_a_target_longer_than_the_database_column_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run("--workspace", str(ws), "init", "--policy", str(loose_policy(tmp_path))).exit_code == 0
    _check_long_targets(tmp_path, ("--workspace", str(ws)))


def test_a_long_target_in_the_schema_or_the_policy_is_refused_at_register(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    w = ("--workspace", str(ws))
    pol = loose_policy(tmp_path)
    doc = yaml.safe_load(pol.read_text())
    doc["targets"] = {"viapolicy": LONG, "fine": LONGEST}
    pol.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert run(*w, "init", "--policy", str(pol)).exit_code == 0
    data, schema = long_column_source(tmp_path, target=LONG)
    one_line_error(run(*w, "register", "viaschema", str(data), "--schema", str(schema)), 2,
                   "the schema's target column 'tttt")
    data, schema = long_column_source(tmp_path)
    one_line_error(run(*w, "register", "viapolicy", str(data), "--schema", str(schema)), 2,
                   "the target column of 'viapolicy'")
    assert json.loads(run(*w, "budget", "--json").stdout) == []
    assert run(*w, "register", "fine", str(data), "--schema", str(schema)).exit_code == 0


def test_a_long_target_on_postgres_is_one_line(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # without the check, PostgreSQL refuses the 201 characters with a DataError: exit 1, a traceback line
    url = request.getfixturevalue("pg_url")
    ws = tmp_path / "ws"
    res = run("--workspace", str(ws), "init", "--database", url, "--policy", str(loose_policy(tmp_path)))
    assert res.exit_code == 0, res.stderr
    _check_long_targets(tmp_path, ("--workspace", str(ws)))
