from __future__ import annotations

import json
import math

import pytest

from audits.report import render_html
from audits.result import AuditResult, Metric
from audits.suite import AUDITS, audit_document, gate_checks, gate_passed, run_audits

CONTEXT = {
    "run_id": "run-7",
    "source": "adult",
    "generator": "mst",
    "epsilon": 1.0,
    "delta": 1e-9,
    "policy": "default",
}


def _results(*, passing: bool = True) -> list[AuditResult]:
    gate = Metric(
        name="dcr_share",
        value=0.51 if passing else 0.7,
        goal="minimize",
        threshold=0.55,
        interval=(0.49, 0.53),
        meaning="Share of synthetic rows closer to <train> than holdout.",
        flags=("underpowered: 4 queries",),
        details={"variants": [{"variant": "subset 1", "columns": ["<b>x</b>", "age"], "share": 0.5}]},
    )
    info = Metric(name="anonymeter_sanity", value=0.0, goal="maximize", threshold=1.0, role="info")
    return [AuditResult(audit="membership", metrics=(gate, info), seconds=1.25, notes=("a & b",))]


def test_gate_checks_cover_gate_metrics_only():
    checks = gate_checks(_results())
    assert [c["name"] for c in checks] == ["dcr_share"]
    check = checks[0]
    assert check["audit"] == "membership"
    assert check["gated_value"] == 0.51 and check["threshold"] == 0.55 and check["goal"] == "minimize"
    assert check["passed"] is True
    assert check["flags"] == ["underpowered: 4 queries"]


def test_gate_passes_iff_every_gate_metric_passes():
    assert gate_passed(_results(passing=True)) is True
    assert gate_passed(_results(passing=False)) is False
    nan = Metric(name="inference", value=math.nan, goal="minimize", threshold=0.09, flags=("error: x",))
    assert gate_passed([*_results(), AuditResult(audit="anonymeter", metrics=(nan,))]) is False
    # an empty gate is refused, not trivially passed
    assert gate_passed([]) is False
    only_info = [AuditResult(audit="utility", metrics=(_results()[0].metrics[1],))]
    assert gate_passed(only_info) is False


def test_audit_document_is_json():
    doc = audit_document(_results(passing=False), CONTEXT)
    assert doc["synthgate_audit"] == 2
    assert doc["context"] == CONTEXT
    assert doc["gate"]["passed"] is False
    assert doc["results"][0]["audit"] == "membership"
    json.dumps(doc, allow_nan=False)


def test_html_is_self_contained_and_escaped():
    page = render_html(audit_document(_results(passing=False), CONTEXT))
    assert "<script" not in page.lower()
    assert "<script src" not in page
    assert "<link" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "&lt;train&gt;" in page and "a &amp; b" in page
    # the decision comes first, before the table of checks
    assert page.index("Decision: FAIL") < page.index("Gate checks")
    assert "underpowered: 4 queries" in page
    for value in ("run-7", "adult", "mst", "default"):
        assert value in page
    assert "NOT differentially private" in page


def test_html_renders_a_pass_and_missing_context():
    page = render_html(audit_document(_results(passing=True), {"run_id": "<r>"}))
    assert "Decision: PASS" in page
    assert "&lt;r&gt;" in page
    assert "Generator" not in page


def test_run_audits_end_to_end(train, holdout, copy_of_train, schema, make_policy):
    policy = make_policy(
        anonymeter_rows=300,
        singling_out_attacks=60,
        linkability_attacks=100,
        inference_attacks=60,
        linkability_splits=1,
    ).model_copy(update={"sensitive_columns": ["income", "sex"]})
    seen: list[str] = []
    results = run_audits(train, holdout, copy_of_train, schema, policy, progress=seen.append)
    assert seen == [name for name, _ in AUDITS] == [
        "membership", "domias", "one_run", "shadow_game", "anonymeter", "fidelity", "utility"
    ]
    assert [r.audit for r in results] == ["protocol", *seen]
    assert all(r.seconds > 0 for r in results[1:])
    names = [m.name for r in results for m in r.metrics]
    # no claim and no generator to refit: the DP-claim checks and the retraining audits do not run
    assert names == [
        "membership_profile",
        "dcr_share",
        "exact_match_train_minus_holdout",
        "domias_auc",
        "domias_tpr_at_fpr_1pct",
        "domias_tpr_at_fpr_10pct",
        "singling_out_univariate",
        "singling_out_multivariate",
        "linkability",
        "inference",
        "anonymeter_sanity",
        "quality_score",
        "diagnostic_score",
        "utility_auc_ratio",
    ]
    doc = audit_document(results, CONTEXT)
    assert doc["gate"]["passed"] is False  # a copy of the training data must never pass
    failed = {c["name"] for c in doc["gate"]["checks"] if not c["passed"]}
    assert {"dcr_share", "exact_match_train_minus_holdout", "linkability", "domias_auc"} <= failed
    json.dumps(doc, allow_nan=False)
    page = render_html(doc)
    assert "Decision: FAIL" in page
    # the density-ratio attack's ROC curve is drawn: plotly.js inlined once, one JSON block of figures
    assert page.count("<script>") == 2 and page.count('id="synthgate-plots"') == 1
    assert 'data-plot="roc"' in page and 'data-plot="anonymeter"' in page and 'data-plot="utility"' in page


@pytest.mark.slow
def test_run_audits_with_the_default_policy(train, holdout, independent, schema):
    from policies import load_policy

    results = run_audits(train, holdout, independent, schema, load_policy("default"))
    doc = audit_document(results, CONTEXT)
    checks = {c["name"]: c for c in doc["gate"]["checks"]}
    assert checks["dcr_share"]["passed"] and checks["exact_match_train_minus_holdout"]["passed"]


def test_a_refuted_dp_claim_is_a_dp_failure_not_a_threshold_miss():
    from release.gate import evaluate

    lb = Metric(name="one_run_epsilon_lb", value=2.9, goal="minimize", threshold=1.0, kind="dp_claim",
                details={"max_resolvable_epsilon": 4.19})
    results = [*_results(passing=False), AuditResult(audit="one_run", metrics=(lb,))]
    decision = evaluate(results)
    assert not decision.passed
    assert [c["name"] for c in decision.dp_failures] == ["one_run_epsilon_lb"]
    assert decision.to_dict()["dp_failure"] is True and decision.to_dict()["dp_failures"] == ["one_run_epsilon_lb"]
    # a threshold miss alone is not a DP failure
    assert evaluate(_results(passing=False)).to_dict()["dp_failure"] is False
    doc = audit_document(results, CONTEXT)
    doc["gate"] = decision.to_dict()
    page = render_html(doc)
    assert "Decision: FAIL (DP FAILURE)" in page
    assert "The claimed epsilon is refuted by one_run_epsilon_lb" in page
    # the table says it in words and a symbol, not only in colour
    assert "‼ DP FAILURE</td>" in page and "✗ FAIL</td>" in page
