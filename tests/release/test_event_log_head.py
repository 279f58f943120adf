"""The event log's chain head in a bundle: recorded, reported by verify, matched by ``log verify --bundle``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_bundle_verify import make_predicate, sample_files

from privacy.errors import IntegrityError
from release.bundle import EventLogHead, write_bundle
from release.cli.main import cli
from release.db import (
    GENESIS,
    _event_hash,
    chain_head_entry,
    check_event_log_head,
    create_all,
    log_event,
    make_engine,
)
from release.keys import generate_keypair
from release.verify import load_trusted, verify_bundle
from release.workspace import DB_NAME, Workspace


def _ws(root: Path, events: int) -> Workspace:
    """What a workspace needs here: its database and release key (no policy, so no policy loader)."""
    generate_keypair(root / "keys", "release")
    engine = make_engine(root / DB_NAME)
    create_all(engine)
    ws = Workspace(root=root, engine=engine)
    with ws.transaction() as s:
        log_event(s, "workspace.init", policy="test")
        for i in range(events):
            log_event(s, "test.event", None, n=i)
    return ws


def _bundle(ws: Workspace, out: Path, head: Any = "ws", *, tar: bool = False) -> Path:
    """A bundle signed by the workspace's release key whose predicate records ``head``
    (default: the workspace log's current head; None: no head at all)."""
    key = ws.release_key()
    files = sample_files()
    predicate = make_predicate(files, release=key)
    if head == "ws":
        with ws.transaction() as s:
            head = chain_head_entry(s).to_predicate()
    if head is not None:
        predicate["event_log_head"] = head
    write_bundle(out, files, predicate, key, tar=tar)
    return Path(f"{out}.tar.gz") if tar else out


def _cli(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args])


def _one_error_line(res: Result, code: int) -> str:
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthgate: error:"), res.stderr
    assert "Traceback" not in res.output + res.stderr
    return lines[0]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return _ws(tmp_path / "ws", events=5)


def _rechain(db: Path, edit_id: int) -> None:
    """Edit entry ``edit_id`` and recompute every later hash: a log rewritten so that it checks out."""
    con = sqlite3.connect(db)
    con.execute("update events set detail_json = ? where id = ?", (json.dumps({"forged": True}), edit_id))
    prev = GENESIS
    for row_id, at, kind, run_id, detail in con.execute(
        "select id, at, kind, run_id, detail_json from events order by id"
    ).fetchall():
        digest = _event_hash(prev, kind, run_id, detail, at)
        con.execute("update events set prev_hash = ?, hash = ? where id = ?", (prev, digest, row_id))
        prev = digest
    con.commit()
    con.close()


# --- the library --------------------------------------------------------------------------------


def test_chain_head_entry_is_the_newest_entry(tmp_path: Path, ws: Workspace) -> None:
    with ws.transaction() as s:
        head = chain_head_entry(s)
        newest = log_event(s, "test.after")
        assert chain_head_entry(s) == EventLogHead(id=newest.id, hash=newest.hash)
    assert head.id == 6 and len(head.hash) == 64  # workspace.init and five test events
    assert newest.prev_hash == head.hash
    # an empty log has the genesis head
    engine = make_engine(tmp_path / "empty.db")
    create_all(engine)
    empty = Workspace(root=tmp_path, engine=engine)
    with empty.transaction() as s:
        assert chain_head_entry(s) == EventLogHead(id=0, hash=GENESIS)
        assert check_event_log_head(s, EventLogHead(id=0, hash=GENESIS)).entries == 0


def test_check_event_log_head(ws: Workspace) -> None:
    with ws.transaction() as s:
        head = chain_head_entry(s)
        for i in range(3):
            log_event(s, "test.later", None, n=i)
        found = check_event_log_head(s, head)
        assert (found.entries, found.head_id, found.later) == (9, 6, 3)
        # a bare hash (bundles from before issue 9) is found by its hash
        assert check_event_log_head(s, EventLogHead(id=None, hash=head.hash)).head_id == 6
        with pytest.raises(IntegrityError, match="does not match entry 5"):
            check_event_log_head(s, EventLogHead(id=5, hash=head.hash))
        with pytest.raises(IntegrityError, match=r"entry 42 \(hash .*\), is not in this workspace's event log \(9"):
            check_event_log_head(s, EventLogHead(id=42, hash=head.hash))
        with pytest.raises(IntegrityError, match="is not an entry of this workspace's event log"):
            check_event_log_head(s, EventLogHead(id=None, hash="ab" * 32))


# --- verify reports the head --------------------------------------------------------------------


def test_verify_reports_the_head(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle")
    pub = str(ws.release_pub_path)
    with ws.transaction() as s:
        head = chain_head_entry(s)
    assert verify_bundle(bundle, load_trusted([Path(pub)])).event_log_head == head
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--trust", pub, "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["event_log_head"] == {"id": 6, "hash": head.hash}
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--trust", pub])
    assert res.exit_code == 0 and f"event log head at release: entry 6 (hash {head.hash[:16]})" in res.stdout


def test_verify_accepts_a_bundle_without_a_head_and_says_so(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle", head=None)
    pub = str(ws.release_pub_path)
    assert verify_bundle(bundle, load_trusted([Path(pub)])).event_log_head is None
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--trust", pub, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["event_log_head"] is None
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--trust", pub])
    assert res.exit_code == 0 and "event log head: absent" in res.stdout


def test_verify_reads_the_bare_hash_of_older_bundles(tmp_path: Path, ws: Workspace) -> None:
    with ws.transaction() as s:
        head = chain_head_entry(s)
    bundle = _bundle(ws, tmp_path / "bundle", head=head.hash)
    assert verify_bundle(bundle, load_trusted([ws.release_pub_path])).event_log_head == EventLogHead(None, head.hash)
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--trust", str(ws.release_pub_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["event_log_head"] == {"id": None, "hash": head.hash}


@pytest.mark.parametrize(
    "head",
    [
        {"id": "6", "hash": "ab" * 32},
        {"id": True, "hash": "ab" * 32},
        {"id": -1, "hash": "ab" * 32},
        {"id": 6, "hash": "AB" * 32},
        {"id": 6, "hash": "ab" * 31},
        {"id": 6},
        {"id": 6, "hash": "ab" * 32, "note": "extra"},
        {"id": 0, "hash": "ab" * 32},
        {"id": 6, "hash": GENESIS},
        None,
        "not a hash",
        6,
    ],
)
def test_a_malformed_head_is_refused(tmp_path: Path, ws: Workspace, head: Any) -> None:
    key = ws.release_key()
    files = sample_files()
    predicate = make_predicate(files, release=key)
    predicate["event_log_head"] = head
    bundle = write_bundle(tmp_path / "bundle", files, predicate, key)
    with pytest.raises(IntegrityError, match="predicate event_log_head is malformed"):
        verify_bundle(bundle, load_trusted([ws.release_pub_path]))


# --- log verify --bundle ------------------------------------------------------------------------


@pytest.mark.parametrize("tar", [False, True], ids=["folder", "tar"])
def test_log_verify_bundle_passes_on_its_own_log(tmp_path: Path, ws: Workspace, tar: bool) -> None:
    bundle = _bundle(ws, tmp_path / "bundle", tar=tar)
    with ws.transaction() as s:
        head = chain_head_entry(s)
        log_event(s, "run.released", "run-x")
    res = _cli(ws.root, "log", "verify", "--bundle", str(bundle), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == {
        "valid": True, "entries": 7, "bundle": str(bundle), "run_id": "run-20250601-7f3a",
        "event_log_head": {"id": 6, "hash": head.hash}, "entries_after_head": 1,
        "admin_actions": 0, "revoked_after_release": [],
    }
    res = _cli(ws.root, "log", "verify", "--bundle", str(bundle))
    assert res.exit_code == 0 and "recorded entry 6" in res.stdout and "with 1 entry after it" in res.stdout


def test_log_verify_bundle_catches_a_rewritten_log(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle")
    _rechain(ws.root / "synthgate.db", edit_id=3)
    # the rewritten chain is consistent in itself: only the bundle's head shows the rewrite
    assert _cli(ws.root, "log", "verify").exit_code == 0
    line = _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(bundle)), 5)
    assert str(bundle) in line and "does not match entry 6" in line and "edited and re-chained" in line


def test_log_verify_bundle_catches_an_edited_log(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle")
    con = sqlite3.connect(ws.root / "synthgate.db")
    con.execute("update events set detail_json = '{}' where id = 2")
    con.commit()
    con.close()
    assert "event log broken at entry 2" in _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(bundle)), 5)


def test_log_verify_bundle_catches_a_cut_back_log(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle")
    con = sqlite3.connect(ws.root / "synthgate.db")
    con.execute("delete from events where id >= 5")
    con.commit()
    con.close()
    assert _cli(ws.root, "log", "verify").exit_code == 0  # what is left is a valid chain
    line = _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(bundle)), 5)
    assert "entry 6" in line and "is not in this workspace's event log (4 entries)" in line


def test_log_verify_bundle_catches_a_foreign_log(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle")
    other = _ws(tmp_path / "other", events=0)
    with other.transaction() as s:
        for i in range(9):
            log_event(s, "test.event", None, n=100 + i)
    # another workspace: its release key did not sign the bundle
    line = _one_error_line(_cli(other.root, "log", "verify", "--bundle", str(bundle)), 5)
    assert "no signature verifies with a trusted key" in line
    # the right workspace with another workspace's log put in place of its own
    source, target = sqlite3.connect(other.root / "synthgate.db"), sqlite3.connect(ws.root / "synthgate.db")
    source.backup(target)  # the database with its WAL, unlike a file copy
    source.close()
    target.close()
    assert _cli(ws.root, "log", "verify").exit_code == 0
    assert "does not match entry 6" in _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(bundle)), 5)


def test_log_verify_bundle_with_a_bare_hash(tmp_path: Path, ws: Workspace) -> None:
    with ws.transaction() as s:
        head = chain_head_entry(s)
    older = _bundle(ws, tmp_path / "older", head=head.hash)
    res = _cli(ws.root, "log", "verify", "--bundle", str(older), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["event_log_head"] == {"id": 6, "hash": head.hash}
    _rechain(ws.root / "synthgate.db", edit_id=6)
    assert "is not an entry" in _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(older)), 5)


def test_log_verify_bundle_refuses_what_it_cannot_check(tmp_path: Path, ws: Workspace) -> None:
    bundle = _bundle(ws, tmp_path / "bundle", head=None)
    assert "records no event log head" in _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(bundle)), 2)
    tampered = _bundle(ws, tmp_path / "tampered")
    (tampered / "synthetic.csv").write_bytes(b"age\n1\n")
    line = _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(tampered)), 5)
    assert "synthetic.csv: SHA-256 does not match" in line
    assert "file not found" in _one_error_line(_cli(ws.root, "log", "verify", "--bundle", str(tmp_path / "nope")), 2)
