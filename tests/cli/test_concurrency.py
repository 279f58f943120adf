"""Twenty ``synthgate synthesize`` processes race for one nearly exhausted budget, on SQLite and on
PostgreSQL: together they never pass the cap, and the event log stays one chain.

Each contender is an OS process of its own running the CLI's ``main`` with its own arguments and its
own database connections. Importing the CLI costs seconds of CPU (torch, sdmetrics), twenty times
over on two shared cores; so one launcher process imports it once and forks the twenty, which
wait at a barrier (a pipe the launcher closes) and then charge together instead of staggered by
their imports. Nothing touches a database before the fork. The counts are printed and written to
``test-artifacts/concurrency-counts.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_postgres import loose_policy, pg_url, run, small_source  # noqa: F401  (pg_url: a fixture)

from privacy.ledger import charge
from privacy.spend import PrivacySpend
from release.sources import caps_of, get_source, source_policy
from release.workspace import open_workspace

ROOT = Path(__file__).parents[2]
ARTIFACT = ROOT / "test-artifacts" / "concurrency-counts.json"
PROCESSES = 20
CAP, SPENT, ASK = 3.0, 2.5, 0.5  # room for exactly one more charge

# argv: N OUTDIR CLI-ARGS...; prints {"codes": [...], "seconds": ...} on stdout
LAUNCHER = r"""
import json, os, sys, time
from release.cli.main import main
from release.database import head_revision
head_revision()  # read the migration scripts once, before forking
n, outdir, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
r, w = os.pipe()
pids = []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        for fd, name in ((1, "out"), (2, "err")):
            os.dup2(os.open(f"{outdir}/{i}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        os.read(r, 1)  # the barrier: returns when the launcher closes the pipe's write end
        sys.argv = ["synthgate", *argv]
        code = 1
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    pids.append(pid)
os.close(r)
time.sleep(0.5)
start = time.monotonic()
os.close(w)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
print(json.dumps({"codes": codes, "seconds": round(time.monotonic() - start, 1)}))
"""


def prefill(ws: Path, epsilon: float) -> None:
    w = open_workspace(ws)
    with w.transaction() as s:
        src = get_source(s, "small")
        caps = caps_of(source_policy(src))
        assert caps.total_epsilon == CAP
        left, i = epsilon, 0
        while left > 1e-12:
            step = min(left, caps.per_release_epsilon)
            charge(s, src, PrivacySpend(epsilon=step, delta=1e-9), caps, run_id=f"run-earlier-{i}",
                   mechanism="earlier release")
            left, i = left - step, i + 1
    w.engine.dispose()


def record(backend: str, counts: dict[str, object]) -> None:
    ARTIFACT.parent.mkdir(exist_ok=True)
    try:
        data = json.loads(ARTIFACT.read_text())
    except (OSError, ValueError):
        data = {}
    data[backend] = counts
    tmp = ARTIFACT.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, ARTIFACT)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_charges_never_pass_the_cap(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--database", request.getfixturevalue("pg_url")] if backend == "postgresql" else []
    ws = tmp_path / "ws"
    data, schema = small_source(tmp_path)
    assert run("--workspace", str(ws), "init", "--policy", str(loose_policy(tmp_path)), *extra).exit_code == 0
    assert run("--workspace", str(ws), "register", "small", str(data), "--schema", str(schema)).exit_code == 0
    prefill(ws, SPENT)
    before = json.loads(run("--workspace", str(ws), "budget", "small", "--json").stdout)

    outdir = tmp_path / "out"
    outdir.mkdir()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(PROCESSES), str(outdir), "--workspace", str(ws), "synthesize", "small",
         "--generator", "mst", "--epsilon", str(ASK), "--rows", "20"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    launched = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = round(time.monotonic() - started, 1)
    results = [(code, (outdir / f"{i}.err").read_text()) for i, code in enumerate(launched["codes"])]

    after = json.loads(run("--workspace", str(ws), "budget", "small", "--json").stdout)
    log = run("--workspace", str(ws), "log", "verify", "--json")
    granted = sum(code == 0 for code, _ in results)
    refused = sum(code == 4 for code, _ in results)
    others = [(code, err.strip().splitlines()[-1:]) for code, err in results if code not in (0, 4)]
    new_charges = len(after["charges"]) - len(before["charges"])
    allowed = int((CAP - SPENT + 1e-9) // ASK)
    counts = {
        "backend": backend,
        "charges_tried": PROCESSES,
        "granted": granted,
        "refused": refused,
        "other_exits": len(others),
        "charges_recorded": new_charges,
        "spent_epsilon": after["spent_epsilon"],
        "cap_epsilon": CAP,
        "overspends": max(0, new_charges - allowed) + (after["spent_epsilon"] > CAP + 1e-9),
        "seconds": seconds,
        "seconds_after_barrier": launched["seconds"],
    }
    record(backend, counts)
    with capsys.disabled():
        print(f"\n[concurrency {backend}] tried {PROCESSES}, granted {granted}, refused {refused}, "
              f"other {len(others)}, overspends {counts['overspends']}, spent {after['spent_epsilon']:g} "
              f"of {CAP:g}, {seconds} s ({launched['seconds']} s after the barrier)")

    assert others == [], others
    assert counts["overspends"] == 0
    assert granted == allowed == new_charges and refused == PROCESSES - allowed
    assert after["spent_epsilon"] == pytest.approx(CAP)
    refusals = [err for code, err in results if code == 4]
    assert all("epsilon left" in err for err in refusals), refusals[:1]
    assert log.exit_code == 0, log.stderr
    # every charge, the winner's run and its life are one unbroken chain
    assert json.loads(log.stdout)["valid"]
