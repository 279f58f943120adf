"""The sequence audit suite: every sequence audit in order, timed, for the same gate as tables.

``run_sequence_audits`` is the sequential counterpart of ``audits.suite.run_audits``: its first
result is the same ``profile_check``, and the results go unchanged through ``audits.suite``'s
``gate_checks``, ``gate_passed`` and ``audit_document``. The audits keep the tabular audit names
(``membership``, ``one_run``, ``shadow_game``, ``anonymeter``, ``fidelity``, ``utility``), so that
reports and reviews that list the membership attacks find them; every metric's meaning says what
it measures for sequences, and the thresholds are the policy's own:

========================  ==================================  =============================
metric                    role                                threshold
========================  ==================================  =============================
dcr_share                 gate                                ``dcr_share_max``
exact_match_...holdout    gate                                ``exact_match_margin``
one_run_epsilon_lb        gate (dp_claim) with a claim        the claimed epsilon
game_auc                  gate                                ``game_auc_max``
game_tpr_at_fpr_1pct      gate from 1,000 non-member trials   ``game_tpr_at_1pct_max``
game_epsilon_lb           gate (dp_claim) with a claim        the claimed epsilon
game_auc_dp_check         gate (dp_claim) with a claim        e^eps/(1+e^eps)+delta
singling_out_*            gate                                ``singling_out_*_max``
linkability, inference    gate                                ``linkability_max``, ``inference_max``
anonymeter_sanity         per ``anonymeter_sanity``           1
sequence_quality_score    gate                                ``quality_min``
sequence_validity         gate                                ``diagnostic_min``
utility_auc_ratio         gate (info without a target)        ``utility_ratio_min``
next_event_auc_ratio      gate                                ``utility_ratio_min``
the fidelity components   info                                -
========================  ==================================  =============================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from audits.context import AuditContext
from audits.result import AuditResult
from audits.sequential.anonymeter import run_sequence_anonymeter
from audits.sequential.fidelity import run_sequence_fidelity
from audits.sequential.game import run_sequence_game, run_sequence_one_run
from audits.sequential.inputs import check_sequences
from audits.sequential.membership import run_sequence_membership
from audits.sequential.utility import run_sequence_utility
from audits.suite import run_in_order
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema
from privacy.sequences import SequenceData


class SequenceAuditFunction(Protocol):
    """The signature every sequence audit shares."""

    def __call__(
        self,
        real_train: SequenceData,
        real_holdout: SequenceData,
        synthetic: SequenceData,
        schema: Schema,
        policy: Policy,
        ctx: AuditContext | None = None,
    ) -> AuditResult: ...


#: The sequence audits in the order they run: cheap and decisive first, the refitting audits next
#: (the one-run audit can already refute a DP claim before the game's many fits), then the rest.
SEQUENCE_AUDITS: tuple[tuple[str, SequenceAuditFunction], ...] = (
    ("membership", run_sequence_membership),
    ("one_run", run_sequence_one_run),
    ("shadow_game", run_sequence_game),
    ("anonymeter", run_sequence_anonymeter),
    ("fidelity", run_sequence_fidelity),
    ("utility", run_sequence_utility),
)


def run_sequence_audits(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[AuditResult]:
    """Run every audit in ``SEQUENCE_AUDITS`` order; ``progress(name)`` is called before each starts.

    Each result carries its wall-clock ``seconds``; the first checks the membership profile against
    the policy. Usage errors (``InputError``: a schema that is not sequential, data that does not
    match it, an empty set) propagate before any audit runs; a library failure inside an audit
    becomes a NaN metric that fails the gate.
    """
    ctx = ctx or AuditContext()
    if ctx.profile not in policy.audit.membership:
        raise InputError(f"unknown membership profile {ctx.profile!r} (known: fast, thorough)")
    check_sequences(real_train, real_holdout, synthetic, schema)
    return run_in_order(SEQUENCE_AUDITS, real_train, real_holdout, synthetic, schema, policy, ctx, progress=progress)
