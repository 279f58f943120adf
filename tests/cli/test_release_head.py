"""End to end: ``synthgate release`` records the event log's head, ``log verify --bundle`` matches it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from cli_checks import rechain

if TYPE_CHECKING:  # the fixture type lives in conftest.py
    from conftest import Env


def test_release_records_the_head_before_its_own_event(env: "Env", run_id: str) -> None:
    for name in ("alice", "bob"):
        res = env.run("approve", run_id, "--steward", name, "--key", str(env.root / "keys" / f"{name}.key"))
        assert res.exit_code == 0, res.stderr
    bundle = env.root / "bundle"
    assert env.run("release", run_id, "--out", str(bundle), "--tar").exit_code == 0
    archive = Path(f"{bundle}.tar.gz")
    pub = str(env.ws / "keys" / "release.pub")
    head = env.json("verify", str(archive), "--trust", pub)["event_log_head"]

    db = env.ws / "synthgate.db"
    con = sqlite3.connect(db)
    events = con.execute("select id, kind, run_id, detail_json, hash from events order by id").fetchall()
    con.close()
    # the head is the entry just before the run's own run.released event, which names it
    released = events[-1]
    assert released[1] == "run.released" and released[2] == run_id
    assert json.loads(released[3])["event_log_head"] == head
    assert head["id"] == released[0] - 1 and head["hash"] == events[-2][4]

    for target in (bundle, archive):
        out = env.json("log", "verify", "--bundle", str(target))
        assert out["valid"] and out["event_log_head"] == head and out["entries_after_head"] == 1
    res = env.run("verify", str(bundle), "--trust", pub)
    assert res.exit_code == 0 and f"event log head at release: entry {head['id']}" in res.stdout

    # rewrite one old entry and re-chain the log so that it checks out on its own
    con = sqlite3.connect(db)
    # after the last signed admin action: each names the log head it was signed over, so log verify
    # alone catches a re-chaining that runs through one (test_roles.py)
    con.execute("update events set detail_json = '{}' where id = "
                "(select min(id) from events where id > (select max(id) from events where kind like 'member.%'))")
    rechain(con)
    con.commit()
    con.close()
    res = env.run("log", "verify")
    assert res.exit_code == 0, res.stderr
    res = env.run("log", "verify", "--bundle", str(archive))
    assert res.exit_code == 5 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("synthgate: error:") and f"does not match entry {head['id']}" in res.stderr
