"""The policy gate: a release may go on only if every gate check of the audits passed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audits.result import AuditResult
from audits.suite import gate_checks, gate_passed


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": self.checks}


def evaluate(results: list[AuditResult]) -> GateDecision:
    """Apply the thresholds the audits carry (they come from the source's policy)."""
    checks = gate_checks(results)
    if not checks:
        # an empty gate would pass trivially: refuse it rather than release unchecked data
        return GateDecision(passed=False, checks=[])
    return GateDecision(passed=gate_passed(results), checks=checks)
