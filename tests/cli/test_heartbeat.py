"""Heartbeats: a run worked on from another host is presumed dead once its heartbeat is stale.

One real workspace (the small four-column source, one MST run of 50 rows) is copied per test; the
run is then put back into "created" or "auditing" as a process on another host ("host-b") would
leave it, by appending the event that enters the state (the hash chain stays intact) and setting
``runs.heartbeat_at``. ``synthgate runs`` must fail a stale one with its reason and leave a fresh
one alone; the heartbeat thread must really refresh the column while work runs.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from test_postgres import loose_policy, pg_url, small_source  # noqa: F401  (pg_url: a fixture)

from privacy.errors import InputError
from release import heartbeat as hb
from release import runs as runs_mod
from release import synthesize as synth_mod
from release.cli.main import cli
from release.db import Run, log_event
from release.heartbeat import Heartbeat, as_utc
from release.runs import audit
from release.synthesize import SynthesisRequest, synthesize
from release.workspace import Workspace, open_workspace

REMOTE = {"host": "host-b", "boot": "b00t", "pid": 1234, "start": "42"}


def run_cli(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)


def runs_json(ws: Path) -> dict[str, dict[str, Any]]:
    res = run_cli(ws, "runs", "--json")
    assert res.exit_code == 0, res.output
    return {r["run_id"]: r for r in json.loads(res.stdout)}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with one synthesized run (its id in ``run_id``)."""
    root = tmp_path_factory.mktemp("heartbeat")
    data, schema = small_source(root)
    ws = root / "ws"
    assert run_cli(ws, "init", "--policy", str(loose_policy(root))).exit_code == 0
    assert run_cli(ws, "register", "small", str(data), "--schema", str(schema)).exit_code == 0
    res = run_cli(ws, "synthesize", "small", "--generator", "mst", "--epsilon", "0.1", "--rows", "50",
                  "--seed", "1", "--requester", "carol", "--json")
    assert res.exit_code == 0, res.output
    (root / "run_id").write_text(json.loads(res.stdout)["run_id"])
    return root


@pytest.fixture
def ws(base: Path, tmp_path: Path) -> Iterator[Workspace]:
    shutil.copytree(base, tmp_path / "copy")
    w = open_workspace(tmp_path / "copy" / "ws")
    yield w
    w.engine.dispose()


@pytest.fixture
def run_id(base: Path) -> str:
    return (base / "run_id").read_text()


def as_if_remote(ws: Workspace, run_id: str, state: str, heartbeat_age: float | None) -> None:
    """Put the run into ``state`` as host-b's process 1234 would, its last heartbeat ``heartbeat_age`` s ago."""
    with ws.transaction() as s:
        run = s.get(Run, run_id)
        assert run is not None
        run.state = state
        run.heartbeat_at = None if heartbeat_age is None else datetime.now(UTC) - timedelta(seconds=heartbeat_age)
        if state == "created":
            log_event(s, "run.created", run_id, generator=run.generator, requester=run.requester, owner=REMOTE)
        else:
            log_event(s, "run.auditing", run_id, owner=REMOTE, from_state="synthesized")


def heartbeat_of(ws: Workspace, run_id: str) -> datetime | None:
    with ws.transaction() as s:
        run = s.get(Run, run_id)
        assert run is not None
        return None if run.heartbeat_at is None else as_utc(run.heartbeat_at)


def heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("synthgate-heartbeat-")]


def test_synthesis_records_a_first_heartbeat(ws: Workspace, run_id: str) -> None:
    at = heartbeat_of(ws, run_id)
    assert at is not None and datetime.now(UTC) - at < timedelta(minutes=10)


def test_stale_remote_synthesis_is_failed_with_its_reason(ws: Workspace, run_id: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    as_if_remote(ws, run_id, "created", heartbeat_age=400)
    row = runs_json(ws.root)[run_id]
    assert row["state"] == "failed"
    err = row["error"]
    assert err.startswith("synthesis interrupted: process 1234 on host-b sent no heartbeat since ")
    assert "(over 300 s): presumed dead; the budget stays charged" in err
    # the table shows the reason on one line, cut short; --json (above) has it whole
    monkeypatch.setenv("COLUMNS", "400")
    res = run_cli(ws.root, "runs")
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if run_id in ln)
    assert "failed" in line and "synthesis interrupted: process 1234 on host-b" in line
    assert "..." in line and "budget stays charged" not in line
    assert "error" in res.stdout.splitlines()[1]
    # a terminal too narrow for one more column: each reason on a line of its own below the table
    monkeypatch.setenv("COLUMNS", "80")
    res = run_cli(ws.root, "runs")
    assert res.exit_code == 0, res.output
    below = [ln for ln in res.stdout.splitlines() if ln.startswith(f"{run_id}: ")]
    assert len(below) == 1 and len(below[0]) <= 80
    assert below[0].startswith(f"{run_id}: synthesis interrupted: process 1234 on host-b")
    # the budget stays charged and the log stays one chain
    res = run_cli(ws.root, "log", "verify", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["valid"]


def test_fresh_or_unknown_remote_runs_are_left_alone(ws: Workspace, run_id: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    as_if_remote(ws, run_id, "created", heartbeat_age=10)
    row = runs_json(ws.root)[run_id]
    assert row["state"] == "created" and row["error"] is None
    # no heartbeat at all (a process from before heartbeats): it may be running, left as it is
    as_if_remote(ws, run_id, "created", heartbeat_age=None)
    assert runs_json(ws.root)[run_id]["state"] == "created"
    # a table without failed runs has no error column
    res = run_cli(ws.root, "runs")
    assert res.exit_code == 0 and "error" not in res.stdout

    # an audit with a fresh heartbeat on host-b: another audit is refused, nothing is reaped
    as_if_remote(ws, run_id, "auditing", heartbeat_age=10)
    res = CliRunner().invoke(cli, ["--workspace", str(ws.root), "audit", run_id])
    assert res.exit_code == 3 and "being audited by process 1234 on host-b" in res.stderr
    assert runs_json(ws.root)[run_id]["state"] == "auditing"
    # the stale limit comes from SYNTHGATE_RUN_STALE_S: 10 s is stale under a 5 s limit
    monkeypatch.setenv(hb.STALE_ENV, "5")
    row = runs_json(ws.root)[run_id]
    assert row["state"] == "synthesized"
    assert row["error"].startswith("audit interrupted: process 1234 on host-b sent no heartbeat since ")
    assert "(over 5 s): presumed dead; the run is synthesized, audit it again" in row["error"]


def test_heartbeat_thread_refreshes_the_run_until_stopped(ws: Workspace, run_id: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    as_if_remote(ws, run_id, "created", heartbeat_age=60)
    first = heartbeat_of(ws, run_id)
    assert first is not None
    # a beat that fails (a locked database) is logged and the next one tries again
    real, failures = hb.beat, []

    def flaky(*args: Any) -> bool:
        if len(failures) < 2:
            failures.append(1)
            raise RuntimeError("database is locked")
        return real(*args)

    monkeypatch.setattr(hb, "beat", flaky)
    heart = Heartbeat(ws, run_id, "created", interval=0.05).start()
    try:
        assert heart._thread.daemon  # never keeps the process alive
        deadline = time.monotonic() + 10
        while (heartbeat_of(ws, run_id) or first) <= first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heart.running and len(failures) == 2
    finally:
        heart.stop()
    latest = heartbeat_of(ws, run_id)
    assert latest is not None and latest > first + timedelta(seconds=30)
    assert not heart.running
    time.sleep(0.2)
    assert heartbeat_of(ws, run_id) == latest  # no beat after stop

    # a run that left the state: the thread ends by itself, without touching it
    with ws.transaction() as s:
        run = s.get(Run, run_id)
        assert run is not None
        run.state = "failed"
    heart = Heartbeat(ws, run_id, "created", interval=0.05).start()
    heart._thread.join(5)
    assert not heart.running and heartbeat_of(ws, run_id) == latest


def test_audit_and_synthesis_beat_while_they_work(ws: Workspace, run_id: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hb, "HEARTBEAT_S", 0.05)
    seen: list[tuple[datetime, datetime]] = []

    def wait_for_beat(rid: str) -> None:
        first = heartbeat_of(ws, rid)
        assert first is not None  # the state was entered with a heartbeat
        deadline = time.monotonic() + 10
        while (heartbeat_of(ws, rid) or first) <= first and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append((first, heartbeat_of(ws, rid) or first))
        assert heartbeat_threads(), "no heartbeat thread while working"
        raise InputError("stopped by the test")

    monkeypatch.setattr(runs_mod, "_audit_body", lambda *a, **k: wait_for_beat(run_id))
    with pytest.raises(InputError):
        audit(ws, run_id)
    assert runs_json(ws.root)[run_id]["state"] == "synthesized"

    monkeypatch.setattr(synth_mod, "load_source", lambda *a, **k: wait_for_beat(_new_run(ws, run_id)))
    with pytest.raises(InputError):
        synthesize(ws, SynthesisRequest(source="small", generator="mst", epsilon=0.1, rows=50, requester="carol"))
    assert len(seen) == 2 and all(later > first for first, later in seen)
    deadline = time.monotonic() + 10
    while heartbeat_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert heartbeat_threads() == []
    failed = [r for r in runs_json(ws.root).values() if r["run_id"] != run_id]
    assert len(failed) == 1 and failed[0]["state"] == "failed" and failed[0]["error"] == "stopped by the test"


def _new_run(ws: Workspace, known: str) -> str:
    """The run the synthesis under way created (the one in "created")."""
    with ws.transaction() as s:
        ids = [r.id for r in s.scalars(select(Run).where(Run.state == "created", Run.id != known))]
    assert len(ids) == 1
    return ids[0]


def test_stale_and_fresh_remote_runs_on_postgres(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The same on a team database (skipped without a server): heartbeats by the server's clock."""
    url = request.getfixturevalue("pg_url")
    data, schema = small_source(tmp_path)
    path = tmp_path / "ws"
    res = run_cli(path, "init", "--database", url, "--policy", str(loose_policy(tmp_path)))
    assert res.exit_code == 0, res.output
    assert run_cli(path, "register", "small", str(data), "--schema", str(schema)).exit_code == 0
    res = run_cli(path, "synthesize", "small", "--generator", "mst", "--epsilon", "0.1", "--rows", "50",
                  "--requester", "carol", "--json")
    assert res.exit_code == 0, res.output
    rid = json.loads(res.stdout)["run_id"]
    w = open_workspace(path)
    try:
        as_if_remote(w, rid, "created", heartbeat_age=10)
        assert runs_json(path)[rid]["state"] == "created"
        before = heartbeat_of(w, rid)
        assert before is not None and hb.beat(w, rid, "created") and (heartbeat_of(w, rid) or before) > before
        as_if_remote(w, rid, "created", heartbeat_age=400)
        row = runs_json(path)[rid]
        assert row["state"] == "failed" and "on host-b sent no heartbeat since" in row["error"]
        assert not hb.beat(w, rid, "created")  # a failed run is not beaten back to life
    finally:
        w.engine.dispose()
