"""Inline SVG figures for the graph audit report: self-contained, no scripts, no external resources.

``degree_distribution_svg`` draws the complementary cumulative degree distributions (the share of
nodes with degree at least d) of the real training graph and the synthetic graph on log-log axes.
The real curve is a statistic of the real graph (not DP): the figure is for the steward's report,
as the fidelity figures are. Accessibility: ``role="img"`` with ``<title>`` and ``<desc>``; the two
series differ by line style (solid / dashed) and marker (circle / square), not only by colour.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np

from privacy.graphs import GraphData

_W, _H = 560, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 40, 55
#: at most this many markers per series (evenly spaced in log degree); the line keeps every point
_MAX_MARKERS = 40

_REAL = {"label": "Real (training graph)", "colour": "#1f4e9c", "dash": "", "marker": "circle"}
_SYN = {"label": "Synthetic", "colour": "#c0392b", "dash": "6 4", "marker": "square"}


def degree_ccdf(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positive degrees ``d`` and the share of all nodes with degree >= ``d``."""
    deg = np.asarray(degrees, dtype=np.int64)
    if deg.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    values, counts = np.unique(deg[deg > 0], return_counts=True)
    at_least = counts[::-1].cumsum()[::-1] / deg.size
    return values, at_least


def _decades(lo: float, hi: float) -> list[int]:
    return list(range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1))


def degree_distribution_svg(real: GraphData, synthetic: GraphData) -> str:
    """The two degree distributions (CCDF, log-log) as one inline ``<svg>`` element."""
    series = [(_REAL, *degree_ccdf(real.degrees())), (_SYN, *degree_ccdf(synthetic.degrees()))]
    xs = np.concatenate([s[1] for s in series]).astype(float)
    ys = np.concatenate([s[2] for s in series]).astype(float)
    x_lo, x_hi = (1.0, float(xs.max())) if xs.size else (1.0, 10.0)
    y_lo, y_hi = (float(ys.min()), 1.0) if ys.size else (0.1, 1.0)
    x_dec, y_dec = _decades(x_lo, max(x_hi, 10.0)), _decades(min(y_lo, 0.1), y_hi)
    lx0, lx1 = x_dec[0], x_dec[-1]
    ly0, ly1 = y_dec[0], y_dec[-1]
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(d: float) -> float:
        return _LEFT + (math.log10(d) - lx0) / (lx1 - lx0) * pw

    def py(p: float) -> float:
        return _TOP + (ly1 - math.log10(p)) / (ly1 - ly0) * ph

    kind = "directed: in + out degree" if real.directed else "undirected"
    desc = (f"Complementary cumulative degree distributions on log-log axes ({kind}): for each degree d, the share "
            f"of nodes with degree at least d, for the real training graph and the synthetic graph "
            f"({_summary(synthetic)}). Real is a solid line with circles, synthetic a dashed line with squares.")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="deg-title deg-desc" font-family="sans-serif" font-size="12">',
        '<title id="deg-title">Degree distribution: real vs synthetic</title>',
        f'<desc id="deg-desc">{escape(desc)}</desc>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="#ffffff" stroke="#333333"/>',
    ]
    for e in x_dec:
        x = px(10.0**e)
        out.append(f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_TOP + ph}" stroke="#dddddd"/>')
        out.append(f'<text x="{x:.1f}" y="{_TOP + ph + 16}" text-anchor="middle">{_power(e)}</text>')
    for e in y_dec:
        y = py(10.0**e)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + pw}" y2="{y:.1f}" stroke="#dddddd"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_power(e)}</text>')
    out.append(f'<text x="{_LEFT + pw / 2:.1f}" y="{_H - 12}" text-anchor="middle">Degree d (log scale)</text>')
    out.append(f'<text x="16" y="{_TOP + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {_TOP + ph / 2:.1f})">Share of nodes with degree &#8805; d (log)</text>')
    out.append(f'<text x="{_LEFT}" y="22" font-size="14" font-weight="bold">Degree distribution (CCDF)</text>')

    for style, d, p in series:
        name = "real" if style is _REAL else "synthetic"
        out.append(f'<g class="series-{name}" aria-label="{escape(style["label"])}">')
        if d.size:
            pts = " ".join(f"{px(float(a)):.1f},{py(float(b)):.1f}" for a, b in zip(d, p, strict=True))
            dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
            out.append(f'<polyline points="{pts}" fill="none" stroke="{style["colour"]}" stroke-width="2"{dash}/>')
            step = max(1, math.ceil(d.size / _MAX_MARKERS))
            for a, b in zip(d[::step], p[::step], strict=True):
                out.append(_marker(style, px(float(a)), py(float(b))))
        out.append("</g>")

    lx, ly = _LEFT + pw - 190, _TOP + 12
    out.append(f'<rect x="{lx - 8}" y="{ly - 12}" width="186" height="46" fill="#ffffff" stroke="#999999"/>')
    for i, (style, d, _) in enumerate(series):
        y = ly + i * 20
        dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
        out.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 30}" y2="{y}" stroke="{style["colour"]}" stroke-width="2"{dash}/>')
        out.append(_marker(style, lx + 15, y))
        label = style["label"] + ("" if d.size else " (no edges)")
        out.append(f'<text x="{lx + 38}" y="{y + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _summary(g: GraphData) -> str:
    return f"{g.n_nodes} nodes, {g.n_edges} edges, largest degree {int(g.degrees().max()) if g.n_nodes else 0}"


def _power(e: int) -> str:
    return f"{10.0**e:g}" if -2 <= e <= 3 else f"1e{e}"


def _marker(style: dict[str, str], x: float, y: float) -> str:
    c = style["colour"]
    if style["marker"] == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{c}"/>'
    return f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="#ffffff" stroke="{c}" stroke-width="1.5"/>'
