"""Test helpers shared by CLI test modules: a refusal's one line, and a re-chained event log."""

from __future__ import annotations

import sqlite3

from click.testing import Result

from release.db import GENESIS, _event_hash


def one_line(res: Result, code: int) -> str:
    """The one line on stderr of a command that exited with ``code``."""
    assert res.exit_code == code, res.output + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def rechain(con: sqlite3.Connection) -> None:
    """Recompute every event's hashes, as someone who edited the log would, so the chain checks out."""
    prev = GENESIS
    for row_id, at, kind, rid, detail in con.execute(
            "select id, at, kind, run_id, detail_json from events order by id").fetchall():
        digest = _event_hash(prev, kind, rid, detail, at)
        con.execute("update events set prev_hash = ?, hash = ? where id = ?", (prev, digest, row_id))
        prev = digest
