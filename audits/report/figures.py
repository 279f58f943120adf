"""The report's figures, as plotly figure specifications (plain JSON: ``{"data": [...], "layout": {...}}``).

Two kinds of figure:

* **Data figures** (:func:`data_figures`) draw the real training data beside the synthetic data:
  per-column distributions, the pairwise-association heat map, sequence lengths, gaps and
  transitions, graph degree distributions. They are computed once, when the run is audited (the
  real data is needed), and stored on the steward's side (``figures.json`` of the run).
* **Document figures** (:func:`document_figures`) are drawn from ``audit.json`` alone: the
  membership attacks' ROC curves, the privacy game's per-target results, anonymeter's risks against
  their thresholds, the utility comparison, the graph fidelity components.

**What a released report may draw.** The report inside a release bundle is published with the
data. Audit figures are computed on the real data and are not differentially private (the privacy
statement says so), but there is a difference of degree between a table-level score and a
histogram of real records: a bin or category holding one person's value, a degree held by one
node, shows up in a histogram and not in an aggregate. So every data figure has two versions:
``steward`` (real beside synthetic) and ``release`` (what the bundle's ``report.html`` draws). In the
release version no series counts or shares real records in a bin, category, state or degree; the
synthetic series (released anyway) and table-level comparison figures (TV distance per column,
association differences, attack curves, risks) stay. A figure whose every series is real is
replaced by its synthetic counterpart, or withheld with the reason.

Every string that comes from the schema or the data (column names, categories) is HTML-escaped
before it enters a figure: plotly renders a small HTML subset in labels, and a column name is
steward input, not trusted markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privacy.graphs import GraphData
from privacy.schema import Column, Schema
from privacy.sequences import SequenceData

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies); the two series
#: also differ by pattern or dash and marker, never by colour alone
REAL_COLOUR = "#0072B2"
SYN_COLOUR = "#E69F00"
ACCENT = "#D55E00"
GREY = "#666666"
REAL_NAME = "real (training split)"
SYN_NAME = "synthetic"

#: at most this many columns get a distribution panel (worst first); the rest are listed
MAX_COLUMN_PANELS = 12
#: a categorical panel shows this many categories (the largest), the rest summed in one bar
MAX_CATEGORIES = 24
#: the association heat map covers at most this many columns (worst first)
MAX_HEATMAP_COLUMNS = 30
#: transition heat maps for state columns with at most this many states
MAX_TRANSITION_STATES = 40

FIGURES_VERSION = 1


@dataclass(frozen=True)
class Figure:
    """One figure: where it goes, what it shows, and its two versions (see the module docstring)."""

    key: str
    #: "membership", "anonymeter", "fidelity" or "utility": the report section it belongs to
    section: str
    title: str
    #: what the figure shows and how to read it, in words (also the figure's accessible description)
    caption: str
    steward: dict[str, Any]
    #: the released report's version; None: withheld from the released report (``withheld`` says why)
    release: dict[str, Any] | None
    release_caption: str = ""
    withheld: str = ""

    def spec(self, view: str) -> dict[str, Any] | None:
        return self.steward if view == "steward" else self.release

    def caption_for(self, view: str) -> str:
        if view != "steward" and self.release_caption:
            return self.release_caption
        return self.caption

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "section": self.section, "title": self.title, "caption": self.caption,
                "steward": self.steward, "release": self.release, "release_caption": self.release_caption,
                "withheld": self.withheld}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Figure":
        return cls(key=str(raw["key"]), section=str(raw["section"]), title=str(raw["title"]),
                   caption=str(raw.get("caption", "")), steward=dict(raw["steward"]),
                   release=None if raw.get("release") is None else dict(raw["release"]),
                   release_caption=str(raw.get("release_caption", "")), withheld=str(raw.get("withheld", "")))


def figures_document(figures: Sequence[Figure]) -> dict[str, Any]:
    """What ``figures.json`` holds (the steward's side of a run; never bundled)."""
    return {"synthgate_figures": FIGURES_VERSION, "figures": [f.to_dict() for f in figures]}


def load_figures_document(raw: Any) -> list[Figure]:
    if not isinstance(raw, dict) or raw.get("synthgate_figures") != FIGURES_VERSION:
        raise ValueError("not a synthgate figures document")
    return [Figure.from_dict(f) for f in raw.get("figures") or []]


def esc(text: Any) -> str:
    """A label for plotly: its HTML subset must not interpret steward input."""
    return html.escape(str(text), quote=False)


def _layout(title: str | None = None, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "font": {"family": "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif", "size": 12,
                 "color": "#1b1b1b"},
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "margin": {"l": 60, "r": 20, "t": 50, "b": 110},
        # the legend sits at the bottom of the figure box, below the axis titles, whatever the height
        "legend": {"orientation": "h", "x": 0, "xref": "container", "y": 0, "yref": "container", "yanchor": "bottom"},
        "bargap": 0.15,
    }
    if title:
        layout["title"] = {"text": esc(title), "x": 0.01, "font": {"size": 14}}
    layout.update(extra)
    return layout


def _axis(**extra: Any) -> dict[str, Any]:
    return {"showline": True, "linecolor": "#888", "gridcolor": "#e6e6e6", "zeroline": False, "automargin": True,
            **extra}


# ------------------------------------------------------------------------------------------------
# binning over the public schema


def column_codes(values: pl.Series, col: Column) -> tuple[np.ndarray, list[str]]:
    """Each value's cell over the schema's public domain (category, or public bin), and the labels.

    Missing values are a cell of their own ("missing") when the column is nullable. Nothing here is
    read from the data: the cells are the schema's.
    """
    import numpy as np
    import polars as pl

    if col.type == "categorical":
        labels = [esc(c) for c in col.categories]
        k = len(labels)
        codes = values.cast(pl.Utf8).replace_strict(list(col.categories), list(range(k)), default=None,
                                                    return_dtype=pl.Int64)
        out = codes.fill_null(k).to_numpy().astype(np.int64)
    else:
        edges = col.bin_edges()
        k = len(edges) - 1
        labels = _bin_labels(col, edges)
        x = values.cast(pl.Float64).to_numpy().astype(np.float64)
        binned = np.clip(np.searchsorted(np.asarray(edges), np.nan_to_num(x), side="right") - 1, 0, k - 1)
        out = np.where(np.isnan(x), k, binned).astype(np.int64)
    if col.nullable:
        labels = [*labels, "missing"]
    else:
        out = np.minimum(out, k - 1)  # conformed data has no missing values; keep the cell count fixed
    return out, labels


def _bin_labels(col: Column, edges: list[float]) -> list[str]:
    if col.type == "integer":
        out = []
        for a, b in zip(edges, edges[1:]):
            lo, hi = math.ceil(a), math.ceil(b) - 1
            out.append(f"{lo:g}" if lo >= hi else f"{lo:g}–{hi:g}")
        return out
    return [f"[{a:.4g}, {b:.4g})" for a, b in zip(edges, edges[1:])]


def shares(codes: np.ndarray, k: int) -> np.ndarray:
    import numpy as np

    counts = np.bincount(codes, minlength=k)[:k].astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    import numpy as np

    return float(0.5 * np.abs(p - q).sum())


# ------------------------------------------------------------------------------------------------
# data figures (need the real data: built when the run is audited)


def data_figures(kind: str, real: Any, synthetic: Any, schema: Schema) -> list[Figure]:
    """The data figures of one run: real training data against synthetic data."""
    import polars as pl

    if kind == "graph":
        assert isinstance(real, GraphData) and isinstance(synthetic, GraphData)
        return graph_figures(real, synthetic, schema)
    if kind == "sequential":
        assert isinstance(real, SequenceData) and isinstance(synthetic, SequenceData)
        return sequence_figures(real, synthetic, schema)
    assert isinstance(real, pl.DataFrame) and isinstance(synthetic, pl.DataFrame)
    return table_figures(real, synthetic, schema)


def table_figures(real: pl.DataFrame, synthetic: pl.DataFrame, schema: Schema) -> list[Figure]:
    figs = [column_figure("columns", real, synthetic, list(schema.columns),
                          "Column distributions, worst first")]
    heat = association_figure(real, synthetic, list(schema.columns))
    if heat is not None:
        figs.append(heat)
    return figs


def column_figure(key: str, real: pl.DataFrame, synthetic: pl.DataFrame, columns: list[Column],
                  title: str, unit: str = "rows") -> Figure:
    """Real and synthetic shares per public cell of each column, the worst columns first (by total
    variation distance over the schema's cells)."""
    cells = []
    for col in columns:
        rc, labels = column_codes(real.get_column(col.name), col)
        sc, _ = column_codes(synthetic.get_column(col.name), col)
        p, q = shares(rc, len(labels)), shares(sc, len(labels))
        cells.append((tv_distance(p, q), col, labels, p, q))
    cells.sort(key=lambda c: -c[0])
    shown = cells[:MAX_COLUMN_PANELS]
    rest = cells[MAX_COLUMN_PANELS:]

    def build(with_real: bool) -> dict[str, Any]:
        ncols = 2 if len(shown) > 1 else 1
        nrows = max(1, math.ceil(len(shown) / ncols))
        data: list[dict[str, Any]] = []
        # fixed pixels per panel and between rows (room for rotated category labels and the next title)
        panel_px, gap_px, top_px, bottom_px = 220, 150, 40, 150
        plot_px = nrows * panel_px + (nrows - 1) * gap_px
        layout = _layout(height=plot_px + top_px + bottom_px, barmode="group",
                         margin={"l": 60, "r": 20, "t": top_px, "b": bottom_px})
        annotations = []
        h_gap, v_gap = 0.10, gap_px / plot_px
        width = (1 - h_gap * (ncols - 1)) / ncols
        height = panel_px / plot_px
        for i, (tv, col, labels, p, q) in enumerate(shown):
            r, c = divmod(i, ncols)
            ax = "" if i == 0 else str(i + 1)
            x0 = c * (width + h_gap)
            y1 = 1 - r * (height + v_gap)
            # which categories get a bar of their own: in the released view chosen by the synthetic shares
            # alone, so that the choice does not show which categories are large in the real data
            xs, ps, qs = _top_cells(labels, p, q, by_real=with_real)
            first = i == 0
            if with_real:
                data.append({"type": "bar", "x": xs, "y": _r4(ps), "name": REAL_NAME, "legendgroup": "real",
                             "showlegend": first, "marker": {"color": REAL_COLOUR},
                             "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                             "hovertemplate": "%{x}: %{y:.3f}<extra>" + REAL_NAME + "</extra>"})
            data.append({"type": "bar", "x": xs, "y": _r4(qs), "name": SYN_NAME, "legendgroup": "syn",
                         "showlegend": first, "marker": {"color": SYN_COLOUR, "pattern": {"shape": "/"}},
                         "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                         "hovertemplate": "%{x}: %{y:.3f}<extra>" + SYN_NAME + "</extra>"})
            layout[f"xaxis{ax}"] = _axis(domain=[x0, x0 + width], anchor=f"y{ax}", type="category",
                                         tickangle=-40 if len(xs) > 6 else 0, tickfont={"size": 10})
            layout[f"yaxis{ax}"] = _axis(domain=[y1 - height, y1], anchor=f"x{ax}", rangemode="tozero",
                                         title={"text": "share" if c == 0 else ""}, tickformat=".0%")
            annotations.append({"text": f"<b>{esc(col.name)}</b>  TV distance {tv:.3f}", "x": x0, "y": y1,
                                "xref": "paper", "yref": "paper", "xanchor": "left", "yanchor": "bottom",
                                "showarrow": False, "font": {"size": 12}})
        layout["annotations"] = annotations
        return {"data": data, "layout": layout}

    rest_text = ""
    if rest:
        rest_text = (f" {len(rest)} further columns are closer (TV distance at most {rest[0][0]:.3f}): "
                     + ", ".join(f"{c[1].name} {c[0]:.3f}" for c in rest) + ".")
    caption = (f"Share of {unit} in each category or public bin of the schema, real training split (solid blue) "
               f"against synthetic (hatched orange), the columns with the largest total variation (TV) distance "
               f"first. TV distance is half the summed absolute difference of the shares: 0 is identical, 1 is "
               f"disjoint.{rest_text}")
    release_caption = (f"Share of synthetic {unit} in each category or public bin of the schema, the columns with the "
                       f"largest total variation (TV) distance from the real training split first. The real "
                       f"distributions are withheld from the released report: a histogram of real records can show "
                       f"a value that one person holds, and audit figures are not differentially private. The "
                       f"steward's copy of this report shows them.{rest_text}")
    return Figure(key=key, section="fidelity", title=title, caption=caption, steward=build(True),
                  release=build(False), release_caption=release_caption)


def _top_cells(labels: list[str], p: np.ndarray, q: np.ndarray, *, by_real: bool = True,
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The largest categories (by either share, or by the synthetic share alone) and one bar for the rest."""
    import numpy as np

    if len(labels) <= MAX_CATEGORIES:
        return labels, p, q
    weight = np.maximum(p, q) if by_real else q
    keep = np.argsort(-weight, kind="stable")[: MAX_CATEGORIES - 1]
    keep = np.sort(keep)
    others = np.setdiff1d(np.arange(len(labels)), keep)
    xs = [labels[i] for i in keep] + [f"{len(others)} other categories"]
    return xs, np.append(p[keep], p[others].sum()), np.append(q[keep], q[others].sum())


def _r4(x: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in x]


def cramers_v_matrix(frame: pl.DataFrame, columns: list[Column]) -> np.ndarray:
    """Cramér's V of every column pair over the schema's public cells (NaN where a column has one
    occupied cell). A uniform association measure for categorical and binned numeric columns."""
    import numpy as np

    codes = []
    for col in columns:
        c, labels = column_codes(frame.get_column(col.name), col)
        codes.append((c, len(labels)))
    m = len(columns)
    out = np.full((m, m), np.nan)
    n = frame.height
    for i in range(m):
        out[i, i] = 1.0
        for j in range(i + 1, m):
            (a, ka), (b, kb) = codes[i], codes[j]
            full = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
            # only occupied cells: an empty public category is neither evidence for nor against association
            occupied = full[np.ix_(full.sum(axis=1) > 0, full.sum(axis=0) > 0)]
            n_rows, n_cols = occupied.shape
            if n == 0 or min(n_rows, n_cols) < 2:
                continue
            expected = np.outer(occupied.sum(axis=1), occupied.sum(axis=0)) / n
            chi2 = float(((occupied - expected) ** 2 / expected).sum())
            out[i, j] = out[j, i] = math.sqrt(chi2 / (n * (min(n_rows, n_cols) - 1)))
    return out


def association_figure(real: pl.DataFrame, synthetic: pl.DataFrame, columns: list[Column]) -> Figure | None:
    """Heat map of synthetic minus real Cramér's V for every column pair."""
    import numpy as np

    if len(columns) < 2:
        return None
    cols = columns[:MAX_HEATMAP_COLUMNS]
    v_real = cramers_v_matrix(real, cols)
    v_syn = cramers_v_matrix(synthetic, cols)
    diff = v_syn - v_real
    np.fill_diagonal(diff, np.nan)  # a column with itself says nothing
    names = [esc(c.name) for c in cols]
    z = [[None if math.isnan(x) else round(float(x), 3) for x in row] for row in diff]
    text = [["" if math.isnan(x) else f"{x:+.2f}" for x in row] for row in diff]
    big = len(cols) > 16
    trace: dict[str, Any] = {
        "type": "heatmap", "z": z, "x": names, "y": names, "zmin": -1, "zmax": 1, "zmid": 0,
        "colorscale": [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]],
        "colorbar": {"title": {"text": "V(syn) − V(real)"}},
        "hovertemplate": "%{y} × %{x}: %{z:+.3f}<extra></extra>",
    }
    if not big:
        trace["text"] = text
        trace["texttemplate"] = "%{text}"
        trace["textfont"] = {"size": 10}
    size = 60 + 32 * len(cols)
    spec = {"data": [trace], "layout": _layout(
        height=max(380, size + 120), width=None,
        xaxis=_axis(tickangle=-45, type="category", showgrid=False),
        yaxis=_axis(autorange="reversed", type="category", showgrid=False))}
    worst = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else math.nan
    caption = ("Pair trends: for every pair of columns, how much more (red) or less (blue) associated the two "
               "columns are in the synthetic data than in the real training split, as the difference of Cramér's V "
               "over the schema's categories and public bins (V is 0 for independent columns and 1 for a column "
               "that determines the other). 0 (white) means the pair's association is reproduced"
               + ("" if big else "; each cell is also printed") +
               (f". Largest absolute difference: {worst:.3f}." if not math.isnan(worst) else ".")
               + (f" The first {MAX_HEATMAP_COLUMNS} columns are shown." if len(columns) > len(cols) else ""))
    return Figure(key="pair_trends", section="fidelity", title="Pair trends: association differences",
                  caption=caption, steward=spec, release=spec)


def sequence_figures(real: SequenceData, synthetic: SequenceData, schema: Schema) -> list[Figure]:
    import numpy as np

    from audits.sequential.features import (
        column_states,
        encode,
        state_cardinality,
        state_columns,
        transition_pairs,
    )

    spec = schema.seq
    figs: list[Figure] = []
    # events per entity over 1..max_events (the public cap)
    cap = spec.max_events
    width = max(1, math.ceil(cap / 50))
    edges = np.arange(0, cap + width + 1, width)
    labels = [f"{int(a)}" if width == 1 else f"{int(a)}–{int(a + width - 1)}" for a in edges[:-1]]
    p = np.histogram(real.lengths(), bins=edges)[0].astype(float)
    q = np.histogram(synthetic.lengths(), bins=edges)[0].astype(float)
    figs.append(_pair_histogram("lengths", "Events per entity", labels, p, q, "events per entity", "entities",
                                f"Share of entities with each number of events, from 0 to the schema's cap of "
                                f"{cap} events per entity."))
    # gaps between consecutive events of one entity over the public gap bounds
    g_lo, g_hi = spec.gap_min, spec.gap_max
    span = g_hi - g_lo
    step = 1 if span <= 30 else math.ceil((span + 1) / 30)
    g_edges = np.arange(g_lo, g_hi + step + 1, step) - 0.5
    g_labels = [f"{int(a + 0.5)}" if step == 1 else f"{int(a + 0.5)}–{int(a + 0.5 + step - 1)}" for a in g_edges[:-1]]
    gr = real.gaps().drop_nulls().to_numpy().astype(float)
    gs = synthetic.gaps().drop_nulls().to_numpy().astype(float)
    figs.append(_pair_histogram("gaps", "Gaps between consecutive events", g_labels,
                                np.histogram(np.clip(gr, g_lo, g_hi), bins=g_edges)[0].astype(float),
                                np.histogram(np.clip(gs, g_lo, g_hi), bins=g_edges)[0].astype(float),
                                f"gap ({spec.order_type} order units)", "gaps",
                                f"Share of gaps between consecutive events of one entity, over the schema's public gap "
                                f"bounds [{g_lo}, {g_hi}]."))
    # transitions of the state column that the synthetic data reproduces worst
    enc_r, enc_s = encode(real, schema), encode(synthetic, schema)
    best: tuple[float, Column, np.ndarray, np.ndarray, int] | None = None
    for col in state_columns(schema):
        k = state_cardinality(col)
        if k > MAX_TRANSITION_STATES:
            continue
        pr = _transition_matrix(*transition_pairs(column_states(enc_r, col), enc_r)[:2], k)
        ps = _transition_matrix(*transition_pairs(column_states(enc_s, col), enc_s)[:2], k)
        tv = float(0.5 * np.abs(pr - ps).sum(axis=1).mean())
        if best is None or tv > best[0]:
            best = (tv, col, pr, ps, k)
    if best is not None:
        figs.append(_transition_figure(*best))
    # event columns (per event) and static columns (per entity)
    if schema.event_columns:
        figs.append(column_figure("event_columns", real.events, synthetic.events, list(schema.event_columns),
                                  "Event columns, worst first", unit="events"))
    if schema.static_columns:
        figs.append(column_figure("static_columns", real.statics, synthetic.statics, list(schema.static_columns),
                                  "Entity (static) columns, worst first", unit="entities"))
    return figs


def _transition_matrix(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    import numpy as np

    counts = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, counts / np.maximum(rows, 1), 0.0)


def _transition_figure(tv: float, col: Column, pr: np.ndarray, ps: np.ndarray, k: int) -> Figure:
    if col.type == "categorical":
        labels = [esc(c) for c in col.categories]
    else:
        labels = _bin_labels(col, col.bin_edges())
    if len(labels) < k:
        labels = [*labels, "missing"]
    hover = "from %{y} to %{x}: %{z:.3f}<extra></extra>"

    def heat(z: np.ndarray, diverging: bool, bar: str) -> dict[str, Any]:
        trace: dict[str, Any] = {"type": "heatmap", "z": [[round(float(v), 4) for v in row] for row in z],
                                 "x": labels, "y": labels, "hovertemplate": hover,
                                 "colorbar": {"title": {"text": bar}}}
        if diverging:
            trace.update(zmin=-1, zmax=1, zmid=0, colorscale=[[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]])
        else:
            trace.update(zmin=0, zmax=1, colorscale="Viridis")
        if k <= 12:
            trace["text"] = [[f"{v:+.2f}" if diverging else f"{v:.2f}" for v in row] for row in z]
            trace["texttemplate"] = "%{text}"
            trace["textfont"] = {"size": 10}
        return {"data": [trace], "layout": _layout(
            height=max(380, 80 + 30 * k),
            xaxis=_axis(title={"text": f"next {esc(col.name)}"}, type="category", tickangle=-40, showgrid=False),
            yaxis=_axis(title={"text": f"{esc(col.name)}"}, type="category", autorange="reversed", showgrid=False))}

    caption = (f"Transitions between consecutive events of one entity in column {col.name!r} (the state column the "
               f"synthetic data reproduces worst, mean total variation distance {tv:.3f} over the states): each "
               f"cell is the synthetic minus the real probability of the next value (column) given the current "
               f"one (row). Red: more frequent in the synthetic data; blue: less.")
    release_caption = (f"Transitions between consecutive events of one entity in column {col.name!r} in the synthetic "
                       f"data: the probability of the next value (column) given the current one (row). The real "
                       f"transition probabilities (and their differences, which reveal them) are withheld from the "
                       f"released report; the mean total variation distance from the real ones is {tv:.3f}.")
    return Figure(key="transitions", section="fidelity", title=f"Transitions of {col.name}", caption=caption,
                  steward=heat(ps - pr, True, "P(syn) − P(real)"), release=heat(ps, False, "P(next | current)"),
                  release_caption=release_caption)


def _pair_histogram(key: str, title: str, labels: list[str], real_counts: np.ndarray, syn_counts: np.ndarray,
                    x_title: str, unit: str, what: str) -> Figure:
    p = real_counts / real_counts.sum() if real_counts.sum() > 0 else real_counts
    q = syn_counts / syn_counts.sum() if syn_counts.sum() > 0 else syn_counts
    tv = tv_distance(p, q)

    def build(with_real: bool) -> dict[str, Any]:
        data = []
        if with_real:
            data.append({"type": "bar", "x": labels, "y": _r4(p), "name": REAL_NAME, "marker": {"color": REAL_COLOUR},
                         "hovertemplate": "%{x}: %{y:.3f}<extra>" + REAL_NAME + "</extra>"})
        data.append({"type": "bar", "x": labels, "y": _r4(q), "name": SYN_NAME,
                     "marker": {"color": SYN_COLOUR, "pattern": {"shape": "/"}},
                     "hovertemplate": "%{x}: %{y:.3f}<extra>" + SYN_NAME + "</extra>"})
        return {"data": data, "layout": _layout(
            height=360, barmode="group", showlegend=True,
            xaxis=_axis(title={"text": esc(x_title)}, type="category", tickangle=-40 if len(labels) > 12 else 0),
            yaxis=_axis(title={"text": f"share of {unit}"}, tickformat=".0%", rangemode="tozero"))}

    caption = f"{what} Real training split (solid blue) against synthetic (hatched orange); TV distance {tv:.3f}."
    release_caption = (f"{what} Synthetic data only; TV distance from the real training split {tv:.3f}. The real "
                       f"distribution is withheld from the released report (a histogram of real records can show one "
                       f"person's value); the steward's copy shows it.")
    return Figure(key=key, section="fidelity", title=title, caption=caption, steward=build(True),
                  release=build(False), release_caption=release_caption)


def degree_ccdf(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positive degrees ``d`` and the share of all nodes with degree >= ``d``."""
    import numpy as np

    deg = np.asarray(degrees, dtype=np.int64)
    if deg.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    values, counts = np.unique(deg[deg > 0], return_counts=True)
    at_least = counts[::-1].cumsum()[::-1] / deg.size
    return values, at_least


def graph_figures(real: GraphData, synthetic: GraphData, schema: Schema) -> list[Figure]:
    """Degree distributions side by side (log-log), their CCDFs overlaid, and node attributes."""
    d_real, d_syn = real.degrees(), synthetic.degrees()
    figs = [_degree_figure(d_real, d_syn, real.directed)]
    if schema.columns and real.nodes is not None and synthetic.nodes is not None:
        figs.append(column_figure("node_columns", real.nodes, synthetic.nodes, list(schema.columns),
                                  "Node attributes, worst first", unit="nodes"))
    return figs


def _degree_points(deg: np.ndarray) -> tuple[list[int], list[float]]:
    import numpy as np

    values, counts = np.unique(deg[deg > 0], return_counts=True)
    return [int(v) for v in values], [round(float(c) / max(1, deg.size), 6) for c in counts]


def _degree_figure(d_real: np.ndarray, d_syn: np.ndarray, directed: bool) -> Figure:
    what = "total degree (in + out)" if directed else "degree"
    xr, yr = _degree_points(d_real)
    xs, ys = _degree_points(d_syn)
    cr_x, cr_y = degree_ccdf(d_real)
    cs_x, cs_y = degree_ccdf(d_syn)
    def log_x(top: int) -> dict[str, Any]:
        return _axis(type="log", title={"text": what}, range=[-0.05, math.log10(max(top, 10) * 1.5)], dtick="D2")

    # the released figure's axis reaches the synthetic graph's top degree only: the real one is a hub's degree
    steward_x, release_x = log_x(max([*xr, *xs, 1])), log_x(max([*xs, 1]))
    log_y = _axis(type="log", title={"text": "share of nodes"}, exponentformat="power", dtick="D2")
    real_pts = {"type": "scatter", "mode": "markers", "x": xr, "y": yr, "name": REAL_NAME,
                "marker": {"color": REAL_COLOUR, "symbol": "circle", "size": 6}, "xaxis": "x", "yaxis": "y",
                "hovertemplate": "degree %{x}: %{y:.4f}<extra>" + REAL_NAME + "</extra>"}
    syn_pts = {"type": "scatter", "mode": "markers", "x": xs, "y": ys, "name": SYN_NAME,
               "marker": {"color": SYN_COLOUR, "symbol": "square", "size": 6},
               "hovertemplate": "degree %{x}: %{y:.4f}<extra>" + SYN_NAME + "</extra>"}
    ccdf_real = {"type": "scatter", "mode": "lines", "x": [int(v) for v in cr_x], "y": _r4(cr_y),
                 "name": f"{REAL_NAME}, share with degree ≥ d", "line": {"color": REAL_COLOUR, "dash": "solid"},
                 "xaxis": "x3", "yaxis": "y3"}
    ccdf_syn = {"type": "scatter", "mode": "lines", "x": [int(v) for v in cs_x], "y": _r4(cs_y),
                "name": f"{SYN_NAME}, share with degree ≥ d", "line": {"color": SYN_COLOUR, "dash": "dash"},
                "xaxis": "x3", "yaxis": "y3"}

    def title(text: str, x: float) -> dict[str, Any]:
        return {"text": f"<b>{text}</b>", "x": x, "y": 1.0, "xref": "paper", "yref": "paper", "xanchor": "left",
                "yanchor": "bottom", "showarrow": False}

    steward = {"data": [real_pts, {**syn_pts, "xaxis": "x2", "yaxis": "y2"}, ccdf_real, ccdf_syn],
               "layout": _layout(
                   height=420,
                   xaxis={**steward_x, "domain": [0.0, 0.28], "anchor": "y"},
                   yaxis={**log_y, "domain": [0.0, 1.0], "anchor": "x"},
                   xaxis2={**steward_x, "domain": [0.36, 0.64], "anchor": "y2"},
                   yaxis2={**log_y, "domain": [0.0, 1.0], "anchor": "x2", "matches": "y"},
                   xaxis3={**steward_x, "domain": [0.72, 1.0], "anchor": "y3"},
                   yaxis3={**log_y, "domain": [0.0, 1.0], "anchor": "x3", "title": {"text": "share with degree ≥ d"}},
                   annotations=[title("Real training graph", 0.0), title("Synthetic graph", 0.36),
                                title("Both: CCDF", 0.72)])}
    release = {"data": [{**syn_pts, "xaxis": "x", "yaxis": "y"},
                        {**ccdf_syn, "xaxis": "x2", "yaxis": "y2"}],
               "layout": _layout(
                   height=420,
                   xaxis={**release_x, "domain": [0.0, 0.46], "anchor": "y"},
                   yaxis={**log_y, "domain": [0.0, 1.0], "anchor": "x"},
                   xaxis2={**release_x, "domain": [0.54, 1.0], "anchor": "y2"},
                   yaxis2={**log_y, "domain": [0.0, 1.0], "anchor": "x2", "title": {"text": "share with degree ≥ d"}},
                   annotations=[title("Synthetic graph", 0.0), title("Synthetic graph: CCDF", 0.54)])}
    caption = (f"Degree distributions on log-log axes: the share of nodes with each {what}, real training graph "
               f"(blue circles) and synthetic graph (orange squares) side by side on the same axes, and both "
               f"complementary cumulative distributions (the share of nodes with degree at least d; real solid, "
               f"synthetic dashed). Nodes of degree 0 are counted in the shares but cannot be drawn on a log axis.")
    release_caption = (f"The synthetic graph's degree distribution on log-log axes (share of nodes with each {what}) "
                       f"and its complementary cumulative distribution. The real graph's degree distribution is "
                       f"withheld from the released report: a degree held by one node (a hub) would be visible, and "
                       f"audit figures are not differentially private. The degree comparison is in the fidelity "
                       f"figures below; the steward's copy shows the real distribution.")
    return Figure(key="degrees", section="fidelity", title="Degree distributions", caption=caption,
                  steward=steward, release=release, release_caption=release_caption)


# ------------------------------------------------------------------------------------------------
# document figures (from audit.json alone)


_ROC_ATTACKS = {
    "domias_auc": "density-ratio attack (DOMIAS)",
    "game_auc": "privacy game (shadow models)",
    "edge_membership_auc": "edge membership attack",
}


def document_figures(document: dict[str, Any]) -> list[Figure]:
    """The figures drawn from the audit document alone (safe in the released report: they show the
    attacks' rates and the audits' scores, which ``audit.json`` already carries)."""
    metrics = {(r.get("audit"), m.get("name")): m for r in document.get("results") or [] for m in r.get("metrics") or []}
    claim = document.get("context") or {}
    figs: list[Figure] = []
    roc = roc_figure(metrics, claim.get("epsilon"), claim.get("delta"))
    if roc is not None:
        figs.append(roc)
    game = game_figure(metrics)
    if game is not None:
        figs.append(game)
    risks = anonymeter_figure(document)
    if risks is not None:
        figs.append(risks)
    graph = graph_components_figure(metrics)
    if graph is not None:
        figs.append(graph)
    util = utility_figure(metrics)
    if util is not None:
        figs.append(util)
    return figs


def dp_roc_envelope(epsilon: float, delta: float, fpr: np.ndarray) -> np.ndarray:
    """The largest TPR any test can reach at each FPR against an (epsilon, delta)-DP mechanism
    (Kairouz, Oh, Viswanath 2015): min(e^eps fpr + delta, 1 - e^-eps (1 - delta - fpr), 1)."""
    import numpy as np

    e = math.exp(epsilon)
    return np.minimum.reduce([e * fpr + delta, 1 - (1 - delta - fpr) / e, np.ones_like(fpr)])


def roc_figure(metrics: dict[tuple[Any, Any], dict[str, Any]], epsilon: Any, delta: Any) -> Figure | None:
    import numpy as np

    curves = []
    for (_audit, name), m in metrics.items():
        roc = (m.get("details") or {}).get("roc")
        if name in _ROC_ATTACKS and isinstance(roc, dict) and roc.get("fpr") and roc.get("tpr"):
            curves.append((name, m, roc))
    if not curves:
        return None
    dashes = ["solid", "dash", "dot"]
    symbols = ["circle", "square", "diamond"]
    colours = [ACCENT, "#009E73", "#CC79A7"]
    data: list[dict[str, Any]] = []
    floor = min(x for _, _, roc in curves for x in roc["fpr"] if x > 0)
    grid = np.unique(np.concatenate([np.geomspace(max(floor, 1e-4), 1.0, 80), np.linspace(0, 1, 41)]))
    for panel, (xa, ya) in enumerate((("x", "y"), ("x2", "y2"))):
        data.append({"type": "scatter", "mode": "lines", "x": _r4(grid), "y": _r4(grid), "name": "chance (a coin flip)",
                     "line": {"color": GREY, "dash": "dot", "width": 1}, "xaxis": xa, "yaxis": ya,
                     "showlegend": panel == 0, "legendgroup": "chance", "hoverinfo": "skip"})
        if isinstance(epsilon, (int, float)) and isinstance(delta, (int, float)) and epsilon > 0:
            env = dp_roc_envelope(float(epsilon), float(delta), grid)
            data.append({"type": "scatter", "mode": "lines", "x": _r4(grid), "y": _r4(env),
                         "name": f"most any attack can reach under the claimed ε = {epsilon:g}",
                         "line": {"color": "#000000", "dash": "dashdot", "width": 1}, "xaxis": xa, "yaxis": ya,
                         "showlegend": panel == 0, "legendgroup": "envelope", "hoverinfo": "skip"})
        for i, (name, m, roc) in enumerate(curves):
            fpr, tpr = roc["fpr"], roc["tpr"]
            if panel == 1:
                pts = [(f, t) for f, t in zip(fpr, tpr) if f > 0]
                fpr, tpr = [p[0] for p in pts], [p[1] for p in pts]
            iv = m.get("interval") or [None, None]
            label = f"{_ROC_ATTACKS[name]}: AUC {_num(m.get('value'))}" + (
                f" [{_num(iv[0])}, {_num(iv[1])}]" if iv and iv[0] is not None else "")
            data.append({"type": "scatter", "mode": "lines+markers", "x": fpr, "y": tpr, "name": esc(label),
                         "line": {"color": colours[i % 3], "dash": dashes[i % 3], "shape": "hv"},
                         "marker": {"symbol": symbols[i % 3], "size": 4, "maxdisplayed": 30},
                         "xaxis": xa, "yaxis": ya, "showlegend": panel == 0, "legendgroup": name,
                         "hovertemplate": "FPR %{x:.4f}, TPR %{y:.4f}<extra></extra>"})
    layout = _layout(
        height=460,
        xaxis=_axis(domain=[0.0, 0.45], anchor="y", range=[0, 1], title={"text": "false positive rate"}),
        yaxis=_axis(domain=[0.0, 1.0], anchor="x", range=[0, 1], title={"text": "true positive rate"}),
        xaxis2=_axis(domain=[0.55, 1.0], anchor="y2", type="log", range=[math.log10(max(floor, 1e-4)), -1],
                     title={"text": "false positive rate (log scale, up to 10%)"}),
        yaxis2=_axis(domain=[0.0, 1.0], anchor="x2", range=[0, 0.3], title={"text": "true positive rate"}),
        annotations=[
            {"text": "<b>Whole curve</b>", "x": 0.0, "y": 1.0, "xref": "paper", "yref": "paper", "xanchor": "left",
             "yanchor": "bottom", "showarrow": False},
            {"text": "<b>Low false-positive region, enlarged</b>", "x": 0.55, "y": 1.0, "xref": "paper",
             "yref": "paper", "xanchor": "left", "yanchor": "bottom", "showarrow": False}],
    )
    spec = {"data": data, "layout": layout}
    caption = ("ROC curves of the membership attacks: for each decision threshold, the share of real training "
               "records the attack flags (true positive rate) against the share of unseen real records it wrongly "
               "flags (false positive rate). The dotted diagonal is chance; a curve near it means the attack cannot "
               "tell members from non-members. The right panel enlarges false positive rates up to 10% on a log "
               "scale, where an attack that finds a few records with confidence would show. The dash-dotted line is "
               "the most any attack can achieve against a mechanism with the claimed epsilon and delta: a curve "
               "above it, beyond noise, refutes the DP claim. At the lowest rates a handful of trials draws the "
               "curve, so a crossing there can be chance; the gate's epsilon lower bounds, with Clopper-Pearson "
               "intervals, decide whether it is beyond noise.")
    return Figure(key="roc", section="membership", title="Membership attacks: ROC curves", caption=caption,
                  steward=spec, release=spec)


def game_figure(metrics: dict[tuple[Any, Any], dict[str, Any]]) -> Figure | None:
    import numpy as np

    m = metrics.get(("shadow_game", "game_worst_target_auc"))
    per = ((m or {}).get("details") or {}).get("per_target")
    if not per:
        return None
    data = []
    for kind, symbol, colour in (("isolated", "diamond", ACCENT), ("random", "circle", REAL_COLOUR)):
        rows = [r for r in per if r.get("kind") == kind and isinstance(r.get("auc"), (int, float))
                and not math.isnan(r["auc"])]
        if not rows:
            continue
        lo = [r["auc"] - r["auc_interval"][0] for r in rows]
        hi = [r["auc_interval"][1] - r["auc"] for r in rows]
        data.append({"type": "scatter", "mode": "markers", "x": [r["target"] for r in rows],
                     "y": [round(r["auc"], 4) for r in rows], "name": f"{kind} targets",
                     "marker": {"symbol": symbol, "color": colour, "size": 8},
                     "error_y": {"type": "data", "array": _r4(np.asarray(hi)), "arrayminus": _r4(np.asarray(lo)),
                                 "color": colour, "thickness": 1},
                     "customdata": [[r.get("epsilon_lb", 0.0), r.get("members", 0), r.get("non_members", 0)]
                                    for r in rows],
                     "hovertemplate": "target %{x}: AUC %{y:.3f}<br>epsilon lower bound %{customdata[0]:.3f}"
                                      "<br>%{customdata[1]} in / %{customdata[2]} out trials<extra></extra>"})
    n = len(per)
    data.append({"type": "scatter", "mode": "lines", "x": [0.5, n + 0.5], "y": [0.5, 0.5], "name": "chance (0.5)",
                 "line": {"color": GREY, "dash": "dot"}, "hoverinfo": "skip"})
    pooled = metrics.get(("shadow_game", "game_auc"))
    if pooled is not None and pooled.get("threshold") is not None:
        data.append({"type": "scatter", "mode": "lines", "x": [0.5, n + 0.5], "y": [pooled["threshold"]] * 2,
                     "name": f"gate on the pooled AUC (≤ {pooled['threshold']:g})",
                     "line": {"color": "#000000", "dash": "dash"}, "hoverinfo": "skip"})
    spec = {"data": data, "layout": _layout(
        height=400, xaxis=_axis(title={"text": "target"}, range=[0.5, n + 0.5]),
        yaxis=_axis(title={"text": "attack AUC against this target"}, range=[0, 1.02]))}
    caption = ("The privacy game, per target record: the shadow-model attack's AUC at telling whether this one record "
               "was in the training data, with its 95% bootstrap interval (few trials per target, so the intervals are "
               "wide and the worst single target is reported, not gated). Diamonds are the most isolated held-out "
               "records (the likeliest to leak), circles random ones. Points scattered around 0.5 mean no target "
               "stands out; the gate reads the pooled AUC over all targets.")
    return Figure(key="game_targets", section="membership", title="Privacy game: per-target results",
                  caption=caption, steward=spec, release=spec)


_RISKS = ("singling_out_univariate", "singling_out_multivariate", "linkability", "inference")


def anonymeter_figure(document: dict[str, Any]) -> Figure | None:
    checks = [c for c in (document.get("gate") or {}).get("checks") or []
              if c.get("audit") == "anonymeter" and c.get("name") in _RISKS]
    if not checks:
        return None
    names = [c["name"].replace("_", " ") for c in checks]
    values = [c.get("value") if isinstance(c.get("value"), (int, float)) else None for c in checks]
    lo = [max(0.0, v - c["interval"][0]) if v is not None and c.get("interval") else 0.0 for v, c in zip(values, checks)]
    hi = [max(0.0, c["interval"][1] - v) if v is not None and c.get("interval") else 0.0 for v, c in zip(values, checks)]
    data = [
        {"type": "scatter", "mode": "markers", "x": values, "y": names, "name": "risk, with its 95% interval",
         "marker": {"color": REAL_COLOUR, "symbol": "circle", "size": 10},
         "error_x": {"type": "data", "array": hi, "arrayminus": lo, "color": REAL_COLOUR, "thickness": 2},
         "hovertemplate": "%{y}: %{x:.4f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "x": [c.get("threshold") for c in checks], "y": names,
         "name": "threshold (the gate reads the upper end)", "marker": {"color": "#000000", "symbol": "line-ns-open",
                                                                        "size": 22, "line": {"width": 3}},
         "hovertemplate": "%{y}: threshold %{x:.3f}<extra></extra>"},
    ]
    top = max([0.1, *[c["interval"][1] for c in checks if c.get("interval")],
               *[c.get("threshold") or 0 for c in checks]])
    spec = {"data": data, "layout": _layout(
        height=160 + 60 * len(checks),
        xaxis=_axis(title={"text": "risk: attack success on training rows beyond the same attack on held-out rows"},
                    range=[0, min(1.0, top * 1.15)]),
        yaxis=_axis(type="category", autorange="reversed"),
        margin={"l": 190, "r": 20, "t": 30, "b": 110})}
    caption = ("Anonymeter's risks (Giomi et al. 2023): singling out, linkability and inference attacks built from "
               "the synthetic data, scored by how much more often they succeed on the real training rows than on "
               "held-out rows the generator never saw. Each dot is the risk with its 95% interval; the vertical bar "
               "is the policy's threshold, which the interval's upper end must not pass.")
    return Figure(key="anonymeter", section="anonymeter", title="Anonymeter risks against their thresholds",
                  caption=caption, steward=spec, release=spec)


def utility_figure(metrics: dict[tuple[Any, Any], dict[str, Any]]) -> Figure | None:
    m = next((v for (audit, _), v in metrics.items() if audit == "utility"
              and isinstance((v.get("details") or {}).get("auc_trtr"), (int, float))), None)
    if m is None:
        return None
    d = m["details"]
    target = d.get("target", "the target")
    labels = ["trained on real training data", "trained on synthetic data"]
    data = [{"type": "bar", "orientation": "h", "y": labels, "x": [d.get("auc_trtr"), d.get("auc_tstr")],
             "marker": {"color": [REAL_COLOUR, SYN_COLOUR], "pattern": {"shape": ["", "/"]}},
             "text": [f"{d.get('auc_trtr'):.3f}", f"{d.get('auc_tstr'):.3f}"], "textposition": "outside",
             "name": "ROC AUC on real held-out data", "hovertemplate": "%{y}: %{x:.4f}<extra></extra>",
             "showlegend": False}]
    spec = {"data": data, "layout": _layout(
        height=300, xaxis=_axis(range=[0, 1.08], title={"text": "ROC AUC on the real held-out data"}),
        yaxis=_axis(type="category", autorange="reversed"), margin={"l": 210, "r": 30, "t": 30, "b": 90},
        shapes=[{"type": "line", "x0": 0.5, "x1": 0.5, "y0": 0, "y1": 1, "yref": "paper",
                 "line": {"color": GREY, "dash": "dot", "width": 1.5}}],
        annotations=[{"text": "chance", "x": 0.5, "y": 1.0, "yref": "paper", "showarrow": False, "yanchor": "bottom",
                      "font": {"size": 10, "color": GREY}}])}
    ratio = m.get("value")
    caption = (f"Utility: one model predicting {target}, trained once on the real training split and once on the "
               f"synthetic data, both tested on real held-out data (model: {d.get('model', 'a classifier')}). The "
               f"ratio of their ROC AUCs is {_num(ratio)}; 1 means no loss of predictive utility, and 0.5 AUC "
               f"(dotted line) is chance.")
    return Figure(key="utility", section="utility", title="Utility: train on synthetic, test on real",
                  caption=caption, steward=spec, release=spec)


def graph_components_figure(metrics: dict[tuple[Any, Any], dict[str, Any]]) -> Figure | None:
    m = metrics.get(("fidelity", "graph_fidelity_score"))
    if m is None:
        return None
    comps = (m.get("details") or {}).get("components")
    if not comps:
        return None
    names = list(comps)
    sims = [comps[k] for k in names]
    data = [{"type": "bar", "orientation": "h", "y": [esc(n) for n in names], "x": sims,
             "marker": {"color": REAL_COLOUR}, "text": [_num(s) for s in sims], "textposition": "outside",
             "name": "similarity (1 = identical)", "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}]
    thr = m.get("threshold")
    if thr is not None:
        data.append({"type": "scatter", "mode": "lines", "x": [m.get("value"), m.get("value")], "y": [names[0], names[-1]],
                     "name": f"score (mean) {_num(m.get('value'))}; gate ≥ {thr:g}",
                     "line": {"color": "#000000", "dash": "dash"}, "hoverinfo": "skip"})
    spec = {"data": data, "layout": _layout(
        height=160 + 28 * len(names), xaxis=_axis(range=[0, 1.12], title={"text": "similarity to the real training graph"}),
        yaxis=_axis(type="category", autorange="reversed"), margin={"l": 240, "r": 30, "t": 30, "b": 110})}
    caption = ("Graph fidelity, component by component: 1 minus the error or distance between the synthetic graph and "
               "the real training graph for degrees, clustering, triangles, assortativity, path lengths, communities, "
               "spectrum and components. The gate reads their mean (dashed line).")
    return Figure(key="graph_components", section="fidelity", title="Graph fidelity components", caption=caption,
                  steward=spec, release=spec)


def _num(x: Any) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return f"{x:.3f}"
    return "n/a"
