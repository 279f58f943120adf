"""The main job end to end on the bundled sample of UCI Adult."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privacy.table import ConformReport
from release.approvals import decide
from release.keys import generate_keypair, using_passphrase
from release.members import bootstrap_admin, grant_role, load_admin
from release.publish import release
from release.runs import audit
from release.sources import register
from release.synthesize import SynthesisRequest, synthesize
from release.verify import load_trusted, verify_bundle
from release.workspace import init_workspace

Say = Callable[[str], None]


def demo_data() -> tuple[Path, Path]:
    """Paths of the bundled Adult sample and its public schema."""
    base = Path(__file__).parent / "demo_data"
    return base / "adult_sample.csv", base / "adult_schema.yaml"


def run_demo(out: Path | None, say: Say, progress: Callable[[str, float | None], None] | None = None) -> dict[str, Any]:
    """register -> synthesize (MST, eps 1) -> audit -> approve x2 -> release -> verify, in a temp workspace.

    The demo's keys are encrypted with a random passphrase of its own, never shown: no prompt, and
    $SYNTHGATE_PASSPHRASE is neither needed nor used.
    """
    with using_passphrase(secrets.token_urlsafe(32)):
        return _run_demo(out, say, progress)


def _run_demo(out: Path | None, say: Say, progress: Callable[[str, float | None], None] | None) -> dict[str, Any]:
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="synthgate-demo-"))
    ws_root = tmp / "workspace"
    bundle = out if out is not None else tmp / "bundle"
    data, schema = demo_data()

    keys = tmp / "member-keys"
    keys.mkdir()
    admin_key, _ = generate_keypair(keys, "admin")
    admin = load_admin("admin", admin_key)
    ws = init_workspace(ws_root, "default")
    bootstrap_admin(ws, admin)
    grant_role(ws, admin, "demo-requester", "requester")
    say(f"1. workspace {ws_root} (policy default), release key {ws.release_pub_path}; admin 'admin' "
        "granted the requester role to 'demo-requester'")
    reg = register(ws, "adult", data, schema)
    assert isinstance(reg.report, ConformReport)
    say(f"2. registered source 'adult' ({reg.report.rows} rows, sha256 {reg.fingerprint[:16]}...)")
    run_id = synthesize(
        ws,
        SynthesisRequest(source="adult", generator="mst", epsilon=1.0, seed=0, requester="demo-requester"),
        progress=progress,
    )
    say(f"3. synthesized run {run_id} with MST at epsilon 1 (charged before the data was read)")
    outcome = audit(ws, run_id, progress=lambda name: progress(f"audit: {name}", None) if progress else None)
    failed = [c["name"] for c in outcome.decision.failed]
    say(f"4. audited: gate {'passed' if outcome.decision.passed else 'FAILED: ' + ', '.join(failed)} "
        f"({len(outcome.decision.checks)} checks); report {ws.run_dir(run_id) / 'report.html'}")
    if not outcome.decision.passed:
        from privacy.errors import GateError

        raise GateError(f"demo gate failed: {', '.join(failed)}")
    for name in ("alice", "bob"):
        key, pub = generate_keypair(keys, name)
        grant_role(ws, admin, name, "steward", pub)
        res = decide(ws, run_id, name, key, "approve", comment="demo approval")
        say(f"5. admin registered steward {name}, who approved ({res['approvals']} of {res['approvals_required']}; state {res['state']})")
    path = release(ws, run_id, bundle, tar=True)
    say(f"6. released the signed bundle to {path} and {path}.tar.gz")
    trusted = load_trusted([ws.release_pub_path])
    verified = verify_bundle(path, trusted)
    verify_bundle(Path(f"{path}.tar.gz"), trusted)
    say(f"7. verified offline with {ws.release_pub_path}: {len(verified.files)} files, approvals by "
        f"{', '.join(a['steward'] for a in verified.approvals)}")
    return {
        "workspace": str(ws_root), "run_id": run_id, "bundle": str(path), "tar": f"{path}.tar.gz",
        "release_public_key": str(ws.release_pub_path), "gate_passed": True, "verified": True,
        "seconds": round(time.monotonic() - t0, 1),
    }
