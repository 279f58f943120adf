"""The audit document's JSON Schema (audits/schemas/audit-v1.schema.json): a valid draft 2020-12 schema
that describes every key, shipped as package data, and met by real audit.json documents of every data kind
(tables, sequences, graphs) built as the release code builds them; broken documents are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from audits.audit_schema import AUDIT_SCHEMA_URI, load_audit_schema, validate_audit_document
from audits.context import AuditContext, Claim
from audits.graph.suite import run_graph_audits
from audits.result import AuditResult
from audits.sequential.suite import run_sequence_audits
from audits.suite import DOCUMENT_VERSION, audit_document, run_audits
from privacy.errors import IntegrityError
from privacy.graphs import read_graph, split_edges
from privacy.schema import Schema
from privacy.sequences import conform_sequences, split_entities
from privacy.table import load_conformed, read_raw
from release.gate import evaluate

DATA = Path(__file__).resolve().parents[1] / "data"
CLAIM = Claim(epsilon=1.0, delta=1e-9)


def _release_document(results: list[AuditResult], context: dict[str, Any]) -> dict[str, Any]:
    """audit.json as release/runs.py and release/file_audit.py write it (through JSON and back)."""
    doc = audit_document(results, context)
    doc["gate"] = evaluate(results).to_dict()
    return json.loads(json.dumps(doc, allow_nan=False, sort_keys=True))  # type: ignore[no-any-return]


def _run_context(kind: str, source: str, target: str | None) -> dict[str, Any]:
    """The context release/runs.py writes for a run."""
    return {"run_id": "run-1", "source": source, "generator": "mst", "epsilon": 1.0, "delta": 1e-9,
            "policy": "default", "target": target, "unit_of_privacy": "one row of the training split",
            "accounting": "zCDP (rho) converted to (eps, delta)", "membership_profile": "fast", "kind": kind}


def _file_context(kind: str, source: str, target: str | None) -> dict[str, Any]:
    """The context release/file_audit.py writes for an outside file."""
    return {"audit_id": "file-0123456789ab", "source": source, "file": "synthetic.csv", "generator": "vendor",
            "epsilon": 1.0, "delta": 1e-9, "claimed_by": "the outside party (not verified by synthgate)",
            "policy": "default", "target": target, "split": "external split", "membership_profile": "fast",
            "conformed": {"rows": 10}, "kind": kind, "not_run": "audits that refit the generator"}


@pytest.fixture(scope="module")
def tabular_doc(make_policy: Any) -> dict[str, Any]:
    schema = Schema.load(DATA / "adult_schema.yaml")
    df, _ = load_conformed(DATA / "adult_2000.csv", schema)
    df = df.sample(fraction=1.0, shuffle=True, seed=11)
    train, holdout = df[:1400], df[1400:]
    policy = make_policy(anonymeter_rows=200, singling_out_attacks=50, linkability_attacks=50,
                          inference_attacks=50)
    # synthetic = unseen real rows: a generator that never looked at its training data
    results = run_audits(train, holdout, holdout, schema, policy, AuditContext(target="income", claim=CLAIM))
    return _release_document(results, _run_context("tabular", "adult", "income"))


@pytest.fixture(scope="module")
def sequential_doc(make_policy: Any) -> dict[str, Any]:
    schema = Schema.load(DATA / "pbcseq_schema.yaml")
    data, _ = conform_sequences(read_raw(DATA / "pbcseq.csv"), None, schema)
    train, holdout = split_entities(data, 0.3, 0)
    policy = make_policy(anonymeter_rows=200, singling_out_attacks=50, linkability_attacks=50,
                          inference_attacks=50)
    results = run_sequence_audits(train, holdout, holdout, schema, policy,
                                  AuditContext(target="status", claim=CLAIM))
    return _release_document(results, _file_context("sequential", "pbcseq", "status"))


@pytest.fixture(scope="module")
def graph_doc(make_policy: Any) -> dict[str, Any]:
    schema = Schema.load(DATA / "graph" / "email_schema.yaml")
    graph = read_graph(DATA / "graph" / "email-Eu-core.txt", None, schema)[0]
    train, holdout = split_edges(graph, 0.1, 7)
    # synthetic = the training graph: the leakiest generator, so the DP-claim check fails
    results = run_graph_audits(train, holdout, train, schema, make_policy(), AuditContext(claim=CLAIM))
    return _release_document(results, _run_context("graph", "email-eu-core", None))


def _refusal(doc: Any) -> str:
    with pytest.raises(IntegrityError) as info:
        validate_audit_document(doc)
    message = str(info.value)
    assert "\n" not in message and AUDIT_SCHEMA_URI in message
    return message


# -- the schema itself ------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_audit_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == AUDIT_SCHEMA_URI and schema["title"]
    assert schema["properties"]["synthgate_audit"]["const"] == DOCUMENT_VERSION
    assert schema["properties"]["schema"]["const"] == AUDIT_SCHEMA_URI
    # a fresh copy each time: a caller's edits do not leak into the validator
    schema["required"].clear()
    assert load_audit_schema()["required"]


def test_every_property_is_described() -> None:
    schema = load_audit_schema()

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return schema["$defs"][ref.removeprefix("#/$defs/")] if ref else node

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                assert "description" in sub or "description" in resolve(sub), f"{where}.{name}"
            for key, sub in node.items():
                if key not in {"allOf", "anyOf", "if", "then", "else"}:  # conditions, not declarations
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "")


def test_schema_ships_as_package_data() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'audits = ["schemas/*.json"]' in text


# -- real documents of every data kind ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tabular_doc", "sequential_doc", "graph_doc"])
def test_real_documents_validate(name: str, request: pytest.FixtureRequest) -> None:
    doc = request.getfixturevalue(name)
    assert doc["schema"] == AUDIT_SCHEMA_URI
    assert doc["context"]["kind"] == name.removesuffix("_doc")
    validate_audit_document(doc)
    metrics = [m for r in doc["results"] for m in r["metrics"]]
    assert {m["role"] for m in metrics} == {"gate", "info"}
    assert any(m["passed"] is None for m in metrics) and any(m["interval"] is not None for m in metrics)


def test_a_failed_dp_claim_validates(graph_doc: dict[str, Any]) -> None:
    assert graph_doc["gate"]["dp_failure"] is True and graph_doc["gate"]["dp_failures"]
    assert any(c["kind"] == "dp_claim" for c in graph_doc["gate"]["checks"])
    validate_audit_document(graph_doc)


def test_open_where_the_code_is_open(tabular_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(tabular_doc)
    doc["context"]["nodes_file"] = "nodes.csv"
    doc["context"]["something_new"] = {"any": ["thing"]}
    doc["results"][0]["metrics"][0]["details"] = {"nested": {"x": [1, None, "y"]}}
    doc["results"][1]["metrics"][0]["value"] = None  # a figure that could not be computed
    validate_audit_document(doc)


# -- broken documents are refused ---------------------------------------------------------------------


def _first_gate_metric(doc: dict[str, Any]) -> tuple[int, int]:
    for i, result in enumerate(doc["results"]):
        for j, metric in enumerate(result["metrics"]):
            if metric["role"] == "gate" and metric["interval"] is not None:
                return i, j
    raise AssertionError("no gate metric with an interval")


def test_metric_without_passed_is_refused(tabular_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(tabular_doc)
    i, j = _first_gate_metric(doc)
    del doc["results"][i]["metrics"][j]["passed"]
    assert f"results[{i}].metrics[{j}]" in _refusal(doc)


def test_bad_role_is_refused(sequential_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(sequential_doc)
    doc["results"][1]["metrics"][0]["role"] = "advisory"
    assert "results[1].metrics[0].role" in _refusal(doc)


def test_interval_of_three_numbers_is_refused(graph_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(graph_doc)
    i, j = _first_gate_metric(doc)
    doc["results"][i]["metrics"][j]["interval"] = [0.1, 0.2, 0.3]
    assert f"results[{i}].metrics[{j}].interval" in _refusal(doc)


def test_missing_gate_is_refused(tabular_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(tabular_doc)
    del doc["gate"]
    assert "'gate' is a required property" in _refusal(doc)


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda d: d["context"].update(kind="image"), id="unknown-kind"),
    pytest.param(lambda d: d["context"].pop("run_id"), id="neither-run-nor-file"),
    pytest.param(lambda d: d.update(extra=1), id="unknown-top-level-key"),
    pytest.param(lambda d: d.update(schema="https://synthgate.dev/schemas/audit-v0.json"), id="other-schema"),
    pytest.param(lambda d: d["results"][1]["metrics"][0].update(unexpected=1), id="unknown-metric-key"),
    pytest.param(lambda d: d["results"][1]["metrics"][0].update(goal="best"), id="bad-goal"),
    pytest.param(lambda d: d["results"][1]["metrics"][0].update(kind="hunch"), id="bad-kind"),
    pytest.param(lambda d: d["results"][1]["metrics"][0].update(gated_on="middle"), id="bad-gated-on"),
    pytest.param(lambda d: d["results"][1]["metrics"][0].update(details=[]), id="details-not-object"),
    pytest.param(lambda d: d["gate"]["checks"][0].update(passed=None), id="check-passed-null"),
    pytest.param(lambda d: d["gate"].pop("dp_failures"), id="gate-without-dp-failures"),
    pytest.param(lambda d: d["results"][0].pop("seconds"), id="result-without-seconds"),
])
def test_other_breakage_is_refused(tabular_doc: dict[str, Any], mutate: Any) -> None:
    doc = copy.deepcopy(tabular_doc)
    mutate(doc)
    _refusal(doc)


def test_info_metric_cannot_pass(tabular_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(tabular_doc)
    i, j = next((i, j) for i, r in enumerate(doc["results"]) for j, m in enumerate(r["metrics"])
                if m["role"] == "info")
    doc["results"][i]["metrics"][j]["passed"] = True
    assert f"results[{i}].metrics[{j}]" in _refusal(doc)


def test_not_a_document_is_refused() -> None:
    assert "(top level)" in _refusal([1, 2])
