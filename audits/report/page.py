"""The audit report: one self-contained HTML page rendered from the audit document.

Self-contained: no external scripts, styles, fonts or images; the plotting library (plotly.js) is
inlined once and every figure's specification is one JSON block, so the page opens offline inside
a release bundle a year from now. Every string that came from data, schema, policy or context is
escaped: column names and categories are steward input, not trusted markup.

Layout: the first screen answers "can this be released?" (decision, each gate check in plain words,
the guarantee in one sentence, the budget, the approvals); then one section per concern (membership
attacks, anonymeter risks, fidelity, utility) with its figures and tables; then every audit's
details; then the methods appendix (method, parameters and references of each audit, library
versions, the policy, the caveats). Accessible: headings in order, tables with headers and
captions, outcomes in words and symbols as well as colour, figures with text descriptions.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from audits.report.figures import Figure, document_figures
from audits.report.methods import library_versions, method_for, parameters_of
from audits.report.summary import SYMBOLS, FirstScreen, ReportExtras, first_screen, fmt, interval, threshold

_FOOTER = (
    "These numbers are empirical evidence computed on the data steward's side from the real "
    "training and holdout data. They are NOT differentially private and carry no privacy guarantee "
    "of their own; the release's privacy guarantee is the generator's (epsilon, delta) alone. "
    "Passing these audits does not prove privacy, and failing them does not prove a leak."
)

#: report sections in order: (id, heading, audits whose details and metrics belong to it)
SECTIONS = (
    ("membership", "Privacy: membership attacks", ("protocol", "membership", "domias", "one_run", "shadow_game")),
    ("anonymeter", "Privacy: singling out, linkability and inference (anonymeter)", ("anonymeter",)),
    ("fidelity", "Fidelity: how closely the synthetic data follows the real data", ("fidelity",)),
    ("utility", "Utility: what a model learns from the synthetic data", ("utility",)),
)

_CSS = """
:root{--pass:#155d15;--pass-bg:#e3f4e3;--fail:#8a1515;--fail-bg:#fbe4e4;--dp:#5c0000;--dp-bg:#f8c9c9;--muted:#555}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5rem auto;max-width:76rem;
padding:0 1rem;color:#1b1b1b;line-height:1.45;background:#fff}
h1{font-size:1.55rem;margin:0 0 .2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #bbb;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.4rem 0 .3rem}h4{font-size:.95rem;margin:1rem 0 .2rem}
.sub{color:var(--muted);margin:0 0 .8rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.88rem;width:auto;max-width:100%;min-width:26rem}
caption{text-align:left;font-weight:600;padding:.2rem 0}
th,td{border:1px solid #c8c8c8;padding:.22rem .45rem;text-align:left;vertical-align:top}
thead th,th[scope=col]{background:#f0f0f0}
.decision{display:flex;gap:1rem;align-items:flex-start;padding:.7rem 1rem;border-radius:6px;border:2px solid}
.decision .sym{font-size:2rem;line-height:1}.decision .head{font-size:1.3rem;font-weight:700;margin:0}
.decision p{margin:.2rem 0}
.st-pass{background:var(--pass-bg);color:var(--pass);border-color:var(--pass)}
.st-fail,.st-empty{background:var(--fail-bg);color:var(--fail);border-color:var(--fail)}
.st-dp_failure{background:var(--dp-bg);color:var(--dp);border-color:var(--dp)}
.facts{margin:.6rem 0;padding-left:1.2rem}.facts li{margin:.15rem 0}
th .sub{font-weight:400}td[class^=r-]{white-space:nowrap}
td.r-pass{color:var(--pass);font-weight:600}td.r-fail{color:var(--fail);font-weight:700}
td.r-dp_failure{color:var(--dp);font-weight:800;background:var(--dp-bg)}
td.r-info{color:var(--muted)}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.flag{color:#7a4f00}.flag::before{content:"⚑ "}
.banner{padding:.5rem .8rem;border:2px dashed #8a5a00;background:#fff6e0;margin:.6rem 0}
nav ol{columns:2;margin:.3rem 0}
figure{margin:1rem 0 1.6rem;break-inside:avoid;page-break-inside:avoid}
.plot{width:100%;min-height:200px}
figcaption{font-size:.9rem;color:#333;max-width:60rem}
.withheld{border:1px dashed #999;padding:.6rem;color:var(--muted)}
details{margin:.3rem 0 .8rem}summary{cursor:pointer;font-weight:600}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem;white-space:pre-wrap}
footer{margin-top:3rem;padding-top:1rem;border-top:1px solid #bbb;font-size:.9rem}
a{color:#0b5394}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;font-size:10pt}nav,.modebar-container{display:none}.plot{min-height:0}
h2{break-after:avoid}table,figure{break-inside:avoid}details>summary{list-style:none}}
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js, minified, from the installed plotly package (inlined once per report)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def render_html(document: dict[str, Any], figures: Sequence[Figure] = (), extras: ReportExtras | None = None) -> str:
    """Render an audit document (``audits.suite.audit_document``) as a self-contained HTML page.

    ``figures`` are the run's data figures (``audits.report.figures.data_figures``); the document
    figures are drawn here from the document. ``extras`` adds what the document does not hold
    (budget, approvals, policy, caveats) and picks the view (``release`` or ``steward``).
    """
    extras = extras or ReportExtras()
    screen = first_screen(document, extras)
    context = screen.context
    run = context.get("run_id") or context.get("audit_id")
    title = "synthgate audit report" + (f": run {run}" if run is not None else "")
    all_figures = [*figures, *document_figures(document)]
    plots: dict[str, dict[str, Any]] = {}
    body_sections = []
    number = [0]

    def figure_html(fig: Figure) -> str:
        number[0] += 1
        spec = fig.spec(extras.view)
        caption = fig.caption_for(extras.view)
        label = f"Figure {number[0]}. {fig.title}"
        if spec is None:
            return (f'<figure><div class="withheld" role="note">{_e(label)}: withheld from the released report. '
                    f'{_e(fig.withheld)}</div></figure>')
        pid = f"plot-{re.sub(r'[^a-z0-9_-]', '-', fig.key.lower())}-{number[0]}"
        plots[pid] = spec
        return (f'<figure aria-labelledby="{pid}-cap"><div class="plot" id="{pid}" data-plot="{_e(fig.key)}" role="img" '
                f'aria-label="{_e(label)}"></div><figcaption id="{pid}-cap"><strong>{_e(label)}.</strong> '
                f'{_e(caption)}</figcaption></figure>')

    results = list(document.get("results") or [])
    for sid, heading, audits in SECTIONS:
        figs = [f for f in all_figures if f.section == sid]
        metrics = [(r, m) for r in results if r.get("audit") in audits for m in r.get("metrics") or []]
        notes = [n for r in results if r.get("audit") in audits for n in r.get("notes") or []]
        if not figs and not metrics and not notes:
            continue
        part = [f'<section id="{sid}" aria-labelledby="h-{sid}"><h2 id="h-{sid}">{_e(heading)}</h2>']
        for n in notes:
            part.append(f'<p class="sub">{_e(n)}</p>')
        part.extend(figure_html(f) for f in figs)
        if metrics:
            part.append(_metric_table(metrics, f"Every {heading.split(':')[0].lower()} figure of this audit"))
        part.append("</section>")
        body_sections.append("\n".join(part))

    nav = ["<nav aria-label=\"Contents\"><h2 id=\"h-contents\">Contents</h2><ol>",
           '<li><a href="#decision">Can this be released?</a></li>']
    for sid, heading, _audits in SECTIONS:
        if any(f'id="{sid}"' in s for s in body_sections):
            nav.append(f'<li><a href="#{sid}">{_e(heading)}</a></li>')
    nav.append('<li><a href="#details">Every audit in detail</a></li>')
    nav.append('<li><a href="#methods">Methods appendix</a></li></ol></nav>')

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="synthgate">',
        f"<title>{_e(title)}</title><style>{_CSS}</style>",
        f'<script>{plotly_js()}</script>' if plots else "",
        "</head><body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(_subtitle(context, extras))}</p>',
        _view_banner(extras),
        "</header>",
        "<main>",
        _first_screen_html(screen, extras),
        "\n".join(nav),
        *body_sections,
        _details_section(results, extras),
        _methods_section(document, extras),
        "</main>",
        f"<footer><p><strong>Not differentially private.</strong> {_e(_FOOTER)}</p></footer>",
    ]
    if plots:
        parts.append('<noscript><p>The figures need JavaScript; every number they draw is also in the tables above '
                     'and in audit.json.</p></noscript>')
        data = json.dumps(plots, separators=(",", ":"), allow_nan=False, default=_json_default)
        parts.append(f'<script type="application/json" id="synthgate-plots">{_script_safe(data)}</script>')
        parts.append("<script>" + _PLOT_LOADER + "</script>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


#: draws every figure from the JSON block; records failures on the page (the browser test reads them)
_PLOT_LOADER = """
(function(){
  var specs = JSON.parse(document.getElementById('synthgate-plots').textContent);
  var config = {displaylogo:false, responsive:true, typesetMath:false, showLink:false,
                toImageButtonOptions:{format:'svg'}};
  var pending = [];
  Object.keys(specs).forEach(function(id){
    var el = document.getElementById(id);
    try {
      pending.push(Promise.resolve(Plotly.newPlot(el, specs[id].data, specs[id].layout, config)).then(
        function(){ el.setAttribute('data-rendered', 'yes'); },
        function(err){ el.setAttribute('data-rendered', 'error'); console.error('plot ' + id + ': ' + err); }));
    } catch (err) { el.setAttribute('data-rendered', 'error'); console.error('plot ' + id + ': ' + err); }
  });
  Promise.all(pending).then(function(){ document.body.setAttribute('data-plots-done', String(pending.length)); });
  window.addEventListener('beforeprint', function(){
    document.querySelectorAll('details').forEach(function(d){ d.open = true; });
  });
})();
"""


def _script_safe(text: str) -> str:
    # inside <script>: no "</script", no "<!--"; JSON strings may spell < as \\u003c
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(x: Any) -> Any:
    raise TypeError(f"not JSON: {type(x).__name__}")


def _subtitle(context: dict[str, Any], extras: ReportExtras) -> str:
    bits = []
    for key, label in (("source", "source"), ("kind", "data kind"), ("generator", "generator"), ("policy", "policy"),
                       ("membership_profile", "membership profile"), ("file", "file")):
        if context.get(key) is not None:
            bits.append(f"{label} {context[key]}")
    if extras.state:
        bits.append(f"state {extras.state}")
    if extras.generated_at:
        bits.append(f"drawn {extras.generated_at}")
    return " · ".join(bits)


def _view_banner(extras: ReportExtras) -> str:
    if extras.view == "steward":
        return ('<p class="banner" role="note"><strong>Steward\'s copy: do not release.</strong> This page draws the '
                'real training data\'s distributions beside the synthetic ones. The report in the release bundle '
                'withholds them (a histogram of real records can show a value that one person holds).</p>')
    return ""


def _first_screen_html(screen: FirstScreen, extras: ReportExtras) -> str:
    sym = SYMBOLS["dp_failure" if screen.status == "dp_failure" else ("pass" if screen.status == "pass" else "fail")][0]
    facts = [f"<li><strong>Guarantee.</strong> {_e(screen.guarantee)}</li>"]
    if screen.budget:
        facts.append(f"<li><strong>Budget.</strong> {_e(screen.budget)}</li>")
    facts.append(f"<li><strong>{_e(screen.approvals.split(':', 1)[0])}.</strong>"
                 f"{_e(screen.approvals.split(':', 1)[1] if ':' in screen.approvals else '')}</li>")
    rows = []
    for r in screen.rows:
        flags = "".join(f'<div class="flag">{_e(f)}</div>' for f in r.flags)
        rows.append(
            "<tr>"
            f'<th scope="row">{_e(r.name)}<div class="sub">{_e(r.audit)}'
            f'{" · DP-claim check" if r.kind == "dp_claim" else ""}</div></th>'
            f"<td>{_e(r.meaning)}{flags}</td>"
            f'<td class="num">{_e(r.value)}</td>'
            f'<td class="num">{_e(r.interval)}</td>'
            f'<td class="num">{_e(r.threshold)}<div class="sub">on the {_e(r.gated_on)}</div></td>'
            f'<td class="r-{r.outcome}">{SYMBOLS[r.outcome][0]} {_e(r.word)}</td>'
            "</tr>")
    table = (
        '<table class="gate"><caption>Gate checks: every check the policy requires, in the order the audits ran'
        '</caption><thead><tr><th scope="col">Check</th><th scope="col">What it means</th>'
        '<th scope="col">Value</th><th scope="col">95% interval</th><th scope="col">Threshold</th>'
        f'<th scope="col">Result</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        if rows else "<p>No gate checks were recorded.</p>")
    return (
        '<section id="decision" aria-labelledby="h-decision">'
        '<h2 id="h-decision">Can this be released?</h2>'
        f'<div class="decision st-{screen.status}" role="status"><div class="sym" aria-hidden="true">{sym}</div>'
        f'<div><p class="head">Decision: {_e(_decision_word(screen))}. {_e(screen.headline)}</p>'
        f"<p>{_e(screen.reason)}</p></div></div>"
        f'<ul class="facts">{"".join(facts)}</ul>'
        f"{table}</section>")


def _decision_word(screen: FirstScreen) -> str:
    return {"pass": "PASS", "fail": "FAIL", "dp_failure": "FAIL (DP FAILURE)", "empty": "FAIL"}[screen.status]


def _metric_table(metrics: list[tuple[dict[str, Any], dict[str, Any]]], caption: str) -> str:
    rows = []
    for r, m in metrics:
        passed = m.get("passed")
        if m.get("role") == "info" or passed is None:
            outcome, word = "info", "reported"
        elif passed:
            outcome, word = "pass", "pass"
        else:
            outcome = "dp_failure" if m.get("kind") == "dp_claim" else "fail"
            word = "DP FAILURE" if outcome == "dp_failure" else "FAIL"
        flags = "".join(f'<div class="flag">{_e(f)}</div>' for f in m.get("flags") or [])
        rows.append(
            f'<tr><th scope="row">{_e(m.get("name", ""))}<div class="sub">{_e(r.get("audit", ""))}</div></th>'
            f'<td>{_e(m.get("meaning", ""))}{flags}</td>'
            f'<td class="num">{_e(fmt(m.get("value")))}</td><td class="num">{_e(interval(m.get("interval")))}</td>'
            f'<td class="num">{_e(threshold(m.get("goal"), m.get("threshold")))}</td>'
            f'<td class="r-{outcome}">{SYMBOLS[outcome][0]} {word}</td></tr>')
    return (f'<table><caption>{_e(caption)}</caption><thead><tr><th scope="col">Metric</th>'
            '<th scope="col">What it means</th><th scope="col">Value</th><th scope="col">95% interval</th>'
            f'<th scope="col">Threshold</th><th scope="col">Result</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _details_section(results: list[dict[str, Any]], extras: ReportExtras) -> str:
    opened = " open" if extras.for_print else ""
    parts = ['<section id="details" aria-labelledby="h-details"><h2 id="h-details">Every audit in detail</h2>',
             '<p>Every figure each audit recorded, as in audit.json (indices and figures only, never records).</p>']
    for result in results:
        name = str(result.get("audit", "audit"))
        parts.append(f"<h3>Audit: {_e(name)}</h3>")
        seconds = result.get("seconds")
        if seconds is not None:
            parts.append(f'<p class="sub">Ran in {_e(fmt(seconds, 1))} s.</p>')
        for note in result.get("notes") or []:
            parts.append(f"<p>{_e(note)}</p>")
        for m in result.get("metrics") or []:
            details = {k: v for k, v in (m.get("details") or {}).items() if k != "roc"}
            parts.append(f"<h4>{_e(m.get('name', ''))}</h4>")
            if m.get("meaning"):
                parts.append(f"<p>{_e(m['meaning'])}</p>")
            if details:
                parts.append(f"<details{opened}><summary>Details of {_e(m.get('name', ''))}</summary>"
                             f"{_render(details)}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _methods_section(document: dict[str, Any], extras: ReportExtras) -> str:
    context = document.get("context") or {}
    kind = str(context.get("kind") or "tabular")
    parts = ['<section id="methods" aria-labelledby="h-methods"><h2 id="h-methods">Methods appendix</h2>']
    if context.get("accounting") or context.get("unit_of_privacy"):
        parts.append("<h3>The privacy guarantee and its accounting</h3><dl>")
        for key, label in (("unit_of_privacy", "Unit of privacy"), ("accounting", "Accounting")):
            if context.get(key):
                parts.append(f"<dt><strong>{label}</strong></dt><dd>{_e(context[key])}</dd>")
        parts.append("</dl>")
    for result in document.get("results") or []:
        name = str(result.get("audit", ""))
        method = method_for(kind, name)
        parts.append(f"<h3>{_e(method.title if method else name)} <span class=\"sub\">({_e(name)})</span></h3>")
        if method:
            parts.append(f"<p>{_e(method.text)}</p>")
        params = parameters_of(result)
        if params:
            rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in params.items())
            parts.append(f'<table><caption>Settings and counts this audit recorded</caption>'
                         f'<thead><tr><th scope="col">Setting</th><th scope="col">Value</th></tr></thead>'
                         f"<tbody>{rows}</tbody></table>")
        if method and method.references:
            parts.append("<p><strong>References.</strong></p><ul>"
                         + "".join(f"<li>{_e(ref)}</li>" for ref in method.references) + "</ul>")
    recorded = document.get("software")
    versions = recorded if isinstance(recorded, dict) and recorded else library_versions()
    when = "recorded when the audit ran" if recorded else "installed when this page was drawn"
    rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in versions.items())
    parts.append(f'<h3>Software</h3><table><caption>Library versions ({_e(when)})</caption><thead><tr>'
                 f'<th scope="col">Library</th><th scope="col">Version</th></tr></thead><tbody>{rows}</tbody></table>')
    parts.append("<h3>Policy</h3>")
    if extras.policy_text:
        digest = f" (digest {extras.policy_digest})" if extras.policy_digest else ""
        parts.append(f"<p>The policy {_e(context.get('policy', ''))}{_e(digest)} as it was applied: budget caps, "
                     f"thresholds, audit settings and approval rules.</p><pre>{_e(extras.policy_text)}</pre>")
    else:
        parts.append(f"<p>Policy {_e(context.get('policy', 'n/a'))}; its text was not available when this page was "
                     f"drawn (<code>synthgate policy show</code> prints it).</p>")
    parts.append("<h3>What these figures and the guarantee do not cover</h3><ul>")
    caveats = list(extras.caveats) or [_FOOTER]
    if extras.caveats:
        caveats.append(_FOOTER)
    parts.extend(f"<li>{_md_inline(c)}</li>" for c in caveats)
    parts.append("</ul></section>")
    return "\n".join(parts)


def _md_inline(text: str) -> str:
    """A line of the privacy statement's markdown (bold and code spans only) as escaped HTML."""
    out = _e(text.lstrip("- ").strip())
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _render(value: Any, depth: int = 0) -> str:
    """Details of any shape as nested tables; every leaf escaped."""
    if depth > 6:
        return _e(repr(value))
    if isinstance(value, dict):
        if not value:
            return ""
        rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_render(v, depth + 1)}</td></tr>' for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            keys: list[str] = []
            for v in value:
                keys.extend(k for k in v if k not in keys)
            head = "".join(f'<th scope="col">{_e(k)}</th>' for k in keys)
            body = "".join(
                "<tr>" + "".join(f"<td>{_render(v.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
                for v in value
            )
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return _e(", ".join(fmt(v) for v in value))
        return "<ul>" + "".join(f"<li>{_render(v, depth + 1)}</li>" for v in value) + "</ul>"
    return _e(fmt(value))


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
