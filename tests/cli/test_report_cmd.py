"""`synthgate report` (HTML and JSON here; PDF in the browser test) and the first screen of
`synthgate review` in a terminal, a pipe and under NO_COLOR."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from audits.audit_schema import validate_audit_document

COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[25];[0-9;]+)m")


def test_report_redraws_html_with_todays_approvals(env, run_id) -> None:
    if (env.root / "audit_exit").read_text() != "0":
        return  # the gate failed on this machine's random split: nothing to approve (fixture says why)
    page = env.run("report", run_id).stdout
    assert "Decision: PASS" in page and "Approvals.</strong> 0 of 2 required" in page
    assert "Steward's copy" not in page
    keys = env.root / "keys"
    assert env.run("approve", run_id, "--steward", "alice", "--key", str(keys / "alice.key")).exit_code == 0
    page = env.run("report", run_id).stdout
    assert "1 of 2 required (alice)" in page and "Can be released once 1 more steward approves" in page
    # the bound report.html is as the audit drew it: the stewards signed that one
    bound = (env.ws / "runs" / run_id / "report.html").read_text()
    assert "0 of 2 required" in bound
    out = env.root / "steward.html"
    info = env.json("report", run_id, "--view", "steward", "-o", str(out))
    assert info == {"run_id": run_id, "format": "html", "view": "steward", "path": str(out),
                    "bytes": out.stat().st_size}
    assert "Steward's copy: do not release." in out.read_text()


def test_report_json_is_the_validated_audit_document(env, run_id) -> None:
    res = env.run("report", run_id, "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    validate_audit_document(doc)
    assert doc == json.loads((env.ws / "runs" / run_id / "audit.json").read_text())
    assert set(doc["software"]) >= {"synthgate", "sdmetrics", "anonymeter", "smartnoise-synth", "opacus"}
    # a hand-edited audit.json that breaks the schema is an integrity failure, not a report
    path = env.ws / "runs" / run_id / "audit.json"
    broken = dict(doc)
    broken["gate"] = {"passed": "yes"}
    path.write_text(json.dumps(broken))
    res = env.run("report", run_id, "--format", "json")
    assert res.exit_code == 5 and "does not follow https://synthgate.dev/schemas/audit-v1.json" in res.stderr


def test_report_refusals_are_one_line(env, run_id) -> None:
    cases = [
        (("report", "run-000000000000"), 2, "unknown run"),
        (("report", "file-nothere"), 2, "unknown file audit"),
        (("report", run_id, "--format", "pdf"), 2, "--format pdf needs -o FILE"),
        (("report", run_id, "-o", str(env.ws / "runs" / run_id / "report.html")), 2, "inside the workspace"),
        (("report", run_id, "-o", str(env.root)), 2, "is a directory"),
        (("report", run_id, "--format", "docx"), 2, "docx"),
    ]
    before = (env.ws / "runs" / run_id / "report.html").read_bytes()
    for args, code, text in cases:
        res = env.run(*args)
        assert res.exit_code == code, (args, res.output, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and "Traceback" not in res.output, (args, res.stderr)
    assert (env.ws / "runs" / run_id / "report.html").read_bytes() == before


def test_an_unaudited_run_has_no_report(env) -> None:
    out = env.json("synthesize", "adult", "--generator", "mst", "--epsilon", "0.5", "--seed", "9", "--requester", "carol")
    res = env.run("report", out["run_id"])
    assert res.exit_code == 2 and "has not been audited" in res.stderr


def test_review_first_screen_in_words_and_symbols(env, run_id) -> None:
    res = env.run("review", run_id)
    assert res.exit_code == 0
    text = res.stdout
    doc = json.loads((env.ws / "runs" / run_id / "audit.json").read_text())
    word = "PASS" if doc["gate"]["passed"] else "FAIL"
    assert f"{'✓' if word == 'PASS' else '✗'} {word}" in text
    assert "Guarantee:" in text and "(ε = 1, δ = 1e-09)-differential privacy" in text
    assert "Budget:" in text and "Approvals:" in text
    for c in doc["gate"]["checks"]:
        assert c["name"] in text  # never wrapped: a steward searches for it
    assert "\x1b[" not in text  # not a terminal: no escape codes at all
    info = env.json("review", run_id)
    assert info["decision"]["status"] in ("pass", "fail") and info["decision"]["guarantee"].startswith("(ε = 1")


def _review(env, run_id: str, **extra: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    environ.update(extra)
    proc = subprocess.run([sys.executable, "-m", "release.cli", "--workspace", str(env.ws), "review", run_id],
                          capture_output=True, text=True, env=environ, timeout=120, check=False,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_review_colours_repeat_the_words_and_no_color_removes_them(env, run_id) -> None:
    coloured = _review(env, run_id, FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="160")
    plain = _review(env, run_id, FORCE_COLOR="1", NO_COLOR="1", TERM="xterm-256color", COLUMNS="160")
    assert COLOUR.search(coloured), "a terminal gets colour"
    assert not COLOUR.search(plain), "NO_COLOR leaves no colour codes"
    strip = re.compile(r"\x1b\[[0-9;]*m")
    # the same words and symbols either way: colour only repeats them
    for text in (strip.sub("", coloured), strip.sub("", plain)):
        assert ("✓ PASS" in text) or ("✗ FAIL" in text)
        assert "✓ pass" in text and "Gate checks" in text
