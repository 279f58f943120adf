"""anonymeter's singling-out, linkability and inference attacks on entities.

anonymeter attacks rows of a table. An entity becomes one row of the tabular view of
``features.entity_table`` (its static values, number of events, start and span, the most frequent
value of each categorical event column and the mean of each numeric one), whose schema
``features.view_schema`` derives from the sequence schema alone. The tabular audit
``audits.anonymeter_risks.run_anonymeter`` then runs unchanged on the three views: equal-size samples
of train, holdout and synthetic entities (``policy.audit.anonymeter_rows`` at most), the policy's
attack counts and thresholds, the worst linkability split and the worst sensitive column, its
intervals, "underpowered" flags and sanity check. Only the meanings are reworded for entities.

``policy.sensitive_columns`` names schema columns; a static column is attacked as itself and an
event column through its summary column (``features.view_columns``). The view is what an attacker
with background knowledge of a person's record summary would hold: risks on it are risks to the
entity, not to single events.
"""

from __future__ import annotations

import dataclasses

from audits.anonymeter_risks import run_anonymeter
from audits.context import AuditContext
from audits.result import AuditResult
from audits.sequential.features import encode, entity_table, view_columns, view_schema
from audits.sequential.inputs import check_sequences
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema
from privacy.sequences import SequenceData

_MEANINGS = {
    "singling_out_univariate": "Excess share of singling-out attacks built from single rare values of the synthetic "
                               "entities' summaries that isolate exactly one training entity, over the same attacks "
                               "on held-out entities.",
    "singling_out_multivariate": "Excess share of singling-out attacks built from 3-column combinations of the "
                                 "synthetic entities' summaries that isolate exactly one training entity, over "
                                 "held-out entities.",
    "linkability": "Excess share of training entities whose two halves of summary columns can be re-linked "
                   "through the same nearest synthetic entity, over held-out entities (worst split).",
    "inference": "Excess accuracy of guessing a summary column of a training entity from its other summary "
                 "columns via the nearest synthetic entity, over held-out entities (worst sensitive column).",
}


def run_sequence_anonymeter(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """anonymeter's risks on the per-entity view (see the module docstring)."""
    del ctx
    check_sequences(real_train, real_holdout, synthetic, schema)
    view = view_schema(schema)
    train, holdout, syn = (entity_table(encode(d, schema), schema) for d in (real_train, real_holdout, synthetic))
    secrets = sensitive_view_columns(schema, policy)
    result = run_anonymeter(train, holdout, syn, view, policy.model_copy(update={"sensitive_columns": secrets}))
    metrics = tuple(
        dataclasses.replace(m, meaning=_MEANINGS.get(m.name, m.meaning), details={**m.details, "unit": "entity"})
        for m in result.metrics
    )
    notes = (*result.notes, "the attacks ran on one row per entity: " + ", ".join(view.names))
    return AuditResult(audit="anonymeter", metrics=metrics, notes=notes)


def sensitive_view_columns(schema: Schema, policy: Policy) -> list[str] | None:
    """The policy's sensitive schema columns as columns of the view (None: every view column)."""
    if policy.sensitive_columns is None:
        return None
    unknown = [c for c in policy.sensitive_columns if c not in schema.names]
    if unknown:
        raise InputError(f"policy {policy.name!r} names sensitive columns not in the schema: {', '.join(unknown)}")
    if not policy.sensitive_columns:
        raise InputError(f"policy {policy.name!r} has an empty sensitive_columns list (use null for every column)")
    return [v for c in policy.sensitive_columns for v in view_columns(schema, c)]
