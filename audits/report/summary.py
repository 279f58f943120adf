"""The first screen of the report, as data: can this be released, why, under which guarantee, with
how much budget left and which approvals so far.

Built once from the audit document and :class:`ReportExtras`, then drawn twice: as HTML
(``audits.report.page``) and as a terminal table (``synthgate review``). Every outcome is carried
by a word and a symbol, never by colour alone, so that it survives ``NO_COLOR``, a pipe, a
black-and-white printout and a screen reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "dp_failure", "empty"]

#: symbols with an ASCII fallback for terminals that cannot print them
SYMBOLS = {"pass": ("✓", "[ok]"), "fail": ("✗", "[X]"), "dp_failure": ("‼", "[!!]"), "info": ("·", "-")}


@dataclass(frozen=True)
class ReportExtras:
    """What the report shows beyond ``audit.json``, supplied by the release layer (the workspace's
    ledger, approvals and policy); all optional, so that a report can be drawn from a document alone."""

    #: the source's budget: total/spent/remaining epsilon and delta (``release.sources.budget_report``)
    budget: dict[str, Any] | None = None
    #: steward decisions so far: steward, decision ("approve"/"reject"), at, comment
    approvals: tuple[dict[str, Any], ...] = ()
    approvals_required: int | None = None
    requester: str | None = None
    requester_may_approve: bool | None = None
    #: the run's state when the report was drawn (None for a file audit)
    state: str | None = None
    #: the effective policy as YAML, and its digest
    policy_text: str | None = None
    policy_digest: str | None = None
    #: the privacy statement's "what is not covered" lines (plain text)
    caveats: tuple[str, ...] = ()
    #: when the report was drawn (ISO 8601, UTC) and why the budget/approvals are as of then
    generated_at: str | None = None
    snapshot_note: str | None = None
    #: "release": the bundle's report (no real-data histograms); "steward": the steward's copy
    view: Literal["release", "steward"] = "release"
    #: render for print/PDF: detail sections expanded
    for_print: bool = False
    extra_notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CheckRow:
    audit: str
    name: str
    meaning: str
    value: str
    interval: str
    threshold: str
    gated_on: str
    passed: bool
    kind: str
    flags: tuple[str, ...]

    @property
    def outcome(self) -> str:
        """"pass", "fail" or "dp_failure" (a failed check of a DP claim)."""
        if self.passed:
            return "pass"
        return "dp_failure" if self.kind == "dp_claim" else "fail"

    @property
    def word(self) -> str:
        return {"pass": "pass", "fail": "FAIL", "dp_failure": "DP FAILURE"}[self.outcome]


@dataclass(frozen=True)
class FirstScreen:
    status: Status
    #: one sentence: can this be released?
    headline: str
    #: why, in one or two sentences
    reason: str
    guarantee: str
    budget: str | None
    approvals: str
    rows: tuple[CheckRow, ...]
    context: dict[str, Any]

    @property
    def failed(self) -> tuple[CheckRow, ...]:
        return tuple(r for r in self.rows if not r.passed)


def first_screen(document: dict[str, Any], extras: ReportExtras | None = None) -> FirstScreen:
    extras = extras or ReportExtras()
    context = dict(document.get("context") or {})
    gate = document.get("gate") or {}
    checks = list(gate.get("checks") or [])
    rows = tuple(check_row(c) for c in checks)
    passed = bool(gate.get("passed")) and bool(rows) and all(r.passed for r in rows)
    dp = [r for r in rows if r.outcome == "dp_failure"]
    failed = [r for r in rows if not r.passed]
    approvals_line, approved, required = _approvals(extras)

    if not rows:
        status: Status = "empty"
        headline = "Cannot be released: no gate checks were recorded."
        reason = "An empty gate does not pass."
    elif dp:
        status = "dp_failure"
        headline = "Cannot be released: DP FAILURE."
        reason = (f"The claimed epsilon is refuted by {', '.join(r.name for r in dp)}: no mechanism with the claimed "
                  f"guarantee can produce these results, so the generator or its accounting has a bug. "
                  f"{len(failed)} of {len(rows)} gate checks failed.")
    elif not passed:
        status = "fail"
        headline = f"Cannot be released: {len(failed)} of {len(rows)} gate checks failed."
        reason = "Failed: " + ", ".join(f"{r.name} ({r.value} against {r.threshold})" for r in failed) + "."
    else:
        status = "pass"
        reason = f"All {len(rows)} gate checks passed."
        if extras.state == "released":
            headline = "Released: the gate passed and the stewards approved."
        elif extras.state == "rejected":
            headline = "Rejected by a steward, although the gate passed."
        elif required is not None and approved >= required:
            headline = "Can be released: the gate passed and the required stewards approved."
        elif required is not None:
            more = required - approved
            headline = (f"Can be released once {more} more steward{'s' if more != 1 else ''} approve"
                        f"{'s' if more == 1 else ''}: the gate passed.")
        else:
            headline = "The gate passed: releasable once the policy's stewards approve."
    flagged = [r for r in rows if r.flags]
    if flagged:
        reason += (f" {len(flagged)} check{'s carry' if len(flagged) != 1 else ' carries'} flags (see the "
                   f"table).")
    return FirstScreen(status=status, headline=headline, reason=reason, guarantee=guarantee_sentence(context),
                       budget=_budget(extras), approvals=approvals_line, rows=rows, context=context)


def guarantee_sentence(context: dict[str, Any]) -> str:
    eps, delta = context.get("epsilon"), context.get("delta")
    unit = context.get("unit_of_privacy")
    accounting = context.get("accounting")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        return ("No differential-privacy guarantee is claimed for this data: it was synthesized outside synthgate "
                "and audited as a file.")
    text = f"(ε = {_g(eps)}, δ = {_g(delta)})-differential privacy"
    if unit:
        text += f" for {str(unit).rstrip('.')}"
    else:
        text += " (the unit of privacy was not recorded)"
    if context.get("generator"):
        text += f", from the {context['generator']} generator"
    text += "."
    if accounting:
        # the first clause only: a composed mechanism's full accounting is in the methods appendix
        head = str(accounting).split(";")[0].strip().rstrip(".:")
        if len(head) > 240:
            head = head[:237].rsplit(" ", 1)[0] + "..."
        more = " (the full accounting is in the methods appendix)" if head != str(accounting).strip().rstrip(".") else ""
        text += f" Accounting: {head}{more}."
    if context.get("claimed_by"):
        text += (f" Claimed by {context['claimed_by']}: synthgate neither produced this data nor charged its "
                 f"budget, and can only test the claim.")
    return text


def _budget(extras: ReportExtras) -> str | None:
    b = extras.budget
    if not b:
        return None
    return (f"Source {b.get('source')} (policy {b.get('policy')}): ε {_g(b.get('spent_epsilon'))} of "
            f"{_g(b.get('total_epsilon'))} spent, {_g(b.get('remaining_epsilon'))} left; δ {_g(b.get('spent_delta'))} of "
            f"{_g(b.get('total_delta'))} spent, {_g(b.get('remaining_delta'))} left"
            + (f" (as of {extras.generated_at})." if extras.generated_at else "."))


def _approvals(extras: ReportExtras) -> tuple[str, int, int | None]:
    # an approval by a steward whose key was revoked since no longer counts (release.members)
    approved = [a for a in extras.approvals if a.get("decision") == "approve" and not a.get("withdrawn")]
    withdrawn = [a for a in extras.approvals if a.get("decision") == "approve" and a.get("withdrawn")]
    rejected = [a for a in extras.approvals if a.get("decision") == "reject"]
    required = extras.approvals_required
    if required is None and not extras.approvals:
        note = f" {extras.snapshot_note}" if extras.snapshot_note else ""
        return f"Approvals: not applicable (no run to approve).{note}", 0, None
    parts = [f"Approvals: {len(approved)} of {required if required is not None else '?'} required"]
    if approved:
        parts[0] += " (" + ", ".join(str(a.get("steward")) for a in approved) + ")"
    if withdrawn:
        parts.append("withdrawn by the revocation of their key: " + ", ".join(str(a.get("steward")) for a in withdrawn))
    if rejected:
        parts.append("rejected by " + ", ".join(str(a.get("steward")) for a in rejected))
    rules = []
    if required is not None and required > 1:
        rules.append("distinct stewards")
    if extras.requester_may_approve is False:
        rules.append(f"the requester{f' ({extras.requester})' if extras.requester else ''} may not approve")
    text = "; ".join(parts) + (f" ({'; '.join(rules)})" if rules else "") + "."
    if extras.snapshot_note:
        text += " " + extras.snapshot_note
    return text, len(approved), required


def check_row(c: dict[str, Any]) -> CheckRow:
    """One gate check (``audit.json``'s ``gate.checks`` entry) as a first-screen row."""
    on = c.get("gated_on", "value")
    gated = {"value": "point estimate", "upper": "upper end of the interval",
             "lower": "lower end of the interval"}.get(on, str(on))
    return CheckRow(
        audit=str(c.get("audit", "")), name=str(c.get("name", "")), meaning=str(c.get("meaning", "")),
        value=fmt(c.get("value")), interval=interval(c.get("interval")), threshold=threshold(c.get("goal"), c.get("threshold")),
        gated_on=gated, passed=bool(c.get("passed")), kind=str(c.get("kind", "threshold")),
        flags=tuple(str(f) for f in c.get("flags") or ()))


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if x != 0 and abs(x) < 10 ** (-digits):
            return f"{x:.3g}"
        text = f"{x:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(x)


def interval(iv: Any) -> str:
    if not iv or len(iv) != 2:
        return "–"
    return f"[{fmt(iv[0])}, {fmt(iv[1])}]"


def threshold(goal: Any, value: Any) -> str:
    if value is None:
        return "–"
    return f"{'≤' if goal == 'minimize' else '≥'} {fmt(value)}"


def _g(x: Any) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:g}"
    return "n/a"
