"""dpmarkov: a differentially private Markov-chain generator for sequential data.

The unit of privacy is one entity with all its events (add/remove one entity), with at most
``max_events`` events per entity (the schema's truncation rule, applied by ``conform_sequences``)
and gaps between consecutive events clipped to the public ``[gap_min, gap_max]``. Let ``M`` be
``max_events``.

The model
---------
An entity is a row of a per-entity table (its static columns, its sequence length, the order
value of its first event and its first event's state) followed by a Markov chain over *states*.
A state is the tuple of the discretised state columns of an event (``sequence.state``; empty means
the categorical event columns): categories or the schema's public bins, plus one "missing" cell for
a nullable column (a missing value is a state of its own). With ``order=2`` the next state depends
on the two previous ones. Given the state of an event, the gap before it and each non-state event
column are drawn from conditional distributions ``P(gap bin | state)`` and ``P(cell | state)``.

Privacy argument, step by step
------------------------------
1. **Domain from the schema only** (``build_layout``, which never sees the data): the state space,
   the cells of every column, the sequence-length cells (one per length up to 64, then log-spaced
   with ``M`` alone), the start-time cells (``order_min`` alone, then ``start_bins`` equal-width
   bins up to ``order_max``), the gap bins (``gap_min`` alone, then log-spaced up to ``gap_max``).
   Tables too large to measure are refused here, before the data is read.
2. **Budget**: ``rho = zcdp_rho(spend)`` (OpenDP's conversion; ``delta = 0`` is refused: the
   Gaussian mechanism gives no pure DP). It is split by public shares (relative weights,
   normalised over the parts the schema needs) and the parts compose by adding their rho.
3. **Per-entity table through MST** (share ``entity_share``): one row per entity, so adding or
   removing an entity adds or removes one row, exactly the neighbouring relation MST's
   sensitivity-1 marginals assume. ``MSTGenerator.fit(..., rho=...)`` spends exactly that rho.
   Its noisy total is ``estimated_rows``.
4. **Transitions** (``transition_share``): the counts of ``(s_{t-1} -> s_t)`` (order 2:
   ``(s_{t-2}, s_{t-1}) -> s_t``, with a START symbol for ``s_{-1}``) over ``t = 1 .. L-1`` of
   every entity. One entity of length ``L <= M`` adds a vector of counts ``c`` with
   ``||c||_2 <= ||c||_1 = L - 1 <= M - 1`` (equality when all its transitions fall in one cell).
5. **Gaps** (``gap_share``): the counts of ``(s_t, gap bin)`` for ``t >= 1``, the gap clipped to
   ``[gap_min, gap_max]`` before binning: ``||c||_2 <= L - 1 <= M - 1`` per entity.
6. **Non-state event columns** (``event_share``, split equally over the ``J`` columns): per
   column, the counts of ``(s_t, cell)`` over all ``L`` events: ``||c||_2 <= M`` per entity and
   column. (Measuring the ``J`` tables jointly with sensitivity ``K sqrt(J)`` and the whole share
   gives the same noise as ``J`` tables of sensitivity ``K``: equal split is that joint measurement.)
7. **Per-entity contribution** (option ``contribution``), for each table of 4-6, where ``K`` is
   its bound on ``||c||_2`` (``M - 1`` or ``M``). The table is ``T(X) = sum_{e in X} v_e`` with
   ``v_e`` a function of entity ``e``'s own events, so adding or removing one entity changes ``T``
   by exactly ``v_e`` and the L2 sensitivity is ``max_e ||v_e||_2``:

   - ``"counts"``: ``v_e = c_e``, raw counts: **L2 sensitivity ``K``** (``M - 1`` for transitions
     and gaps, ``M`` per event column), reached by an entity whose counts all fall in one cell.
   - ``"l2"`` (the default, see below): ``c_e`` is scaled by ``min(1, C / ||c_e||_2)`` for a
     public clip bound ``C`` (``clip``, or by default ``sqrt(K)``: public, from ``max_events``;
     ``C >= K`` scales nothing and measures raw counts). The scaled vectors are not integers, so
     they are measured in fixed point: ``v_e = floor(R * c_e * min(1, C / ||c_e||_2))`` with the
     public resolution ``R = FIXED_POINT`` (1024). Coordinate-wise ``0 <= v_e <= R c_e min(1, C /
     ||c_e||)``, hence ``||v_e||_2 <= R C <= D = ceil(R C)``; ``clipped_counts`` also checks
     ``||v_e||_2^2 <= D^2`` in exact integer arithmetic and shrinks (in integers) any vector that
     floating-point rounding pushed over. The integer sum is exact, so the integer table has
     **L2 sensitivity ``D``**; in counts that is ``D / R <= C + 1/R`` (e.g. pbcseq, ``M = 16``:
     ``ceil(1024 sqrt 15) / 1024 = 3.873`` for transitions instead of 15; 4 per column instead
     of 16). Dividing the noisy integers by ``R`` is post-processing. Long or concentrated
     entities are down-weighted (a bias: the estimate converges to the clipped tables, not the
     raw ones), in exchange for noise ``K / C`` times smaller.

   Why fixed point rather than OpenDP's continuous Gaussian on floats: a float sum of scaled
   vectors computed here is not exact, so the difference between neighbouring float tables can
   exceed ``C`` by rounding error that OpenDP's map for the float mechanism never sees; integers
   sum exactly, the exact discrete Gaussian sampler is kept (and OpenDP's float Gaussian costs
   about 200 microseconds per cell against 26 for the integer one, measured with OpenDP 0.14.2).
8. **Noise**: each table gets independent discrete Gaussian noise (OpenDP's exact sampler on
   the measured integers, OS entropy; never a seeded generator) with ``sigma = Delta /
   sqrt(2 rho_part)`` on them (``Delta`` = ``K`` or ``D``; in counts ``sigma / R``); the discrete
   Gaussian satisfies ``Delta^2 / (2 sigma^2)``-zCDP for integer queries of L2 sensitivity
   ``Delta`` (Canonne, Kamath & Steinke 2020), and the rho recorded per part is OpenDP's own
   privacy map of the measurement evaluated at ``Delta``. The card records per table the
   mechanism, the clip, the resolution, the integer and the count-unit sensitivity and sigma.
9. **Post-processing** (no further access to the data): every noisy row becomes a distribution by
   Euclidean projection onto the simplex with the row's noisy total ("norm-sub"). A row whose
   noisy total is below ``backoff`` standard deviations of that total backs off to the pooled
   distribution (transitions order 2 -> order 1 -> marginal of the next state; gaps and event
   columns -> their marginal over all states), and a pooled vector without enough mass to
   uniform. Every distribution is valid.

Total: ``rho_entities + rho_transitions + rho_gaps + sum_j rho_events_j = rho`` (each at most its
share; ``card.parameters["rho_used"]`` adds up what OpenDP and MST report).

Choosing the default contribution (``bench/dpmarkov_contribution.py``)
----------------------------------------------------------------------
Whole pbcseq (312 patients, ``M = 16``) and whole Berka slice (1,229 accounts, ``M = 64``),
order 1, delta 1e-6, 5 fits per cell (fresh noise each); mean over the fits, against the real
data: transition TV (``sum_s P_real(s) TV(P(. | s))``), gap TV and event-column TV (same weighting,
mean over columns); "bias" is the transition TV of the noise-free clipped table; ``l2 xF`` clips
every table at ``F sqrt(M)``, ``l2 default`` is the ``sqrt(K)`` rule. Length KS (MST's part,
unaffected) stayed within 0.03-0.16 in every cell.

==========  ===  ==========  =====  ========  ======  =========
data        eps  setting     bias   trans TV  gap TV  events TV
==========  ===  ==========  =====  ========  ======  =========
pbcseq      1    counts      0      0.674     0.741   0.397
pbcseq      1    l2 x0.25    0.054  0.365     0.302   0.320
pbcseq      1    l2 x0.5     0.044  0.417     0.380   0.339
pbcseq      1    l2 default  0.023  0.426     0.458   0.350
pbcseq      1    l2 x2       0.002  0.562     0.679   0.378
pbcseq      4    counts      0      0.405     0.319   0.334
pbcseq      4    l2 x0.25    0.054  0.167     0.202   0.189
pbcseq      4    l2 x0.5     0.044  0.168     0.188   0.183
pbcseq      4    l2 default  0.023  0.190     0.178   0.203
pbcseq      4    l2 x2       0.002  0.270     0.204   0.263
berka       1    counts      0      0.216     0.300   0.227
berka       1    l2 x0.25    0.054  0.088     0.096   0.082
berka       1    l2 x0.5     0.049  0.089     0.100   0.075
berka       1    l2 default  0.031  0.074     0.089   0.078
berka       1    l2 x2       0.008  0.070     0.094   0.094
berka       4    counts      0      0.073     0.099   0.085
berka       4    l2 x0.25    0.054  0.064     0.058   0.044
berka       4    l2 x0.5     0.049  0.059     0.057   0.043
berka       4    l2 default  0.031  0.045     0.043   0.036
berka       4    l2 x2       0.008  0.029     0.031   0.031
==========  ===  ==========  =====  ========  ======  =========

Every ``l2`` setting beats ``counts`` on every TV figure in every cell; the default's gain on
transitions (0.674 -> 0.426 on pbcseq at epsilon 1, 0.405 -> 0.190 at 4; 0.216 -> 0.074 on Berka
at 1, 0.073 -> 0.045 at 4) is several times the standard deviation over fits (0.002-0.047 for
these two settings), because real entities rarely put all their counts in one cell while
``counts`` pays for that worst case. The best clip depends on the data and the budget (the
smallest on small pbcseq at epsilon 1, the largest on Berka at epsilon 4), so the default is the
rule in the middle, ``l2`` with ``C = sqrt(K)``: within 0.025 of the best setting on every figure
on Berka and at pbcseq epsilon 4, and at pbcseq epsilon 1 behind the smallest clip by 0.06
(transitions), 0.03 (columns) and 0.16 (gaps, the noisiest figure: standard deviation 0.10). Its
bias (0.02-0.03) is well under its noise at these budgets. ``contribution="counts"`` remains
available: it has no bias, and is preferable only where the budget makes the noise smaller than
the clipping bias.

Limits: a count table of more than ``MAX_TABLE_CELLS`` cells is refused from the schema alone
(OpenDP's exact sampler takes about 30 microseconds per cell: a 2-million-cell table costs about a
minute). Non-state event columns are conditionally independent given the state, and the first
state, length and start come from MST's tree over the per-entity table.

Sampling (no data, a seeded numpy generator): a per-entity row from MST gives the static values,
the length, the start and the first state; the chain gives the next states; each gap is drawn
from its bin given the state (a uniform integer inside the bin), order values are the start plus
the cumulative gaps, and events that would fall past ``order_max`` are not emitted (the sequence
ends at the public horizon, so gaps always stay in ``[gap_min, gap_max]``); non-state columns are
drawn given the state and decoded uniformly inside their bin (integer columns as integers), null
where the missing cell is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.sequential.discrete import (
    CellCodec,
    IntBins,
    conditional_rows,
    cumulative,
    draw_rows,
    pooled_distribution,
)
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.marginal import MarginalModel, library_versions, report, zcdp_rho
from privacy.generators.tabular.mst import MSTGenerator
from privacy.schema import Column, Schema
from privacy.sequence_spec import SequenceSpec
from privacy.sequences import SequenceData
from privacy.spend import PrivacySpend

#: the largest count table dpmarkov measures (OpenDP's discrete Gaussian takes ~30 us per cell)
MAX_TABLE_CELLS = 2_000_000
#: sequence lengths up to this get a cell each; longer caps get log-spaced cells and M alone
LENGTH_EXACT = 64
#: above this noise scale the integer sampler would saturate: the budget is too small to be useful
MAX_SIGMA = 1e12
DEFAULT_SHARES = {"entities": 0.30, "transitions": 0.25, "gaps": 0.15, "events": 0.30}
#: how one entity's counts enter a table: raw ("counts") or clipped to an L2 bound ("l2")
CONTRIBUTIONS = ("counts", "l2")
DEFAULT_CONTRIBUTION = "l2"
#: clipped counts are measured as integers floor(FIXED_POINT x); a power of two keeps x / FIXED_POINT exact
FIXED_POINT = 1024


@dataclass(frozen=True)
class Measurement:
    """One Gaussian measurement of an integer table: all public (schema, options, rho).

    The measured integers are counts (``resolution`` 1) or, under ``contribution="l2"``, each
    entity's clipped counts in fixed point (``floor(resolution * x)``, see ``clipped_counts``).
    """

    name: str
    shape: tuple[int, ...]
    #: the most one entity adds to the table in total (max_events - 1 or max_events): ||c||_2 <= this
    max_contribution: int
    #: the measured integers are counts times this (1: raw counts)
    resolution: int
    #: the per-entity L2 clip bound in counts (None: raw counts, nothing scaled)
    clip: float | None
    #: L2 sensitivity of the measured integer table under add/remove one entity (enforced exactly)
    int_sensitivity: int
    rho: float
    #: the discrete Gaussian's scale on the measured integers
    int_sigma: float

    @property
    def cells(self) -> int:
        return math.prod(self.shape)

    @property
    def sensitivity(self) -> int | float:
        """L2 sensitivity in counts (an integer for raw counts)."""
        if self.resolution == 1:
            return self.int_sensitivity
        return self.int_sensitivity / self.resolution

    @property
    def sigma(self) -> float:
        """The noise scale in counts (``resolution`` is a power of two: the division is exact)."""
        return self.int_sigma / self.resolution

    def mechanism(self) -> str:
        """What the card says about this part."""
        if self.clip is None:
            return "discrete Gaussian on raw counts"
        if self.resolution == 1:
            return (f"discrete Gaussian on raw counts (clip {self.clip:g} >= the largest possible contribution "
                    f"{self.max_contribution}: nothing scaled)")
        return (f"discrete Gaussian on fixed-point clipped counts (each entity's count vector c scaled by "
                f"min(1, {self.clip:.6g} / ||c||_2), then floor({self.resolution} x); integer L2 sensitivity "
                f"{self.int_sensitivity})")


@dataclass(frozen=True)
class Layout:
    """The public structure of the model, built from the schema and the options alone."""

    spec: SequenceSpec
    order: int
    state: tuple[CellCodec, ...]
    n_states: int
    #: state index = sum(cell_j * strides[j])
    strides: tuple[int, ...]
    #: None when max_events is 1 (every length is 1)
    length_bins: IntBins | None
    start_bins: IntBins
    #: None when there is no gap to model (max_events 1, or gap_min == gap_max)
    gap_bins: IntBins | None
    statics: tuple[CellCodec, ...]
    #: the non-state event columns
    others: tuple[CellCodec, ...]
    #: every event column, schema order (the output's column order)
    event_names: tuple[str, ...]
    #: what each column of the per-entity table is (public labels, in table order)
    entity_labels: tuple[str, ...]
    entity_schema: Schema

    @property
    def has_transitions(self) -> bool:
        return self.spec.max_events >= 2 and self.n_states >= 2

    def transition_shape(self) -> tuple[int, ...]:
        s = self.n_states
        return (s, s) if self.order == 1 else (s + 1, s, s)

    def describe(self) -> dict[str, Any]:
        """The public domain as plain data, for the card."""
        return {
            "state_columns": [c.name for c in self.state],
            "state_cells": {c.name: c.labels() for c in self.state},
            "state_count": self.n_states,
            "length_cells": None if self.length_bins is None else self.length_bins.as_list(),
            "start_cells": self.start_bins.as_list(),
            "gap_bins": None if self.gap_bins is None else self.gap_bins.as_list(),
            "non_state_columns": [c.name for c in self.others],
            "entity_table_columns": list(self.entity_labels),
        }


def _length_bins(m: int) -> IntBins | None:
    if m == 1:
        return None
    if m <= LENGTH_EXACT:
        return IntBins.exact(1, m)
    mid = IntBins.geometric(LENGTH_EXACT // 2 + 1, m - 1, LENGTH_EXACT // 2)
    return IntBins.from_lows([*range(1, LENGTH_EXACT // 2 + 1), *mid.lows, m], m)


def build_layout(schema: Schema, *, order: int = 1, gap_bins: int = 16, start_bins: int = 32) -> Layout:
    """The state space, cells and bins from the schema alone; ``InputError`` if too large to measure."""
    if not schema.is_sequential:
        raise InputError("dpmarkov needs a sequential schema (kind: sequential)")
    spec = schema.seq
    m = spec.max_events
    event_cols = schema.event_columns
    state_names = spec.state or tuple(c.name for c in event_cols if c.type == "categorical")
    state = tuple(CellCodec.from_column(schema.column(n)) for n in state_names)
    sizes = [c.size for c in state]
    n_states = math.prod(sizes)  # Python int: no overflow however large
    strides = tuple(math.prod(sizes[j + 1:]) for j in range(len(sizes)))
    trans_cells = n_states * n_states if order == 1 else (n_states + 1) * n_states * n_states
    if m >= 2 and n_states >= 2 and trans_cells > MAX_TABLE_CELLS:
        detail = " x ".join(f"{c.name}: {c.size}" for c in state)
        raise InputError(
            f"dpmarkov: the state space has {n_states:,} states ({detail} cells); its order-{order} "
            f"transition table would have {trans_cells:,} cells, more than the {MAX_TABLE_CELLS:,} dpmarkov "
            f"measures. Declare fewer or coarser state columns (sequence.state)"
            + (" or use order 1" if order == 2 and n_states * n_states <= MAX_TABLE_CELLS else "")
        )
    others = tuple(CellCodec.from_column(c) for c in event_cols if c.name not in state_names)
    gaps = None
    if m >= 2 and spec.gap_max > spec.gap_min:
        gaps = IntBins.geometric(spec.gap_min, spec.gap_max, gap_bins)
    for name, cells in [("gap", n_states * (gaps.size if gaps else 0)),
                        *((f"column {c.name!r}", n_states * c.size) for c in others)]:
        if cells > MAX_TABLE_CELLS:
            raise InputError(
                f"dpmarkov: the {name} table (states x cells) would have {cells:,} cells, more than the "
                f"{MAX_TABLE_CELLS:,} dpmarkov measures; declare fewer or coarser state columns"
            )
    start = IntBins.from_lows(
        [spec.order_min, *IntBins.equal_width(spec.order_min + 1, spec.order_max, start_bins - 1).lows],
        spec.order_max,
    )
    length = _length_bins(m)
    statics = tuple(CellCodec.from_column(c) for c in schema.static_columns)
    labels: list[str] = [c.name for c in statics]
    sizes_e: list[int] = [c.size for c in statics]
    if length is not None:
        labels.append("sequence length")
        sizes_e.append(length.size)
    labels.append("start")
    sizes_e.append(start.size)
    for c in state:
        labels.append(f"first {c.name}")
        sizes_e.append(c.size)
    entity_schema = Schema(
        kind="tabular",
        name="dpmarkov per-entity table",
        columns=tuple(
            Column(name=f"c{i}", type="categorical", categories=tuple(str(k) for k in range(k_)))
            for i, k_ in enumerate(sizes_e)
        ),
    )
    return Layout(
        spec=spec, order=order, state=state, n_states=n_states, strides=strides, length_bins=length,
        start_bins=start, gap_bins=gaps, statics=statics, others=others,
        event_names=tuple(c.name for c in event_cols), entity_labels=tuple(labels), entity_schema=entity_schema,
    )


def table_clip(contribution: str, clip: float | None, max_contribution: int) -> float | None:
    """The per-entity L2 clip bound of a table whose entity adds at most ``max_contribution`` counts.

    ``"counts"``: None (raw counts). ``"l2"``: ``clip``, or ``sqrt(max_contribution)`` when ``clip``
    is None, never above ``max_contribution`` (no count vector is longer than that). Public.
    """
    if contribution == "counts":
        return None
    c = math.sqrt(max_contribution) if clip is None else float(clip)
    return min(c, float(max_contribution))


def plan_budget(
    layout: Layout, rho: float, shares: dict[str, float], *, contribution: str = DEFAULT_CONTRIBUTION,
    clip: float | None = None,
) -> tuple[float, list[Measurement], dict[str, float]]:
    """Split ``rho`` by the shares over the parts present; the Gaussian parts' sigma and sensitivity.

    Returns the per-entity (MST) rho, the measurements and the normalised shares. All public.
    """
    if contribution not in CONTRIBUTIONS:
        raise InputError(f"dpmarkov: contribution ({contribution!r}) must be one of {', '.join(CONTRIBUTIONS)}")
    m = layout.spec.max_events
    present = {"entities": shares["entities"]}
    if layout.has_transitions:
        present["transitions"] = shares["transitions"]
    if layout.gap_bins is not None:
        present["gaps"] = shares["gaps"]
    if layout.others:
        present["events"] = shares["events"]
    total = sum(present.values())
    norm = {k: v / total for k, v in present.items()}

    def measurement(name: str, shape: tuple[int, ...], most: int, r: float) -> Measurement:
        bound = table_clip(contribution, clip, most)
        if bound is None or bound >= most:
            resolution, int_sens = 1, most  # ||c||_2 <= ||c||_1 <= most: nothing to scale
        else:
            resolution = FIXED_POINT
            int_sens = math.ceil(resolution * bound)
        # a hair above Delta / sqrt(2 r): OpenDP's (rounded-up) map must stay within r
        s = int_sens / math.sqrt(2.0 * r) * (1.0 + 1e-9)
        if not s <= MAX_SIGMA:
            raise InputError(
                f"dpmarkov: the budget (rho {rho:.3g}) is too small to measure anything "
                f"(noise scale {s / resolution:.3g}); raise epsilon"
            )
        return Measurement(name, shape, most, resolution, bound, int_sens, r, s)

    out: list[Measurement] = []
    s = layout.n_states
    if "transitions" in norm:
        out.append(measurement("transitions", layout.transition_shape(), m - 1, rho * norm["transitions"]))
    if "gaps" in norm:
        assert layout.gap_bins is not None
        out.append(measurement("gaps", (s, layout.gap_bins.size), m - 1, rho * norm["gaps"]))
    if "events" in norm:
        r = rho * norm["events"] / len(layout.others)
        for c in layout.others:
            out.append(measurement(f"events:{c.name}", (s, c.size), m, r))
    return rho * norm["entities"], out, norm


# -- the data: validated and encoded (sensitive from here on) -----------------------------------------


@dataclass(frozen=True)
class Encoded:
    """The training entities as integer arrays over the public layout."""

    lengths: np.ndarray      # (n,) events per entity
    offsets: np.ndarray      # (n + 1,) first event of each entity
    pos: np.ndarray          # (N,) position of each event in its entity
    order: np.ndarray        # (N,) order values, clipped to the public bounds
    state: np.ndarray        # (N,) state index of each event
    gap: np.ndarray          # (N,) gap bin of the gap before each event (0 at position 0)
    others: tuple[np.ndarray, ...] = field(default=())   # (N,) cells per non-state column
    statics: tuple[np.ndarray, ...] = field(default=())  # (n,) cells per static column

    @property
    def n(self) -> int:
        return int(self.lengths.size)


def encode_data(data: SequenceData, layout: Layout) -> Encoded:
    """Check the conformed data against the layout and encode it; nothing about the domain is read."""
    spec = layout.spec
    e, o = spec.entity, spec.order
    if data.spec != spec:
        raise InputError("the data was conformed with another sequence block than the schema's")
    want_s = [e, *(c.name for c in layout.statics)]
    want_e = [e, o, *layout.event_names]
    if list(data.statics.columns) != want_s or list(data.events.columns) != want_e:
        raise InputError("the data's columns are not the schema's; conform the data to the schema first")
    n = data.statics.height
    if n == 0:
        raise InputError("the training data has no entities")
    keys = data.statics.get_column(e).cast(pl.Utf8)
    if keys.null_count() or keys.n_unique() != n:
        raise InputError("the static table has missing or repeated entity keys; conform the data first")
    ev = data.events
    idx_s = ev.get_column(e).cast(pl.Utf8).replace_strict(
        keys, pl.Series(np.arange(n, dtype=np.int64)), default=None, return_dtype=pl.Int64
    )
    if idx_s.null_count():
        raise InputError(f"{idx_s.null_count()} events belong to no entity of the static table")
    idx = np.asarray(idx_s.to_numpy(), dtype=np.int64)
    perm = np.argsort(idx, kind="stable")  # each entity's events keep their order
    idx = idx[perm]
    ev = ev[perm]
    lengths = np.bincount(idx, minlength=n).astype(np.int64)
    if int(lengths.min()) < 1:
        raise InputError(f"{int((lengths == 0).sum())} entities have no events; conform the data first")
    if int(lengths.max()) > spec.max_events:
        raise InputError(
            f"{int((lengths > spec.max_events).sum())} entities have more than max_events "
            f"({spec.max_events}) events; conform the data first (it truncates them)"
        )
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    pos = np.arange(idx.size, dtype=np.int64) - offsets[idx]
    order_s = ev.get_column(o)
    if order_s.null_count() or not order_s.dtype.is_integer():
        raise InputError(f"order column {o!r}: integer values expected; conform the data first")
    order = np.clip(np.asarray(order_s.to_numpy(), dtype=np.int64), spec.order_min, spec.order_max)
    state = np.zeros(idx.size, dtype=np.int64)
    for c, stride in zip(layout.state, layout.strides):
        state += c.encode(ev.get_column(c.name)) * stride
    gap = np.zeros(idx.size, dtype=np.int64)
    if layout.gap_bins is not None:
        later = pos >= 1
        g = np.zeros(idx.size, dtype=np.int64)
        g[1:] = order[1:] - order[:-1]
        g = np.clip(g, spec.gap_min, spec.gap_max)  # the public gap bounds (DESIGN: generators clip)
        gap[later] = layout.gap_bins.encode(g[later])
    others = tuple(c.encode(ev.get_column(c.name)) for c in layout.others)
    statics = tuple(c.encode(data.statics.get_column(c.name)) for c in layout.statics)
    return Encoded(lengths=lengths, offsets=offsets, pos=pos, order=order, state=state, gap=gap,
                   others=others, statics=statics)


def count_tables(enc: Encoded, layout: Layout, measurements: list[Measurement]) -> dict[str, np.ndarray]:
    """The exact integer tables of the measurements (sensitive: only ever released with noise).

    Every table is a sum over entities of a per-entity table (raw counts, or the entity's clipped
    fixed-point counts), so adding or removing one entity changes it by that entity's own table
    (whose L2 norm the sensitivity bounds).
    """
    s = layout.n_states
    out: dict[str, np.ndarray] = {}
    entity = np.repeat(np.arange(enc.n, dtype=np.int64), enc.lengths)
    later = np.flatnonzero(enc.pos >= 1)
    for m in measurements:
        rows = later
        if m.name == "transitions":
            prev, cur = enc.state[later - 1], enc.state[later]
            if layout.order == 1:
                flat = prev * s + cur
            else:
                second = later[enc.pos[later] >= 2]
                prev2 = np.full(later.size, s, dtype=np.int64)  # START before the first event
                prev2[enc.pos[later] >= 2] = enc.state[second - 2]
                flat = (prev2 * s + prev) * s + cur
        elif m.name == "gaps":
            flat = enc.state[later] * m.shape[1] + enc.gap[later]
        else:
            j = [f"events:{c.name}" for c in layout.others].index(m.name)
            flat = enc.state * m.shape[1] + enc.others[j]
            rows = np.arange(enc.state.size)
        if m.resolution == 1:
            table = np.bincount(flat, minlength=m.cells).astype(np.int64)
        else:
            assert m.clip is not None
            table = clipped_counts(entity[rows], flat, m.cells, m.clip, m.resolution, m.int_sensitivity)
        out[m.name] = table.reshape(m.shape)
    return out


def clipped_counts(entity: np.ndarray, flat: np.ndarray, cells: int, clip: float, resolution: int,
                   bound: int) -> np.ndarray:
    """``sum_e v_e`` with ``v_e = floor(resolution * c_e * min(1, clip / ||c_e||_2))`` (int64, flat).

    ``c_e`` is entity ``e``'s vector of counts over the ``cells`` (its items ``flat`` where
    ``entity == e``). Each ``v_e`` depends on entity ``e``'s own events only and satisfies
    ``||v_e||_2 <= bound``, checked in exact integer arithmetic: ``0 <= v_e <= resolution * c_e *
    min(1, clip / ||c_e||)`` coordinate-wise gives ``||v_e|| <= resolution * clip <= bound`` when
    ``bound >= ceil(resolution * clip)``, and a vector that floating-point rounding pushed over
    ``bound`` is scaled down again in integers (``v * bound // (isqrt(||v||^2) + 1)``). The sum is
    exact (integers), so the table's L2 sensitivity under add/remove one entity is ``bound``.
    """
    if flat.size == 0:
        return np.zeros(cells, dtype=np.int64)
    keys, cnt = np.unique(entity.astype(np.int64) * cells + flat, return_counts=True)
    ent = keys // cells
    starts = np.flatnonzero(np.concatenate([[True], ent[1:] != ent[:-1]]))
    sizes = np.diff(np.concatenate([starts, [ent.size]]))
    cnt = cnt.astype(np.int64)
    norm = np.sqrt(np.add.reduceat(cnt * cnt, starts).astype(np.float64))
    factor = np.repeat(resolution * np.minimum(1.0, clip / norm), sizes)
    v = np.floor(cnt * factor).astype(np.int64)
    sq = np.add.reduceat(v * v, starts)
    over = np.flatnonzero(sq > bound * bound)
    if over.size:  # float rounding only: shrink those vectors in integers until they fit
        for e in over:
            a, b = int(starts[e]), int(starts[e] + sizes[e])
            while int((v[a:b] * v[a:b]).sum()) > bound * bound:
                v[a:b] = v[a:b] * bound // (math.isqrt(int((v[a:b] * v[a:b]).sum())) + 1)
    out = np.zeros(cells, dtype=np.int64)
    np.add.at(out, keys % cells, v)  # integer sum: exact, unlike a float bincount
    return out


def entity_table(enc: Encoded, layout: Layout) -> pl.DataFrame:
    """One row per entity: static cells, length cell, start cell, first-state cells (as codes)."""
    first = enc.offsets[:-1]
    cols: list[np.ndarray] = list(enc.statics)
    if layout.length_bins is not None:
        cols.append(layout.length_bins.encode(enc.lengths))
    cols.append(layout.start_bins.encode(enc.order[first]))
    for c, stride in zip(layout.state, layout.strides):
        cols.append((enc.state[first] // stride) % c.size)
    return pl.DataFrame(
        [pl.Series(f"c{i}", col).cast(pl.Utf8) for i, col in enumerate(cols)]
    )


def discrete_gaussian(counts: np.ndarray, m: Measurement) -> tuple[np.ndarray, float]:
    """The integer table plus OpenDP's discrete Gaussian noise, in counts; and OpenDP's rho for it.

    The noise has scale ``m.int_sigma`` on the measured integers and OpenDP's privacy map is
    evaluated at their L2 sensitivity ``m.int_sensitivity``; dividing by ``m.resolution``
    afterwards is post-processing.
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"),
                              float(m.int_sigma))
    spent = float(meas.map(int(m.int_sensitivity)))
    if spent > m.rho:
        raise RuntimeError(f"{m.name}: OpenDP charges rho {spent} for a part of rho {m.rho}")
    noisy = meas([int(x) for x in np.asarray(counts, dtype=np.int64).ravel()])
    return np.asarray(noisy, dtype=np.float64).reshape(counts.shape) / m.resolution, spent


# -- noisy counts -> distributions (post-processing) ----------------------------------------------------


def transition_distributions(y: np.ndarray, sigma: float, order: int, backoff: float) -> tuple[np.ndarray, int]:
    """Row-stochastic transition tables from the noisy counts, with hierarchical back-off.

    Order 1: ``(S, S)``; rows back off to the noisy marginal of the next state. Order 2:
    ``(S + 1, S, S)`` (first axis: the state two steps back, or START); rows back off to the
    order-1 rows obtained by summing out that axis, which back off to the marginal.
    """
    y = np.asarray(y, dtype=np.float64)
    s = y.shape[-1]
    if order == 1:
        p0, _ = pooled_distribution(y.sum(axis=0), sigma * math.sqrt(s), backoff)
        return conditional_rows(y, sigma, backoff, p0)
    y1 = y.sum(axis=0)
    p0, _ = pooled_distribution(y1.sum(axis=0), sigma * math.sqrt(s * (s + 1)), backoff)
    p1, _ = conditional_rows(y1, sigma * math.sqrt(s + 1), backoff, p0)
    p2, backed = conditional_rows(y.reshape((s + 1) * s, s), sigma, backoff, np.tile(p1, (s + 1, 1)))
    return p2.reshape(s + 1, s, s), backed


def state_conditionals(y: np.ndarray, sigma: float, backoff: float) -> tuple[np.ndarray, int]:
    """``P(cell | state)`` from a noisy ``(S, K)`` table; rows back off to the pooled marginal."""
    y = np.asarray(y, dtype=np.float64)
    pooled, _ = pooled_distribution(y.sum(axis=0), sigma * math.sqrt(y.shape[0]), backoff)
    return conditional_rows(y, sigma, backoff, pooled)


# -- the generator ----------------------------------------------------------------------------------


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InputError(f"dpmarkov: {name} ({v!r}) must be a finite number > 0")
    return float(v)


def _int_in(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise InputError(f"dpmarkov: {name} ({v!r}) must be an integer in [{lo}, {hi}]")
    return int(v)


class DPMarkovGenerator:
    """The ``dpmarkov`` sequential generator (see the module docstring for the DP argument).

    Options (all public, validated here): ``order`` 1 or 2; the budget shares ``entity_share``,
    ``transition_share``, ``gap_share``, ``event_share`` (relative weights, normalised over the
    parts the schema needs; defaults 0.30 / 0.25 / 0.15 / 0.30); ``backoff`` (a conditional row
    whose noisy total is below this many standard deviations of that total uses the pooled
    distribution; default 2); ``gap_bins`` (at most this many log-spaced gap bins, default 16);
    ``start_bins`` (equal-width start-time bins after ``order_min``'s own, default 32);
    ``contribution`` (``"counts"``: each entity's raw counts, L2 sensitivity ``max_events - 1`` or
    ``max_events``; ``"l2"``: each entity's count vector of each table scaled to L2 norm at most
    the clip bound, L2 sensitivity that bound (in fixed point, see step 7); default ``"l2"``,
    chosen from the measurements in the module docstring) and ``clip`` (``"l2"`` only: a public
    number > 0 in counts, the same for every table and capped at the table's largest possible
    contribution; default ``None``: ``sqrt(max_events - 1)`` for transitions and gaps,
    ``sqrt(max_events)`` for event columns).
    """

    name = "dpmarkov"

    def __init__(
        self,
        *,
        order: int = 1,
        entity_share: float = DEFAULT_SHARES["entities"],
        transition_share: float = DEFAULT_SHARES["transitions"],
        gap_share: float = DEFAULT_SHARES["gaps"],
        event_share: float = DEFAULT_SHARES["events"],
        backoff: float = 2.0,
        gap_bins: int = 16,
        start_bins: int = 32,
        contribution: str = DEFAULT_CONTRIBUTION,
        clip: float | None = None,
    ) -> None:
        if isinstance(order, bool) or order not in (1, 2):
            raise InputError(f"dpmarkov: order ({order!r}) must be 1 or 2")
        self.order = int(order)
        self.shares = {
            "entities": _positive("entity_share", entity_share),
            "transitions": _positive("transition_share", transition_share),
            "gaps": _positive("gap_share", gap_share),
            "events": _positive("event_share", event_share),
        }
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not (
            math.isfinite(backoff) and backoff >= 0
        ):
            raise InputError(f"dpmarkov: backoff ({backoff!r}) must be a finite number >= 0")
        self.backoff = float(backoff)
        self.gap_bins = _int_in("gap_bins", gap_bins, 2, 256)
        self.start_bins = _int_in("start_bins", start_bins, 2, 1000)
        if not isinstance(contribution, str) or contribution not in CONTRIBUTIONS:
            raise InputError(
                f"dpmarkov: contribution ({contribution!r}) must be one of {', '.join(map(repr, CONTRIBUTIONS))}"
            )
        self.contribution = contribution
        if clip is not None and contribution != "l2":
            raise InputError(f"dpmarkov: clip ({clip!r}) applies to contribution='l2' only")
        self.clip = None if clip is None else _positive("clip", clip)

    def layout(self, schema: Schema) -> Layout:
        """The public structure this generator would use for ``schema`` (no data involved)."""
        return build_layout(schema, order=self.order, gap_bins=self.gap_bins, start_bins=self.start_bins)

    def fit(
        self, data: SequenceData, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None
    ) -> "DPMarkovModel":
        """Fit on the conformed training entities, spending at most ``spend`` (entity-level zCDP)."""
        # everything public first: budget, domain, sensitivities, noise scales
        if spend.delta <= 0:
            raise InputError(
                f"delta ({spend.delta}) must be > 0 for dpmarkov: its Gaussian noise is zCDP, which gives "
                f"(epsilon, delta)-DP only for delta > 0"
            )
        rho = zcdp_rho(spend)
        layout = self.layout(schema)
        rho_entities, measurements, shares = plan_budget(layout, rho, self.shares, contribution=self.contribution,
                                                         clip=self.clip)

        # the data, measured with noise
        report(progress, "dpmarkov: encoding the entities", 0.0)
        enc = encode_data(data, layout)
        counts = count_tables(enc, layout, measurements)
        report(progress, f"dpmarkov: measuring {len(measurements)} count tables", 0.05)
        noisy: dict[str, np.ndarray] = {}
        spent: dict[str, float] = {}
        for m in measurements:
            noisy[m.name], spent[m.name] = discrete_gaussian(counts[m.name], m)
        del counts

        # post-processing of the noisy counts only
        sigmas = {m.name: m.sigma for m in measurements}
        backed_off: dict[str, int] = {}
        transitions = None
        if "transitions" in noisy:
            transitions, backed_off["transitions"] = transition_distributions(
                noisy["transitions"], sigmas["transitions"], layout.order, self.backoff
            )
        gaps = None
        if "gaps" in noisy:
            gaps, backed_off["gaps"] = state_conditionals(noisy["gaps"], sigmas["gaps"], self.backoff)
        others: list[np.ndarray] = []
        for c in layout.others:
            key = f"events:{c.name}"
            p, backed_off[key] = state_conditionals(noisy[key], sigmas[key], self.backoff)
            others.append(p)

        table = entity_table(enc, layout)
        del enc

        def mst_progress(message: str, fraction: float | None) -> None:
            if progress is not None:
                progress(message, None if fraction is None else 0.1 + 0.9 * fraction)

        entity_model = MSTGenerator().fit(
            table, layout.entity_schema, spend, rho=float(rho_entities), progress=mst_progress
        )
        del table
        card = _card(layout, spend, rho, rho_entities, measurements, shares, spent, backed_off,
                     entity_model, self.backoff, self.contribution)
        report(progress, "dpmarkov: done", 1.0)
        return DPMarkovModel(
            card=card, layout=layout, entity_model=entity_model, transitions=transitions, gaps=gaps,
            others=tuple(others),
        )


def _card(layout: Layout, spend: PrivacySpend, rho: float, rho_entities: float, measurements: list[Measurement],
          shares: dict[str, float], spent: dict[str, float], backed_off: dict[str, int], entity_model: MarginalModel,
          backoff: float, contribution: str) -> GeneratorCard:
    spec = layout.spec
    labels = {f"c{i}": lab for i, lab in enumerate(layout.entity_labels)}
    mst = entity_model.card.parameters
    rho_used = float(mst["rho_used"]) + sum(spent.values())
    parts = [f"per-entity table through MST: rho {rho_entities:.6g} (one row per entity; MST's marginals have "
             f"sensitivity 1 under add/remove one row)"]
    for m in measurements:
        parts.append(f"{m.name}: {m.mechanism()}, L2 sensitivity {m.sensitivity:.6g} counts, sigma {m.sigma:.6g} "
                     f"counts, rho {spent[m.name]:.6g}")
    accounting = (
        f"zero-concentrated DP: rho = {rho:.6g} from OpenDP's conversion of (epsilon {spend.epsilon}, delta "
        f"{spend.delta}); parts composed by adding rho (sum {rho_used:.6g}): " + "; ".join(parts)
        + f". Sensitivities from max_events = {spec.max_events}: an entity adds at most max_events - 1 "
        f"transitions and gaps and max_events cells per event column"
        + ("." if contribution == "counts" else
           "; under contribution 'l2' each entity's count vector of each table is scaled to L2 norm at most "
           "the table's clip bound, and the table's L2 sensitivity is that bound (in fixed point, exact).")
        + " Gaussian noise from OpenDP (exact discrete Gaussian on integers, OS entropy)."
    )
    params: dict[str, Any] = {
        "order": layout.order,
        "max_events": spec.max_events,
        **layout.describe(),
        "shares": shares,
        "rho": rho,
        "rho_parts": {"entities": rho_entities, **{m.name: m.rho for m in measurements}},
        "sigmas": {m.name: m.sigma for m in measurements},
        "sensitivities": {m.name: m.sensitivity for m in measurements},
        "contribution": contribution,
        "clip": {m.name: m.clip for m in measurements},
        "fixed_point_resolution": {m.name: m.resolution for m in measurements},
        "integer_sensitivities": {m.name: m.int_sensitivity for m in measurements},
        "mechanisms": {m.name: m.mechanism() for m in measurements},
        "table_cells": {m.name: m.cells for m in measurements},
        "backoff": backoff,
        "backed_off_rows": backed_off,
        "entity_model": {
            "generator": "mst",
            "rho": rho_entities,
            "rho_used": float(mst["rho_used"]),
            "edges": [[labels[a], labels[b]] for a, b in mst["edges"]] if mst["edges"] else [],
            "compressed_columns": [labels[c] for c in mst["compressed_columns"]],
        },
        "rho_used": rho_used,
    }
    domain_sources = {
        "state space": "schema: the state columns' categories or bins, plus a missing cell where nullable",
        "static and event column cells": "schema (categories, bin edges or cuts; a missing cell where nullable)",
        "sequence length cells": f"schema: max_events ({spec.max_events})",
        "start-time cells": "schema: order min/max (order_min alone, then equal-width bins)",
        "gap bins": "schema: gap_min/gap_max (gap_min alone, then log-spaced)",
        "sensitivities and noise scales": "schema (max_events) and the options (budget shares, contribution, "
                                          "clip)",
        "entity count (estimated_rows)": "DP estimate: MST's noisy total",
        "length, start, static and first-state distributions": "DP measurement (MST)",
        "transition, gap and event-column distributions": "DP measurement (discrete Gaussian counts)",
        "back-off choices": "post-processing of the noisy counts",
    }
    notes = (
        "noise comes from OpenDP's samplers (OS entropy) during fit, never from a seed; the seed only "
        "drives sampling",
        "order values are clipped to the public bounds and gaps to [gap_min, gap_max] before counting",
        "post-processing: each noisy row is projected onto the simplex with its noisy total (norm-sub); "
        f"rows with a noisy total under {backoff:g} standard deviations back off to the pooled distribution",
        "sampling: events that would fall after order_max are not emitted (the sequence ends at the horizon)",
        "non-state event columns are drawn independently of each other given the state",
    )
    return GeneratorCard(
        name=DPMarkovGenerator.name,
        parameters=params,
        library_versions=library_versions(),
        spend=PrivacySpend(epsilon=spend.epsilon, delta=spend.delta, rho=rho),
        accounting=accounting,
        unit_of_privacy=spec.privacy_unit(),
        domain_sources=domain_sources,
        notes=notes,
    )


class DPMarkovModel:
    """A fitted dpmarkov model: MST's per-entity model and the chain's probability tables.

    Holds numpy arrays, the public layout and MST's ``MarginalModel``; pickles with ``pickle``.
    """

    def __init__(self, *, card: GeneratorCard, layout: Layout, entity_model: MarginalModel,
                 transitions: np.ndarray | None, gaps: np.ndarray | None, others: tuple[np.ndarray, ...]) -> None:
        self.card = card
        self.layout = layout
        self._entity = entity_model
        self.transitions = transitions
        self.gaps = gaps
        self.others = others

    @property
    def estimated_rows(self) -> int:
        """MST's DP estimate of the number of training entities (never the true count)."""
        return self._entity.estimated_rows

    def sample(self, n: int, seed: int) -> SequenceData:
        """``n`` synthetic entities with their events; the same seed gives the same output."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n ({n}) must be an integer >= 0")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed ({seed}) must be an integer >= 0")
        lay = self.layout
        spec = lay.spec
        n = int(n)
        rng = np.random.default_rng(int(seed))
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return self._frames([empty for _ in lay.statics], [empty for _ in lay.others], empty, empty, empty, 0, rng)
        rows = self._entity.sample(n, int(rng.integers(0, 2**62)))
        codes = [np.asarray(rows.get_column(f"c{i}").cast(pl.Int64).to_numpy(), dtype=np.int64)
                 for i in range(len(lay.entity_labels))]
        k = len(lay.statics)
        static_cells = codes[:k]
        if lay.length_bins is not None:
            lengths = lay.length_bins.decode(codes[k], rng)
            k += 1
        else:
            lengths = np.ones(n, dtype=np.int64)
        start = lay.start_bins.decode(codes[k], rng)
        k += 1
        first_state = np.zeros(n, dtype=np.int64)
        for stride in lay.strides:
            first_state += codes[k] * stride
            k += 1

        # the chain, one step at a time over the entities still running
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        total = int(offsets[-1])
        ent = np.repeat(np.arange(n, dtype=np.int64), lengths)
        pos = np.arange(total, dtype=np.int64) - offsets[ent]
        state = np.zeros(total, dtype=np.int64)
        state[offsets[:-1]] = first_state
        s = lay.n_states
        if self.transitions is not None:
            cdf = cumulative(self.transitions).reshape(-1, s)
            for t in range(1, int(lengths.max())):
                at = offsets[:-1][lengths > t] + t
                prev = state[at - 1]
                if lay.order == 1:
                    row = prev
                else:
                    prev2 = state[at - 2] if t >= 2 else np.full(at.size, s, dtype=np.int64)
                    row = prev2 * s + prev
                state[at] = draw_rows(cdf, row, rng)

        # gaps, order values, the public horizon
        later = pos >= 1
        gap = np.zeros(total, dtype=np.int64)
        if self.gaps is not None:
            assert lay.gap_bins is not None
            gap[later] = lay.gap_bins.decode(draw_rows(cumulative(self.gaps), state[later], rng), rng)
        else:
            gap[later] = spec.gap_min
        cs = np.cumsum(gap)
        order = start[ent] + cs - cs[offsets[:-1]][ent]
        keep = order <= spec.order_max  # the first event always stays (start <= order_max)
        ent, order, state = ent[keep], order[keep], state[keep]
        other_cells = [draw_rows(cumulative(p), state, rng) for p in self.others]
        return self._frames(static_cells, other_cells, ent, order, state, n, rng)

    def _frames(self, static_cells: list[np.ndarray], other_cells: list[np.ndarray], ent: np.ndarray,
                order: np.ndarray, state: np.ndarray, n: int, rng: np.random.Generator) -> SequenceData:
        """The output frames, columns and dtypes as ``conform_sequences`` makes them."""
        lay = self.layout
        spec = lay.spec
        # fresh keys "1".."n", assigned in text order so that statics come out sorted by key
        keys = np.asarray(sorted(str(i) for i in range(1, n + 1)), dtype=object)
        statics = pl.DataFrame(
            [pl.Series(spec.entity, keys, dtype=pl.Utf8),
             *(c.decode(cells, rng) for c, cells in zip(lay.statics, static_cells))]
        )
        values: dict[str, pl.Series] = {}
        for c, stride in zip(lay.state, lay.strides):
            values[c.name] = c.decode((state // stride) % c.size, rng)
        for c, cells in zip(lay.others, other_cells):
            values[c.name] = c.decode(cells, rng)
        events = pl.DataFrame(
            [pl.Series(spec.entity, keys[ent], dtype=pl.Utf8), pl.Series(spec.order, order, dtype=pl.Int64),
             *(values[name].alias(name) for name in lay.event_names)]
        )
        return SequenceData(statics=statics, events=events, spec=spec)
