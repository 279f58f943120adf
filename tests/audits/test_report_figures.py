"""The report's figures, first screen and page structure, on small real data and hostile input."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest

from audits.bounds import auc, roc_points, tpr_at_fpr
from audits.report import Figure, ReportExtras, data_figures, first_screen, load_figures_document, render_html
from audits.report.figures import (
    association_figure,
    column_codes,
    column_figure,
    cramers_v_matrix,
    dp_roc_envelope,
    figures_document,
)
from audits.result import AuditResult, Metric
from audits.suite import audit_document
from privacy.schema import Column, Schema

HOSTILE = '<img src=x onerror="alert(1)">'


def test_roc_points_are_the_attacks_step_function():
    rng = np.random.default_rng(3)
    members, non = rng.normal(0.8, 1, 500), rng.normal(0, 1, 400)
    roc = roc_points(members, non)
    fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) > 0) and np.all(np.diff(tpr) >= 0)
    # the grid reaches one non-member's rate, where an attack that finds a few records shows
    assert fpr[1] == pytest.approx(1 / 400, rel=1e-3)
    # at each grid point the TPR is what a threshold with at most that FPR achieves
    for f in (0.01, 0.1, 0.5):
        i = int(np.searchsorted(fpr, f, side="right") - 1)
        best = max(float((members >= t).mean()) for t in np.concatenate([members, non, [np.inf]])
                   if (non >= t).mean() <= fpr[i] + 1e-12)
        assert tpr[i] == pytest.approx(best, abs=1e-6)
    # the policies' operating points are on the grid, and agree with tpr_at_fpr
    for f in (0.01, 0.1):
        assert tpr[list(fpr).index(f)] == pytest.approx(tpr_at_fpr(members, non, f)[0])
    # the area under the step curve is the AUC (up to the grid's resolution)
    assert float(np.trapz(tpr, fpr)) == pytest.approx(auc(members, non), abs=0.02)
    # an attack that cannot tell gives the diagonal
    same = roc_points(non, non)
    assert float(np.trapz(same["tpr"], same["fpr"])) == pytest.approx(0.5, abs=0.01)


def test_dp_roc_envelope_closed_form():
    eps, delta = 1.0, 1e-5
    f = np.array([0.0, 0.01, 0.1, 0.5, 1.0])
    env = dp_roc_envelope(eps, delta, f)
    expected = [min(math.e * x + delta, 1 - (1 - delta - x) / math.e, 1.0) for x in f]
    assert env.tolist() == pytest.approx(expected)
    assert env[0] == pytest.approx(delta) and env[-1] == 1.0
    # epsilon 0 allows nothing above chance
    assert dp_roc_envelope(0.0, 0.0, f).tolist() == pytest.approx(f.tolist())


@pytest.fixture()
def hostile_schema() -> Schema:
    return Schema(columns=(
        Column(name=HOSTILE, type="categorical", categories=("a", "</script><b>x", "c")),
        Column(name="n", type="integer", min=0, max=9, bins=5),
        Column(name="f", type="float", min=0.0, max=1.0, bins=4),
    ))


def _frame(seed: int, n: int = 400, skew: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cat = rng.choice(["a", "</script><b>x", "c"], size=n, p=[0.5 - skew, 0.3, 0.2 + skew])
    num = np.clip(rng.integers(0, 10, size=n) + (cat == "a") * 3, 0, 9)
    return pl.DataFrame({HOSTILE: cat, "n": num, "f": rng.random(n)})


def test_column_codes_use_the_schemas_cells(hostile_schema: Schema):
    col = hostile_schema.column("n")
    codes, labels = column_codes(pl.Series([0, 1, 2, 9, 5]), col)
    assert labels == ["0–1", "2–3", "4–5", "6–7", "8–9"] and codes.tolist() == [0, 0, 1, 4, 2]
    codes, labels = column_codes(pl.Series([0.0, 0.24, 0.25, 1.0]), hostile_schema.column("f"))
    assert codes.tolist() == [0, 0, 1, 3] and len(labels) == 4
    # categories are escaped for plotly's label markup
    _, labels = column_codes(pl.Series(["a"]), hostile_schema.column(HOSTILE))
    assert labels[1] == "&lt;/script&gt;&lt;b&gt;x"


def test_column_figure_orders_worst_first_and_withholds_real_series(hostile_schema: Schema):
    real, syn = _frame(1), _frame(2, skew=0.3)
    fig = column_figure("columns", real, syn, list(hostile_schema.columns), "Columns")
    steward, release = fig.steward, fig.release
    assert release is not None
    # the skewed categorical column is the worst and comes first
    first = steward["layout"]["annotations"][0]["text"]
    assert "&lt;img" in first and "<img" not in first
    tvs = [float(re.search(r"TV distance ([0-9.]+)", a["text"]).group(1)) for a in steward["layout"]["annotations"]]
    assert tvs == sorted(tvs, reverse=True) and tvs[0] > 0.2
    assert {t["name"] for t in steward["data"]} == {"real (training split)", "synthetic"}
    assert {t["name"] for t in release["data"]} == {"synthetic"}
    # the shares are the data's, per public cell
    real_a = steward["data"][0]["y"][0]
    assert real_a == pytest.approx(float((real.get_column(HOSTILE) == "a").mean()), abs=1e-4)
    assert "withheld" in fig.release_caption and "withheld" not in fig.caption


def test_cramers_v_is_one_for_a_copy_and_near_zero_for_independence(hostile_schema: Schema):
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.integers(0, 10, n)
    frame = pl.DataFrame({HOSTILE: np.array(["a", "</script><b>x", "c"])[x % 3], "n": x,
                          "f": rng.random(n)})
    v = cramers_v_matrix(frame, list(hostile_schema.columns))
    assert v[0, 0] == 1.0 and v[0, 2] < 0.05 and v[1, 2] < 0.08
    assert v[0, 1] > 0.3  # n determines the category up to its public bins
    fig = association_figure(frame, frame, list(hostile_schema.columns))
    assert fig is not None and fig.release == fig.steward
    z = np.array(fig.steward["data"][0]["z"], dtype=float)
    assert np.all(np.isnan(np.diag(z))) and np.nanmax(np.abs(z)) == 0


def test_page_escapes_everything_and_keeps_headings_in_order(hostile_schema: Schema):
    real, syn = _frame(1), _frame(2, skew=0.3)
    figs = data_figures("tabular", real, syn, hostile_schema)
    gate = Metric(name="dcr_share", value=0.51, goal="minimize", threshold=0.55, interval=(0.49, 0.53),
                  meaning=f"meaning {HOSTILE}", details={"roc": roc_points([0.2, 0.9], [0.1, 0.3])})
    doc = audit_document([AuditResult(audit="membership", metrics=(gate,))],
                         {"run_id": "run-1", "source": HOSTILE, "epsilon": 1.0, "delta": 1e-9,
                          "unit_of_privacy": "one record", "accounting": "zCDP; parts: a; b"})
    for view in ("release", "steward"):
        page = render_html(doc, figs, ReportExtras(view=view))  # type: ignore[arg-type]
        assert "<img src=x" not in page and "</script><b>" not in page
        assert page.count("<script>") == 2  # plotly.js once, the loader once
        block = re.search(r'<script type="application/json" id="synthgate-plots">(.*?)</script>', page, re.S)
        assert block is not None
        plots = json.loads(block.group(1))
        assert len(plots) == len(figs)
        names = {t.get("name") for spec in plots.values() for t in spec["data"]}
        assert ("real (training split)" in names) == (view == "steward")
        assert ("Steward's copy: do not release." in page) == (view == "steward")
        levels = _headings(page)
        assert levels[0] == 1 and levels.count(1) == 1
        assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), levels
    # the guarantee's first clause on the first screen, the whole accounting in the appendix
    assert "Accounting: zCDP (the full accounting is in the methods appendix)." in page
    assert "zCDP; parts: a; b" in page


def _headings(page: str) -> list[int]:
    found: list[int] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
            if re.fullmatch(r"h[1-6]", tag):
                found.append(int(tag[1]))

    P().feed(page)
    return found


def _doc(*metrics: Metric, gate: dict | None = None) -> dict:
    doc = audit_document([AuditResult(audit="membership", metrics=metrics)],
                         {"run_id": "r", "epsilon": 2.0, "delta": 1e-8, "unit_of_privacy": "one row"})
    if gate is not None:
        doc["gate"] = gate
    return doc


def test_first_screen_says_whether_it_can_be_released():
    ok = Metric(name="dcr_share", value=0.5, goal="minimize", threshold=0.55, meaning="m")
    bad = Metric(name="exact", value=0.2, goal="minimize", threshold=0.01, meaning="m")
    lb = Metric(name="one_run_epsilon_lb", value=3.0, goal="minimize", threshold=2.0, kind="dp_claim", meaning="m")
    screen = first_screen(_doc(ok), ReportExtras(approvals_required=2, requester_may_approve=False, requester="carol",
                                                 approvals=({"steward": "alice", "decision": "approve"},)))
    assert screen.status == "pass"
    assert screen.headline == "Can be released once 1 more steward approves: the gate passed."
    assert "1 of 2 required (alice)" in screen.approvals and "carol" in screen.approvals
    assert screen.guarantee.startswith("(ε = 2, δ = 1e-08)-differential privacy for one row")
    failed = first_screen(_doc(ok, bad))
    assert failed.status == "fail" and failed.headline == "Cannot be released: 1 of 2 gate checks failed."
    assert "exact (0.2 against ≤ 0.01)" in failed.reason
    dp = first_screen(_doc(ok, lb))
    assert dp.status == "dp_failure" and [r.word for r in dp.rows] == ["pass", "DP FAILURE"]
    empty = first_screen(_doc(gate={"passed": True, "checks": []}))
    assert empty.status == "empty" and empty.headline.startswith("Cannot be released")
    file_audit = first_screen({"context": {"epsilon": None}, "gate": {"passed": True, "checks": []}})
    assert "No differential-privacy guarantee is claimed" in file_audit.guarantee


def test_figures_document_round_trips():
    fig = Figure(key="k", section="fidelity", title="t", caption="c", steward={"data": [], "layout": {}},
                 release=None, withheld="why")
    back = load_figures_document(json.loads(json.dumps(figures_document([fig]))))
    assert back == [fig]
    with pytest.raises(ValueError):
        load_figures_document({"synthgate_figures": 99})
    page = render_html(_doc(Metric(name="dcr_share", value=0.5, goal="minimize", threshold=0.55)), [fig])
    assert "withheld from the released report. why" in page


def test_document_figures_draw_the_game_targets_and_roc_from_audit_json():
    per_target = [{"target": i + 1, "kind": "isolated" if i < 3 else "random", "auc": 0.5 + 0.01 * i,
                   "auc_interval": [0.3, 0.7 + 0.01 * i], "epsilon_lb": 0.0, "members": 4, "non_members": 4}
                  for i in range(8)]
    per_target.append({"target": 9, "kind": "random", "auc": math.nan, "auc_interval": [math.nan, math.nan],
                       "epsilon_lb": 0.0, "members": 8, "non_members": 0})
    game = Metric(name="game_auc", value=0.52, interval=(0.48, 0.56), goal="minimize", threshold=0.6,
                  details={"roc": roc_points([0.1, 0.6, 0.9, 0.4], [0.2, 0.3, 0.5, 0.1])})
    worst = Metric(name="game_worst_target_auc", value=0.57, goal="minimize", role="info",
                   details={"per_target": per_target})
    doc = audit_document([AuditResult(audit="shadow_game", metrics=(game, worst))],
                         {"run_id": "r", "epsilon": 1.0, "delta": 1e-6})
    from audits.report import document_figures

    figs = {f.key: f for f in document_figures(doc)}
    assert set(figs) == {"roc", "game_targets"}
    targets = figs["game_targets"].steward["data"]
    isolated = next(t for t in targets if t["name"] == "isolated targets")
    random_ = next(t for t in targets if t["name"] == "random targets")
    # a target the coins never split has no AUC and is not drawn
    assert isolated["x"] == [1, 2, 3] and random_["x"] == [4, 5, 6, 7, 8]
    assert isolated["marker"]["symbol"] != random_["marker"]["symbol"]  # not colour alone
    gate = next(t for t in targets if t["name"].startswith("gate"))
    assert gate["y"] == [0.6, 0.6]
    roc = figs["roc"].steward["data"]
    envelope = next(t for t in roc if t["name"].startswith("most any attack"))
    assert envelope["y"][0] == pytest.approx(1e-6, abs=1e-5)
    # the released report shows the same (attack rates, not records)
    assert figs["roc"].release == figs["roc"].steward


def test_released_figures_choose_nothing_by_the_real_data():
    # 30 categories: which get a bar of their own in the released view follows the synthetic shares only
    cats = tuple(f"c{i}" for i in range(30))
    schema = Schema(columns=(Column(name="k", type="categorical", categories=cats),))
    real = pl.DataFrame({"k": ["c29"] * 50 + ["c0"] * 10})  # c29 is large only in the real data
    syn = pl.DataFrame({"k": [f"c{i}" for i in range(25)] * 2})
    fig = column_figure("columns", real, syn, list(schema.columns), "t")
    assert "c29" in fig.steward["data"][0]["x"]
    assert fig.release is not None and "c29" not in fig.release["data"][0]["x"]
    # a real hub's degree does not set the released degree axis
    from privacy.graphs import GraphData

    spec = Schema.from_dict({"kind": "graph", "graph": {"directed": False, "node_count": 200}})
    star = GraphData(n_nodes=200, edges=np.array([[0, i] for i in range(1, 200)], dtype=np.int64),
                     spec=spec.gspec, labels=tuple(str(i) for i in range(200)))
    path = star.with_edges(np.array([[i, i + 1] for i in range(199)]))
    from audits.report.figures import graph_figures

    (degrees,) = graph_figures(star, path, spec)
    assert degrees.steward["layout"]["xaxis"]["range"][1] > math.log10(199)
    assert degrees.release is not None and degrees.release["layout"]["xaxis"]["range"][1] < math.log10(100)
