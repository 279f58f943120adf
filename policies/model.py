"""The Policy model: budget caps, allowed generators, gate thresholds, approvals.

Validated with pydantic; unknown keys are errors at every level (``extra="forbid"``).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def _numeric(annotation: Any) -> bool:
    """Whether a field takes a number (``int``, ``float``, optionally ``None``) and not a bool."""
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    args = typing.get_args(annotation) if union else (annotation,)
    return bool not in args and any(a in (int, float) for a in args)


class _Strict(BaseModel):
    # infinite or NaN numbers are refused everywhere: an infinite budget cap is no cap
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads true as 1 in lax mode: "per_release_epsilon: yes" must not become epsilon 1
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if _numeric(annotation):
                raise ValueError("expected a number, not true/false")
        return value


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
    #: density-ratio (DOMIAS) attack AUC, gated on the upper end of its bootstrap interval
    domias_auc_max: float = Field(ge=0.5, le=1)
    #: shadow-model privacy game: worst target's AUC, upper end of its interval
    game_auc_max: float = Field(ge=0.5, le=1)
    #: shadow-model privacy game: worst target's TPR at FPR 1%, upper end of its interval
    game_tpr_at_1pct_max: float = Field(ge=0, le=1)
    #: warn (not fail) when an empirical epsilon lower bound exceeds this fraction of the claim;
    #: above the claim itself is always a DP failure
    epsilon_lb_warn_fraction: float | None = Field(default=None, gt=0, le=1)
    #: graphs: edge membership attack (train edges vs holdout edges scored on the synthetic graph),
    #: AUC gated on the upper end of its interval. Judgment, as ``domias_auc_max``: no publication
    #: fixes a value; pure eps-DP caps it at e^eps/(1+e^eps) (0.73 at eps 1)
    edge_membership_auc_max: float = Field(default=0.60, ge=0.5, le=1)
    #: graphs: the structural fidelity score (mean of the graph metrics' similarities in [0, 1],
    #: ``audits.graph.fidelity``); judgment, set from bench/graph.py
    graph_fidelity_min: float = Field(default=0.5, ge=0, le=1)


class MembershipSettings(_Strict):
    """How hard the membership attacks work (one profile of them)."""

    #: members and non-members each that the density-ratio attack scores
    domias_candidates: int = Field(ge=20)
    #: bootstrap resamples for the AUC intervals
    bootstrap: int = Field(ge=50)
    #: one-run audit (Steinke et al. 2023): canaries, each in the one shadow fit with probability 1/2
    one_run_canaries: int = Field(ge=0)
    #: guesses per side (k+ = k-) the one-run attack makes; it abstains on the rest
    one_run_guesses: int = Field(ge=0)
    #: shadow-model game: targets in all, of which the most isolated (the rest are random)
    game_targets: int = Field(ge=0)
    game_isolated_targets: int = Field(ge=0)
    #: shadow fits per side (with / without each target) that train the attack, and that score it
    game_train_fits: int = Field(ge=0)
    game_test_fits: int = Field(ge=0)
    #: graphs: target edges of the game (held-out edges). A target costs no fit and scores in
    #: microseconds; with the two-way interval the graph game needs more targets than the table
    #: game (email-Eu-core, dpdegree at eps 1: 50 targets gave half-widths near 0.06, 200 near 0.035)
    graph_game_targets: int = Field(default=200, ge=0)
    #: rows of holdout each shadow fit is trained on (the targets come on top)
    game_reference_rows: int = Field(ge=20)
    #: worker processes for shadow fits; 0 means one per core
    workers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> "MembershipSettings":
        if self.game_isolated_targets > self.game_targets:
            raise ValueError("game_isolated_targets must not exceed game_targets")
        if self.game_targets and (self.game_train_fits < 2 or self.game_test_fits < 1):
            raise ValueError("a privacy game needs game_train_fits >= 2 and game_test_fits >= 1 per side")
        if 2 * self.one_run_guesses > self.one_run_canaries:
            raise ValueError("one_run_guesses per side must not exceed half of one_run_canaries")
        return self


#: The two membership profiles: "fast" for CI and iteration, "thorough" for releases.
MembershipProfile = Literal["fast", "thorough"]


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
    #: the membership attacks' settings per profile
    membership: dict[MembershipProfile, MembershipSettings]
    #: the profile a run must be audited with before it can pass the gate
    membership_required: MembershipProfile

    @model_validator(mode="after")
    def _profiles(self) -> "AuditSettings":
        missing = {"fast", "thorough"} - set(self.membership)
        if missing:
            raise ValueError(f"membership needs both profiles; missing: {', '.join(sorted(missing))}")
        return self


class Approvals(_Strict):
    required: int = Field(ge=1)
    requester_may_approve: bool


class Policy(_Strict):
    """A release policy, e.g. the bundled ``default``, ``health`` and ``finance`` profiles."""

    #: shown in messages and recorded with every source: one line of printable text
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    description: str = ""
    budget: Budget
    holdout_fraction: float = Field(gt=0, lt=1)
    #: graphs: the share of edges held out (one coin per edge). Smaller than for tables: a held-out
    #: edge is missing from the structure the generator learns (degrees, triangles), while a few
    #: thousand holdout edges already make the edge membership attack's interval narrow
    graph_holdout_fraction: float = Field(default=0.1, gt=0, lt=1)
    allowed_generators: list[str] = Field(min_length=1)
    #: the allowed generator the policy recommends by the data's shape (``synthesize --generator
    #: recommended``): for tables ``mostly_categorical`` when at most half the schema's columns are
    #: numeric, ``mostly_continuous`` otherwise; ``sequential`` for sequences. The profiles cite
    #: bench/deep_tabular.py and bench/sequential.py for their choices
    recommended_generators: dict[Literal["mostly_categorical", "mostly_continuous", "sequential", "graph"], str] = Field(
        default_factory=dict
    )
    #: columns anonymeter's inference attack targets; None means every column
    sensitive_columns: list[str] | None = None
    #: utility target column per source name (``synthesize``/``audit --target`` override)
    targets: dict[str, str] = Field(default_factory=dict)
    thresholds: Thresholds
    audit: AuditSettings
    approvals: Approvals

    def holdout_for(self, kind: str) -> float:
        """The holdout share for data of ``kind``: edges for graphs, rows or entities otherwise."""
        return self.graph_holdout_fraction if kind == "graph" else self.holdout_fraction

    @model_validator(mode="after")
    def _recommended_are_allowed(self) -> "Policy":
        bad = {k: v for k, v in self.recommended_generators.items() if v not in self.allowed_generators}
        if bad:
            raise ValueError(f"recommended_generators names generators the policy does not allow: {bad}")
        return self

    def recommended_generator(self, numeric_share: float, kind: str = "tabular") -> str:
        """The recommended generator for data of ``kind`` (for tables, by their share of numeric columns)."""
        if kind in ("sequential", "graph"):
            shape = kind
            what = f"{kind} data"
        else:
            shape = "mostly_continuous" if numeric_share > 0.5 else "mostly_categorical"
            what = f"{shape.replace('_', ' ')} tables"
        try:
            return self.recommended_generators[shape]  # type: ignore[index]
        except KeyError:
            raise ValueError(f"policy {self.name!r} recommends no generator for {what}; "
                             "name one with --generator") from None
