"""The human documents of a bundle say what the guarantee covers, and what it does not."""

from __future__ import annotations

from typing import Any

from release.statement import datasheet_md, privacy_statement_md


def _statement(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "run_id": "run-1", "source": "adult", "source_commitment": "ab" * 32, "requester": "carol",
        "rows_requested": None, "domain_from_data": False,
        "spend": {"epsilon": 1.0, "delta": 1e-9},
        "policy": {"name": "health"},
        "schema": {"columns": {"age": {"type": "integer", "min": 17, "max": 90},
                               "sex": {"type": "categorical", "categories": ["Female", "Male"]}}},
        "generator": {"name": "mst", "unit_of_privacy": "one record of the training split", "accounting": "zCDP"},
    }
    st.update(over)
    return st


def test_statement_names_the_guarantee_and_the_limits() -> None:
    text = privacy_statement_md(_statement())
    assert "(1, 1e-09)-differential privacy" in text
    assert "one record of the training split" in text
    assert "came from the public schema" in text and "WARNING" not in text
    assert "**not** differentially private" in text
    assert "DP estimate of the training size" in text


def test_drafted_domain_is_declared_not_covered() -> None:
    text = privacy_statement_md(_statement(domain_from_data=True))
    assert "WARNING: the schema was drafted from the sensitive data" in text
    assert "came from the public schema" not in text


def test_datasheet_lists_public_domains_and_the_commitment_not_a_hash() -> None:
    text = datasheet_md(_statement())
    assert "| age | integer | [17, 90] |" in text and "Female, Male" in text
    assert "ab" * 32 in text and "SHA-256 `" not in text


def test_statement_reports_the_empirical_check_of_the_claim() -> None:
    gate = {"checks": [
        {"name": "one_run_epsilon_lb", "kind": "dp_claim", "value": 0.06, "threshold": 1.0, "passed": True},
        {"name": "dcr_share", "kind": "threshold", "value": 0.51, "threshold": 0.55, "passed": True},
    ]}
    text = privacy_statement_md(_statement(gate=gate))
    assert "Empirical check of the claim: one_run_epsilon_lb = 0.06 (must stay <= 1: held)" in text
    assert "dcr_share" not in text and "not a risk certificate" in text
    # without DP-claim checks (an older run) nothing is claimed about them
    assert "Empirical check" not in privacy_statement_md(_statement())
