"""Crashes: CLI processes killed by SIGKILL at chosen points of synthesize, audit, release and keys.

Each kill point is a ``crash_point(name)`` in the code (``release/crashpoints.py``), armed by the
test-only environment variable ``SYNTHGATE_TEST_CRASH_AT``. Every command, the checks after a crash
included, runs in an OS process of its own: one launcher imports the CLI once (seconds of CPU on
two shared cores) and forks a child per command, reading commands from its stdin. After each
crash the next processes must find the database consistent, the budget charged for what touched
the data, no half-written run folder, bundle or key under its final name, and the run either
resumable or failed with a reason. The counts are printed and written to
``test-artifacts/crash-counts.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_postgres import loose_policy, small_source

from release.statement import file_digests, statement_digest

ROOT = Path(__file__).parents[2]
ARTIFACT = ROOT / "test-artifacts" / "crash-counts.json"
EPS = "0.1"

# reads {"crash": NAME or null, "argv": [...]} lines; forks one child per line, which runs the CLI
# with SYNTHGATE_TEST_CRASH_AT=NAME; answers {"code", "out", "err"} lines (code -9: SIGKILL)
LAUNCHER = r"""
import json, os, sys
from release.cli.main import main
from release.database import head_revision
head_revision()
outdir = sys.argv[1]
for n, line in enumerate(sys.stdin):
    cmd = json.loads(line)
    out, err = f"{outdir}/{n}.out", f"{outdir}/{n}.err"
    pid = os.fork()
    if pid == 0:
        for fd, name in ((1, out), (2, err)):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        if cmd["crash"]:
            os.environ["SYNTHGATE_TEST_CRASH_AT"] = cmd["crash"]
        sys.argv = ["synthgate", *cmd["argv"]]
        code = 1
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print(json.dumps({"code": code, "out": open(out).read(), "err": open(err).read()}), flush=True)
"""


class Cli:
    """The launcher: each call is a fresh CLI process on the workspace."""

    def __init__(self, ws: Path, outdir: Path) -> None:
        outdir.mkdir()
        self.ws = ws
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(outdir)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def __call__(self, *argv: str, crash: str | None = None) -> tuple[int, str, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"crash": crash, "argv": ["--workspace", str(self.ws), *argv]}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the launcher died"
        r = json.loads(line)
        return r["code"], r["out"], r["err"]

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, (argv, code, err[-2000:])
        return json.loads(out)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Tally:
    def __init__(self) -> None:
        self.points: list[str] = []
        self.problems: list[str] = []

    def crashed(self, point: str, code: int, err: str) -> None:
        self.points.append(point)
        self.check(code == -signal.SIGKILL, f"{point}: the process was not killed there (exit {code}: {err[-300:]})")

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("crash")
    data, schema = small_source(root)
    c = Cli(root / "ws", root / "out")
    c.root = root  # type: ignore[attr-defined]
    code, _, err = c("init", "--policy", str(loose_policy(root)))
    assert code == 0, err
    code, _, err = c("register", "small", str(data), "--schema", str(schema))
    assert code == 0, err
    yield c
    c.close()


def runs_by_id(cli: Cli) -> dict[str, dict[str, Any]]:
    return {r["run_id"]: r for r in cli.json("runs")}


def log_valid(cli: Cli) -> bool:
    code, out, _ = cli("log", "verify", "--json")
    return code == 0 and json.loads(out)["valid"]


def statement_consistent(cli: Cli, run_id: str) -> bool:
    """statement.json is the one whose digest the database holds, and lists the files as they are."""
    d = cli.ws / "runs" / run_id
    st = json.loads((d / "statement.json").read_text())
    return statement_digest(st) == cli.json("review", run_id)["statement_digest"] and st["files"] == file_digests(d)


def bundle_verifies(cli: Cli, target: Path) -> bool:
    code, out, _ = cli("verify", str(target), "--trust", str(cli.ws / "keys" / "release.pub"), "--json")
    return code == 0 and json.loads(out)["valid"]


def test_crashes_leave_a_consistent_workspace(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    t = Tally()
    ws, root = cli.ws, cli.root  # type: ignore[attr-defined]
    synth = ("synthesize", "small", "--generator", "mst", "--epsilon", EPS, "--rows", "50", "--requester", "carol")

    # -- synthesize: after the charge, while the outputs are written, before the final commit
    for point in ("synthesize.after_charge", "synthesize.mid_outputs", "synthesize.before_commit"):
        before = cli.json("budget", "small")
        known = set(runs_by_id(cli))
        code, _, err = cli(*synth, crash=point)
        t.crashed(point, code, err)
        runs = runs_by_id(cli)  # a fresh process: marks the run whose process is gone
        new = [r for r in runs if r not in known]
        t.check(len(new) == 1, f"{point}: {len(new)} new runs")
        if len(new) != 1:
            continue
        run = runs[new[0]]
        after = cli.json("budget", "small")
        t.check(after["spent_epsilon"] == pytest.approx(before["spent_epsilon"] + float(EPS)),
                f"{point}: the ledger does not hold the charge ({before['spent_epsilon']} -> {after['spent_epsilon']})")
        t.check(run["state"] == "failed", f"{point}: the run is {run['state']}, not failed")
        info = cli.json("review", run["run_id"])
        t.check("interrupted" in (info["error"] or ""), f"{point}: review gives no reason ({info['error']!r})")
        d = ws / "runs" / run["run_id"]
        if point == "synthesize.before_commit":
            # the folder was renamed into place whole
            names = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
            t.check(names == ["card.json", "model.pkl", "synthetic.csv", "synthetic.parquet"],
                    f"{point}: run folder holds {names}")
        else:
            t.check(not d.exists(), f"{point}: a run folder exists")
        leftovers = [p.name for p in (ws / "runs").iterdir() if p.name.startswith(".")]
        t.check(leftovers == [], f"{point}: staging left behind: {leftovers}")
        t.check(log_valid(cli), f"{point}: log verify fails")

    run_id = cli.json(*synth)["run_id"]
    t.check(runs_by_id(cli)[run_id]["state"] == "synthesized", "a synthesis after the crashes failed")

    # -- audit: killed with the new audit.json written (first audit), and with every file written
    # but the digest not committed (a re-audit): files of two audits must never stand as one
    for point in ("audit.after_audit_json", "audit.before_commit"):
        code, _, err = cli("audit", run_id, crash=point)
        t.crashed(point, code, err)
        state = runs_by_id(cli)[run_id]["state"]
        t.check(state == "synthesized", f"{point}: the run is {state}, not synthesized")
        t.check("audit interrupted" in (cli.json("review", run_id)["error"] or ""), f"{point}: no reason given")
        code, _, err = cli("audit", run_id)
        t.check(code == 0, f"{point}: audit again failed ({code}: {err[-300:]})")
        t.check(runs_by_id(cli)[run_id]["state"] == "awaiting_approval", f"{point}: not awaiting approval after the re-audit")
        t.check(statement_consistent(cli, run_id), f"{point}: statement and files disagree after the re-audit")
        t.check(log_valid(cli), f"{point}: log verify fails")

    # -- release: keys and approvals, then kills while the bundle is written. The workspace was made
    # without an admin (requesters unchecked); its first admin registers the stewards
    admin = cli.json("keys", "new", "root", "--out", str(root / "keys"))["private_key"]
    cli.json("member", "bootstrap", "root", "--key", admin)
    for name in ("alice", "bob"):
        keys = cli.json("keys", "new", name, "--out", str(root / "keys"))
        cli.json("steward", "add", name, "--public-key", keys["public_key"], "--admin", "root", "--admin-key", admin)
        cli.json("approve", run_id, "--steward", name, "--key", keys["private_key"])
    t.check(runs_by_id(cli)[run_id]["state"] == "approved", "not approved")
    first = root / "bundle"
    for point, target in (("bundle.mid_files", first), ("bundle.before_archive", root / "bundle2"),
                          ("release.before_commit", root / "bundle3")):
        code, _, err = cli("release", run_id, "--out", str(target), "--tar", crash=point)
        t.crashed(point, code, err)
        state = runs_by_id(cli)[run_id]["state"]
        t.check(state == "approved", f"{point}: the run is {state}")
        archive = Path(f"{target}.tar.gz")
        for p in (target, archive):
            t.check(not p.exists() or bundle_verifies(cli, p), f"{point}: {p.name} exists and does not verify")
        if point == "bundle.mid_files":
            t.check(not target.exists() and not archive.exists(), f"{point}: a partial bundle is visible")
            # the killed writer's hidden folder stays, until the next write of that bundle name
            t.check(len(list(root.glob(".bundle.partial-*"))) == 1, f"{point}: no partial folder left to clean up")
        t.check(log_valid(cli), f"{point}: log verify fails")
    code, _, err = cli("release", run_id, "--out", str(first), "--tar")
    t.check(code == 0, f"release after the crashes failed ({code}: {err[-300:]})")
    left = [p.name for p in root.glob(".bundle.partial-*")]
    t.check(left == [], f"the release after the crashes left the dead writer's partial folder: {left}")
    t.check(bundle_verifies(cli, first) and bundle_verifies(cli, Path(f"{first}.tar.gz")), "the bundle does not verify")
    t.check(runs_by_id(cli)[run_id]["state"] == "released", "not released")

    # -- keys: killed before either file has its name, and between the two
    kdir = root / "k"
    for point, name in (("keys.before_publish", "k1"), ("keys.between_files", "k2")):
        code, _, err = cli("keys", "new", name, "--out", str(kdir), crash=point)
        t.crashed(point, code, err)
        for suffix in (".key", ".pub"):
            p = kdir / f"{name}{suffix}"
            if p.exists():
                text = p.read_text()
                t.check(text.startswith("-----BEGIN") and text.rstrip().endswith("-----"), f"{point}: {p.name} half-written")
        if point == "keys.before_publish":
            t.check(not (kdir / "k1.key").exists() and not (kdir / "k1.pub").exists(), f"{point}: a key file appeared")
            t.check(cli("keys", "new", name, "--out", str(kdir))[0] == 0, f"{point}: keys new again failed")
        else:
            # the private half without the public one: keys new says so, keys public writes the rest
            code, _, err = cli("keys", "new", name, "--out", str(kdir))
            t.check(code == 2 and "an earlier `synthgate keys new` was interrupted" in err
                    and f"synthgate keys public {kdir / 'k2.key'}" in err, f"{point}: keys new again says {err!r}")
            code, out, err = cli("keys", "public", str(kdir / "k2.key"), "--json")
            t.check(code == 0 and (kdir / "k2.pub").exists(), f"{point}: keys public failed ({code}: {err[-300:]})")
            if code == 0:
                t.check(json.loads(out)["public_key"] == str(kdir / "k2.pub"), f"{point}: keys public wrote {out}")
    t.check(log_valid(cli), "log verify fails at the end")

    seconds = round(time.monotonic() - started, 1)
    counts = {"crash_points_tried": len(t.points), "points": t.points, "inconsistencies": len(t.problems),
              "problems": t.problems, "seconds": seconds}
    ARTIFACT.parent.mkdir(exist_ok=True)
    tmp = ARTIFACT.with_suffix(".tmp")
    tmp.write_text(json.dumps(counts, indent=2) + "\n")
    os.replace(tmp, ARTIFACT)
    with capsys.disabled():
        print(f"\n[crash] {len(t.points)} crash points tried, {len(t.problems)} inconsistencies, {seconds} s")
        for p in t.problems:
            print(f"  - {p}")
    assert t.problems == []
    assert len(t.points) == 10
