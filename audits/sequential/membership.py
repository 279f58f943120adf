"""Entity-level distance to closest record (DCR) and exact copies, for sequences.

The logic of ``audits.membership`` with entities for rows and the sequence distance of
``audits.sequential.distance`` (static Gower distance plus a normalised edit distance over the
events) for Gower's: a generator that memorised its training entities puts synthetic entities
closer to the training split than to an equally large holdout split it never saw.

- ``dcr_share`` (gate, ``thresholds.dcr_share_max``, on the lower end of its interval, below): the share of
  synthetic entities whose nearest real entity is a training entity rather than a holdout entity
  (ties count one half), the worst of the full column set and ``policy.audit.dcr_subsets`` random
  subsets of half the columns (static and event columns alike; the order value always counts). 0.5
  is ideal, and exactly what a generator that ignores its data scores on average.
- ``exact_match_train_minus_holdout`` (gate, ``thresholds.exact_match_margin``): the share of
  synthetic entities identical to a training entity (same static values, same number of events,
  every event equal including its order value: distance 0) minus the share identical to a holdout
  entity. A copy of the training entities cannot pass it, even where subsampling dilutes the share.

Why the share needs more than a binomial interval
-------------------------------------------------
The synthetic entities' outcomes are not independent. On small sequential data many synthetic
entities share a few nearest real entities ("hubs"), and the share moves by a hub's whole weight
whenever that one real entity lands on the other side of the split. Over 40 splits of pbcseq (89 to
105 entities a side) the share of near-noise dpmarkov output (epsilon 0.05) had a standard deviation
of 0.12-0.19 per column set (range 0.15 to 1.00) against the binomial 0.034; the point value of the
worst of four column sets against 0.55 failed 28 of those 40 runs, random sequences 19 and unseen
real entities 22, all generators whose true share is 0.5.

The interval: label permutations, simultaneous over the column sets
--------------------------------------------------------------------
The variation that matters is which real entities happened to be trained on. Each of
``DCR_REPLICATES`` replicates therefore reassigns the ``2n`` real entities (the equal-size train and
holdout samples pooled) at random to two sides of ``n`` (the same assignment for every column set),
and recomputes every column set's share with the synthetic entities fixed. The replicates' standard
deviation ``se_v`` is the share's standard error under a generator whose output does not depend on
which entities it trained on; a hub moves as a whole, so ``se_v`` is close to ``0.5 / sqrt(m_eff)``
with ``m_eff`` the effective number of independent synthetic entities (``details
["nearest_real_entities"]``), not ``0.5 / sqrt(m)``. For such a generator this is all of the share's
variation: given the synthetic entities and the pooled real ones every assignment is equally likely
(a permutation argument, exact in finite samples), so drawing the synthetic entities as well would
count their noise twice. Over 40 splits of pbcseq and of the Berka slice (31 to 45 entities a
side) ``se_v`` matched the share's spread across splits per column set for random sequences, unseen
real entities (as they are and resampled with repeats) and dpmarkov at epsilon 0.05 (within 15% low
on the Berka slice's most clustered output, about 8 effective entities, and 20% on one random case),
and for copies and noisy copies of the training entities too. A bootstrap drawing train, holdout and
synthetic entities each from itself understated the spread of the dpmarkov output by 17% (pbcseq)
and 37% (Berka): it cannot move a hub to the other side, only leave it out, and its synthetic
entities then fall mostly to a neighbour on the same side. It also overstated the copies' spread by
40-75% (it adds sampling noise to a deterministic output), which cost power.

The nearest entity of each side under an assignment is read from each synthetic entity's
``NEIGHBOURS`` (K) nearest training and K nearest holdout entities, found once per column set
(exactly, by ``distance.nearest``) and merged: the first K entries are the K nearest pooled entities, all on one side with probability ``2^(1-K)`` (then the last listed
distance stands in), and with ``K >= n`` the lists are the whole synthetic x (train + holdout)
distance matrix. A replicate is a few look-ups per synthetic entity: 1,000 replicates cost less than
the nearest-neighbour search.

The worst-of-column-sets selection is handled by simultaneous intervals (max-t): with ``c`` the 95%
quantile, over the replicates, of ``max_v |share*_v - mean(share*_v)| / se_v``, every column set gets
``share_v +- c se_v`` and all of them hold together. The reported interval is that of the worst
column set, ``[max_v (share_v - c se_v), max_v (share_v + c se_v)]``. ``c`` is about 1.96 for one
column set and grows with the number of column sets that vary independently (2.0-2.4 for the four
here): the correction for trying several.

The gate reads the lower end: it fails only where at least one column set's share exceeds
``dcr_share_max`` by more than ``c`` standard errors. A generator whose output does not depend on its
training entities has a true share of 0.5 in every column set, so it fails less than 2.5% of the
time (a permutation max-t test, with a margin of ``dcr_share_max - 0.5`` on top): 0 or 1 of 40 splits
for each of the generators above (a six-split version of that experiment runs in the tests). A copy of the training entities, whose share is about
``0.5 + 0.5 x n / n_train``, still fails unless few entities make its standard error large: 40 of 40
copies and noisy copies on pbcseq, 36 to 38 of 40 on the Berka slice (and a copy fails the
exact-match check regardless). A pass with the upper end above the threshold is flagged
"underpowered": the data were too few, or the synthetic entities too clustered on a few real ones,
to show the share below the threshold either (at pbcseq's size, about 100 entities a side, that is
every pass).

Train and holdout are subsampled to one size (policy-thresholds.md, protocol rule 1), at most
``MAX_REFERENCE_ENTITIES`` each; above ``MAX_SYNTHETIC_ENTITIES`` synthetic entities a seeded sample
is used. DCR is a necessary overfitting check, not proof of privacy (protocol rule 6).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from audits.context import AuditContext
from audits.result import AuditResult, Metric
from audits.sequential.distance import DistanceSpace, nearest
from audits.sequential.features import EncodedSequences, encode
from audits.sequential.inputs import check_sequences, equal_size_entities, sample_entities
from policies.model import Policy
from privacy.schema import Schema
from privacy.sequences import SequenceData

#: synthetic entities compared at most (seeded sample)
MAX_SYNTHETIC_ENTITIES = 2000
#: training and holdout entities each compared at most: the search is O(synthetic x reference x events^2)
#: at worst; on the whole Berka data (853 x 376 entities, up to 64 events) one column set took 1 s for the
#: nearest entity of each side, and 1.5-3.5 times that for the ``NEIGHBOURS`` nearest
MAX_REFERENCE_ENTITIES = 2000
#: random reassignments of the real entities to the two sides (replicates of every column set's share)
DCR_REPLICATES = 1000
#: nearest training and nearest holdout entities kept per synthetic entity and column set
NEIGHBOURS = 32
#: confidence of the (simultaneous) interval
LEVEL = 0.95
#: distances within this of each other count as a tie; at most this from a real entity is a copy
_TIE_TOLERANCE = 1e-9

#: per column set, each synthetic entity's nearest pooled real entities: distances ascending and their
#: indices (training entities 0..n-1, holdout entities n..2n-1)
Neighbours = tuple[np.ndarray, np.ndarray]


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
    n = e_train.n

    names = schema.names
    variants: list[tuple[str, list[str]]] = [("all columns", names)]
    subset_rng = np.random.default_rng([policy.audit.seed, 101, 1])
    size = max(1, math.ceil(len(names) / 2))
    for i in range(policy.audit.dcr_subsets):
        picked = sorted(subset_rng.choice(len(names), size=size, replace=False).tolist())
        variants.append((f"subset {i + 1}", [names[j] for j in picked]))

    neighbours = [pooled_neighbours(DistanceSpace.from_schema(schema, cols), e_syn, e_train, e_hold)
                  for _, cols in variants]
    observed = np.arange(2 * n) < n
    shares = permuted_shares(neighbours, observed[None, :])[0]
    replicates = permuted_shares(neighbours, random_assignments(n, DCR_REPLICATES,
                                                                np.random.default_rng([policy.audit.seed, 101, 2])))
    se, crit, lower, upper = simultaneous_intervals(shares, replicates, LEVEL)

    dist, idx = neighbours[0]
    exact_train = float(_copied(dist, idx, observed).mean())
    exact_hold = float(_copied(dist, idx, ~observed).mean())
    worst = int(np.argmax(shares))
    gated = int(np.argmax(lower))
    interval = (float(lower.max()), float(upper.max()))
    threshold = policy.thresholds.dcr_share_max
    clustering = _clustering(idx[:, 0])
    flags: tuple[str, ...] = ()
    if interval[0] <= threshold < interval[1]:
        flags = (f"underpowered: the interval's upper end {interval[1]:.3f} is above the threshold {threshold}, "
                 f"so the pass shows only that the share could not be shown to exceed it (the synthetic entities "
                 f"count as about {clustering['effective_entities']:.0f} independent ones)",)
    rows = [{"variant": label, "columns": cols, "share": round(float(shares[v]), 6), "se": round(float(se[v]), 6),
             "interval": [round(float(lower[v]), 6), round(float(upper[v]), 6)]}
            for v, (label, cols) in enumerate(variants)]
    dcr = Metric(
        name="dcr_share", value=float(shares[worst]), goal="minimize", threshold=threshold,
        interval=interval, gated_on="lower", flags=flags,
        meaning="Share of synthetic entities (whole sequences) closer to a training entity than to any entity of "
                "an equally large held-out set (0.5 is ideal and what a generator that ignores its training "
                "entities scores on average; worst of the column sets tried). Gated on the lower end of a 95% "
                "interval that holds for all column sets at once, with standard errors from random reassignments "
                "of the real entities to the two sides (synthetic entities clustered on a few real ones are not "
                "independent). A fail means that for at least one column set the share exceeds the threshold by "
                "more than chance explains: synthetic entities sit closer to training entities than to unseen "
                "ones (memorisation). A pass means that could not be shown; it is not proof of privacy, and with "
                "the upper end above the threshold it is inconclusive (flagged underpowered).",
        details={
            "worst_variant": variants[worst][0],
            "gated_variant": variants[gated][0],
            "variants": rows,
            "interval": f"simultaneous {LEVEL:.0%} over the {len(variants)} column sets: share +- c x standard "
                        f"error, both from {DCR_REPLICATES} random reassignments of the {2 * n} real entities to "
                        f"two sides of {n} (synthetic entities fixed); c = {crit:.4f}, the {LEVEL:.0%} quantile of "
                        f"the largest studentised deviation over the column sets",
            "critical_value": round(crit, 6),
            "replicates": DCR_REPLICATES,
            "nearest_real_entities": clustering,
            "entities_per_side": n,
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


def pooled_neighbours(
    space: DistanceSpace, e_syn: EncodedSequences, e_train: EncodedSequences, e_hold: EncodedSequences
) -> Neighbours:
    """Each synthetic entity's ``NEIGHBOURS`` nearest training and ``NEIGHBOURS`` nearest holdout entities
    (all of them when there are fewer), merged in ascending distance, with pooled indices (holdout
    entities after the ``e_train.n`` training entities)."""
    nb_t = nearest(space, e_syn, e_train, k=min(NEIGHBOURS, e_train.n))
    nb_h = nearest(space, e_syn, e_hold, k=min(NEIGHBOURS, e_hold.n))
    dist = np.concatenate([nb_t.distances, nb_h.distances], axis=1)
    idx = np.concatenate([nb_t.indices, nb_h.indices + e_train.n], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    return (np.ascontiguousarray(np.take_along_axis(dist, order, axis=1)),
            np.ascontiguousarray(np.take_along_axis(idx, order, axis=1)))


def random_assignments(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """``(replicates, 2n)`` booleans: which pooled real entities are on the training side, ``n`` per row."""
    base = np.tile(np.arange(2 * n) < n, (replicates, 1))
    return rng.permuted(base, axis=1)


def permuted_shares(neighbours: list[Neighbours], on_train: np.ndarray) -> np.ndarray:
    """``(assignments, column sets)``: the share of synthetic entities nearer the training side (ties 0.5)
    when the pooled real entities flagged in each row of ``on_train`` are the training side."""
    dist = np.ascontiguousarray(np.stack([nb[0] for nb in neighbours]))
    idx = np.ascontiguousarray(np.stack([nb[1] for nb in neighbours]))
    return _shares(dist, idx, np.ascontiguousarray(on_train, dtype=np.bool_), _TIE_TOLERANCE)  # type: ignore[no-any-return]


def simultaneous_intervals(
    shares: np.ndarray, replicates: np.ndarray, level: float
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Max-t intervals: ``(se, c, lower, upper)`` with ``share_v +- c se_v`` holding for every column set
    ``v`` at once with probability ``level``; ``se_v`` and ``c`` from the replicates."""
    se = replicates.std(axis=0, ddof=1) if replicates.shape[0] > 1 else np.zeros(replicates.shape[1])
    dev = np.abs(replicates - replicates.mean(axis=0))
    t = np.divide(dev, se, out=np.zeros_like(dev), where=se > 0)
    crit = float(np.quantile(t.max(axis=1), level))
    return se, crit, np.clip(shares - crit * se, 0.0, 1.0), np.clip(shares + crit * se, 0.0, 1.0)


def _copied(dist: np.ndarray, idx: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Whether each synthetic entity's nearest entity among the pooled ones flagged in ``side`` is at
    distance 0 (within the tie tolerance): an identical entity."""
    on_side = side[idx]
    first = np.where(on_side.any(axis=1), on_side.argmax(axis=1), on_side.shape[1] - 1)
    return np.take_along_axis(dist, first[:, None], axis=1)[:, 0] <= _TIE_TOLERANCE  # type: ignore[no-any-return]


def _clustering(nearest_index: np.ndarray) -> dict[str, Any]:
    """How the synthetic entities spread over their nearest real entities (either side, all columns; ties
    to the first found): distinct nearest entities, the largest share of synthetic entities on one, and the
    effective number of independent synthetic entities ``m^2 / sum_r c_r^2``."""
    counts = np.unique(nearest_index, return_counts=True)[1].astype(float)
    m = float(counts.sum())
    return {"distinct": int(counts.size), "largest_share": round(float(counts.max() / m), 6),
            "effective_entities": round(m * m / float((counts ** 2).sum()), 3)}


@numba.njit(cache=True, parallel=True)
def _shares(dist, idx, on_train, tol):  # type: ignore[no-untyped-def]
    """Share per assignment (rows of ``on_train``) and column set: each side's nearest entity is the first
    listed entity on that side (the last listed distance when none is)."""
    reps = on_train.shape[0]
    n_var, m, k = dist.shape
    out = np.empty((reps, n_var))
    for b in numba.prange(reps):
        for v in range(n_var):
            total = 0.0
            for s in range(m):
                dt = dist[v, s, k - 1]
                dh = dist[v, s, k - 1]
                found_t = False
                found_h = False
                for j in range(k):
                    if on_train[b, idx[v, s, j]]:
                        if not found_t:
                            dt = dist[v, s, j]
                            found_t = True
                    elif not found_h:
                        dh = dist[v, s, j]
                        found_h = True
                    if found_t and found_h:
                        break
                if abs(dt - dh) <= tol:
                    total += 0.5
                elif dt < dh:
                    total += 1.0
            out[b, v] = total / m
    return out
