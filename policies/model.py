"""The Policy model: budget caps, allowed generators, gate thresholds, approvals.

Validated with pydantic; unknown keys are errors at every level (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    """Caps on what one source may spend, per release and in total (basic composition)."""

    total_epsilon: float = Field(gt=0)
    total_delta: float = Field(ge=0, lt=1)
    per_release_epsilon: float = Field(gt=0)
    per_release_delta: float = Field(ge=0, lt=1)
    #: Every synthesis attempt is charged; the gate's outputs are a side channel, so regeneration
    #: is capped too (policy-thresholds.md, protocol rule 3).
    max_runs_per_source: int = Field(ge=1)

    @model_validator(mode="after")
    def _per_release_within_total(self) -> "Budget":
        if self.per_release_epsilon > self.total_epsilon:
            raise ValueError("per_release_epsilon must not exceed total_epsilon")
        if self.per_release_delta > self.total_delta:
            raise ValueError("per_release_delta must not exceed total_delta")
        return self


class Thresholds(_Strict):
    """Gate thresholds; the policy files cite the source of each number."""

    singling_out_univariate_max: float = Field(ge=0, le=1)
    singling_out_multivariate_max: float = Field(ge=0, le=1)
    linkability_max: float = Field(ge=0, le=1)
    inference_max: float = Field(ge=0, le=1)
    #: below this many evaluated queries an anonymeter result is flagged "underpowered"
    anonymeter_min_queries: int = Field(ge=1)
    #: what to do when the main attack does not beat the random baseline
    anonymeter_sanity: Literal["warn", "fail"]
    dcr_share_max: float = Field(ge=0.5, le=1)
    exact_match_margin: float = Field(ge=0, le=1)
    quality_min: float = Field(ge=0, le=1)
    diagnostic_min: float = Field(ge=0, le=1)
    utility_ratio_min: float = Field(ge=0)


class AuditSettings(_Strict):
    """How hard the audits work: sample sizes and attack counts."""

    #: rows per side (train sample, holdout, synthetic) that anonymeter attacks use
    anonymeter_rows: int = Field(ge=50)
    singling_out_attacks: int = Field(ge=10)
    linkability_attacks: int = Field(ge=10)
    inference_attacks: int = Field(ge=10)
    #: several auxiliary-column splits for linkability (protocol rule 4)
    linkability_splits: int = Field(ge=1)
    #: several column subsets for DCR (protocol rule 4)
    dcr_subsets: int = Field(ge=1)
    seed: int = 0


class Approvals(_Strict):
    required: int = Field(ge=1)
    requester_may_approve: bool


class Policy(_Strict):
    """A release policy, e.g. the bundled ``default``, ``health`` and ``finance`` profiles."""

    name: str
    description: str = ""
    budget: Budget
    holdout_fraction: float = Field(gt=0, lt=1)
    allowed_generators: list[str] = Field(min_length=1)
    #: columns anonymeter's inference attack targets; None means every column
    sensitive_columns: list[str] | None = None
    #: utility target column per source name (``synthesize``/``audit --target`` override)
    targets: dict[str, str] = Field(default_factory=dict)
    thresholds: Thresholds
    audit: AuditSettings
    approvals: Approvals
