"""Crash safety: test-only kill points, and telling a run whose process died from one still running.

``crash_point(name)`` is a test hook. When the environment variable ``SYNTHGATE_TEST_CRASH_AT``
(test-only; never set it in production) equals ``name``, the process kills itself with SIGKILL at
that point: no ``finally``, no rollback, no atexit, exactly like ``kill -9`` or a power cut of
that one process. ``tests/cli/test_crash.py`` uses it to check that every state a crash can
leave is consistent. The points:

    synthesize.after_charge     the charge and the "created" run are committed, the data not yet read
    synthesize.mid_outputs      synthetic.parquet is in the staging folder, synthetic.csv not yet
    synthesize.before_commit    the run folder is in place, the "synthesized" state not yet committed
    audit.after_audit_json      the new audit.json is written, report.html and statement.json not yet
    audit.before_commit         every audit file is written, the new statement digest not yet committed
    bundle.mid_files            some bundle files are in the temporary folder, the manifest not yet
    bundle.before_archive       the bundle folder is in place, its .tar.gz not yet
    release.before_commit       the bundle is complete, the "released" state not yet committed
    keys.before_publish         both key files are in temporary files, neither under its final name
    keys.between_files          the private key is published, the public key not yet

``process_owner()`` describes the current process (host, boot, pid, start time); a command
that leaves a run in a transient state ("created" while synthesizing, "auditing") records it in
the event that enters the state. ``owner_alive`` then tells, on the same host, whether that
process is still running: ``release.runs.reap_dead_runs`` marks a run whose process is gone. A
process on another host (``on_other_host``) is told alive by its heartbeat (``release.heartbeat``).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

CRASH_ENV = "SYNTHGATE_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Test-only: SIGKILL this process if ``SYNTHGATE_TEST_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc (Linux); None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], fields[19]


def process_owner() -> dict[str, Any]:
    """Who is doing this: stored in the event that puts a run into a transient state."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": stat[1] if stat else None}


def on_other_host(owner: dict[str, Any] | None) -> bool:
    """Whether ``owner`` names a process on another host (whose liveness only its heartbeat tells)."""
    return isinstance(owner, dict) and isinstance(owner.get("host"), str) and owner["host"] != socket.gethostname()


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """Whether the process ``owner`` describes still runs: True, False, or None when this host cannot tell
    (another host, or no owner recorded)."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return None
    boot = _boot_id()
    if boot is not None and owner.get("boot") is not None and boot != owner["boot"]:
        return False  # the machine restarted since
    pid = owner["pid"]
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a process of another user holds this pid
    stat = _proc_stat(pid)
    if stat is None:
        # no /proc (not Linux): the pid exists, which is all we can tell; with /proc: it just ended
        return not os.path.isdir("/proc")
    state, start = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    if owner.get("start") is not None and start != owner["start"]:
        return False  # the pid was reused by another process
    return True
