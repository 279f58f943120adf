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

    @property
    def dp_failures(self) -> list[dict[str, Any]]:
        """Failed checks that no mechanism with the claimed (epsilon, delta) can fail: the claim is false."""
        return [c for c in self.failed if c.get("kind") == "dp_claim"]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": self.checks,
                "dp_failure": bool(self.dp_failures),
                "dp_failures": [c["name"] for c in self.dp_failures]}


def evaluate(results: list[AuditResult]) -> GateDecision:
    """Apply the thresholds the audits carry (they come from the source's policy)."""
    checks = gate_checks(results)
    if not checks:
        # an empty gate would pass trivially: refuse it rather than release unchecked data
        return GateDecision(passed=False, checks=[])
    return GateDecision(passed=gate_passed(results), checks=checks)
