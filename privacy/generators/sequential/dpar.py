"""DPAR: an autoregressive transformer over an entity's events, trained by DP-SGD, statics by MST.

The model: each entity is its static columns and a sequence of at most ``max_events`` events. The
statics are generated first, by MST on the one-row-per-entity static table; the events are then
generated one at a time by a small causal transformer conditioned on the statics, each event field
by field (at the first position the entity's length and first order value, later the gap to the
previous event, then the event columns in schema order), every field a categorical distribution
over a public grid.

Privacy argument, step by step (unit: one entity with all its events, at most ``max_events`` of
them, gaps clipped to the schema's bounds; add/remove one entity):

1. **Encoding, from the schema only** (``SequenceLayout.from_schema``; it never sees the data).
   A categorical column is one field over the schema's categories (plus a "missing" cell when the
   column is nullable). A numeric column is two fields: its public bin (the schema's bins or cuts,
   plus "missing") and a sub-bin (``sub_bins`` equal parts of the bin; integer bins with fewer
   integers than that get one part per integer). The time is the first event's order value on a
   log-spaced integer grid over the schema's ``[order_min, order_max]`` and, for later events, the
   gap to the previous event clipped to ``[gap_min, gap_max]`` on a log-spaced integer grid over
   those bounds (singletons near the lower bound, wider bins further away). The length is a field
   on a log-spaced grid over ``[1, max_events]``, learnt like the others, never read as a free
   quantity; sequences are padded to the public ``max_events``. Each entity's training arrays are
   a function of that entity alone.
2. **Statics by MST** with ``static_share`` of the budget: MST (``tabular.mst``, smartnoise with
   synthgate's fixes) on the static table coded by the same public grids (bin codes; numeric values
   are redrawn uniformly inside the bin when sampled) spends exactly ``rho_s``-zCDP. Its noisy total
   (post-processing of its noisy marginals) is the DP count of entities: it sets the Poisson rate
   ``batch_size / noisy count`` and ``estimated_rows``; ``len(data)`` is used for nothing. Without
   static columns, the count is one Gaussian measurement (sensitivity 1) of the same ``rho_s``.
   ``rho_s = static_share * rho``, where ``rho`` is the zCDP parameter of the one Gaussian
   mechanism that would spend the whole (epsilon, delta) in our accountant.
3. **DP-SGD** (opacus 1.6, ``dpsgd.PrivateModule``): each step takes a Poisson sample of the
   training *entities*; one training sample is one entity: its statics (the conditioning) and its
   whole padded sequence. Its loss is the sum of its fields' cross-entropies (teacher forcing; the
   per-entity fields weighted by a public constant) divided by the public ``max_events``, a
   function of that entity alone (no batch statistics, causal attention, no mixing across the
   batch dimension), so clipping each sample's gradient to ``max_grad_norm`` bounds one entity's
   contribution; Gaussian noise is added. An empty Poisson sample is a valid (noise-only) step.
4. **Accounting** (``accounting``: opacus' RDP accountant): ``rho_s``-zCDP means an RDP curve of
   ``rho_s * alpha`` at every order, which is exactly the curve of an unsampled Gaussian mechanism
   with noise multiplier ``1 / sqrt(2 rho_s)`` (``alpha / (2 sigma^2)``); the statics enter the
   history as that entry, and the DP-SGD steps as Poisson-subsampled Gaussians. The rate and
   steps depend on MST's noisy total (an adaptive choice), so the guarantee is taken at one Renyi
   order ``alpha0`` fixed from public inputs before the data is read (``accounting.fixed_order``:
   epsilon, delta, epochs, ``rho_s``); the noise multiplier is calibrated before training so that
   statics + all planned steps have RDP at ``alpha0`` within the budget whose conversion is the
   requested epsilon, for every possible count, and the card's spend is that guarantee
   (``Plan.epsilon_guarantee``; the optimised-order figure of the run's history is information
   only). ``time_limit_s`` becomes a step count before DP-SGD reads the data (timed on
   schema-random entities, ``dpsgd.steps_for_time``), calibrated at the same ``alpha0``.
5. **Sampling is post-processing**: MST's model draws the statics, the transformer the events,
   with generators seeded from the caller's seed (no global generator is touched). DP noise,
   Poisson sampling, MST's selection and the initial weights come from OS entropy, never from a
   user seed.

Architecture choice, measured on a 2-core CPU (one torch thread, 64 entities per step, default
sizes; whole pbcseq with 16 positions / whole Berka with 64), milliseconds per step:

=====================  ===========  ==========  ==========
model                  not private  DP, hooks   DP, ghost
=====================  ===========  ==========  ==========
causal transformer     45 / 98      185 / 184   173 / 271
opacus DPGRU           64 / 107     222 / 253   254 / 385
=====================  ===========  ==========  ==========

(same input layer and heads; ``DPGRU`` runs its cells in a Python loop over time and needs their
per-sample gradients materialised at every step). The transformer (pre-LayerNorm, causal
self-attention by ``scaled_dot_product_attention``, only ``nn.Linear``/``nn.LayerNorm`` layers, so
every opacus mode applies) is faster in every mode. Per-sample gradients (``hooks``) are the
default: as fast as ghost clipping at 16 positions and 1.5x faster at 64, because opacus' ghost
norm of a Linear layer over ``(batch, time, features)`` costs ``time^2`` per sample while this
model's layers are narrow; ``ghost`` remains an option (wide models, GPU memory).

Each field's head is a small MLP over a running *event state*: the position's hidden state plus
the embeddings of the fields of the same event generated before it, so the columns of one event
are modelled jointly (the chain rule), not as independent given the history.

``fit_nonprivate`` trains the same model the same way with no clipping and no noise and fits the
statics with MST at a very large rho: it is NOT differentially private and exists only for the
benchmark's DP/non-DP comparison (it is never registered as a generator).
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.deep.accounting import ACCOUNTANT, calibrate_measurement, rdp_epsilon
from privacy.generators.tabular.deep.diffusion import EpsilonMeter
from privacy.generators.tabular.deep.dpsgd import (
    Clock,
    FittedTorchModel,
    Plan,
    PrivateModule,
    check_common_options,
    entropy_generator,
    guarantee_text,
    poisson_indices,
    resolve_device,
    shuffled_batches,
    steps_for_time,
    torch_versions,
)
from privacy.generators.tabular.discretize import ColumnCodec
from privacy.schema import Column, Schema
from privacy.sequence_spec import SequenceSpec
from privacy.sequences import SequenceData
from privacy.spend import PrivacySpend

NAME = "dpar"
#: the first event's order value: at most this many log-spaced integer bins over the order bounds
START_BINS = 128
#: an entity's number of events: at most this many log-spaced integer bins over [1, max_events]
LENGTH_BINS = 32
#: the gap to the previous event: at most this many log-spaced integer bins over the gap bounds
GAP_BINS = 48
#: sub-bins of a time bin (at most; an integer bin with fewer values gets one per value)
TIME_SUB_BINS = 64
#: weight of the per-entity fields (length, first order value) in an entity's loss (``field_weights``)
FIRST_EVENT_WEIGHT = 8.0
#: entities per chunk of the generation, and entity-positions per chunk (bound sampling memory:
#: the attention cache holds a chunk's positions)
SAMPLE_CHUNK = 4096
SAMPLE_POSITIONS = 1 << 18
#: the MST rho of the non-private twin's statics (NOT private; benchmark only)
NONPRIVATE_RHO = 1e4
DOMAIN_SOURCES = {
    "categories": "schema (plus a 'missing' cell for nullable columns)",
    "numeric bins": "schema bins or cuts over public bounds, split into equal sub-bins",
    "time": "schema order bounds (first event) and gap bounds (log-spaced bins, gaps clipped)",
    "sequence length": "a learnt per-entity field on log-spaced bins over [1, max_events] (schema)",
    "statics": "DP: MST on the static table (static_share of the budget, zCDP)",
    "entity count (sampling rate, number of steps, estimated rows)": "DP: MST's noisy total (already paid)",
}
NOTES = (
    "statics generated by MST (zCDP rho_s); events by a causal transformer conditioned on them, "
    "trained by DP-SGD with one entity (statics + whole sequence) per sample",
    "every field is a categorical over a public grid: the entity's length (drawn first), categories (+missing), "
    "numeric bins (+missing) and sub-bins, first order value and gap bins from the schema's bounds",
    "per-entity loss: the sum of its fields' cross-entropies (teacher forcing; length and first order value "
    "weighted by a public constant) / max_events; per-entity gradient clipping and Gaussian noise (opacus), "
    "Poisson sampling of entities at rate batch_size / MST's noisy entity count",
    "DP noise, Poisson sampling, MST's selection and initial weights come from OS entropy; the sample seed "
    "only drives generation (post-processing)",
)


# --- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPAROptions:
    """Every option of the model and its training (public: chosen without the data)."""

    epochs: int = 30
    batch_size: int = 64
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    head_hidden: int = 64
    sub_bins: int = 16
    lr: float = 3e-3
    max_grad_norm: float = 1.0
    static_share: float = 0.2
    device: str = "auto"
    grad_sample_mode: str = "hooks"
    time_limit_s: float | None = None

    def validate(self) -> None:
        """``InputError`` with one clear line for a bad option."""
        if not (_real(self.static_share) and 0 < self.static_share < 0.5):
            raise InputError(f"{NAME}: static_share ({self.static_share}) must be in (0, 0.5)")
        check_common_options(epochs=self.epochs, batch_size=self.batch_size, max_grad_norm=self.max_grad_norm,
                             device=self.device, grad_sample_mode=self.grad_sample_mode,
                             time_limit_s=self.time_limit_s, preprocess_share=self.static_share)
        ints = {"hidden": (self.hidden, 4, 4096), "layers": (self.layers, 1, 32), "heads": (self.heads, 1, 64),
                "head_hidden": (self.head_hidden, 1, 4096), "sub_bins": (self.sub_bins, 1, 256)}
        for name, (v, lo, hi) in ints.items():
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise InputError(f"{NAME}: {name} ({v}) must be an integer in [{lo}, {hi}]")
        if self.hidden % self.heads:
            raise InputError(f"{NAME}: hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not (_real(self.lr) and 0 < self.lr < 1):
            raise InputError(f"{NAME}: lr ({self.lr}) must be in (0, 1)")

    def architecture(self, layout: "SequenceLayout") -> str:
        return (f"causal transformer (pre-LayerNorm, {self.layers} layers, width {self.hidden}, {self.heads} heads, "
                f"MLP {2 * self.hidden}) over <= {layout.max_events} positions, input {layout.input_width} "
                f"(statics {layout.static_width} + previous event {layout.event_width} + 3); "
                f"{len(layout.fields)} field heads (MLP {self.head_hidden}) over a running event state (hidden "
                "state + embeddings of the event's earlier fields)")


def _real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --- public grids and the layout -------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A public grid over one numeric quantity: bins, and ``sub`` equal sub-bins per bin.

    Integer grids: bin ``i`` holds the integers ``lows[i] .. highs[i]``; sub-bin ``s`` of a bin with
    ``m`` integers holds those ``r`` (offset in the bin) with ``floor(r * sub / m) == s``. Float
    grids: bin ``i`` is ``[lows[i], highs[i])`` (the last one closed), sub-bins equal-width.
    ``encode`` gives (bin, sub-bin, position in the bin in [0, 1]); missing values take the bin
    code ``bins`` (nullable grids) and sub-bin -1.
    """

    integer: bool
    lows: tuple[float, ...]
    highs: tuple[float, ...]
    sub: int
    lo: float
    hi: float
    nullable: bool = False

    @property
    def bins(self) -> int:
        return len(self.lows)

    @property
    def size(self) -> int:
        """Cells of the bin field (the last one is "missing" for a nullable grid)."""
        return self.bins + int(self.nullable)

    @classmethod
    def from_column(cls, col: Column, sub_bins: int) -> "Grid":
        """The schema column's own bins (``bin_edges``, cuts) split into ``sub_bins`` parts."""
        codec = ColumnCodec.from_column(col)
        assert codec.lo is not None and codec.hi is not None
        if codec.type == "integer":
            lows = tuple(float(x) for x in codec.int_lows)
            highs = tuple(float(x) for x in codec.int_highs)
            widest = int(max(h - lo + 1 for lo, h in zip(lows, highs)))
            return cls(True, lows, highs, max(1, min(sub_bins, widest)), float(codec.lo), float(codec.hi),
                       col.nullable)
        edges = codec.edges
        return cls(False, tuple(edges[:-1]), tuple(edges[1:]), sub_bins, float(codec.lo), float(codec.hi),
                   col.nullable)

    @classmethod
    def integers(cls, lows: np.ndarray, highs: np.ndarray, sub_cap: int) -> "Grid":
        widest = int(np.max(highs - lows + 1))
        return cls(True, tuple(float(x) for x in lows), tuple(float(x) for x in highs), max(1, min(sub_cap, widest)),
                   float(lows[0]), float(highs[-1]))

    @classmethod
    def log_integers(cls, lo: int, hi: int, bins: int) -> "Grid":
        """Log-spaced integer bins over ``[lo, hi]``: singletons near ``lo``, wider bins further away."""
        r = hi - lo  # offsets 0 .. r
        k = min(bins, r + 1)
        cuts = np.unique(np.floor(np.geomspace(1.0, r + 2.0, k + 1)).astype(np.int64)) - 1
        cuts[0], cuts[-1] = 0, r + 1
        cuts = np.unique(cuts)
        return cls.integers(lo + cuts[:-1], lo + cuts[1:] - 1, TIME_SUB_BINS)

    @classmethod
    def start_grid(cls, spec: SequenceSpec) -> "Grid":
        """The first event's order value: log-spaced from ``order_min`` (a first event on or near the
        start of the window, e.g. an enrolment day, is exact; later starts resolve to a few units)."""
        return cls.log_integers(spec.order_min, spec.order_max, START_BINS)

    @classmethod
    def gap_grid(cls, spec: SequenceSpec) -> "Grid":
        """The gap to the previous event, log-spaced over the gap bounds: short gaps exact."""
        return cls.log_integers(spec.gap_min, spec.gap_max, GAP_BINS)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.lows, dtype=np.float64), np.asarray(self.highs, dtype=np.float64)

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per value: bin code, sub-bin code, position in the bin in [0, 1] (NaN = missing)."""
        v = np.asarray(values, dtype=np.float64)
        missing = np.isnan(v)
        if missing.any() and not self.nullable:
            raise InputError(f"{int(missing.sum())} missing values in a column that is not nullable")
        lows, highs = self._arrays()
        x = np.clip(np.where(missing, self.lo, v), self.lo, self.hi)
        b = np.clip(np.searchsorted(lows, x, side="right") - 1, 0, self.bins - 1)
        if self.integer:
            m = (highs[b] - lows[b] + 1).astype(np.int64)
            r = np.clip(np.rint(x - lows[b]).astype(np.int64), 0, m - 1)
            sub = (r * self.sub) // m
            frac = (r + 0.5) / m
        else:
            width = np.where(highs[b] > lows[b], highs[b] - lows[b], 1.0)
            frac = np.clip((x - lows[b]) / width, 0.0, 1.0)
            sub = np.minimum(np.floor(frac * self.sub).astype(np.int64), self.sub - 1)
        return (np.where(missing, self.bins, b).astype(np.int64), np.where(missing, -1, sub).astype(np.int64),
                np.where(missing, 0.0, frac))

    def decode(self, bins: np.ndarray, subs: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values for (bin, sub-bin) codes, uniform inside the sub-bin from ``u`` in [0, 1) (NaN = missing)."""
        b = np.asarray(bins, dtype=np.int64)
        missing = b >= self.bins
        b = np.clip(b, 0, self.bins - 1)
        s = np.clip(np.asarray(subs, dtype=np.int64), 0, self.sub - 1)
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0 - 1e-12)
        lows, highs = self._arrays()
        if self.integer:
            m = (highs[b] - lows[b] + 1).astype(np.int64)
            first = -((-s * m) // self.sub)  # ceil(s m / sub): the sub-bin's first offset
            last = -((-(s + 1) * m) // self.sub) - 1
            first = np.minimum(first, m - 1)
            last = np.clip(last, first, m - 1)  # an empty sub-bin (m < sub) falls back to its first offset
            vals = lows[b] + first + np.floor(u * (last - first + 1))
        else:
            vals = lows[b] + (s + u) / self.sub * (highs[b] - lows[b])
        vals = np.clip(vals, self.lo, self.hi)
        return np.where(missing, np.nan, vals)

    def uniform(self, bins: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values drawn uniformly inside each bin (integer grids: uniformly among its integers)."""
        b = np.asarray(bins, dtype=np.int64)
        missing = b >= self.bins
        b = np.clip(b, 0, self.bins - 1)
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0 - 1e-12)
        lows, highs = self._arrays()
        if self.integer:
            vals = lows[b] + np.floor(u * (highs[b] - lows[b] + 1))
        else:
            vals = lows[b] + u * (highs[b] - lows[b])
        return np.where(missing, np.nan, np.clip(vals, self.lo, self.hi))

    def describe(self) -> dict[str, Any]:
        return {"integer": self.integer, "lows": list(self.lows), "highs": list(self.highs), "sub": self.sub,
                "nullable": self.nullable}


Role = Literal["len_bin", "len_sub", "start_bin", "start_sub", "gap_bin", "gap_sub", "cat", "bin", "sub"]
#: the fields of the first event only (one target per entity), and of the later events only
FIRST_ONLY = ("len_bin", "len_sub", "start_bin", "start_sub")
LATER_ONLY = ("gap_bin", "gap_sub")


@dataclass(frozen=True)
class EventField:
    """One categorical field of an event, in generation order.

    ``enc_start``: where the field's own encoding begins in the event encoding; ``onehot``: the
    encoding is a one-hot of ``size`` cells, otherwise (sub-bins) one cell holding the position in
    the bin scaled to [-1, 1].
    """

    name: str
    role: Role
    column: str | None
    size: int
    enc_start: int
    onehot: bool

    @property
    def enc_width(self) -> int:
        return self.size if self.onehot else 1


@dataclass(frozen=True)
class StaticPart:
    """One static column's encoding: one-hot of its code (category or bin, + missing), + position."""

    column: Column
    grid: Grid | None
    start: int

    @property
    def size(self) -> int:
        if self.grid is not None:
            return self.grid.size
        return len(self.column.categories) + int(self.column.nullable)

    @property
    def width(self) -> int:
        return self.size + int(self.grid is not None)


@dataclass(frozen=True)
class SequenceLayout:
    """The public encoding of an entity (statics) and of its events (fields), from the schema alone."""

    spec: SequenceSpec
    statics: tuple[StaticPart, ...]
    fields: tuple[EventField, ...]
    grids: dict[str, Grid]
    event_columns: tuple[Column, ...]

    @classmethod
    def from_schema(cls, schema: Schema, sub_bins: int) -> "SequenceLayout":
        """Build the layout from the schema and the sub-bin option (never from the data)."""
        spec = schema.seq
        statics: list[StaticPart] = []
        at = 0
        for col in schema.static_columns:
            part = StaticPart(col, None if col.type == "categorical" else Grid.from_column(col, sub_bins), at)
            statics.append(part)
            at += part.width
        grids = {"__length__": Grid.log_integers(1, spec.max_events, LENGTH_BINS),
                 "__start__": Grid.start_grid(spec), "__gap__": Grid.gap_grid(spec)}
        fields: list[EventField] = []
        at = 0
        time_fields: tuple[tuple[str, Role, Role], ...] = (
            ("__length__", "len_bin", "len_sub"), ("__start__", "start_bin", "start_sub"),
            ("__gap__", "gap_bin", "gap_sub"))
        for key, bin_role, sub_role in time_fields:
            g = grids[key]
            fields.append(EventField(bin_role, bin_role, None, g.size, at, True))
            at += g.size
            fields.append(EventField(sub_role, sub_role, None, g.sub, at, False))
            at += 1
        for col in schema.event_columns:
            if col.type == "categorical":
                size = len(col.categories) + int(col.nullable)
                fields.append(EventField(col.name, "cat", col.name, size, at, True))
                at += size
            else:
                g = Grid.from_column(col, sub_bins)
                grids[col.name] = g
                fields.append(EventField(f"{col.name}:bin", "bin", col.name, g.size, at, True))
                at += g.size
                fields.append(EventField(f"{col.name}:sub", "sub", col.name, g.sub, at, False))
                at += 1
        return cls(spec=spec, statics=tuple(statics), fields=tuple(fields), grids=grids,
                   event_columns=tuple(schema.event_columns))

    @property
    def max_events(self) -> int:
        return self.spec.max_events

    @property
    def static_width(self) -> int:
        return self.statics[-1].start + self.statics[-1].width if self.statics else 0

    @property
    def event_width(self) -> int:
        last = self.fields[-1]
        return last.enc_start + last.enc_width

    @property
    def input_width(self) -> int:
        """A position's input: statics, a first-position flag, the previous event, its elapsed time,
        and the events left to generate (from the entity's length, drawn at the first position)."""
        return self.static_width + 1 + self.event_width + 2

    def index(self, name: str) -> int:
        return next(i for i, f in enumerate(self.fields) if f.name == name)

    def describe(self) -> dict[str, Any]:
        """The public encoding as plain data (for the card and the tests)."""
        return {
            "max_events": self.max_events,
            "static_width": self.static_width,
            "event_width": self.event_width,
            "statics": [{"column": p.column.name, "size": p.size, "start": p.start,
                         "grid": None if p.grid is None else p.grid.describe()} for p in self.statics],
            "fields": [asdict(f) for f in self.fields],
            "grids": {k: g.describe() for k, g in self.grids.items()},
        }

    # -- statics -----------------------------------------------------------------------------------

    def static_codes(self, statics: pl.DataFrame) -> np.ndarray:
        """``(entities, static columns)`` codes: category or bin index, the last code for missing."""
        out = np.zeros((statics.height, len(self.statics)), dtype=np.int64)
        for j, part in enumerate(self.statics):
            s = statics.get_column(part.column.name)
            if part.grid is None:
                out[:, j] = _category_codes(s, part.column)
            else:
                out[:, j] = part.grid.encode(_floats(s))[0]
        return out

    def static_values(self, codes: np.ndarray, rng: np.random.Generator) -> list[pl.Series]:
        """Static columns (schema dtypes) from codes; a numeric bin becomes a uniform value in it."""
        series = []
        for j, part in enumerate(self.statics):
            c = codes[:, j]
            series.append(_column_series(part.column, c, None if part.grid is None else
                                         part.grid.uniform(c, rng.random(c.shape[0]))))
        return series

    def static_matrix(self, statics: pl.DataFrame) -> np.ndarray:
        """The model's conditioning input: per static column a one-hot (+ position in the bin)."""
        out = np.zeros((statics.height, self.static_width), dtype=np.float32)
        rows = np.arange(statics.height)
        for part in self.statics:
            s = statics.get_column(part.column.name)
            if part.grid is None:
                out[rows, part.start + _category_codes(s, part.column)] = 1.0
            else:
                b, _, frac = part.grid.encode(_floats(s))
                out[rows, part.start + b] = 1.0
                out[:, part.start + part.size] = np.where(b < part.grid.bins, 2.0 * frac - 1.0, 0.0)
        return out

    # -- events ------------------------------------------------------------------------------------

    def event_arrays(self, data: SequenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per entity: ``(T, fields)`` target codes (-1: no target), sub-bin positions, elapsed time.

        ``T`` is the public ``max_events``. Position ``t < length`` holds event ``t``; the first
        position also holds the entity's length (one target per entity); later positions are
        padding with no target. Each entity's rows are a function of its own events alone.
        """
        spec = self.spec
        n, t_max, nf = data.n_entities, self.max_events, len(self.fields)
        lengths = data.lengths()
        if lengths.size != n or (lengths.size and int(lengths.max()) > t_max):
            raise InputError(f"{NAME}: entities with more than max_events events; conform the data first")
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ent = np.repeat(np.arange(n), lengths)
        pos = np.arange(int(offsets[-1])) - offsets[ent]
        codes = np.full((n, t_max, nf), -1, dtype=np.int32)
        fracs = np.zeros((n, t_max, nf), dtype=np.float32)
        elapsed = np.zeros((n, t_max), dtype=np.float32)
        ev = data.events
        order = np.asarray(ev.get_column(spec.order).cast(pl.Int64).to_numpy(), dtype=np.int64)
        order = np.clip(order, spec.order_min, spec.order_max)
        first = pos == 0
        gaps = np.zeros_like(order)
        gaps[~first] = np.clip(order[~first] - order[np.flatnonzero(~first) - 1], spec.gap_min, spec.gap_max)
        # the order reconstructed from the first value and the clipped gaps, as generation builds it
        start_of = order[offsets[:-1][ent]] if order.size else order
        rebuilt = np.minimum(start_of + _cumsum_by_entity(gaps, offsets, ent), spec.order_max)
        elapsed[ent, pos] = (rebuilt - spec.order_min) / (spec.order_max - spec.order_min)

        def put(name: str, values: np.ndarray, where: np.ndarray | None = None, frac: np.ndarray | None = None) -> None:
            f = self.index(name)
            e, p = (ent, pos) if where is None else (ent[where], pos[where])
            codes[e, p, f] = values if where is None else values[where]
            if frac is not None:
                fracs[e, p, f] = frac if where is None else frac[where]

        b, s, fr = self.grids["__length__"].encode(lengths.astype(np.float64))
        codes[:, 0, self.index("len_bin")] = b
        codes[:, 0, self.index("len_sub")] = s
        fracs[:, 0, self.index("len_sub")] = fr
        b, s, fr = self.grids["__start__"].encode(order.astype(np.float64))
        put("start_bin", b, first)
        put("start_sub", s, first, fr)
        b, s, fr = self.grids["__gap__"].encode(gaps.astype(np.float64))
        put("gap_bin", b, ~first)
        put("gap_sub", s, ~first, fr)
        for col in self.event_columns:
            series = ev.get_column(col.name)
            if col.type == "categorical":
                put(col.name, _category_codes(series, col))
            else:
                b, s, fr = self.grids[col.name].encode(_floats(series))
                put(f"{col.name}:bin", b)
                put(f"{col.name}:sub", s, None, fr)
        return codes, fracs, elapsed

    def random_arrays(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Entities drawn uniformly from the public domain (to time training steps; never the data)."""
        t_max = self.max_events
        lengths = rng.integers(1, t_max + 1, size=n)
        codes = np.full((n, t_max, len(self.fields)), -1, dtype=np.int64)
        fracs = rng.uniform(0.0, 1.0, size=codes.shape).astype(np.float32)
        pos = np.arange(t_max)[None, :]
        live = pos < lengths[:, None]
        for f, fld in enumerate(self.fields):
            draw = rng.integers(0, fld.size, size=(n, t_max))
            if fld.role in FIRST_ONLY:
                codes[:, :, f] = np.where(live & (pos == 0), draw, -1)
            elif fld.role in LATER_ONLY:
                codes[:, :, f] = np.where(live & (pos >= 1), draw, -1)
            else:
                codes[:, :, f] = np.where(live, draw, -1)
        static = np.zeros((n, self.static_width), dtype=np.float32)
        for part in self.statics:
            static[np.arange(n), part.start + rng.integers(0, part.size, size=n)] = 1.0
        elapsed = rng.uniform(0.0, 1.0, size=(n, t_max)).astype(np.float32)
        return static, codes, fracs, elapsed


def _cumsum_by_entity(gaps: np.ndarray, offsets: np.ndarray, ent: np.ndarray) -> np.ndarray:
    """Running sum of ``gaps`` within each entity (the first event's gap is 0)."""
    total = np.cumsum(gaps)
    before = np.concatenate([[0], total])[offsets[:-1]]
    return total - before[ent] if gaps.size else total


def _category_codes(s: pl.Series, col: Column) -> np.ndarray:
    """Category index per value; missing -> ``len(categories)`` (nullable columns only)."""
    k = len(col.categories)
    codes = s.cast(pl.Utf8).replace_strict(list(col.categories), list(range(k)), default=-1, return_dtype=pl.Int64)
    missing = s.is_null().to_numpy()
    arr = np.asarray(codes.fill_null(-1).to_numpy(), dtype=np.int64)
    if missing.any() and not col.nullable:
        raise InputError(f"column {col.name!r}: {int(missing.sum())} missing values in a column that is not nullable")
    bad = int(((arr < 0) & ~missing).sum())
    if bad:
        raise InputError(f"column {col.name!r}: {bad} values outside the schema's categories; conform the data first")
    return np.where(missing, k, arr)


def _floats(s: pl.Series) -> np.ndarray:
    return np.asarray(s.cast(pl.Float64).to_numpy(), dtype=np.float64)


def _column_series(col: Column, codes: np.ndarray, values: np.ndarray | None) -> pl.Series:
    """A column in the schema's dtype: categories from codes, or numeric values (NaN = missing)."""
    if col.type == "categorical":
        cats = np.asarray([*col.categories, None], dtype=object)
        return pl.Series(col.name, cats[np.clip(codes, 0, len(col.categories))].tolist(), dtype=pl.Utf8)
    assert values is not None
    vals = np.asarray(values, dtype=np.float64)
    if col.type == "integer":
        vals = np.rint(vals)
    out = pl.Series(col.name, vals, dtype=pl.Float64).fill_nan(None)
    return out.cast(pl.Int64) if col.type == "integer" else out


# --- the network -----------------------------------------------------------------------------------


@functools.cache
def _net_class() -> type:
    """The transformer (built on first use so that importing this module does not import torch)."""
    import torch
    import torch.nn.functional as F  # noqa: N812 (torch's convention)
    from torch import nn

    class Block(nn.Module):
        """Pre-LayerNorm causal self-attention + MLP; Linear/LayerNorm only (ghost-clippable)."""

        def __init__(self, d: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, 2 * d)
            self.fc2 = nn.Linear(2 * d, d)

        def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            return tuple(z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))  # type: ignore[return-value]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = self._split(x)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
            x = x + self.out(a)
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

        def step(self, x: torch.Tensor, cache: list[torch.Tensor]) -> torch.Tensor:
            """One new position ``(n, 1, d)`` attending to the cached keys and values (sampling)."""
            b, t, d = x.shape
            q, k, v = self._split(x)
            if cache:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
            x = x + self.out(a)
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class DPARNet(nn.Module):
        """Transformer over positions, then the event's fields in order from a running event state.

        The state starts at the position's hidden state; each field's head (an MLP) reads it, and
        the field's encoding (teacher forcing: the true value) is then embedded (a bias-free
        Linear) and added to it, so later fields of the event are conditioned on earlier ones.
        """

        def __init__(self, input_width: int, d: int, layers: int, heads: int, head_hidden: int,
                     fields: tuple[tuple[int, int, int], ...]) -> None:
            super().__init__()
            self.d = d
            self.inp = nn.Linear(input_width, d)
            self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
            self.ln = nn.LayerNorm(d)
            self.slices = [(start, width) for start, width, _ in fields]
            self.heads = nn.ModuleList([
                nn.Sequential(nn.Linear(d, head_hidden), nn.ReLU(), nn.Linear(head_hidden, size))
                for _, _, size in fields
            ])
            # the last field's encoding only feeds the next position: no embedding (an unused
            # parameter would get no per-sample gradient)
            used = [width if f < len(fields) - 1 else 0 for f, (_, width, _) in enumerate(fields)]
            self.embeds = nn.ModuleList([nn.Linear(width, d, bias=False) for width in used if width])
            at = 0
            self.embed_of: list[int] = []
            for width in used:
                self.embed_of.append(at if width else -1)
                at += 1 if width else 0

        def positions(self, t0: int, t: int, device: Any) -> torch.Tensor:
            """Sinusoidal position encodings of positions ``t0 .. t0 + t - 1`` (no parameters)."""
            half = self.d // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=device) / half)
            args = torch.arange(t0, t0 + t, dtype=torch.float32, device=device).unsqueeze(1) * freqs
            pe = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
            return F.pad(pe, (0, self.d - 2 * half))

        def hidden(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inp(x) + self.positions(0, x.shape[1], x.device)
            for blk in self.blocks:
                h = blk(h)
            return self.ln(h)

        def forward(self, x: torch.Tensor, enc: torch.Tensor) -> list[torch.Tensor]:
            """``(B, T, input)`` inputs and ``(B, T, event)`` encodings -> per field ``(B, T, size)`` logits."""
            state = self.hidden(x)
            outs = []
            for f in range(len(self.slices)):
                outs.append(self.logits(f, state))
                if f < len(self.slices) - 1:
                    state = self.advance(f, state, enc)
            return outs

        def step(self, x: torch.Tensor, caches: list[list[torch.Tensor]], t: int) -> torch.Tensor:
            """The hidden state ``(n, d)`` of position ``t`` given its input ``(n, input)`` (sampling)."""
            h = self.inp(x.unsqueeze(1)) + self.positions(t, 1, x.device)
            blocks: Any = self.blocks
            for blk, cache in zip(blocks, caches):
                h = blk.step(h, cache)
            return self.ln(h)[:, 0]

        def logits(self, f: int, state: torch.Tensor) -> torch.Tensor:
            head: Any = self.heads[f]
            return head(state)

        def advance(self, f: int, state: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
            """The event state after field ``f`` (its encoding in ``enc``, the whole event's layout)."""
            if self.embed_of[f] < 0:
                return state
            start, width = self.slices[f]
            embed: Any = self.embeds[self.embed_of[f]]
            return state + embed(enc[..., start:start + width])

    return DPARNet


def build_net(layout: SequenceLayout, options: DPAROptions, *, init_seed: int | None, device: Any = None) -> Any:
    """The network; ``init_seed``: initialise its weights from that seed (PyTorch's default
    schemes), ``None``: leave them uninitialised (to load a state dict). Touches no global generator."""
    import torch
    from torch import nn

    fields = tuple((f.enc_start, f.enc_width, f.size) for f in layout.fields)
    with torch.device("meta"):
        net = _net_class()(layout.input_width, options.hidden, options.layers, options.heads, options.head_hidden,
                           fields)
    net = net.to_empty(device=device or "cpu")
    if init_seed is not None:
        gen = torch.Generator(device=device or "cpu").manual_seed(init_seed)
        with torch.no_grad():
            for layer in net.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
                    if layer.bias is not None:
                        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features else 0.0
                        nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
                elif isinstance(layer, nn.LayerNorm):
                    nn.init.ones_(layer.weight)
                    nn.init.zeros_(layer.bias)
    return net


# --- batches and the per-entity loss ---------------------------------------------------------------


@dataclass(frozen=True)
class LayoutTensors:
    """The layout as index tensors (for building encodings on the device)."""

    onehot_fields: Any
    onehot_starts: Any
    sub_fields: Any
    sub_positions: Any
    event_width: int
    max_events: int
    #: per field, the public weight of its cross-entropy (see ``field_weights``)
    weights: tuple[float, ...]

    @classmethod
    def make(cls, layout: SequenceLayout, device: Any) -> "LayoutTensors":
        import torch

        oh = [i for i, f in enumerate(layout.fields) if f.onehot]
        sub = [i for i, f in enumerate(layout.fields) if not f.onehot]

        def t(x: list[int]) -> Any:
            return torch.tensor(x, dtype=torch.long, device=device)

        return cls(onehot_fields=t(oh), onehot_starts=t([layout.fields[i].enc_start for i in oh]),
                   sub_fields=t(sub), sub_positions=t([layout.fields[i].enc_start for i in sub]),
                   event_width=layout.event_width, max_events=layout.max_events, weights=field_weights(layout))


def field_weights(layout: SequenceLayout) -> tuple[float, ...]:
    """The per-entity fields (length, first order value) weigh ``FIRST_EVENT_WEIGHT`` (public), the rest 1.

    They have one target per entity where a column has one per event; under per-entity clipping
    their share of the clipped gradient would otherwise be small. A constant weight changes what
    share of the shared network and of the clipped gradient a field gets, not the distribution its
    head is fitted to.
    """
    return tuple(FIRST_EVENT_WEIGHT if f.role in FIRST_ONLY else 1.0 for f in layout.fields)


def event_encoding(codes: Any, fracs: Any, lt: LayoutTensors) -> Any:
    """``(B, T, fields)`` codes and positions -> ``(B, T, event width)`` encodings (zeros where no target)."""
    import torch

    b, t, _ = codes.shape
    enc = torch.zeros(b, t, lt.event_width, device=codes.device)
    oh = codes.index_select(2, lt.onehot_fields)
    enc.scatter_(2, lt.onehot_starts + oh.clamp(min=0), (oh >= 0).float())
    sub = codes.index_select(2, lt.sub_fields)
    pos = fracs.index_select(2, lt.sub_fields)
    enc[:, :, lt.sub_positions] = torch.where(sub >= 0, 2.0 * pos - 1.0, torch.zeros_like(pos))
    return enc


def model_inputs(static: Any, codes: Any, fracs: Any, elapsed: Any, lt: LayoutTensors) -> tuple[Any, Any]:
    """Teacher forcing: position ``t`` sees the statics and event ``t - 1``; the heads see event ``t``."""
    import torch

    b, t, _ = codes.shape
    enc = event_encoding(codes, fracs, lt)
    prev = torch.cat([torch.zeros_like(enc[:, :1]), enc[:, :-1]], dim=1)
    prev_el = torch.cat([torch.zeros_like(elapsed[:, :1]), elapsed[:, :-1]], dim=1).unsqueeze(-1)
    first = torch.zeros(b, t, 1, device=codes.device)
    first[:, 0] = 1.0
    length = (codes >= 0).any(dim=2).sum(dim=1, keepdim=True)  # the entity's own number of events
    left = remaining(length, t, lt.max_events, codes.device).unsqueeze(-1)
    x = torch.cat([static.unsqueeze(1).expand(b, t, static.shape[1]), first, prev, prev_el, left], dim=2)
    return x, enc


def remaining(length: Any, t: int, max_events: int, device: Any, t0: int = 0) -> Any:
    """Per position ``t0 .. t0 + t - 1``: the events left (counting its own) over ``max_events``.

    0 at the first position, where the length is not known yet (it is drawn there), and past the end.
    """
    import torch

    pos = torch.arange(t0, t0 + t, device=device).unsqueeze(0)
    left = ((length - pos).clamp(min=0) / max_events).float()
    return torch.where(pos == 0, torch.zeros_like(left), left)


def entity_loss(net: Any, static: Any, codes: Any, fracs: Any, elapsed: Any, lt: LayoutTensors) -> Any:
    """Per-entity loss ``(B,)``: the sum of its fields' cross-entropies over its positions / max_events.

    Entity ``i``'s loss depends on entity ``i``'s statics and events alone (the basis of per-entity
    clipping). Positions past the entity's end carry no target and no loss.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    codes = codes.long()
    x, enc = model_inputs(static, codes, fracs, elapsed, lt)
    outs = net(x, enc)
    b, t = codes.shape[:2]
    loss = torch.zeros(b, device=codes.device)
    for f, logits in enumerate(outs):
        ce = F.cross_entropy(logits.reshape(b * t, logits.shape[-1]), codes[:, :, f].reshape(-1), ignore_index=-1,
                             reduction="none")
        loss = loss + lt.weights[f] * ce.view(b, t).sum(dim=1)
    return loss / lt.max_events


# --- generation (post-processing) ------------------------------------------------------------------


def _draw(logits: Any, gen: Any) -> Any:
    """One draw per row from softmax(logits) (inverse CDF; ``-inf`` logits are never drawn)."""
    import torch

    p = torch.softmax(logits.double(), dim=-1)
    cdf = p.cumsum(dim=-1)
    u = torch.rand((p.shape[0], 1), generator=gen, dtype=torch.float64) * cdf[:, -1:]
    idx = (cdf < u).sum(dim=-1)
    # never land on a zero-probability cell at the end of the row through rounding
    last_ok = (p > 0).long().cumsum(dim=-1).argmax(dim=-1)
    return torch.minimum(idx, last_ok)


def generate(net: Any, layout: SequenceLayout, static: np.ndarray, gen: Any) -> tuple[np.ndarray, np.ndarray,
                                                                                      dict[str, np.ndarray]]:
    """Draw the events of ``len(static)`` entities given their encoded statics.

    Returns lengths ``(n,)``, order values ``(n, T)`` and per event column ``(n, T)`` codes
    (categorical) or values (numeric, NaN = missing). The first position draws the entity's
    length, then every event field by field. Orders stay in the schema's bounds: a gap is drawn
    among the bins that fit before ``order_max`` and clipped to the room left; an entity with no
    room left for ``gap_min`` ends early.
    """
    import torch

    spec = layout.spec
    n, t_max = static.shape[0], layout.max_events
    st = torch.from_numpy(np.ascontiguousarray(static, dtype=np.float32))
    lengths = np.zeros(n, dtype=np.int64)
    target = np.ones(n, dtype=np.int64)
    orders = np.zeros((n, t_max), dtype=np.int64)
    out: dict[str, np.ndarray] = {c.name: np.zeros((n, t_max), dtype=np.int64 if c.type == "categorical" else np.float64)
                                  for c in layout.event_columns}
    alive = np.ones(n, dtype=bool)
    order = np.zeros(n, dtype=np.int64)
    prev = torch.zeros(n, layout.event_width)
    prev_el = torch.zeros(n, 1)
    caches: list[list[Any]] = [[] for _ in net.blocks]
    gap_lows = torch.tensor(layout.grids["__gap__"].lows, dtype=torch.float64)
    span = spec.order_max - spec.order_min
    grid_of = {"len_sub": "__length__", "start_sub": "__start__", "gap_sub": "__gap__"}

    def u(k: int) -> np.ndarray:
        return torch.rand(k, generator=gen, dtype=torch.float64).numpy()

    for t in range(t_max):
        room = spec.order_max - order
        if t >= 1:
            alive &= (t < target) & (room >= spec.gap_min)
            if not alive.any():
                break
        first = torch.full((n, 1), 1.0 if t == 0 else 0.0)
        left = remaining(torch.from_numpy(target).unsqueeze(1), 1, t_max, "cpu", t0=t)
        state = net.step(torch.cat([st, first, prev, prev_el, left], dim=1), caches, t)
        enc = torch.zeros(n, layout.event_width)
        codes: dict[str, np.ndarray] = {}
        for f, fld in enumerate(layout.fields):
            if f > 0:
                # the previous field's encoding joins the event state (a skipped field's is zero: no change)
                state = net.advance(f - 1, state, enc)
            if (fld.role in FIRST_ONLY and t > 0) or (fld.role in LATER_ONLY and t == 0):
                continue
            logits = net.logits(f, state)
            if fld.role == "gap_bin":
                fits = gap_lows.unsqueeze(0) <= torch.from_numpy(np.maximum(room, spec.gap_min)).double().unsqueeze(1)
                logits = logits.masked_fill(~fits, -math.inf)
            c = _draw(logits, gen).numpy()
            codes[fld.name] = c
            if fld.onehot:
                enc[np.arange(n), fld.enc_start + c] = 1.0
                continue
            grid = layout.grids[grid_of.get(fld.role, str(fld.column))]
            vals = grid.decode(codes[layout.fields[f - 1].name], c, u(n))
            if fld.role == "gap_sub":
                vals = np.clip(vals, spec.gap_min, np.maximum(np.minimum(spec.gap_max, room), spec.gap_min))
            b, _, frac = grid.encode(vals)
            enc[:, fld.enc_start] = torch.from_numpy(np.where(b < grid.bins, 2.0 * frac - 1.0, 0.0)).float()
            if fld.role == "len_sub":
                target = vals.astype(np.int64)
            elif fld.role == "start_sub":
                order = vals.astype(np.int64)
            elif fld.role == "gap_sub":
                order = np.where(alive, order + vals.astype(np.int64), order)
            else:
                out[str(fld.column)][:, t] = vals
        for col in layout.event_columns:
            if col.type == "categorical":
                out[col.name][:, t] = codes[col.name]
        orders[:, t] = order
        lengths += alive
        prev = enc
        prev_el = torch.from_numpy((order - spec.order_min) / span).float().unsqueeze(1)
    return lengths, orders, out


# --- the static part (MST) -------------------------------------------------------------------------


def static_code_schema(layout: SequenceLayout) -> Schema:
    """A tabular schema over the static columns' codes (all categorical, from the layout)."""
    return Schema(columns=tuple(Column(name=p.column.name, type="categorical",
                                       categories=tuple(str(i) for i in range(p.size))) for p in layout.statics))


def static_code_frame(layout: SequenceLayout, codes: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({p.column.name: codes[:, j].astype(str) for j, p in enumerate(layout.statics)})


def zcdp_entry(rho: float) -> tuple[float, float, int]:
    """A rho-zCDP mechanism as a history entry: RDP ``rho * alpha`` = unsampled Gaussian, sigma 1/sqrt(2 rho)."""
    return (1.0 / math.sqrt(2.0 * rho), 1.0, 1)


def total_rho(spend: PrivacySpend) -> float:
    """The zCDP rho of the one Gaussian mechanism that spends all of ``spend`` in our accountant."""
    sigma = calibrate_measurement(float(spend.epsilon), float(spend.delta))
    return 1.0 / (2.0 * sigma**2)


@dataclass(frozen=True)
class StaticFit:
    """The statics' DP model (MST, or nothing without static columns) and the DP entity count."""

    model: Any
    noisy_entities: float
    rho: float
    parameters: dict[str, Any]


def fit_statics(data: SequenceData, layout: SequenceLayout, rho: float, delta: float,
                progress: Progress | None = None) -> StaticFit:
    """Spend exactly ``rho`` (zCDP) on the static table: MST, or a Gaussian count without statics."""
    if not layout.statics:
        std = 1.0 / math.sqrt(2.0 * rho)
        noisy = float(data.n_entities) + float(np.random.default_rng(secrets.randbits(128)).normal(0.0, std))
        return StaticFit(model=None, noisy_entities=noisy, rho=rho,
                         parameters={"static_model": "none (no static columns); entity count: Gaussian, sensitivity 1",
                                     "count_noise_std": std})
    from privacy.generators.tabular.mst import MSTGenerator

    codes = layout.static_codes(data.statics)
    eps = rdp_epsilon([zcdp_entry(rho)], delta)
    model = MSTGenerator().fit(static_code_frame(layout, codes), static_code_schema(layout),
                               PrivacySpend(epsilon=eps, delta=delta), rho=float(rho), progress=progress)
    p = model.card.parameters
    return StaticFit(model=model, noisy_entities=float(model.estimated_rows), rho=rho,
                     parameters={"static_model": "MST on the static columns' public codes",
                                 "static_edges": p["edges"], "static_rho_used": p["rho_used"]})


# --- before DP-SGD ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pretraining:
    """Everything fixed before DP-SGD starts (see ``pretraining_state``)."""

    layout: SequenceLayout
    options: DPAROptions
    plan: Plan
    init_seed: int
    #: the training entities, encoded (read only by DP-SGD's per-entity losses)
    static: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    fracs: np.ndarray = field(repr=False)
    elapsed: np.ndarray = field(repr=False)

    def initial_state(self) -> dict[str, Any]:
        return build_net(self.layout, self.options, init_seed=self.init_seed).state_dict()


def pretraining_state(data: SequenceData, schema: Schema, options: DPAROptions, *, plan: Plan,
                      init_seed: int) -> Pretraining:
    """What ``fit`` holds when its first DP-SGD step starts.

    The layout comes from the schema, the architecture from the options, the initial weights from
    ``init_seed`` (OS entropy in ``fit``), the plan from the spend, the options and the DP entity
    count. The data enters only as the encoded training entities, each a function of its own
    statics and events, which only DP-SGD's per-entity losses read.
    """
    _check_frame(data, schema)
    layout = SequenceLayout.from_schema(schema, options.sub_bins)
    codes, fracs, elapsed = layout.event_arrays(data)
    return Pretraining(layout=layout, options=options, plan=plan, init_seed=init_seed,
                       static=layout.static_matrix(data.statics), codes=codes, fracs=fracs, elapsed=elapsed)


def _check_frame(data: SequenceData, schema: Schema) -> None:
    """The layout ``conform_sequences`` guarantees; each entity's statics must meet its own events."""
    spec = schema.seq
    want_s = [spec.entity, *(c.name for c in schema.static_columns)]
    want_e = [spec.entity, spec.order, *(c.name for c in schema.event_columns)]
    if list(data.statics.columns) != want_s or list(data.events.columns) != want_e:
        raise InputError(f"{NAME}: the sequences do not have the schema's columns; conform them first")
    if data.n_entities == 0:
        raise InputError(f"{NAME}: the training data has no entities")
    keys = data.statics.get_column(spec.entity)
    if keys.n_unique() != keys.len() or not data.events.get_column(spec.entity).unique(maintain_order=True).equals(
            keys):
        raise InputError(f"{NAME}: events must be grouped by entity in the static table's order, every entity "
                         "with events; conform the sequences first")


def make_plan(spend: PrivacySpend, options: DPAROptions, noisy_entities: float, static_rho: float,
              steps: int | None = None, order: float | None = None) -> Plan:
    """Poisson rate ``batch_size / noisy entities``, ``ceil(epochs / rate)`` steps (or ``steps``),
    and the noise multiplier with which the statics (rho-zCDP) + all steps have RDP at the public
    order ``alpha0`` (``order``, else ``Plan.public_order``) within the budget whose conversion is
    the requested epsilon."""
    return Plan.make(epsilon=float(spend.epsilon), delta=float(spend.delta), noisy_rows=float(noisy_entities),
                     batch_size=options.batch_size, epochs=options.epochs, max_grad_norm=options.max_grad_norm,
                     fixed_history=[zcdp_entry(static_rho)], steps=steps, order=order)


# --- training --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    state: dict[str, Any]
    steps: int
    entities: int
    seconds: float
    last_loss: float


def _train(pre: Pretraining, *, private: bool, clock: Clock) -> TrainResult:
    import torch

    opts = pre.options
    plan = pre.plan
    device = resolve_device(opts.device)
    lt = LayoutTensors.make(pre.layout, device)
    net = build_net(pre.layout, opts, init_seed=pre.init_seed, device=device)
    net.train()
    expected_batch = max(1, int(round(plan.sample_rate * max(plan.noisy_rows, 1.0))))
    module = PrivateModule(net, lr=opts.lr, betas=(0.9, 0.999), weight_decay=0.0, plan=plan,
                           expected_batch=expected_batch, mode=opts.grad_sample_mode, device=device, private=private)
    static = torch.from_numpy(pre.static).to(device)
    codes = torch.from_numpy(pre.codes).to(device)
    fracs = torch.from_numpy(pre.fracs).to(device)
    elapsed = torch.from_numpy(pre.elapsed).to(device)
    # positions in use per entity (its events): batches are cut to their longest entity; the rest
    # is padding with no target, so the cut changes no loss or gradient
    used = torch.from_numpy(((pre.codes >= 0).any(axis=2)).sum(axis=1)).to(device)
    n = pre.codes.shape[0]
    cpu_gen = entropy_generator(torch.device("cpu"))
    if private:
        batches = poisson_indices(n, plan.sample_rate, plan.planned_steps, cpu_gen)
        steps_per_epoch = plan.planned_steps / opts.epochs
    else:
        batches = shuffled_batches(n, opts.batch_size, plan.planned_steps, cpu_gen)
        steps_per_epoch = max(1, math.ceil(n / opts.batch_size))
    meter = EpsilonMeter(plan) if private else None
    steps = seen = 0
    epoch_loss = epoch_n = 0.0
    last_loss = float("nan")
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for idx in batches:
            idx = idx.to(device)
            t = max(1, int(used[idx].max())) if idx.numel() else 1
            loss = entity_loss(module, static[idx], codes[idx, :t], fracs[idx, :t], elapsed[idx, :t], lt)
            mean = module.step(loss)
            steps += 1
            seen += int(idx.numel())
            epoch_loss += mean * int(idx.numel())
            epoch_n += int(idx.numel())
            if int(steps / steps_per_epoch + 1e-9) > int((steps - 1) / steps_per_epoch + 1e-9) or steps == plan.planned_steps:
                last_loss = epoch_loss / epoch_n if epoch_n else float("nan")
                epoch = min(opts.epochs, int(steps / steps_per_epoch + 1e-9))
                eps = f" eps {meter(steps):.3f}" if meter is not None else " (not private)"
                clock.say(f"{NAME} epoch {epoch}/{opts.epochs} loss {last_loss:.3f}{eps}", steps / plan.planned_steps)
                epoch_loss = epoch_n = 0.0
    seconds = time.monotonic() - started
    plain = module.plain_module()
    state = {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}
    return TrainResult(state=state, steps=steps, entities=seen, seconds=seconds, last_loss=last_loss)


def steps_within_time(layout: SequenceLayout, options: DPAROptions, plan: Plan, elapsed: float) -> tuple[int, float]:
    """The DP-SGD steps that fit in what is left of ``time_limit_s``, timed on schema-random entities."""
    assert options.time_limit_s is not None
    rng = np.random.default_rng(secrets.randbits(128))
    static, codes, fracs, el = layout.random_arrays(max(int(round(plan.noisy_rows)), 1), rng)

    def probe(k: int) -> None:
        dummy = Pretraining(layout=layout, options=options, plan=replace(plan, planned_steps=k),
                            init_seed=secrets.randbits(63), static=static, codes=codes, fracs=fracs, elapsed=el)
        _train(dummy, private=True, clock=Clock(None, None))

    return steps_for_time(options.time_limit_s, elapsed, plan.planned_steps, probe)


# --- the fitted model and the generator ------------------------------------------------------------


@dataclass(kw_only=True)
class FittedDPAR(FittedTorchModel):
    """The trained network (CPU state dict), the statics' MST model, the public layout, the card."""

    options: DPAROptions
    layout: SequenceLayout
    static_model: Any

    def _build(self) -> Any:
        return build_net(self.layout, self.options, init_seed=None)

    def sample(self, n: int, seed: int) -> SequenceData:
        """``n`` entities with their events (see ``FittedSequenceGenerator.sample``); same seed, same output."""
        import torch

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n ({n}) must be an integer >= 0")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed ({seed}) must be an integer >= 0")
        n = int(n)
        lay = self.layout
        s_static, s_values, s_torch = np.random.SeedSequence(int(seed)).spawn(3)
        rng = np.random.default_rng(s_values)
        codes = np.zeros((n, len(lay.statics)), dtype=np.int64)
        if lay.statics and n:
            frame = self.static_model.sample(n, int(s_static.generate_state(1, np.uint32)[0]))
            for j, p in enumerate(lay.statics):
                codes[:, j] = np.asarray(frame.get_column(p.column.name).cast(pl.Int64).to_numpy(), dtype=np.int64)
        static_cols = lay.static_values(codes, rng)
        keys = pl.Series(lay.spec.entity, [str(i + 1) for i in range(n)], dtype=pl.Utf8)
        statics = pl.DataFrame([keys, *static_cols])
        gen = torch.Generator().manual_seed(int(s_torch.generate_state(1, np.uint64)[0] >> np.uint64(1)))
        static_x = lay.static_matrix(statics)
        net = self.module()
        parts = []
        chunk = max(1, min(SAMPLE_CHUNK, SAMPLE_POSITIONS // lay.max_events))
        with torch.no_grad():
            for start in range(0, n, chunk):
                parts.append(generate(net, lay, static_x[start:start + chunk], gen))
        return assemble(lay, statics, parts)


def assemble(layout: SequenceLayout, statics: pl.DataFrame, parts: list[tuple[np.ndarray, np.ndarray,
                                                                                  dict[str, np.ndarray]]]) -> SequenceData:
    """The ``SequenceData`` of generated entities: keys "1".."n", sorted as conformed data is."""
    spec = layout.spec
    e, o = spec.entity, spec.order
    t_max = layout.max_events
    if parts:
        lengths = np.concatenate([p[0] for p in parts])
        orders = np.concatenate([p[1] for p in parts])
        cols = {c.name: np.concatenate([p[2][c.name] for p in parts]) for c in layout.event_columns}
    else:
        lengths = np.zeros(0, dtype=np.int64)
        orders = np.zeros((0, t_max), dtype=np.int64)
        cols = {c.name: np.zeros((0, t_max)) for c in layout.event_columns}
    keys = statics.get_column(e).to_list()
    perm = np.asarray(sorted(range(len(keys)), key=lambda i: keys[i]), dtype=np.int64)
    statics = statics[perm.tolist()] if len(perm) else statics
    lengths = lengths[perm]
    mask = np.arange(t_max)[None, :] < lengths[:, None]
    ent_idx = np.repeat(perm, lengths)
    series = [pl.Series(e, [keys[i] for i in ent_idx], dtype=pl.Utf8),
              pl.Series(o, orders[perm][mask], dtype=pl.Int64)]
    for col in layout.event_columns:
        vals = cols[col.name][perm][mask]
        if col.type == "categorical":
            series.append(_column_series(col, vals.astype(np.int64), None))
        else:
            series.append(_column_series(col, np.zeros(vals.shape, dtype=np.int64), vals.astype(np.float64)))
    return SequenceData(statics=statics, events=pl.DataFrame(series), spec=spec)


class DPARGenerator:
    """Autoregressive transformer over events (DP-SGD, one entity per sample), statics by MST."""

    name = NAME

    def __init__(self, *, epochs: int = 30, batch_size: int = 64, hidden: int = 64, layers: int = 2, heads: int = 4,
                 head_hidden: int = 64, sub_bins: int = 16, lr: float = 3e-3, max_grad_norm: float = 1.0,
                 static_share: float = 0.2, device: str = "auto", grad_sample_mode: str = "hooks",
                 time_limit_s: float | None = None) -> None:
        self.options = DPAROptions(
            epochs=epochs, batch_size=batch_size, hidden=hidden, layers=layers, heads=heads,
            head_hidden=head_hidden, sub_bins=sub_bins, lr=lr, max_grad_norm=max_grad_norm,
            static_share=static_share, device=device, grad_sample_mode=grad_sample_mode, time_limit_s=time_limit_s,
        )
        self.options.validate()

    def fit(self, data: SequenceData, schema: Schema, spend: PrivacySpend, *,
            progress: Progress | None = None) -> FittedDPAR:
        """Fit on the conformed training entities, spending at most ``spend`` (entity-level, RDP-accounted)."""
        if spend.delta <= 0:
            raise InputError(f"{NAME} needs delta > 0 (MST and DP-SGD add Gaussian noise)")
        opts = self.options
        resolve_device(opts.device)  # fail on a missing GPU before reading anything
        _check_frame(data, schema)
        started = time.monotonic()
        clock = Clock(None, progress)
        layout = SequenceLayout.from_schema(schema, opts.sub_bins)
        rho = total_rho(spend)
        rho_s = opts.static_share * rho
        statics = fit_statics(data, layout, rho_s, float(spend.delta), progress)
        plan = make_plan(spend, opts, statics.noisy_entities, rho_s)
        steps_for_epochs = plan.planned_steps
        probe_per_step = None
        if opts.time_limit_s is not None:
            steps, probe_per_step = steps_within_time(layout, opts, plan, time.monotonic() - started)
            if steps < plan.planned_steps:
                plan = make_plan(spend, opts, statics.noisy_entities, rho_s, steps=steps, order=plan.order)
        pre = pretraining_state(data, schema, opts, plan=plan, init_seed=secrets.randbits(63))
        clock.say(f"{NAME}: noisy entity count {plan.noisy_rows:.0f}; {plan.planned_steps} DP-SGD steps at rate "
                  f"{plan.sample_rate:.4g}, noise multiplier {plan.noise_multiplier:.4g}", 0.0)
        result = _train(pre, private=True, clock=clock)
        # the guarantee of the adaptive mechanism (RDP at the fixed order within B for every count)
        spent = plan.epsilon_guarantee
        if spent > spend.epsilon * (1 + 1e-9) or not plan.rdp_at_order(result.steps) <= plan.rdp_budget:
            raise AssertionError(f"guarantee {spent} > budget {spend.epsilon}")  # the calibration guarantees this
        params = _parameters(pre, result, private=True)
        params.update(statics.parameters)
        params.update({
            "requested_epsilon": float(spend.epsilon),
            "epsilon_spent": spent,
            "delta": float(spend.delta),
            "rho_total": rho,
            "rho_static": rho_s,
            "static_epsilon_alone": rdp_epsilon([zcdp_entry(rho_s)], float(spend.delta)),
            "fixed_history": [list(h) for h in plan.fixed_history],
            **plan.guarantee_parameters(result.steps),
            "steps_for_epochs": steps_for_epochs,
            "steps_limited_by_time": plan.planned_steps < steps_for_epochs,
            "probe_seconds_per_step": probe_per_step,
        })
        card = GeneratorCard(
            name=NAME, parameters=params, library_versions={**torch_versions(), **_mst_versions()},
            spend=PrivacySpend(epsilon=spent, delta=float(spend.delta)), accounting=accounting_text(plan, rho_s),
            unit_of_privacy=schema.seq.privacy_unit(), domain_sources=dict(DOMAIN_SOURCES),
            notes=NOTES + ((f"the time limit allowed {plan.planned_steps} of the {steps_for_epochs} steps the epochs "
                            "ask for (timed on schema-random entities before training); the noise is calibrated for "
                            "them",) if plan.planned_steps < steps_for_epochs else ()),
        )
        clock.say(f"{NAME}: done, epsilon spent {spent:.3f}", 1.0)
        return FittedDPAR(card=card, options=opts, layout=layout, static_model=statics.model, state=result.state,
                          noisy_rows=plan.noisy_rows, training_stats=_training_stats(result))


def accounting_text(plan: Plan, rho_s: float) -> str:
    return (
        f"{ACCOUNTANT}; statics: MST, rho_s = {rho_s:.6g}-zCDP, i.e. RDP rho_s * alpha at every order, entered "
        f"as an unsampled Gaussian with noise multiplier 1/sqrt(2 rho_s) = {plan.fixed_history[0][0]:.6g}; events: "
        f"DP-SGD with Poisson sampling of entities (rate {plan.sample_rate:.4g}), per-entity clipping (norm "
        f"{plan.max_grad_norm:g}) and Gaussian noise (multiplier {plan.noise_multiplier:.4g}); both composed in RDP "
        f"(adaptive composition) and converted once. {guarantee_text(plan)}"
    )


def _mst_versions() -> dict[str, str]:
    from privacy.generators.tabular.marginal import library_versions

    return {k: v for k, v in library_versions().items() if k in ("smartnoise-synth", "mbi", "opendp")}


def _parameters(pre: Pretraining, result: TrainResult, *, private: bool) -> dict[str, Any]:
    opts = pre.options
    plan = pre.plan
    return {
        **asdict(opts),
        "accountant": ACCOUNTANT if private else "none (NOT differentially private)",
        "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate,
        "noisy_entities": plan.noisy_rows,
        "planned_steps": plan.planned_steps,
        "steps": result.steps,
        "epochs_run": result.steps * plan.sample_rate,
        "architecture": opts.architecture(pre.layout),
        "max_events": pre.layout.max_events,
        "time_grids": {"start_bins": pre.layout.grids["__start__"].bins, "start_sub": pre.layout.grids["__start__"].sub,
                       "gap_bins": pre.layout.grids["__gap__"].bins, "gap_sub": pre.layout.grids["__gap__"].sub},
        "device_used": str(resolve_device(opts.device)),
        "loss": "sum over an entity's events of its fields' cross-entropies (teacher forcing) / max_events",
    }


def _training_stats(result: TrainResult) -> dict[str, Any]:
    """Unnoised figures of the run (not released: see ``FittedTorchModel.training_stats``)."""
    return {
        "last_epoch_loss": result.last_loss if math.isfinite(result.last_loss) else None,
        "train_seconds": result.seconds,
        "entities_processed": result.entities,
        "entities_per_second": result.entities / result.seconds if result.seconds > 0 else 0.0,
    }


def fit_nonprivate(data: SequenceData, schema: Schema, *, progress: Progress | None = None,
                   **options: Any) -> FittedDPAR:
    """The same model trained the same way WITHOUT DP (NOT differentially private).

    For the benchmark only: exact entity count, shuffled full-dataset batches, no clipping, no
    noise; the statics by MST with a very large rho. Never registered as a generator.
    """
    opts = DPARGenerator(**options).options
    _check_frame(data, schema)
    clock = Clock(opts.time_limit_s, progress)
    layout = SequenceLayout.from_schema(schema, opts.sub_bins)
    statics = fit_statics(data, layout, NONPRIVATE_RHO, 1e-6, progress)
    n = data.n_entities
    per_epoch = max(1, math.ceil(n / opts.batch_size))
    plan = Plan(epsilon=math.inf, delta=0.0, noisy_rows=float(n), batch_size=opts.batch_size,
                sample_rate=min(1.0, opts.batch_size / max(n, 1)), planned_steps=opts.epochs * per_epoch,
                noise_multiplier=0.0, max_grad_norm=opts.max_grad_norm)
    pre = pretraining_state(data, schema, opts, plan=plan, init_seed=secrets.randbits(63))
    result = _train(pre, private=False, clock=clock)
    params = _parameters(pre, result, private=False)
    params["differentially_private"] = False
    card = GeneratorCard(
        name=f"{NAME}-nonprivate", parameters=params, library_versions=torch_versions(),
        spend=PrivacySpend(epsilon=1.0, delta=0.0), accounting="NOT differentially private (benchmark twin)",
        unit_of_privacy="none: NOT differentially private",
        domain_sources={"entity count": "exact (NOT private)"},
        notes=("NOT differentially private: the spend field is a placeholder; never release or charge this",),
    )
    return FittedDPAR(card=card, options=opts, layout=layout, static_model=statics.model, state=result.state,
                      noisy_rows=float(n), training_stats=_training_stats(result))
