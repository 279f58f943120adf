"""Reports of runs and file audits: what goes around ``audits.report`` from the workspace.

* At audit time (:func:`write_audit_reports`): the data figures are built once from the real data
  and kept in ``figures.json`` on the steward's side (never bound, never bundled); ``report.html``
  (the released view, bound into the statement the stewards sign) and ``report-steward.html`` (the
  steward's copy, with the real distributions) are drawn with the budget, approvals and policy as
  they are at that moment.
* Later (:func:`render_report`, ``synthgate report``): either view redrawn with the ledger and the
  approvals as they are now, as HTML, as the audit document (JSON, validated against its schema),
  or as PDF through a headless Chromium (:func:`html_to_pdf`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import select

from audits.audit_schema import validate_audit_document
from audits.report import Figure, ReportExtras, figures_document, load_figures_document, render_html
from policies.loader import policy_digest
from policies.model import Policy
from privacy.errors import InputError, IntegrityError
from privacy.ledger import Source
from release.atomic import write_atomic
from release.db import DatasetVersion, Run
from release.members import approval_rows
from release.sources import budget_report, latest_version, source_policy
from release.statement import not_covered_lines
from release.workspace import Workspace

View = Literal["release", "steward"]
Format = Literal["html", "pdf", "json"]

FIGURES_FILE = "figures.json"
STEWARD_REPORT = "report-steward.html"

#: environment variable naming the Chromium (or Chrome) executable for PDF output
CHROMIUM_ENV = "SYNTHGATE_CHROMIUM"
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: the flags of a quiet, offline, throwaway headless browser
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
                  "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>")


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def policy_yaml(policy: Policy) -> str:
    return yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def caveat_lines(schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(not_covered_lines({"schema": schema}))


def write_audit_reports(directory: Path, document: dict[str, Any], figures: list[Figure],
                        extras: ReportExtras) -> None:
    """``figures.json``, ``report-steward.html`` and (last, bound) ``report.html`` of an audit."""
    write_atomic(directory / FIGURES_FILE, json.dumps(figures_document(figures), allow_nan=False).encode())
    write_atomic(directory / STEWARD_REPORT,
                 render_html(document, figures, _with(extras, view="steward")).encode())
    write_atomic(directory / "report.html", render_html(document, figures, _with(extras, view="release")).encode())


def _with(extras: ReportExtras, **changes: Any) -> ReportExtras:
    from dataclasses import replace

    return replace(extras, **changes)


def audit_time_extras(ws: Workspace, *, source: str, policy: Policy, requester: str | None, state: str | None,
                      schema: dict[str, Any], run: bool = True) -> ReportExtras:
    """The report's extras as they are when the audit finishes: the budget then, no approvals yet."""
    budget = budget_report(ws, source)[0]
    budget = {k: v for k, v in budget.items() if k != "charges"}
    return ReportExtras(
        budget=budget, approvals=(), approvals_required=policy.approvals.required if run else None,
        requester=requester, requester_may_approve=policy.approvals.requester_may_approve if run else None,
        state=state, policy_text=policy_yaml(policy), policy_digest=policy_digest(policy),
        caveats=caveat_lines(schema), generated_at=now_utc(),
        snapshot_note=("Budget and approvals as of the audit. Stewards approve after reading this report: their "
                       "signed approvals are in the release bundle's manifest.json, which synthgate verify checks.")
        if run else "A file audit: nothing here can be approved or released.")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{path.parent.name}: {what} is missing or unreadable") from exc


def _figures(directory: Path) -> list[Figure]:
    path = directory / FIGURES_FILE
    if not path.is_file():
        return []  # audited before figures existed: the document figures are still drawn
    try:
        return load_figures_document(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{directory.name}: {FIGURES_FILE} is unreadable") from exc


def current_extras(ws: Workspace, ident: str, document: dict[str, Any], *, view: View,
                   for_print: bool) -> ReportExtras:
    """The extras of a run or file audit as they are now (ledger, approvals, state)."""
    context = document.get("context") or {}
    with ws.transaction() as s:
        run = s.get(Run, ident)
        if run is not None:
            src = s.get(Source, run.source_id)
            ver = s.get(DatasetVersion, run.version_id)
            assert src is not None and ver is not None
            schema = json.loads(ver.schema_json)
            policy = source_policy(src)
            approvals = tuple(
                {"steward": a["steward"], "decision": a["decision"], "at": a["at"], "withdrawn": a["withdrawn"]}
                for a in approval_rows(s, ident))
            source_name, state, requester = src.name, run.state, run.requester
            required, may = policy.approvals.required, policy.approvals.requester_may_approve
        else:
            source_name = str(context.get("source"))
            src_row = s.scalars(select(Source).where(Source.name == source_name)).first()
            if src_row is None:
                raise InputError(f"file audit {ident}: its source {source_name!r} is not registered here")
            policy = source_policy(src_row)
            schema = json.loads(latest_version(s, src_row).schema_json)
            approvals, state, requester, required, may = (), None, None, None, None
    budget = {k: v for k, v in budget_report(ws, source_name)[0].items() if k != "charges"}
    when = now_utc()
    note = (f"Budget, state and approvals as of {when}, when this copy was drawn; the report bound into the run's "
            f"statement was drawn at audit time.") if run is not None else None
    return ReportExtras(
        budget=budget, approvals=approvals, approvals_required=required, requester=requester,
        requester_may_approve=may, state=state, policy_text=policy_yaml(policy), policy_digest=policy_digest(policy),
        caveats=caveat_lines(schema or {}), generated_at=when, snapshot_note=note, view=view, for_print=for_print)


def report_directory(ws: Workspace, ident: str) -> Path:
    """The folder of a run (``run-...``) or a file audit (``file-...``)."""
    if ident.startswith("file-"):
        d = ws.root / "file-audits" / ident
    else:
        with ws.transaction() as s:
            if s.get(Run, ident) is None:
                raise InputError(f"unknown run {ident!r}")
        d = ws.run_dir(ident)
    if not (d / "audit.json").is_file():
        if ident.startswith("file-") and not d.is_dir():
            raise InputError(f"unknown file audit {ident!r}")
        raise InputError(f"{ident} has not been audited (no audit.json): run synthgate audit first")
    return d


def render_report(ws: Workspace, ident: str, *, fmt: Format = "html", view: View = "release") -> bytes:
    """A run's or file audit's report, redrawn now: HTML, PDF, or the audit document as JSON."""
    if ident.startswith("file-") and not ident[5:].isalnum():
        raise InputError(f"unknown file audit {ident!r}")
    d = report_directory(ws, ident)
    document = _read_json(d / "audit.json", "audit.json")
    if not isinstance(document, dict):
        raise IntegrityError(f"{ident}: audit.json is not an audit document")
    if fmt == "json":
        validate_audit_document(document)  # IntegrityError (exit 5) when it does not follow its schema
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    extras = current_extras(ws, ident, document, view=view, for_print=fmt == "pdf")
    page = render_html(document, _figures(d), extras)
    if fmt == "html":
        return page.encode()
    return html_to_pdf(page)


def find_chromium() -> str | None:
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return named if Path(named).is_file() else shutil.which(named)
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(page: str, *, timeout: float = 180.0) -> bytes:
    """Print an HTML page to PDF with a headless Chromium (Debian: ``apt-get install chromium``).

    The browser runs offline (a proxy that goes nowhere, no background networking) with a fresh
    profile in a temporary folder, waits for the plots' scripts (virtual time), and prints at a
    window width close to A4 so that the figures lay out for the page.
    """
    browser = find_chromium()
    if browser is None:
        raise InputError(f"PDF output needs a Chromium browser (Debian: apt-get install chromium); none found on "
                         f"PATH (or set {CHROMIUM_ENV})")
    with tempfile.TemporaryDirectory(prefix="synthgate-pdf-") as tmp:
        src = Path(tmp) / "report.html"
        out = Path(tmp) / "report.pdf"
        src.write_text(page, encoding="utf-8")
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", "--window-size=900,1200",
               "--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw", "--no-pdf-header-footer",
               f"--print-to-pdf={out}", src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InputError(f"Chromium did not finish printing the report within {timeout:g} s") from exc
        except OSError as exc:
            raise InputError(f"cannot run Chromium ({browser}): {exc.strerror or exc}") from exc
        try:
            data = out.read_bytes()
        except OSError:
            data = b""
        if proc.returncode != 0 or not data.startswith(b"%PDF-"):
            last = (proc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise InputError(f"Chromium could not print the report to PDF (exit {proc.returncode}: {last[0][:200]})")
        return data
