"""Entity-level distance to closest record (DCR) and exact copies, for sequences.

The logic of ``audits.membership`` with entities for rows and the sequence distance of
``audits.sequential.distance`` (static Gower distance plus a normalised edit distance over the
events) for Gower's: a generator that memorised its training entities puts synthetic entities
closer to the training split than to an equally large holdout split it never saw.

- ``dcr_share`` (gate, ``thresholds.dcr_share_max``): the share of synthetic entities whose nearest
  real entity is a training entity rather than a holdout entity (ties count one half), the worst of
  the full column set and ``policy.audit.dcr_subsets`` random subsets of half the columns (static
  and event columns alike; the order value always counts). 0.5 is ideal.
- ``exact_match_train_minus_holdout`` (gate, ``thresholds.exact_match_margin``): the share of
  synthetic entities identical to a training entity (same static values, same number of events,
  every event equal including its order value: distance 0) minus the share identical to a holdout
  entity. A copy of the training entities cannot pass it, even where subsampling dilutes the share.

Train and holdout are subsampled to one size (policy-thresholds.md, protocol rule 1), at most
``MAX_REFERENCE_ENTITIES`` each; above ``MAX_SYNTHETIC_ENTITIES`` synthetic entities a seeded sample
is used. Nearest neighbours are exact (branch and bound, ``distance.nearest``). DCR is a necessary
overfitting check, not proof of privacy (protocol rule 6).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from audits.context import AuditContext
from audits.result import AuditResult, Metric
from audits.sequential.distance import DistanceSpace, nearest
from audits.sequential.features import encode
from audits.sequential.inputs import check_sequences, equal_size_entities, sample_entities
from policies.model import Policy
from privacy.schema import Schema
from privacy.sequences import SequenceData

#: synthetic entities compared at most (seeded sample): the share's standard error is then at most 0.011
MAX_SYNTHETIC_ENTITIES = 2000
#: training and holdout entities each compared at most: the search is O(synthetic x reference x events^2)
#: at worst, and on the whole Berka data (853 x 376 entities, up to 64 events) one column set takes 1 s
MAX_REFERENCE_ENTITIES = 2000
#: distances within this of each other count as a tie; at most this from a real entity is a copy
_TIE_TOLERANCE = 1e-9
_Z95 = 1.959963984540054


def run_sequence_membership(
    real_train: SequenceData,
    real_holdout: SequenceData,
    synthetic: SequenceData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """Entity DCR share and exact-copy margin of ``synthetic`` against train/holdout entities."""
    del ctx
    check_sequences(real_train, real_holdout, synthetic, schema)
    rng = np.random.default_rng([policy.audit.seed, 101])
    train, holdout = equal_size_entities(real_train, real_holdout, rng, cap=MAX_REFERENCE_ENTITIES)
    syn = sample_entities(synthetic, MAX_SYNTHETIC_ENTITIES, rng)
    notes: list[str] = []
    if syn.n_entities < synthetic.n_entities:
        notes.append(f"DCR used a seeded sample of {MAX_SYNTHETIC_ENTITIES} of {synthetic.n_entities} synthetic entities")
    e_train, e_hold, e_syn = encode(train, schema), encode(holdout, schema), encode(syn, schema)

    names = schema.names
    variants: list[tuple[str, list[str]]] = [("all columns", names)]
    subset_rng = np.random.default_rng([policy.audit.seed, 101, 1])
    size = max(1, math.ceil(len(names) / 2))
    for i in range(policy.audit.dcr_subsets):
        picked = sorted(subset_rng.choice(len(names), size=size, replace=False).tolist())
        variants.append((f"subset {i + 1}", [names[j] for j in picked]))

    rows: list[dict[str, Any]] = []
    exact_train = exact_hold = math.nan
    for label, cols in variants:
        space = DistanceSpace.from_schema(schema, cols)
        d_train = nearest(space, e_syn, e_train).distances[:, 0]
        d_hold = nearest(space, e_syn, e_hold).distances[:, 0]
        share, interval = _share(d_train, d_hold)
        rows.append({"variant": label, "columns": cols, "share": share, "interval": list(interval)})
        if label == "all columns":
            exact_train = float((d_train <= _TIE_TOLERANCE).mean())
            exact_hold = float((d_hold <= _TIE_TOLERANCE).mean())
    worst = max(rows, key=lambda r: r["share"])
    dcr = Metric(
        name="dcr_share", value=worst["share"], goal="minimize", threshold=policy.thresholds.dcr_share_max,
        interval=(worst["interval"][0], worst["interval"][1]), gated_on="value",
        meaning="Share of synthetic entities (whole sequences) closer to a training entity than to any entity of "
                "an equally large held-out set (0.5 is ideal; worst of the column sets tried).",
        details={
            "worst_variant": worst["variant"],
            "variants": [{**r, "share": round(r["share"], 6), "interval": [round(x, 6) for x in r["interval"]]}
                         for r in rows],
            "synthetic_entities_used": syn.n_entities,
            "distance": "static Gower sum + (event columns + 1) x edit distance / longer length; substitution = "
                        "mean Gower difference over event columns and order (public scaling), indel 1",
            "ties": "count 0.5",
            "unit": "entity",
        },
    )
    exact = Metric(
        name="exact_match_train_minus_holdout", value=exact_train - exact_hold, goal="minimize",
        threshold=policy.thresholds.exact_match_margin,
        meaning="Share of synthetic entities identical to a training entity (static values and every event, with "
                "its time) minus the share identical to a held-out entity (0 or below is ideal).",
        details={"share_equal_to_train_entity": round(exact_train, 6),
                 "share_equal_to_holdout_entity": round(exact_hold, 6),
                 "synthetic_entities_used": syn.n_entities, "unit": "entity"},
    )
    return AuditResult(audit="membership", metrics=(dcr, exact), notes=tuple(notes))


def _share(d_train: np.ndarray, d_hold: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Share nearer train (ties 0.5) with the normal-approximation 95% interval, as ``audits.membership``."""
    score = np.where(np.abs(d_train - d_hold) <= _TIE_TOLERANCE, 0.5, (d_train < d_hold).astype(float))
    share = float(score.mean())
    half = _Z95 * float(score.std(ddof=1)) / math.sqrt(len(score)) if len(score) > 1 else 0.5
    return share, (max(0.0, share - half), min(1.0, share + half))
