"""Typed audit results: every metric declares its goal, its threshold and whether it passed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Goal = Literal["maximize", "minimize"]
#: "gate": the check decides the release; "info": reported only.
Role = Literal["gate", "info"]
#: "threshold": held to a policy threshold; "dp_claim": a bound that no mechanism with the claimed
#: (epsilon, delta) can break, so a failure means the DP claim itself is false (DESIGN rule 6)
Kind = Literal["threshold", "dp_claim"]


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One measured figure held to one threshold.

    ``value`` is the point estimate; ``interval`` the 95% interval where the method gives one;
    ``gated_value`` the figure the threshold is applied to (e.g. the upper end of the interval).
    ``passed`` is None for info-only metrics.
    """

    name: str
    value: float
    goal: Goal
    threshold: float | None = None
    interval: tuple[float, float] | None = None
    gated_on: Literal["value", "upper", "lower"] = "value"
    role: Role = "gate"
    kind: Kind = "threshold"
    meaning: str = ""
    #: notes such as "underpowered: 4 queries evaluated"
    flags: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def gated_value(self) -> float:
        if self.gated_on == "upper" and self.interval is not None:
            return self.interval[1]
        if self.gated_on == "lower" and self.interval is not None:
            return self.interval[0]
        return self.value

    @property
    def passed(self) -> bool | None:
        if self.role != "gate" or self.threshold is None:
            return None
        v = self.gated_value
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return v <= self.threshold if self.goal == "minimize" else v >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _f(self.value),
            "interval": None if self.interval is None else [_f(self.interval[0]), _f(self.interval[1])],
            "gated_on": self.gated_on,
            "gated_value": _f(self.gated_value),
            "goal": self.goal,
            "threshold": self.threshold,
            "role": self.role,
            "kind": self.kind,
            "passed": self.passed,
            "meaning": self.meaning,
            "flags": list(self.flags),
            "details": self.details,
        }


def _f(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    """The metrics one audit produced."""

    audit: str
    metrics: tuple[Metric, ...]
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit": self.audit,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "metrics": [m.to_dict() for m in self.metrics],
        }
