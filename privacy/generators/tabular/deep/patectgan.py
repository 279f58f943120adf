"""PATECTGAN (smartnoise-synth 1.0.8) behind synthgate's tabular generator interface, its leaks closed.

PATECTGAN (smartnoise's ``snsynth.pytorch.nn.patectgan``) is CTGAN's generator trained against a
*student* discriminator that only sees generated rows, labelled real/fake by a noisy vote of
*teacher* discriminators, each trained on its own disjoint part of the data (PATE-GAN, Jordon et
al. 2019; PATE, Papernot et al. 2017). The privacy argument needs: (a) one record reaches one
teacher only, (b) a teacher's vote is released only through a noisy count, (c) everything else the
generator sees is public or DP. smartnoise's ``train`` breaks each of these. We subclass
``PATECTGAN`` and replace ``train`` (and disable ``fit``/``generate``, which read the raw data),
keeping its architecture, losses, activations and hyper-parameters. What we found, and what we did:

1. **The teachers and the student are one object.** ``teacher_disc = [discriminator for i in
   range(num_teachers)]`` repeats *one* module, and ``student_disc = discriminator`` is that module
   again: one discriminator is trained on every partition, all teachers vote alike (the vote count
   moves by ``num_teachers`` when one record changes, not by 1), and the generator's gradient comes
   from a network trained on the raw data. No DP guarantee survives. *Fix*: ``num_teachers``
   distinct teacher modules, each with its own optimiser, and a separate student.
2. **Teacher count from the data**: ``num_teachers = int(len(data) / sample_per_teacher) + 1``.
   *Fix*: the public option ``teachers`` (default 10); ``len(data)`` is never read for it.
3. **Partition by position**: ``np.array_split`` cuts the data into contiguous chunks whose
   boundaries depend on ``len(data)``; adding or removing one record shifts every later chunk, so
   under add/remove one record changes many teachers. *Fix*: each record is assigned to a teacher
   uniformly at random, independently of the others, from OS entropy (``TeacherData``). Adding or
   removing a record then changes one teacher's data only (couple the other records' draws). Each
   teacher draws its real batches from its own random generator, and every shared stream (torch's,
   the conditions') is consumed in fixed amounts, so one teacher's data never shifts another's
   randomness.
4. **Conditional vectors from the raw category frequencies**: CTGAN's ``DataSampler`` computes
   ``discrete_column_category_prob`` from the training data (no noise, despite the comment about
   "cached noisy probabilities") and every teacher, the student and the generator sample their
   conditions from it; at sampling time ``sample_original_condvec`` copies the category of a random
   *training row* (and the sampler keeps the whole training matrix). *Fix*: one DP measurement before
   training (``preprocess_share`` of epsilon, default 5%): the row count and the histogram of every
   categorical column, with OpenDP's discrete Laplace noise; one record changes the count by 1 and
   one cell of each of the ``d`` histograms by 1, so the L1 sensitivity is ``1 + d``. The condition
   probabilities are the noisy counts clipped at 0 and normalised (uniform if all are 0), used for
   training and for sampling. Nothing keeps the data.
5. **``estimated_rows`` / ``len(data)``**: smartnoise reads ``len(data)`` for the teacher count, for
   ``delta`` when none is given (``1 / (n sqrt n)``) and keeps it through the sampler. *Fix*: delta
   is always the requested one; the row count is the inverse-variance combination of the noisy count
   and the noisy histograms' sums (post-processing of step 4).
6. **Bounds and category lists**: smartnoise's default transformers read categories (and bounds,
   with ``preprocessor_eps``) from the data; its ``MinMaxTransformer`` treats ``lower=0`` as
   missing and then caches every value of the column inside the transformer. *Fix*: our own
   smartnoise ``ColumnTransformer`` subclasses, complete at construction from the schema (min-max
   scaling to [-1, 1] over the schema's bounds; one-hot over the schema's categories); their
   ``_fit`` raises, so nothing can fit them on data. ``preprocessor_eps`` is never used (0 spent).
7. **The vote noise**: smartnoise adds ``np.random.laplace`` (numpy's global, seedable generator,
   floating-point Laplace) to the vote count. *Fix*: OpenDP's discrete Laplace on the integer
   counts (OS-entropy CSPRNG); the privacy parameter is the one OpenDP's map certifies.
8. **The accountant is data-dependent and overspends.** smartnoise's ``moments_acc`` takes per
   query ``min(data-dependent bound, 2 gamma^2 l (l+1))``; the data-dependent term is PATE's
   Theorem 3 with Lemma 4's ``q`` for a vote with independent noise on *each* class count (LNMax),
   but the vote implemented adds one noise to one count, whose flip probability
   ``exp(-gamma |2v - k| / 2) / 2`` the formula underestimates; and a data-dependent bound is itself
   a function of the data (PATE releases it only after smooth-sensitivity sanitisation), as is the
   stopping time it drives. The loop also checks the budget *before* an iteration and breaks only
   once an iteration has run, so the last iteration always takes it past the target. *Fix*: the data-independent bound only, exact
   for the mechanism we run (below), with the number of votes fixed before training, so the
   stopping time and the spent epsilon are public functions of the options.

Accounting: each vote is ``v + DLap(1/gamma)`` thresholded at ``k/2``, where ``v`` (the number of
teachers saying "real") moves by at most 1 when one record is added or removed (fix 3), so each vote
is ``gamma``-DP. An ``eps0``-DP mechanism has log-moments ``alpha(l) <= eps0^2 l (l+1) / 2`` (PATE's
Theorem 2 / Bun & Steinke 2016, Prop. 3.3; smartnoise uses ``eps0 = 2 gamma``, the constant of the
two-noise LNMax, which is 4x looser for the vote it runs); moments add over the ``T`` votes and
``epsilon = min_l (alpha(l) + log(1/delta)) / l`` over ``l = 1..100`` (Abadi et al. 2016, Thm. 2;
smartnoise's ``moments_order``). ``T = epochs * student_iters * batch_size`` is known before
training, so ``gamma`` is calibrated in closed form to spend the training budget exactly. The DP
measurement of step 4 is pure epsilon-DP and composes by basic composition. ``time_limit_s`` becomes an epoch
count before the teachers see the data: two epochs are timed on rows drawn uniformly from the
schema's domain, and the vote noise is calibrated for the epochs that fit, so the number of votes
never depends on how long the real batches took (a wall-clock stop would make it so).

Unit of privacy: one record of the training split, add/remove-one neighbours (fixes 3 and 4 give
sensitivity 1 per vote and ``1 + d`` for the measurement under add/remove; replace-one follows by
group privacy at a larger epsilon, which we do not claim).

Utility, honestly: with the data-independent bound every vote costs privacy, so at a few thousand
rows and the default epochs the calibrated vote noise (scale ``1/gamma``) is far larger than the
teachers' margin (at most ``k/2``): the student's labels are close to coin flips, and what the
generator learns from the data comes mostly from the DP category frequencies (through the
conditional vector and CTGAN's conditional cross-entropy). smartnoise's own PATECTGAN escapes this
trade-off only through bug 1 (its student is a discriminator trained on the raw data). Ganev et al.
(2024, "The Elusive Pursuit of Reproducing PATE-GAN", arXiv:2406.13985) audit six PATE-GAN
implementations and report privacy violations in all of them, data partitioning and accounting
among the causes.

The fitted ``PATECTGANModel`` keeps the generator's weights (numpy), the public encoding, the DP
condition probabilities and the card; it pickles with the standard library. Sampling is
post-processing, deterministic given the seed (torch's global generator is forked and restored).
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.deep.dpsgd import resolve_device
from privacy.generators.tabular.discretize import ColumnCodec
from privacy.generators.tabular.marginal import _GLOBALS_LOCK, quiet, report
from privacy.schema import Schema
from privacy.spend import PrivacySpend

NAME = "patectgan"
UNIT_OF_PRIVACY = "one record of the training split; add/remove-one neighbouring datasets"
ACCOUNTANT = "PATE moments accountant, data-independent bound (Papernot et al. 2017, Thm. 2)"
DOMAIN_SOURCES = {
    "categories and one-hot widths": "schema",
    "numeric scaling bounds (min/max)": "schema",
    "number of teachers": "public option 'teachers' (never the row count)",
    "teacher partition": "each record assigned to a teacher uniformly at random (OS entropy), independently",
    "conditional-vector category probabilities": "DP measurement (discrete Laplace histograms)",
    "row count (estimated_rows)": "DP measurement (discrete Laplace count and histogram sums)",
    "vote noise scale": "calibrated from epsilon, delta, epochs and batch size (public)",
    "training length": "public options 'epochs' (and 'time_limit_s')",
    "delta": "requested",
}
DEVICES = ("auto", "cpu", "cuda")

#: smartnoise's PATECTGAN defaults, kept
EMBEDDING_DIM = 128
GENERATOR_DIM = (256, 256)
DISCRIMINATOR_DIM = (256, 256)
GENERATOR_LR = 2e-4
DISCRIMINATOR_LR = 2e-4
STUDENT_LR = 2e-4
WEIGHT_DECAY = 1e-6
TEACHER_ITERS = 5
STUDENT_ITERS = 5
GUMBEL_TAU = 0.2
#: the moments accountant's orders l = 1..100 (smartnoise's ``moments_order``)
MOMENTS_ORDERS = tuple(range(1, 101))
SAMPLE_CHUNK = 1000


# --- accounting (pure functions) -----------------------------------------------------------------


def moments_per_query(eps0: float, orders: Sequence[int] = MOMENTS_ORDERS) -> np.ndarray:
    """Log-moment bound of one ``eps0``-DP query at each order: ``eps0^2 l (l+1) / 2``."""
    ls = np.asarray(orders, dtype=np.float64)
    return 0.5 * float(eps0) ** 2 * ls * (ls + 1.0)


def epsilon_from_moments(alphas: np.ndarray, delta: float, orders: Sequence[int] = MOMENTS_ORDERS) -> float:
    """Abadi et al.'s tail bound: ``min_l (alpha(l) + log(1/delta)) / l``."""
    ls = np.asarray(orders, dtype=np.float64)
    return float(np.min((np.asarray(alphas, dtype=np.float64) + math.log(1.0 / delta)) / ls))


def pate_epsilon(queries: int, eps0: float, delta: float, orders: Sequence[int] = MOMENTS_ORDERS) -> float:
    """Epsilon (at ``delta``) after ``queries`` votes, each ``eps0``-DP; 0 when nothing was released."""
    if queries <= 0:
        return 0.0
    return epsilon_from_moments(queries * moments_per_query(eps0, orders), delta, orders)


def calibrate_vote_epsilon(budget: float, delta: float, queries: int,
                           orders: Sequence[int] = MOMENTS_ORDERS) -> float:
    """The largest per-vote ``eps0`` with ``pate_epsilon(queries, eps0, delta) <= budget``.

    Closed form: at order ``l`` the bound equals ``budget`` for
    ``eps0_l = sqrt(2 (l budget - log(1/delta)) / (queries l (l+1)))``; the minimum over ``l`` is
    ``<= budget`` exactly when some ``eps0_l`` is at least ``eps0``, so the answer is ``max_l eps0_l``.
    """
    if queries < 1:
        raise InputError("training needs at least one vote")
    log_inv_delta = math.log(1.0 / delta)
    best = 0.0
    for order in orders:
        slack = order * budget - log_inv_delta
        if slack > 0:
            best = max(best, math.sqrt(2.0 * slack / (queries * order * (order + 1))))
    if best <= 0.0:
        raise InputError(
            f"the training budget epsilon {budget:.4g} is below what PATE's moments accountant can "
            f"certify at delta={delta:g} (it needs more than log(1/delta)/{max(orders)} = "
            f"{log_inv_delta / max(orders):.4g}); raise epsilon or delta"
        )
    while pate_epsilon(queries, best, delta, orders) > budget:  # float rounding at the optimum
        best *= 1.0 - 1e-12
    return best


# --- the public encoding --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One schema column as PATECTGAN sees it: one-hot categories, or a value scaled to [-1, 1]."""

    name: str
    type: str
    categories: tuple[str, ...] = ()
    lo: float = 0.0
    hi: float = 1.0

    @property
    def width(self) -> int:
        return len(self.categories) if self.type == "categorical" else 1


@dataclass(frozen=True)
class MinMaxEncoding:
    """The schema's public encoding (smartnoise's 'gan' style: one-hot and min-max), data never read."""

    columns: tuple[ColumnSpec, ...]

    @classmethod
    def from_schema(cls, schema: Schema) -> "MinMaxEncoding":
        specs = []
        for c in schema.columns:
            if c.type == "categorical":
                specs.append(ColumnSpec(c.name, c.type, categories=tuple(c.categories)))
            else:
                assert c.min is not None and c.max is not None  # Column validates numeric bounds
                specs.append(ColumnSpec(c.name, c.type, lo=float(c.min), hi=float(c.max)))
        return cls(tuple(specs))

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(c.width for c in self.columns)

    @property
    def width(self) -> int:
        return sum(self.widths)

    @property
    def cat_widths(self) -> tuple[int, ...]:
        """The widths of the categorical columns, in schema order (the conditional vector's layout)."""
        return tuple(c.width for c in self.columns if c.type == "categorical")

    def describe(self) -> dict[str, Any]:
        return {"width": self.width, "columns": [asdict(c) for c in self.columns]}

    def encode(self, data: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The ``(rows, width)`` float32 matrix, and the ``(rows, categorical columns)`` codes."""
        missing = [c.name for c in self.columns if c.name not in data.columns]
        if missing:
            raise InputError(f"data is missing columns: {', '.join(missing)}")
        n = data.height
        out = np.zeros((n, self.width), dtype=np.float32)
        codes = np.zeros((n, len(self.cat_widths)), dtype=np.int64)
        at, j = 0, 0
        for c in self.columns:
            s = data.get_column(c.name)
            if c.type == "categorical":
                codec = ColumnCodec(name=c.name, type="categorical", cardinality=c.width, categories=c.categories)
                code = codec.encode(s) if n else np.zeros(0, dtype=np.int64)
                out[np.arange(n), at + code] = 1.0
                codes[:, j] = code
                j += 1
            else:
                vals = s.cast(pl.Float64).to_numpy()
                bad = int(np.sum(~np.isfinite(vals) | (vals < c.lo) | (vals > c.hi)))
                if bad:
                    raise InputError(
                        f"column {c.name!r}: {bad} values missing or outside the schema bounds; "
                        "conform the data to the schema first"
                    )
                out[:, at] = 2.0 * (vals - c.lo) / (c.hi - c.lo) - 1.0
            at += c.width
        return out, codes

    def decode(self, act: np.ndarray) -> pl.DataFrame:
        """A schema frame from activated generator output (post-processing)."""
        series = []
        at = 0
        for c in self.columns:
            block = act[:, at:at + c.width]
            at += c.width
            if c.type == "categorical":
                idx = np.argmax(block, axis=1) if block.shape[0] else np.zeros(0, dtype=np.int64)
                series.append(pl.Series(c.name, np.asarray(c.categories, dtype=object)[idx], dtype=pl.Utf8))
                continue
            x = np.clip(np.nan_to_num(block[:, 0].astype(np.float64)), -1.0, 1.0)
            vals = np.clip(c.lo + (x + 1.0) / 2.0 * (c.hi - c.lo), c.lo, c.hi)
            if c.type == "integer":
                series.append(pl.Series(c.name, np.clip(np.rint(vals), c.lo, c.hi).astype(np.int64), dtype=pl.Int64))
            else:
                series.append(pl.Series(c.name, vals, dtype=pl.Float64))
        return pl.DataFrame(series)

    def table_transformer(self) -> Any:
        """smartnoise's ``TableTransformer`` over our schema-fixed column transformers (complete already)."""
        from snsynth.transform.table import TableTransformer

        minmax, onehot = _public_transformer_classes()
        tt = TableTransformer(
            [onehot(c.categories) if c.type == "categorical" else minmax(c.lo, c.hi) for c in self.columns]
        )
        if not tt.fit_complete or tt.output_width != self.width:
            raise RuntimeError("smartnoise did not take the schema-fixed transformers as complete")
        return tt


@functools.cache
def _public_transformer_classes() -> tuple[type, type]:
    """smartnoise column transformers fixed by the schema at construction (imported lazily)."""
    from snsynth.transform.base import ColumnTransformer
    from snsynth.transform.definitions import ColumnType

    class SchemaMinMax(ColumnTransformer):
        """Min-max scaling to [-1, 1] over the schema's bounds; never fit on data."""

        def __init__(self, lower: float, upper: float) -> None:
            self.lower = float(lower)
            self.upper = float(upper)
            super().__init__()

        @property
        def output_type(self) -> Any:
            return ColumnType.CONTINUOUS

        @property
        def cardinality(self) -> list[Any]:
            return [None]

        def _clear_fit(self) -> None:
            self._fit_complete = True
            self.output_width = 1

        def _fit(self, val: Any) -> None:
            raise RuntimeError("a schema-fixed transformer is never fit on data")

        def _transform(self, val: Any) -> float:
            v = min(max(float(val), self.lower), self.upper)
            return 2.0 * (v - self.lower) / (self.upper - self.lower) - 1.0

        def _inverse_transform(self, val: Any) -> float:
            x = min(max(float(val), -1.0), 1.0)
            return self.lower + (x + 1.0) / 2.0 * (self.upper - self.lower)

    class SchemaOneHot(ColumnTransformer):
        """One-hot over the schema's categories; never fit on data."""

        def __init__(self, categories: tuple[str, ...]) -> None:
            self.categories = tuple(categories)
            self._index = {c: i for i, c in enumerate(self.categories)}
            super().__init__()

        @property
        def output_type(self) -> Any:
            return ColumnType.CATEGORICAL

        @property
        def cardinality(self) -> list[Any]:
            return [2] * len(self.categories)

        def _clear_fit(self) -> None:
            self._fit_complete = True
            self.output_width = len(self.categories)

        def _fit(self, val: Any) -> None:
            raise RuntimeError("a schema-fixed transformer is never fit on data")

        def _transform(self, val: Any) -> Any:
            bits = [0] * len(self.categories)
            bits[self._index[str(val)]] = 1
            return bits[0] if len(bits) == 1 else tuple(bits)

        def _inverse_transform(self, val: Any) -> str:
            return self.categories[int(np.argmax(np.atleast_1d(val)))]

    return SchemaMinMax, SchemaOneHot


# --- the DP measurement before training -----------------------------------------------------------


def _discrete_laplace(scale: float) -> Any:
    """OpenDP's discrete Laplace on integer vectors (L1 distance), OS-entropy CSPRNG."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=float(scale))


def laplace_for(epsilon: float, l1_sensitivity: int) -> tuple[Any, float]:
    """A discrete Laplace measurement certified (by OpenDP's map) to spend at most ``epsilon``."""
    scale = l1_sensitivity / epsilon
    meas = _discrete_laplace(scale)
    while float(meas.map(l1_sensitivity)) > epsilon:  # rounding in OpenDP's map: widen a hair
        scale *= 1.0 + 1e-9
        meas = _discrete_laplace(scale)
    return meas, scale


@dataclass(frozen=True)
class NoisyStats:
    """The DP measurement made before training, and what is derived from it (post-processing)."""

    estimated_rows: float
    #: per categorical column, the condition probabilities (noisy counts clipped at 0, normalised)
    probs: tuple[tuple[float, ...], ...]
    epsilon: float
    scale: float
    l1_sensitivity: int


def measure_stats(codes: np.ndarray, cat_widths: tuple[int, ...], epsilon: float) -> NoisyStats:
    """Release the row count and every categorical column's histogram with discrete Laplace noise.

    One record adds 1 to the count and 1 to one cell of each histogram: L1 sensitivity ``1 + d``.
    """
    sens = 1 + len(cat_widths)
    meas, scale = laplace_for(epsilon, sens)
    true = [int(codes.shape[0])]
    for j, w in enumerate(cat_widths):
        true += np.bincount(codes[:, j], minlength=w).astype(int).tolist()
    noisy = np.asarray(meas(true), dtype=np.float64)
    count, at = noisy[0], 1
    # every cell has the same noise variance, so a histogram's sum has w times the count's variance
    num, den = count, 1.0
    probs = []
    for w in cat_widths:
        cells = noisy[at:at + w]
        at += w
        num += cells.sum() / w
        den += 1.0 / w
        clipped = np.clip(cells, 0.0, None)
        total = clipped.sum()
        p = clipped / total if total > 0 else np.full(w, 1.0 / w)
        probs.append(tuple(float(x) for x in p))
    return NoisyStats(
        estimated_rows=max(0.0, num / den), probs=tuple(probs), epsilon=float(meas.map(sens)),
        scale=scale, l1_sensitivity=sens,
    )


# --- samplers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CondSampler:
    """CTGAN's conditional vectors: a uniformly chosen categorical column, a category by its DP frequency."""

    widths: tuple[int, ...]
    probs: tuple[tuple[float, ...], ...]

    @property
    def width(self) -> int:
        return sum(self.widths)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``(cond, mask, column, category)`` as smartnoise's ``sample_condvec``; None without categories."""
        if not self.widths:
            return None
        m = len(self.widths)
        cum = np.ones((m, max(self.widths)), dtype=np.float64)
        for j, p in enumerate(self.probs):
            cum[j, :len(p)] = np.cumsum(p)
            cum[j, len(p) - 1:] = 1.0  # no category lost to rounding; padding is never reached first
        col = rng.integers(0, m, size=n)
        u = rng.random(n)
        opt = (cum[col] > u[:, None]).argmax(axis=1)
        offsets = np.concatenate([[0], np.cumsum(self.widths)[:-1]]).astype(np.int64)
        cond = np.zeros((n, self.width), dtype=np.float32)
        cond[np.arange(n), offsets[col] + opt] = 1.0
        mask = np.zeros((n, m), dtype=np.float32)
        mask[np.arange(n), col] = 1.0
        return cond, mask, col, opt


@dataclass(frozen=True)
class _Partition:
    rows: np.ndarray
    order: tuple[np.ndarray, ...]
    starts: tuple[np.ndarray, ...]
    counts: tuple[np.ndarray, ...]


class TeacherData:
    """The training rows split among the teachers by independent uniform assignment.

    Teacher ``i`` sees only the rows assigned to it; its real batches match the requested
    conditions where its rows allow (smartnoise's ``DataSampler.sample_data``: a random row of the
    partition otherwise). Each call draws a fixed amount of randomness whatever the data.
    """

    def __init__(self, matrix: np.ndarray, codes: np.ndarray, cat_widths: tuple[int, ...], assign: np.ndarray,
                 teachers: int) -> None:
        self.width = int(matrix.shape[1])
        parts = []
        for i in range(teachers):
            sel = np.flatnonzero(assign == i)
            c = codes[sel]
            orders, starts, counts = [], [], []
            for j, w in enumerate(cat_widths):
                orders.append(np.argsort(c[:, j], kind="stable"))
                cnt = np.bincount(c[:, j], minlength=w)
                counts.append(cnt)
                starts.append(np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64))
            parts.append(_Partition(matrix[sel], tuple(orders), tuple(starts), tuple(counts)))
        self.parts = tuple(parts)

    @classmethod
    def split(cls, matrix: np.ndarray, codes: np.ndarray, cat_widths: tuple[int, ...], teachers: int,
              rng: np.random.Generator) -> "TeacherData":
        return cls(matrix, codes, cat_widths, rng.integers(0, teachers, size=matrix.shape[0]), teachers)

    def sizes(self) -> list[int]:
        return [int(p.rows.shape[0]) for p in self.parts]

    def real_batch(self, teacher: int, n: int, col: np.ndarray | None, opt: np.ndarray | None,
                   rng: np.random.Generator) -> np.ndarray:
        part = self.parts[teacher]
        size = part.rows.shape[0]
        fallback = rng.integers(0, max(size, 1), size=n)
        u = rng.random(n)
        if size == 0:  # an empty partition: same work, nothing real (its own data decides this)
            return np.zeros((n, self.width), dtype=np.float32)
        idx = fallback
        if col is not None and opt is not None:
            for j in range(len(part.order)):
                sel = np.flatnonzero(col == j)
                if sel.size == 0:
                    continue
                cnt = part.counts[j][opt[sel]]
                has = cnt > 0
                pos = part.starts[j][opt[sel]] + np.minimum(np.floor(u[sel] * cnt).astype(np.int64),
                                                            np.maximum(cnt - 1, 0))
                idx[sel[has]] = part.order[j][pos[has]]
        return part.rows[idx]


def teacher_votes(teachers: Sequence[Any], x: Any) -> Any:
    """Per row of ``x``, how many teachers call it real (smartnoise's ``pate``, without the noise)."""
    import torch

    with torch.no_grad():
        return sum((t(x) > 0.5).long().view(-1) for t in teachers)


def activate(raw: Any, widths: Sequence[int], kinds: Sequence[str]) -> Any:
    """CTGAN's output activations (``_apply_activate``): tanh, or Gumbel-softmax with tau 0.2."""
    import torch
    import torch.nn.functional as F

    parts, at = [], 0
    for w, kind in zip(widths, kinds):
        block = raw[:, at:at + w]
        at += w
        parts.append(F.gumbel_softmax(block, tau=GUMBEL_TAU) if kind == "categorical" else torch.tanh(block))
    return torch.cat(parts, dim=1)


# --- the plan: everything fixed before the data is read ---------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Public training settings and budget split; built from the options, the schema and the spend."""

    requested_epsilon: float
    delta: float
    measure_epsilon_budget: float
    train_epsilon_budget: float
    teachers: int
    epochs: int
    batch_size: int
    teacher_iters: int
    student_iters: int
    planned_votes: int
    #: per-vote privacy parameter (certified by OpenDP's map) and the discrete Laplace scale
    vote_epsilon: float
    vote_scale: float
    moments_orders: int

    def epsilon_after(self, votes: int) -> float:
        return pate_epsilon(votes, self.vote_epsilon, self.delta)


def make_plan(*, spend: PrivacySpend, teachers: int, epochs: int, batch_size: int, preprocess_share: float) -> Plan:
    """Split the budget and calibrate the vote noise; reads no data."""
    if spend.delta <= 0:
        raise InputError(
            f"delta ({spend.delta}) must be > 0 for PATECTGAN: its moments accountant gives (epsilon, delta)-DP "
            "only for delta > 0"
        )
    eps = float(spend.epsilon)
    measure = eps * preprocess_share
    train = eps - measure
    while measure + train > eps:  # never let the two shares round above the request
        train = math.nextafter(train, 0.0)
    votes = epochs * STUDENT_ITERS * batch_size
    eps0 = calibrate_vote_epsilon(train, spend.delta, votes)
    meas, scale = laplace_for(eps0, 1)
    certified = float(meas.map(1))
    return Plan(
        requested_epsilon=eps, delta=float(spend.delta), measure_epsilon_budget=measure,
        train_epsilon_budget=train, teachers=teachers, epochs=epochs, batch_size=batch_size,
        teacher_iters=TEACHER_ITERS, student_iters=STUDENT_ITERS, planned_votes=votes,
        vote_epsilon=certified, vote_scale=scale, moments_orders=len(MOMENTS_ORDERS),
    )


@dataclass
class TrainResult:
    epochs_run: int = 0
    votes: int = 0
    teacher_steps: int = 0
    student_steps: int = 0
    generator_steps: int = 0
    generator_loss: float = float("nan")
    student_loss: float = float("nan")


# --- smartnoise's PATECTGAN, with train replaced ------------------------------------------------------


@functools.cache
def smartnoise_class() -> type:
    """Our subclass of smartnoise's ``PATECTGAN`` (built on first use: importing torch is slow)."""
    from snsynth.pytorch.nn.patectgan import PATECTGAN

    class PrivatePATECTGAN(PATECTGAN):
        """smartnoise's PATECTGAN with distinct teachers, a separate student and public inputs only."""

        def __init__(self, *, encoding: MinMaxEncoding, plan: Plan, device: Any) -> None:
            super().__init__(
                embedding_dim=EMBEDDING_DIM, generator_dim=GENERATOR_DIM, discriminator_dim=DISCRIMINATOR_DIM,
                generator_lr=GENERATOR_LR, generator_decay=WEIGHT_DECAY, discriminator_lr=DISCRIMINATOR_LR,
                discriminator_decay=WEIGHT_DECAY, batch_size=plan.batch_size, verbose=False, epochs=plan.epochs,
                pac=1, cuda=device.type == "cuda", epsilon=plan.train_epsilon_budget, loss="cross_entropy",
                teacher_iters=plan.teacher_iters, student_iters=plan.student_iters, delta=plan.delta,
                noise_multiplier=plan.vote_epsilon, moments_order=plan.moments_orders,
            )
            self._device = device
            self._transformer = encoding.table_transformer()
            self.num_teachers = plan.teachers
            self.plan = plan
            self.encoding = encoding

        def fit(self, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError("use PATECTGANGenerator.fit (smartnoise's fit reads the domain from the data)")

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("use PATECTGANModel.sample (smartnoise's generate copies training rows)")

        def train(self, data: TeacherData, *, stats: NoisyStats,  # type: ignore[override]
                  progress: Progress | None = None) -> TrainResult:
            """PATECTGAN's loop (teachers, student on noisy votes, generator), votes fixed in number."""
            import torch
            from snsynth.pytorch.nn.patectgan import Discriminator, Generator
            from snsynth.pytorch.nn.privacy_utils import weights_init
            from torch import nn, optim

            plan, dev, k, batch = self.plan, self._device, self.num_teachers, self._batch_size
            cond = CondSampler(self.encoding.cat_widths, stats.probs)
            data_dim = self._transformer.output_width
            vote_noise = _discrete_laplace(plan.vote_scale)
            if float(vote_noise.map(1)) > plan.vote_epsilon:
                raise RuntimeError("the vote noise does not match the plan")
            seeds = np.random.SeedSequence(secrets.randbits(128))
            cond_rng, *teacher_rngs = (np.random.default_rng(s) for s in seeds.spawn(k + 1))

            self._generator = Generator(self._embedding_dim + cond.width, self._generator_dim, data_dim).to(dev)
            # k distinct teachers and a separate student (smartnoise: one module for all of them)
            teachers = [Discriminator(data_dim + cond.width, self._discriminator_dim, self.loss, self.pac).to(dev)
                        for _ in range(k)]
            student = Discriminator(data_dim + cond.width, self._discriminator_dim, self.loss, self.pac).to(dev)
            torch.manual_seed(secrets.randbits(63))  # Discriminator.__init__ reseeds torch with 0
            for d in (*teachers, student):
                d.apply(weights_init)
            opt_g = optim.Adam(self._generator.parameters(), lr=self._generator_lr, betas=(0.5, 0.9),
                               weight_decay=self._generator_decay)
            opt_s = optim.Adam(student.parameters(), lr=STUDENT_LR, betas=(0.5, 0.9))
            opt_t = [optim.Adam(t.parameters(), lr=self._discriminator_lr, betas=(0.5, 0.9),
                                weight_decay=self._discriminator_decay) for t in teachers]
            criterion = nn.BCELoss()
            mean = torch.zeros(batch, self._embedding_dim, device=dev)
            std = mean + 1
            ones = torch.ones(batch, device=dev)
            labels_t = torch.cat([torch.zeros(batch, device=dev), ones])

            def fake_batch() -> tuple[Any, Any, Any, Any, Any, Any]:
                fakez = torch.normal(mean=mean, std=std)
                cv = cond.sample(batch, cond_rng)
                c1 = m1 = col = opt = None
                if cv is not None:
                    c_np, m_np, col, opt = cv
                    c1 = torch.from_numpy(c_np).to(dev)
                    m1 = torch.from_numpy(m_np).to(dev)
                    fakez = torch.cat([fakez, c1], dim=1)
                fake = self._generator(fakez)
                fakeact = self._apply_activate(fake)
                return fake, fakeact, c1, m1, col, opt

            def with_cond(x: Any, c: Any) -> Any:
                return x if c is None else torch.cat([x, c], dim=1)

            result = TrainResult()
            for epoch in range(1, plan.epochs + 1):
                # teachers: each on its own partition only
                for _ in range(self.teacher_iters):
                    for i in range(k):
                        with torch.no_grad():
                            _, fakeact, c1, _, col, opt = fake_batch()
                        if c1 is None:
                            real_np = data.real_batch(i, batch, None, None, teacher_rngs[i])
                            c2 = None
                        else:
                            perm = cond_rng.permutation(batch)
                            real_np = data.real_batch(i, batch, col[perm], opt[perm], teacher_rngs[i])
                            c2 = c1[torch.from_numpy(perm).to(dev)]
                        real = torch.from_numpy(real_np).to(dev)
                        y_all = torch.cat([teachers[i](with_cond(fakeact, c1)), teachers[i](with_cond(real, c2))])
                        loss_t = criterion(y_all.squeeze(), labels_t)
                        opt_t[i].zero_grad()
                        loss_t.backward()
                        opt_t[i].step()
                        result.teacher_steps += 1
                # student: generated rows labelled by the noisy teacher vote
                for _ in range(self.student_iters):
                    if result.votes + batch > plan.planned_votes:
                        raise RuntimeError("the vote count would pass the plan")
                    with torch.no_grad():
                        _, fakeact, c1, *_ = fake_batch()
                        fake_cat = with_cond(fakeact, c1)
                    votes = teacher_votes(teachers, fake_cat)
                    noisy = np.asarray(vote_noise([int(v) for v in votes.cpu().tolist()]), dtype=np.float64)
                    result.votes += batch
                    labels = torch.from_numpy((noisy > k / 2).astype(np.float32)).to(dev)
                    loss_s = criterion(student(fake_cat).squeeze(), labels)
                    opt_s.zero_grad()
                    loss_s.backward()
                    opt_s.step()
                    result.student_steps += 1
                # generator: through the student, plus CTGAN's conditional cross-entropy
                fake, fakeact, c1, m1, *_ = fake_batch()
                y_fake = student(with_cond(fakeact, c1))
                loss_g = criterion(y_fake.squeeze(), ones)
                if c1 is not None:
                    loss_g = loss_g + self._cond_loss(fake, c1, m1)
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
                result.generator_steps += 1
                result.epochs_run = epoch
                result.generator_loss = float(loss_g.detach().cpu())
                result.student_loss = float(loss_s.detach().cpu())
                report(
                    progress,
                    f"PATECTGAN: epoch {epoch}/{plan.epochs}, generator loss {result.generator_loss:.4f}, "
                    f"student loss {result.student_loss:.4f}, training epsilon spent "
                    f"{plan.epsilon_after(result.votes):.4g} of {plan.train_epsilon_budget:.4g}",
                    epoch / plan.epochs,
                )
            return result

    return PrivatePATECTGAN


# --- the fitted model --------------------------------------------------------------------------------


class PATECTGANModel:
    """A fitted PATECTGAN: generator weights (numpy), public encoding, DP condition probabilities, card."""

    def __init__(self, *, card: GeneratorCard, encoding: MinMaxEncoding, cond: CondSampler,
                 generator_state: dict[str, np.ndarray], estimated_rows: int) -> None:
        self.card = card
        self._encoding = encoding
        self._cond = cond
        self._state = generator_state
        self._estimated_rows = int(estimated_rows)

    @property
    def estimated_rows(self) -> int:
        """The DP estimate of the number of training rows (never ``len(data)``)."""
        return self._estimated_rows

    def _generator(self) -> Any:
        import torch
        from snsynth.pytorch.nn.patectgan import Generator

        g = Generator(EMBEDDING_DIM + self._cond.width, GENERATOR_DIM, self._encoding.width)
        g.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self._state.items()})
        return g.eval()

    def sample(self, n: int, seed: int) -> pl.DataFrame:
        """``n`` synthetic rows with the schema's columns and dtypes; the same seed gives the same rows."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n ({n}) must be an integer >= 0")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed ({seed}) must be an integer >= 0")
        import torch

        widths = self._encoding.widths
        kinds = [c.type for c in self._encoding.columns]
        rng = np.random.default_rng(int(seed))
        chunks = []
        with _GLOBALS_LOCK, torch.random.fork_rng(devices=_all_devices()), torch.no_grad():
            torch.manual_seed(int(seed))
            gen = self._generator()
            left = int(n)
            while left > 0:
                b = min(SAMPLE_CHUNK, left)
                left -= b
                z = torch.randn(b, EMBEDDING_DIM)
                cv = self._cond.sample(b, rng)
                if cv is not None:
                    z = torch.cat([z, torch.from_numpy(cv[0])], dim=1)
                chunks.append(activate(gen(z), widths, kinds).numpy())
        act = np.concatenate(chunks) if chunks else np.zeros((0, self._encoding.width), dtype=np.float32)
        return self._encoding.decode(act)


# --- the generator --------------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    out = {}
    for dist in ("smartnoise-synth", "torch", "opendp", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _all_devices() -> list[int]:
    """Every CUDA device, so that forking torch's RNG also restores theirs (``manual_seed`` seeds all)."""
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class PATECTGANGenerator:
    """The ``patectgan`` generator: smartnoise's PATECTGAN with a sound PATE argument (module docstring).

    Options: ``epochs`` (rounds of teachers, student and generator; sets the number of votes and so
    the vote noise), ``batch_size`` (rows per batch, even; each student step casts that many
    votes), ``teachers`` (public number of teachers), ``device`` (auto, cpu or cuda),
    ``time_limit_s`` (an epoch count that fits the limit, timed on schema-random rows before the
    data is read; the whole budget is spent over those epochs),
    ``preprocess_share`` (share of epsilon for the DP row count and category frequencies).
    """

    name = NAME

    def __init__(self, *, epochs: int = 30, batch_size: int = 500, teachers: int = 10, device: str = "auto",
                 time_limit_s: float | None = None, preprocess_share: float = 0.05) -> None:
        if not _is_int(epochs) or not 1 <= epochs <= 100_000:
            raise InputError(f"epochs ({epochs!r}) must be an integer in [1, 100000]")
        if not _is_int(batch_size) or not 2 <= batch_size <= 100_000 or batch_size % 2:
            raise InputError(f"batch_size ({batch_size!r}) must be an even integer in [2, 100000]")
        if not _is_int(teachers) or not 1 <= teachers <= 10_000:
            raise InputError(f"teachers ({teachers!r}) must be an integer in [1, 10000]")
        if device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        if time_limit_s is not None and not (
            isinstance(time_limit_s, (int, float)) and not isinstance(time_limit_s, bool)
            and math.isfinite(time_limit_s) and time_limit_s > 0
        ):
            raise InputError(f"time_limit_s ({time_limit_s!r}) must be None or a number of seconds > 0")
        if not (isinstance(preprocess_share, (int, float)) and not isinstance(preprocess_share, bool)
                and 0 < preprocess_share < 0.5):
            raise InputError(f"preprocess_share ({preprocess_share!r}) must be in (0, 0.5)")
        self.epochs = epochs
        self.batch_size = batch_size
        self.teachers = teachers
        resolve_device(device)  # refuse a missing GPU when built, before synthesize charges the budget
        self.device = device
        self.time_limit_s = None if time_limit_s is None else float(time_limit_s)
        self.preprocess_share = float(preprocess_share)

    def plan(self, schema: Schema, spend: PrivacySpend) -> tuple[MinMaxEncoding, Plan]:
        """Everything fixed before the data is read: the public encoding and the training plan."""
        encoding = MinMaxEncoding.from_schema(schema)
        plan = make_plan(spend=spend, teachers=self.teachers, epochs=self.epochs, batch_size=self.batch_size,
                         preprocess_share=self.preprocess_share)
        return encoding, plan

    def _epochs_for_time(self, schema: Schema, encoding: MinMaxEncoding, plan: Plan, stats: NoisyStats,
                         device: Any, elapsed: float) -> tuple[int, float]:
        """Epochs that fit in what is left of ``time_limit_s``, timed on public rows only.

        A wall-clock stop during training would make the number of votes (hence the epsilon and the
        model) depend on how long the real teachers' batches took. Instead two epochs are timed on
        rows drawn uniformly from the schema's domain, split among throwaway teachers, and the
        limit becomes an epoch count before the teachers see the data; the vote noise is then
        calibrated for that many votes, so the training budget is still spent in full.
        """
        from privacy.generators.tabular.deep.encoding import SchemaEncoder

        assert self.time_limit_s is not None
        rng = np.random.default_rng(secrets.randbits(128))
        enc = SchemaEncoder.from_schema(schema)
        n = max(int(round(stats.estimated_rows)), self.teachers)
        dummy = enc.decode_parts(*enc.random_parts(n, rng))
        d_matrix, d_codes = encoding.encode(dummy)
        d_split = TeacherData.split(d_matrix, d_codes, encoding.cat_widths, plan.teachers, rng)
        probe_plan = replace(plan, epochs=2, planned_votes=2 * plan.student_iters * plan.batch_size)
        t0 = time.monotonic()
        smartnoise_class()(encoding=encoding, plan=probe_plan, device=device).train(d_split, stats=stats)
        per_epoch = max((time.monotonic() - t0) / 2, 1e-6)
        remaining = self.time_limit_s - elapsed - (time.monotonic() - t0)
        return max(1, min(plan.epochs, int(0.9 * remaining / per_epoch))), per_epoch

    def fit(self, data: pl.DataFrame, schema: Schema, spend: PrivacySpend, *,
            progress: Progress | None = None) -> PATECTGANModel:
        """Fit on the conformed training split; the card charges at most ``spend`` (what was spent)."""
        started = time.monotonic()
        encoding, plan = self.plan(schema, spend)
        if data.height == 0:
            raise InputError("the training data has no rows")
        device = resolve_device(self.device)
        matrix, codes = encoding.encode(data)
        import torch

        epochs_for_time = None
        probe_seconds = None
        with _GLOBALS_LOCK, quiet(), torch.random.fork_rng(devices=_all_devices()):
            torch.manual_seed(secrets.randbits(63))
            report(progress, f"PATECTGAN: measuring the row count and category frequencies "
                             f"(epsilon {plan.measure_epsilon_budget:.4g})", 0.0)
            stats = measure_stats(codes, encoding.cat_widths, plan.measure_epsilon_budget)
            if self.time_limit_s is not None:
                epochs_for_time, probe_seconds = self._epochs_for_time(schema, encoding, plan, stats, device,
                                                                       time.monotonic() - started)
                if epochs_for_time < plan.epochs:
                    plan = make_plan(spend=spend, teachers=self.teachers, epochs=epochs_for_time,
                                     batch_size=self.batch_size, preprocess_share=self.preprocess_share)
            split = TeacherData.split(matrix, codes, encoding.cat_widths, plan.teachers,
                                      np.random.default_rng(secrets.randbits(128)))
            del matrix, codes
            synth = smartnoise_class()(encoding=encoding, plan=plan, device=device)
            result = synth.train(split, stats=stats, progress=progress)
            state = {k: v.detach().cpu().numpy().copy() for k, v in synth._generator.state_dict().items()}
        del split, synth

        train_spent = plan.epsilon_after(result.votes)
        if train_spent > plan.train_epsilon_budget or stats.epsilon > plan.measure_epsilon_budget:
            raise RuntimeError("PATECTGAN spent more than its plan; refusing to report it")
        total = stats.epsilon + train_spent
        if total > plan.requested_epsilon:
            raise RuntimeError("PATECTGAN's spend passed the request; refusing to report it")
        card = GeneratorCard(
            name=NAME,
            parameters={
                "requested_epsilon": plan.requested_epsilon,
                "epsilon_spent": total,
                "epsilon_measurement": stats.epsilon,
                "epsilon_training_budget": plan.train_epsilon_budget,
                "epsilon_training_spent": train_spent,
                "delta": plan.delta,
                "accountant": ACCOUNTANT,
                "moments_orders": plan.moments_orders,
                "teachers": plan.teachers,
                "teacher_iters": plan.teacher_iters,
                "student_iters": plan.student_iters,
                "batch_size": plan.batch_size,
                "epochs": plan.epochs,
                "epochs_run": result.epochs_run,
                "teacher_steps": result.teacher_steps,
                "student_steps": result.student_steps,
                "generator_steps": result.generator_steps,
                "planned_votes": plan.planned_votes,
                "votes": result.votes,
                "vote_noise": "discrete Laplace (OpenDP) on the teachers' vote count",
                "vote_laplace_scale": plan.vote_scale,
                "vote_epsilon_per_query": plan.vote_epsilon,
                "measurement_noise": "discrete Laplace (OpenDP) on the row count and categorical histograms",
                "measurement_laplace_scale": stats.scale,
                "measurement_l1_sensitivity": stats.l1_sensitivity,
                "preprocess_share": self.preprocess_share,
                "time_limit_s": self.time_limit_s,
                "epochs_for_time_limit": epochs_for_time,
                "epochs_limited_by_time": epochs_for_time is not None and epochs_for_time < self.epochs,
                "probe_seconds_per_epoch": probe_seconds,
                "device": str(device),
                "generator_loss": result.generator_loss,
                "student_loss": result.student_loss,
                "embedding_dim": EMBEDDING_DIM,
                "generator_dim": list(GENERATOR_DIM),
                "discriminator_dim": list(DISCRIMINATOR_DIM),
            },
            library_versions=library_versions(),
            spend=PrivacySpend(epsilon=total, delta=plan.delta),
            accounting=(
                f"{ACCOUNTANT} over {result.votes} discrete-Laplace teacher votes, each "
                f"{plan.vote_epsilon:.4g}-DP, converted at delta {plan.delta:g} by Abadi et al.'s tail bound "
                f"(orders 1..{plan.moments_orders}), plus a pure {stats.epsilon:.4g}-DP discrete-Laplace "
                "measurement by basic composition"
            ),
            unit_of_privacy=UNIT_OF_PRIVACY,
            domain_sources=dict(DOMAIN_SOURCES),
            notes=(
                "smartnoise's PATECTGAN.train is replaced: its teachers and student are one module, its teacher "
                "count and partition depend on len(data), its conditional vectors use raw category frequencies, "
                "and its accountant is data-dependent",
                "the vote noise and the measurement noise come from OpenDP's CSPRNG; teacher assignment and "
                "batch sampling from OS entropy; no user seed drives fit",
                "time_limit_s becomes an epoch count before the teachers see the data (timed on schema-random "
                "rows), so the number of votes never depends on how long the real batches took",
                "sampling is post-processing: the seed drives the latent noise, conditions and Gumbel draws",
            ),
        )
        report(progress, "PATECTGAN: done", 1.0)
        return PATECTGANModel(
            card=card, encoding=encoding, cond=CondSampler(encoding.cat_widths, stats.probs),
            generator_state=state, estimated_rows=int(round(stats.estimated_rows)),
        )
