"""The audit report: one self-contained HTML page rendered from the audit document.

No scripts, no external styles or fonts (the page is read offline, inside a release bundle), and
every string that came from data, schema, policy or context is escaped: column names and
categories are steward input, not trusted markup.
"""

from __future__ import annotations

import html
import math
from typing import Any

_CONTEXT_KEYS = (
    ("run_id", "Run"),
    ("source", "Source"),
    ("generator", "Generator"),
    ("epsilon", "Epsilon"),
    ("delta", "Delta"),
    ("policy", "Policy"),
    ("kind", "Data kind"),
    ("unit_of_privacy", "Unit of privacy"),
)

_FOOTER = (
    "These numbers are empirical evidence computed on the data steward's side from the real "
    "training and holdout data. They are NOT differentially private and carry no privacy guarantee "
    "of their own; the release's privacy guarantee is the generator's (epsilon, delta) alone. "
    "Passing these audits does not prove privacy, and failing them does not prove a leak."
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.decision{font-size:1.4rem;font-weight:bold;padding:.6rem 1rem;display:inline-block;border-radius:4px}
.pass{background:#e3f4e3;color:#155d15}.fail{background:#fbe4e4;color:#8a1515}
.info{color:#555}.flag{color:#8a5a00}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
footer{margin-top:3rem;padding-top:1rem;border-top:1px solid #ccc;font-size:.9rem}
details{margin:.3rem 0 1rem}summary{cursor:pointer}
"""


def render_html(document: dict[str, Any], figures: dict[str, str] | None = None) -> str:
    """Render an audit document (``audits.suite.audit_document``) as a self-contained HTML page.

    ``figures`` maps a heading to an inline SVG produced by synthgate's own plotting code (e.g.
    ``audits.graph.plots``); they are placed after the gate table, in order.
    """
    context = document.get("context") or {}
    gate = document.get("gate") or {}
    passed = bool(gate.get("passed"))
    run = context.get("run_id")
    title = "synthgate audit report" + (f" - run {run}" if run is not None else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _decision(passed, gate.get("checks") or []),
        _context(context),
        "<h2>Gate checks</h2>",
        _gate_table(gate.get("checks") or []),
    ]
    for heading, svg in (figures or {}).items():
        parts.append(f"<h2>{_e(heading)}</h2><figure>{svg}</figure>")
    for result in document.get("results") or []:
        parts.append(_audit_section(result))
    parts.append(f"<footer><p><strong>Not differentially private.</strong> {_e(_FOOTER)}</p></footer>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _decision(passed: bool, checks: list[dict[str, Any]]) -> str:
    failed = [c for c in checks if not c.get("passed")]
    word, cls = ("PASS", "pass") if passed else ("FAIL", "fail")
    if passed:
        why = f"All {len(checks)} gate checks passed."
    elif not checks:
        why = "No gate checks were recorded; an empty gate does not pass."
    else:
        names = ", ".join(str(c.get("name")) for c in failed)
        why = f"{len(failed)} of {len(checks)} gate checks failed: {names}."
        dp = [str(c.get("name")) for c in failed if c.get("kind") == "dp_claim"]
        if dp:
            why = (f"DP FAILURE: the claimed epsilon is refuted by {', '.join(dp)}: no mechanism with the "
                   f"claimed guarantee can produce these results (a bug in the generator or its accounting). "
                   + why)
    flagged = [c for c in checks if c.get("flags")]
    extra = f" Checks with flags: {len(flagged)} (see below)." if flagged else ""
    return f'<p><span class="decision {cls}">Decision: {word}</span></p><p>{_e(why + extra)}</p>'


def _context(context: dict[str, Any]) -> str:
    rows = []
    known = {k for k, _ in _CONTEXT_KEYS}
    for key, label in _CONTEXT_KEYS:
        if key in context and context[key] is not None:
            rows.append(f"<tr><th>{_e(label)}</th><td>{_e(_fmt(context[key], 6))}</td></tr>")
    for key, value in context.items():
        if key not in known and value is not None:
            rows.append(f"<tr><th>{_e(key)}</th><td>{_render(value)}</td></tr>")
    return f"<table>{''.join(rows)}</table>" if rows else ""


def _gate_table(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "<p>No gate checks.</p>"
    head = (
        "<tr><th>Audit</th><th>Check</th><th>Value</th><th>95% interval</th><th>Gated on</th>"
        "<th>Threshold</th><th>Result</th><th>Flags</th><th>Meaning</th></tr>"
    )
    rows = []
    for c in checks:
        ok = bool(c.get("passed"))
        rows.append(
            "<tr>"
            f"<td>{_e(c.get('audit', ''))}</td>"
            f"<td>{_e(c.get('name', ''))}</td>"
            f'<td class="num">{_e(_fmt(c.get("value")))}</td>'
            f'<td class="num">{_e(_interval(c.get("interval")))}</td>'
            f"<td>{_e(_gated_on(c))}</td>"
            f'<td class="num">{_e(_threshold(c.get("goal"), c.get("threshold")))}</td>'
            f'<td class="{"pass" if ok else "fail"}">{"pass" if ok else _failure_word(c)}</td>'
            f"<td>{_flags(c.get('flags'))}</td>"
            f"<td>{_e(c.get('meaning', ''))}</td>"
            "</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _failure_word(check: dict[str, Any]) -> str:
    # a false DP claim is a different failure from a missed threshold, in words as well as colour
    return "DP FAILURE" if check.get("kind") == "dp_claim" else "FAIL"


def _audit_section(result: dict[str, Any]) -> str:
    name = str(result.get("audit", "audit"))
    parts = [f"<h2>Audit: {_e(name)}</h2>"]
    seconds = result.get("seconds")
    if seconds is not None:
        parts.append(f'<p class="info">Ran in {_e(_fmt(seconds, 1))} s.</p>')
    for note in result.get("notes") or []:
        parts.append(f'<p class="info">{_e(note)}</p>')
    metrics = result.get("metrics") or []
    head = (
        "<tr><th>Metric</th><th>Role</th><th>Value</th><th>95% interval</th><th>Threshold</th>"
        "<th>Result</th><th>Flags</th></tr>"
    )
    rows = []
    for m in metrics:
        passed = m.get("passed")
        outcome = "reported" if passed is None else ("pass" if passed else "FAIL")
        cls = "info" if passed is None else ("pass" if passed else "fail")
        rows.append(
            "<tr>"
            f"<td>{_e(m.get('name', ''))}</td><td>{_e(m.get('role', ''))}</td>"
            f'<td class="num">{_e(_fmt(m.get("value")))}</td>'
            f'<td class="num">{_e(_interval(m.get("interval")))}</td>'
            f'<td class="num">{_e(_threshold(m.get("goal"), m.get("threshold")))}</td>'
            f'<td class="{cls}">{outcome}</td><td>{_flags(m.get("flags"))}</td>'
            "</tr>"
        )
    parts.append(f"<table>{head}{''.join(rows)}</table>")
    for m in metrics:
        parts.append(f"<h3>{_e(m.get('name', ''))}</h3>")
        if m.get("meaning"):
            parts.append(f"<p>{_e(m['meaning'])}</p>")
        if m.get("details"):
            parts.append(f"<details open><summary>Details</summary>{_render(m['details'])}</details>")
    return "\n".join(parts)


def _render(value: Any, depth: int = 0) -> str:
    """Details of any shape as nested tables; every leaf escaped."""
    if depth > 6:
        return _e(repr(value))
    if isinstance(value, dict):
        if not value:
            return ""
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_render(v, depth + 1)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            keys: list[str] = []
            for v in value:
                keys.extend(k for k in v if k not in keys)
            head = "".join(f"<th>{_e(k)}</th>" for k in keys)
            body = "".join(
                "<tr>" + "".join(f"<td>{_render(v.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
                for v in value
            )
            return f"<table><tr>{head}</tr>{body}</table>"
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return _e(", ".join(_fmt(v) for v in value))
        return "<ul>" + "".join(f"<li>{_render(v, depth + 1)}</li>" for v in value) + "</ul>"
    return _e(_fmt(value))


def _fmt(x: Any, digits: int = 4) -> str:
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


def _interval(iv: Any) -> str:
    if not iv or len(iv) != 2:
        return "-"
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]"


def _threshold(goal: Any, threshold: Any) -> str:
    if threshold is None:
        return "-"
    sign = "<=" if goal == "minimize" else ">="
    return f"{sign} {_fmt(threshold)}"


def _gated_on(check: dict[str, Any]) -> str:
    on = check.get("gated_on", "value")
    labels = {"value": "point estimate", "upper": "upper end of interval", "lower": "lower end of interval"}
    label = labels.get(on, str(on))
    return f"{label} ({_fmt(check.get('gated_value'))})"


def _flags(flags: Any) -> str:
    if not flags:
        return ""
    return "<br>".join(f'<span class="flag">{_e(f)}</span>' for f in flags)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
