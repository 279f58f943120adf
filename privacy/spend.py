"""One typed privacy-loss value and its composition."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from privacy.errors import InputError


@dataclass(frozen=True, kw_only=True)
class PrivacySpend:
    """An (epsilon, delta)-DP guarantee, with the zCDP rho where the mechanism is zCDP.

    ``rho`` is informative (the card records it); the ledger composes (epsilon, delta) by basic
    composition, which is sound for any mix of mechanisms.
    """

    epsilon: float
    delta: float = 0.0
    rho: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon)) or self.epsilon <= 0:
            raise InputError(f"epsilon ({self.epsilon}) must be a finite number > 0")
        if not (isinstance(self.delta, (int, float)) and math.isfinite(self.delta)) or not 0 <= self.delta < 1:
            raise InputError(f"delta ({self.delta}) must be in [0, 1)")
        if self.rho is not None and (not math.isfinite(self.rho) or self.rho <= 0):
            raise InputError(f"rho ({self.rho}) must be a finite number > 0")

    def as_dict(self) -> dict[str, float | None]:
        return {"epsilon": self.epsilon, "delta": self.delta, "rho": self.rho}


def compose(spends: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Basic sequential composition: epsilons add, deltas add (Dwork & Roth, Theorem 3.16)."""
    eps = 0.0
    delta = 0.0
    for e, d in spends:
        eps += e
        delta += d
    return eps, delta
