"""Roles and revocation: only an admin grants or revokes, a revoked key decides nothing more, and a
bundle approved before a revocation still verifies, saying so."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cli_checks import one_line, rechain
from click.testing import Result

from privacy.errors import IntegrityError
from release.canonical import canonical_json
from release.dsse import sign_envelope
from release.keys import using_passphrase
from release.verify import (
    REVOCATIONS_CONTEXT,
    REVOCATIONS_PAYLOAD_TYPE,
    check_revocations,
    load_trusted,
    verify_bundle,
)
from release.workspace import open_workspace

if TYPE_CHECKING:  # the fixture type lives in conftest.py
    from conftest import Env




def _key(env: "Env", name: str) -> str:
    return str(env.root / "keys" / f"{name}.key")


def _approve(env: "Env", run_id: str, name: str) -> Result:
    return env.run("approve", run_id, "--steward", name, "--key", _key(env, name))


def _dump(env: "Env") -> str:
    db = sqlite3.connect(env.ws / "synthgate.db")
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def _new_key(env: "Env", name: str) -> str:
    return env.json("keys", "new", name, "--out", str(env.root / "keys"))["public_key"]


def _state(env: "Env", run_id: str) -> str:
    return env.json("review", run_id)["state"]


def _revoke(env: "Env", name: str, reason: str = "laptop lost") -> dict:
    res = env.as_admin("steward", "revoke", name, "--reason", reason, "--json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_the_roles_are_recorded_with_who_granted_them(env: "Env") -> None:
    rows = env.json("member", "list")
    roles = [(r["name"], r["role"], r["granted_by"], r["active"]) for r in rows]
    assert roles == [("root", "admin", "root", True), ("carol", "requester", "root", True),
                     ("alice", "steward", "root", True), ("bob", "steward", "root", True),
                     ("carol", "steward", "root", True)]
    log = env.json("log", "verify")
    assert log["valid"] and log["admin_actions"] == 5


def test_only_an_admin_adds_or_revokes_a_steward(env: "Env") -> None:
    pub = _new_key(env, "mallory")
    before = _dump(env)
    # a steward is not an admin, with their own key
    res = env.run("steward", "add", "mallory", "--public-key", pub, "--admin", "alice", "--admin-key", _key(env, "alice"))
    assert "'alice' is not an admin of this workspace" in one_line(res, 3)
    res = env.run("steward", "revoke", "bob", "--reason", "x", "--admin", "alice", "--admin-key", _key(env, "alice"))
    assert "'alice' is not an admin" in one_line(res, 3)
    # the admin's name with another key
    res = env.run("steward", "add", "mallory", "--public-key", pub, "--admin", "root", "--admin-key", _key(env, "alice"))
    assert "not the one registered for admin 'root'" in one_line(res, 5)
    # a second first admin
    res = env.run("member", "bootstrap", "mallory", "--key", _key(env, "mallory"))
    assert "already has an admin" in one_line(res, 3)
    # the requester role is the admin's to grant too
    res = env.run("member", "add", "mallory", "--role", "requester", "--admin", "carol", "--admin-key", _key(env, "carol"))
    assert "'carol' is not an admin" in one_line(res, 3)
    assert _dump(env) == before  # nothing of it was stored


def test_a_requester_must_hold_the_role(env: "Env") -> None:
    budget = env.json("budget", "adult")
    res = env.run("synthesize", "adult", "--generator", "mst", "--epsilon", "0.5", "--requester", "mallory")
    assert "'mallory' is not a registered requester" in one_line(res, 3)
    res = env.as_admin("member", "revoke", "carol", "--role", "requester", "--reason", "left the project")
    assert res.exit_code == 0, res.stderr
    res = env.run("synthesize", "adult", "--generator", "mst", "--epsilon", "0.5", "--requester", "carol")
    line = one_line(res, 3)
    assert "requester 'carol' may no longer request runs" in line and "by root (left the project)" in line
    assert env.json("budget", "adult") == budget  # refused before the charge


def test_the_last_admin_stays_and_a_revoked_admin_cannot_act(env: "Env") -> None:
    res = env.as_admin("member", "revoke", "root", "--role", "admin", "--reason", "leaving")
    assert "'root' is the last admin" in one_line(res, 3)
    pub = _new_key(env, "dana")
    res = env.as_admin("member", "add", "dana", "--role", "admin", "--public-key", pub)
    assert res.exit_code == 0, res.stderr
    res = env.run("member", "revoke", "root", "--role", "admin", "--reason", "leaving", "--admin", "dana",
                  "--admin-key", _key(env, "dana"))
    assert res.exit_code == 0, res.stderr
    res = env.as_admin("member", "add", "erin", "--role", "requester")
    assert "'root' is no longer an admin: the role was revoked at" in one_line(res, 3)
    assert env.json("log", "verify")["admin_actions"] == 7


def test_revocation_withdraws_approvals_from_runs_not_yet_released(env: "Env", run_id: str) -> None:
    if (env.root / "audit_exit").read_text() != "0":
        pytest.skip(f"the shared run's gate failed: {(env.root / 'audit_failed').read_text()}")
    for name in ("alice", "bob"):
        assert _approve(env, run_id, name).exit_code == 0
    assert _state(env, run_id) == "approved"
    out = _revoke(env, "bob")
    assert out["runs_back_to_awaiting_approval"] == [run_id]
    assert _state(env, run_id) == "awaiting_approval"
    # review, runs and the redrawn report say the approval no longer counts, and why
    info = env.json("review", run_id)
    assert [(a["steward"], a["withdrawn"]) for a in info["approvals"]] == [("alice", False), ("bob", True)]
    assert "Approvals: 1 of 2 required (alice); withdrawn by the revocation of their key: bob" in \
        info["decision"]["approvals"]
    assert "bob: approve (withdrawn: the steward's key was revoked)" in env.run("review", run_id).stdout
    assert next(r for r in env.json("runs") if r["run_id"] == run_id)["approvals"] == 1
    res = env.run("release", run_id, "--out", str(env.root / "b"))
    assert one_line(res, 3).endswith("is awaiting_approval; only an approved run can be released")
    # bob's key decides nothing more
    res = _approve(env, run_id, "bob")
    line = one_line(res, 3)
    assert "steward 'bob' may no longer decide" in line and "revoked at" in line and "laptop lost" in line
    # a steward name is used once: bob's name cannot come back with another key
    res = env.as_admin("steward", "add", "bob", "--public-key", _new_key(env, "bob2"))
    assert "choose another name" in one_line(res, 2)
    # a new steward brings the run back to two valid approvals; the bundle carries only those
    assert env.as_admin("steward", "add", "dave", "--public-key", _new_key(env, "dave")).exit_code == 0
    assert _approve(env, run_id, "dave").exit_code == 0
    assert _state(env, run_id) == "approved"
    bundle = env.root / "bundle"
    assert env.run("release", run_id, "--out", str(bundle)).exit_code == 0
    v = env.json("verify", str(bundle), "--trust", str(env.ws / "keys" / "release.pub"))
    assert v["approvals"] == ["alice", "dave"]


def test_a_bundle_released_before_a_revocation_still_verifies_and_says_so(env: "Env", run_id: str) -> None:
    if (env.root / "audit_exit").read_text() != "0":
        pytest.skip(f"the shared run's gate failed: {(env.root / 'audit_failed').read_text()}")
    for name in ("alice", "bob"):
        assert _approve(env, run_id, name).exit_code == 0
    bundle = env.root / "bundle"
    assert env.run("release", run_id, "--out", str(bundle), "--tar").exit_code == 0
    trust = str(env.ws / "keys" / "release.pub")
    revoked_event = _revoke(env, "bob")["event"]
    revs = env.root / "revocations.json"
    assert env.json("steward", "revocations", "-o", str(revs))["revoked"] == 1

    for b in (str(bundle), f"{bundle}.tar.gz"):
        res = env.run("verify", b, "--trust", trust, "--revocations", str(revs))
        assert res.exit_code == 0, res.stderr
        assert "steward bob: key " in res.stdout and "was revoked after this release" in res.stdout
        assert "laptop lost" in res.stdout
        v = env.json("verify", b, "--trust", trust, "--revocations", str(revs))
        assert [r["steward"] for r in v["revoked_after_release"]] == ["bob"]
        assert v["revoked_after_release"][0]["revoke_event"] == revoked_event
    # the workspace's own log says the same
    log = env.json("log", "verify", "--bundle", str(bundle))
    assert [(r["steward"], r["revoke_event"]) for r in log["revoked_after_release"]] == [("bob", revoked_event)]
    # without a list, nothing is claimed about revocation
    assert env.json("verify", str(bundle), "--trust", trust)["revoked_after_release"] == []

    # the list is signed: an edited one, or one signed by another key, is refused
    env_doc = json.loads(revs.read_text())
    body = json.loads(base64.b64decode(env_doc["payload"]))
    body["revoked"] = []
    env_doc["payload"] = base64.b64encode(canonical_json(body)).decode()
    forged = env.root / "forged.json"
    forged.write_text(json.dumps(env_doc))
    res = env.run("verify", str(bundle), "--trust", trust, "--revocations", str(forged))
    assert "no signature verifies" in one_line(res, 5)
    res = env.run("verify", str(bundle), "--trust", trust, "--revocations", str(env.root / "absent.json"))
    assert "absent.json: file not found" in one_line(res, 2)


def test_an_approval_by_a_key_revoked_before_the_release_is_refused(env: "Env", run_id: str) -> None:
    """synthgate never writes such a bundle; a list that says so (signed by the release key) must
    make verify refuse it, and a list from another workspace must not count."""
    if (env.root / "audit_exit").read_text() != "0":
        pytest.skip(f"the shared run's gate failed: {(env.root / 'audit_failed').read_text()}")
    for name in ("alice", "bob"):
        assert _approve(env, run_id, name).exit_code == 0
    bundle = env.root / "bundle"
    assert env.run("release", run_id, "--out", str(bundle)).exit_code == 0
    trusted = load_trusted([env.ws / "keys" / "release.pub"])
    v = verify_bundle(bundle, trusted)
    assert v.event_log_head is not None and v.event_log_head.id is not None
    bob = next(a for a in v.approvals if a["steward"] == "bob")
    ws = open_workspace(env.ws)

    def listing(event: int) -> Path:
        payload = {"context": REVOCATIONS_CONTEXT, "issued_at": "2026-11-26T00:00:00+00:00",
                   "event_log_head": {"id": event, "hash": "0" * 64},
                   "revoked": [{"steward": "bob", "keyid": bob["keyid"], "revoked_at": "2026-11-26T00:00:00+00:00",
                                "revoked_by": "root", "reason": "test", "revoke_event": event}]}
        path = env.root / f"list-{event}.json"
        path.write_text(json.dumps(sign_envelope(canonical_json(payload), REVOCATIONS_PAYLOAD_TYPE, ws.release_key())))
        return path

    head = v.event_log_head.id
    with pytest.raises(IntegrityError, match="before this release"):
        check_revocations(v, [listing(head)], trusted)
    assert [r.steward for r in check_revocations(v, [listing(head + 1)], trusted)] == ["bob"]
    # signed by a key the reader trusts, but not the bundle's: says nothing of this workspace
    other = env.root / "other"
    other.mkdir()
    from release.keys import generate_keypair, load_private_key

    with using_passphrase("other"):
        key_path, pub_path = generate_keypair(other, "release")
        other_key = load_private_key(key_path)
    p = env.root / "other-list.json"
    p.write_text(json.dumps(sign_envelope(canonical_json({"context": REVOCATIONS_CONTEXT, "revoked": []}),
                                          REVOCATIONS_PAYLOAD_TYPE, other_key)))
    with pytest.raises(IntegrityError, match="no signature verifies"):
        check_revocations(v, [p], trusted + load_trusted([pub_path]))


@pytest.mark.parametrize("edit", [
    "update role_grants set keyid = (select keyid from role_grants where name = 'alice') where name = 'bob'",
    "insert into role_grants (name, role, granted_at, granted_by, grant_event) "
    "values ('mallory', 'admin', '2026-11-26 00:00:00', 'root', 3)",
    "update role_grants set revoked_at = NULL, revoke_event = NULL, revoked_by = NULL where name = 'bob'",
    "insert into role_grants (name, role, keyid, granted_at) "
    "values ('mallory', 'steward', 'ab', '2026-11-26 00:00:00')",
], ids=["swapped key", "admin inserted by hand", "revocation undone by hand", "steward posing as one from before roles"])
def test_log_verify_catches_roles_edited_in_the_database(env: "Env", edit: str) -> None:
    _revoke(env, "bob")
    assert env.json("log", "verify")["valid"]
    db = sqlite3.connect(env.ws / "synthgate.db")
    db.execute(edit)
    db.commit()
    db.close()
    res = env.run("log", "verify")
    assert "not the one a signed admin action recorded" in one_line(res, 5)


def test_a_signed_admin_action_cannot_be_replayed(env: "Env") -> None:
    """Copying an earlier grant's entry (signature and all) to the end of the log, re-chained,
    is caught: the action signed another log head."""
    from release.db import Event, log_event

    ws = open_workspace(env.ws)
    with ws.transaction() as s:
        first = s.query(Event).filter(Event.kind == "member.grant").order_by(Event.id).first()
        assert first is not None
        detail = json.loads(first.detail_json)
        log_event(s, "member.grant", **detail)
    ws.engine.dispose()
    res = env.run("log", "verify")
    assert "signed over another log head than the entry before it (replayed?)" in one_line(res, 5)


def test_a_log_rewritten_and_rechained_before_an_admin_action_is_caught(env: "Env") -> None:
    """Each admin action signed the log head it followed: a re-chained log no longer matches it."""
    con = sqlite3.connect(env.ws / "synthgate.db")
    con.execute("update events set detail_json = '{}' where id = 1")
    rechain(con)
    con.commit()
    con.close()
    res = env.run("log", "verify")
    assert "entry 2 (member.grant admin 'root' by 'root'): signed over another log head" in one_line(res, 5)


def test_a_requester_with_a_key_must_present_it(env: "Env") -> None:
    pub = _new_key(env, "dana")
    assert env.as_admin("member", "add", "dana", "--role", "requester", "--public-key", pub).exit_code == 0
    budget = env.json("budget", "adult")
    synth = ("synthesize", "adult", "--generator", "mst", "--epsilon", "0.5", "--rows", "50", "--requester", "dana")
    assert "registered with a key: give it with --requester-key" in one_line(env.run(*synth), 3)
    res = env.run(*synth, "--requester-key", _key(env, "alice"))
    assert "not the one registered for requester 'dana'" in one_line(res, 5)
    assert env.json("budget", "adult") == budget  # both refused before the charge
    res = env.run(*synth, "--requester-key", _key(env, "dana"), "--json")
    assert res.exit_code == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    con = sqlite3.connect(env.ws / "synthgate.db")
    detail = con.execute("select detail_json from events where kind = 'run.created' and run_id = ?", (run_id,)).fetchone()
    con.close()
    assert json.loads(detail[0])["requester_keyid"] == next(
        r["keyid"] for r in env.json("member", "list") if r["name"] == "dana")


# argv: OUTDIR JSON([[delay_s, [cli args...]], ...]); forks one process per entry after importing the
# CLI once, releases them together at a barrier; prints {"codes": [...]} on stdout
RACE = r"""
import json, os, sys, time
from release.cli.main import main
from release.database import head_revision
head_revision()
outdir, jobs = sys.argv[1], json.loads(sys.argv[2])
r, w = os.pipe()
pids = []
for i, (delay, argv) in enumerate(jobs):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        for fd, name in ((1, "out"), (2, "err")):
            os.dup2(os.open(f"{outdir}/{i}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        os.read(r, 1)
        time.sleep(delay)
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
time.sleep(0.3)
os.close(w)
print(json.dumps({"codes": [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]}))
"""


def _race(env: "Env", jobs: list[tuple[float, list[str]]], out: Path) -> list[int]:
    import os
    import subprocess
    import sys

    out.mkdir()
    full = [[d, ["--workspace", str(env.ws), *argv]] for d, argv in jobs]
    proc = subprocess.run([sys.executable, "-c", RACE, str(out), json.dumps(full)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["codes"]


def test_a_revocation_racing_approvals_and_a_release_never_lets_the_revoked_key_count(
        env: "Env", run_id: str, tmp_path: Path) -> None:
    """Real processes: (1) alice, bob and dave approve while bob is revoked; (2) a release races
    bob's revocation, with the revocation started at delays across the release's work. Whatever
    the order, bob's approval never counts after his revocation, and a bundle exists only where
    the release committed before it."""
    import shutil

    if (env.root / "audit_exit").read_text() != "0":
        pytest.skip(f"the shared run's gate failed: {(env.root / 'audit_failed').read_text()}")
    assert env.as_admin("steward", "add", "dave", "--public-key", _new_key(env, "dave")).exit_code == 0
    admin = ["--admin", "root", "--admin-key", _key(env, "root")]
    revoke = ["steward", "revoke", "bob", "--reason", "race", *admin]
    tried = {"approvals": 0, "releases": 0}
    base = env.root.parent / "base"
    shutil.copytree(env.root, base)

    # (1) three approvals and the revocation at once
    codes = _race(env, [(0.0, ["approve", run_id, "--steward", n, "--key", _key(env, n)]) for n in ("alice", "bob", "dave")]
                  + [(0.0, revoke)], tmp_path / "approvals")
    tried["approvals"] += 4
    assert codes[0] == 0 and codes[2] == 0 and codes[3] == 0 and codes[1] in (0, 3), codes
    info = env.json("review", run_id)
    counted = sorted(a["steward"] for a in info["approvals"] if a["decision"] == "approve" and not a["withdrawn"])
    assert counted == ["alice", "dave"] and info["state"] == "approved"
    assert env.json("log", "verify")["valid"]

    # (2) release against revocation, from fresh copies of the workspace approved by alice and bob
    outcomes = []
    for i, delay in enumerate((0.0, 0.2, 0.5, 1.0, 2.0)):
        root = env.root.parent / f"race-{i}"
        shutil.copytree(base, root)
        e = type(env)(root=root, ws=root / "ws")
        for n in ("alice", "bob"):
            assert _approve(e, run_id, n).exit_code == 0
        bundle = root / "bundle"
        codes = _race(e, [(0.0, ["release", run_id, "--out", str(bundle), "--tar"]),
                          (delay, revoke[:-4] + ["--admin", "root", "--admin-key", _key(e, "root")])], root / "out")
        tried["releases"] += 1
        assert codes[1] == 0, (root / "out" / "1.err").read_text()
        state = e.json("review", run_id)["state"]
        if codes[0] == 0:
            # released before the revocation committed: the bundle stands, and says bob was revoked after
            assert state == "released"
            log = e.json("log", "verify", "--bundle", f"{bundle}.tar.gz")
            assert [r["steward"] for r in log["revoked_after_release"]] == ["bob"]
            outcomes.append("released first")
        else:
            assert codes[0] == 3, (root / "out" / "0.err").read_text()
            assert state == "awaiting_approval" and not bundle.exists() and not Path(f"{bundle}.tar.gz").exists()
            outcomes.append("revoked first")
        assert not [p for p in root.iterdir() if ".partial-" in p.name]
    print(f"\nrevocation races: {tried['approvals']} concurrent decisions, {tried['releases']} releases "
          f"against a revocation ({', '.join(outcomes)}); 0 counted a revoked key")
