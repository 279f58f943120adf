"""Heartbeats: the process synthesizing or auditing a run says, every ``HEARTBEAT_S``, that it still works.

``release.crashpoints.owner_alive`` tells whether a run's process still runs only on the host that
runs it. With a team database (PostgreSQL) runs are worked on from several hosts, and a run whose
host died would stay "created" or "auditing" for ever. So the working process refreshes
``runs.heartbeat_at``: once in the transaction that puts the run into its transient state, then from
a daemon thread (``Heartbeat``), each beat a transaction of its own that holds the workspace's write
lock only for one UPDATE. ``release.runs.reap_dead_runs`` presumes a process on another host dead
once its run's heartbeat is older than ``stale_limit()`` (``STALE_S``, or ``SYNTHGATE_RUN_STALE_S``).

Times are the database server's clock on PostgreSQL (the one clock every host shares; no skew
between the hosts' clocks matters) and the local clock on SQLite (one host).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from release.db import Run
from release.workspace import Workspace

#: seconds between two beats of a working process
HEARTBEAT_S = 30.0
#: seconds without a beat after which a process on another host is presumed dead (ten missed beats)
STALE_S = 300.0
STALE_ENV = "SYNTHGATE_RUN_STALE_S"

log = logging.getLogger("synthgate.heartbeat")


def stale_limit() -> float:
    """``STALE_S``, or the seconds ``SYNTHGATE_RUN_STALE_S`` names (tests); a bad value is ignored."""
    raw = os.environ.get(STALE_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            return STALE_S
        if value > 0:
            return value
    return STALE_S


def as_utc(at: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives them back naive, in UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def db_now(s: Session) -> datetime:
    """Now, by the database server's clock on PostgreSQL, by this host's elsewhere; aware, UTC."""
    if s.get_bind().dialect.name == "postgresql":
        now = s.scalar(select(func.now()))
        if isinstance(now, datetime):
            return as_utc(now)
    return datetime.now(UTC)


def silent_for(heartbeat_at: datetime | None, now: datetime) -> float | None:
    """Seconds since the last heartbeat (None when the run has none)."""
    if heartbeat_at is None:
        return None
    return (now - as_utc(heartbeat_at)).total_seconds()


def beat(ws: Workspace, run_id: str, state: str) -> bool:
    """One heartbeat in a short transaction of its own: refresh ``heartbeat_at`` while the run is still
    in ``state``. False when it is not (finished, or presumed dead and taken out of it elsewhere)."""
    with ws.transaction() as s:
        result = s.execute(update(Run).where(Run.id == run_id, Run.state == state)
                           .values(heartbeat_at=db_now(s)).execution_options(synchronize_session=False))
        return bool(getattr(result, "rowcount", 0))


class Heartbeat:
    """A daemon thread that beats for one run every ``interval`` seconds (``HEARTBEAT_S``) until ``stop``,
    or until the run has left ``state``.

    It never keeps the process alive (daemon) and never fails the work: a beat that fails (the
    database locked a while, a dropped connection) is logged at debug level and the next one tries
    again; one warning if beats keep failing for half the stale limit, since other hosts may then
    presume this process dead. Use it as a context manager around the work.
    """

    def __init__(self, ws: Workspace, run_id: str, state: str, interval: float | None = None) -> None:
        self.ws, self.run_id, self.state = ws, run_id, state
        self.interval = HEARTBEAT_S if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"synthgate-heartbeat-{run_id}", daemon=True)

    def start(self) -> Heartbeat:
        try:
            self._thread.start()
        except RuntimeError as exc:  # no thread to be had: the work goes on, without beats
            log.warning("heartbeat of run %s not started: %s", self.run_id, exc)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating. Call it outside any transaction of this process: a beat waiting for the write
        lock is not waited for longer than ``timeout`` (it changes nothing once the run left ``state``)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        failing_since: float | None = None
        warned = False
        while not self._stop.wait(self.interval):
            try:
                if not beat(self.ws, self.run_id, self.state):
                    log.debug("run %s is no longer %s: heartbeat stops", self.run_id, self.state)
                    return
                failing_since, warned = None, False
            except Exception as exc:  # a heartbeat must never break the work it reports on
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                log.debug("heartbeat of run %s failed: %s", self.run_id, exc)
                if not warned and now - failing_since > stale_limit() / 2:
                    warned = True
                    log.warning("heartbeat of run %s failing for %.0f s (%s): other hosts may presume this "
                                "process dead", self.run_id, now - failing_since, exc)
