"""What an audit may know besides the data: the DP claim under test, how to refit, progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from privacy.schema import Schema


@dataclass(frozen=True, kw_only=True)
class Claim:
    """The differential-privacy guarantee a generator claims for the audited release."""

    epsilon: float
    delta: float


class Refitter(Protocol):
    """Fits the audited generator again, with the same parameters, on other data (shadow models).

    Implementations must be picklable: shadow fits run in worker processes.
    """

    @property
    def name(self) -> str:
        """The generator's name, for progress messages and reports."""
        ...

    def fit_sample(self, data: Any, schema: Schema, n: int, seed: int) -> Any:
        """Fit on ``data`` and return ``n`` synthetic rows drawn with ``seed``.

        The data's type is the schema kind's: a polars DataFrame for tables, ``SequenceData`` (``n``
        entities) for sequences, ``GraphData`` (``n`` nodes) for graphs; each suite narrows it with
        its own protocol (``audits.sequential.inputs.SequenceRefitter``, ``audits.graph.game.GraphRefitter``).
        """
        ...


@dataclass(frozen=True, kw_only=True)
class AuditContext:
    """Per-audit knowledge: ``target`` for utility, ``claim`` for the DP checks, ``refitter`` for
    the audits that retrain (absent for a file synthgate did not produce), ``profile`` for the
    membership settings ("fast" or "thorough"), and ``progress`` for long work."""

    target: str | None = None
    claim: Claim | None = None
    refitter: Refitter | None = None
    profile: str = "fast"
    progress: Callable[[str], None] | None = None
