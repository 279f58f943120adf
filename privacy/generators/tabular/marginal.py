"""Plumbing shared by the marginal-based generators (MST, AIM) built on smartnoise-synth and mbi.

What lives here, and why:

- ``prepare``: discretises the conformed data with the schema's public domain
  (``discretize.Discretizer``) and builds the smartnoise ``TableTransformer`` we hand to
  smartnoise's ``fit``: one ``PublicCodeTransformer`` per column, already "fit" at construction
  with the schema's cardinality, so smartnoise never reads a category list or bound from the data.
- ``mechanism_randomness``: smartnoise draws its exponential mechanism from numpy's *global*
  generator (``snsynth.utils.prng``, ``snsynth.aim.aim.prng``, MST's ``prng=np.random`` default).
  A user seed must never drive a DP mechanism (a published seed would make the selection a
  deterministic function of the data), so during a fit these globals point at a fresh
  ``numpy.random.Generator`` seeded from OS entropy, and are restored afterwards.
- ``quiet``: smartnoise prints to stdout (AIM always does); fits report through ``progress``.
- ``zcdp_rho``: (epsilon, delta) -> rho with OpenDP (via ``snsynth.utils.cdp_rho``).
- ``project_many``: a model's marginals over many cliques by numpy variable elimination (speed).
- One fit at a time per process: the patched globals, stdout and warning filters are process-wide,
  so the helpers above share a lock.
- ``MarginalModel``: the fitted generator. It keeps only numpy arrays (a ``SamplingPlan``, the
  decompression maps, the public ``Discretizer``) and the card, never the smartnoise object (which
  stores ``num_rows = len(data)``) nor mbi/JAX objects, so it pickles with the standard library.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import math
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.discretize import Discretizer
from privacy.generators.tabular.sampler import SamplingPlan
from privacy.schema import Schema
from privacy.spend import PrivacySpend

ACCOUNTING = (
    "zero-concentrated DP, rho = {rho:.6g}, converted to (eps, delta) with OpenDP's "
    "zCDP->approx-DP conversion; Gaussian noise from OpenDP"
)
UNIT_OF_PRIVACY = "one record of the training split; add/remove-one neighbouring datasets"
DOMAIN_SOURCES = {
    "categories": "schema",
    "numeric bin edges": "schema (equal-width over public bounds)",
    "row count": "DP estimate from noisy marginals",
}
COMMON_NOTES = (
    "exponential-mechanism randomness comes from OS entropy during fit, never from a seed",
    "sampling (post-processing) uses synthgate's sampler: randomized rounding and a random order "
    "within each parent group; the seed only drives sampling and bin decoding",
)

# smartnoise's globals, stdout and the warnings filters are process-wide: one fit at a time
_GLOBALS_LOCK = threading.RLock()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a marginal generator's result depends on."""
    out = {}
    for dist in ("smartnoise-synth", "mbi", "numpy", "opendp", "jax"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def zcdp_rho(spend: PrivacySpend) -> float:
    """The zCDP rho whose OpenDP conversion gives ``(spend.epsilon, spend.delta)``.

    Raises ``InputError`` for delta = 0: these mechanisms are Gaussian (zCDP) and cannot give
    pure epsilon-DP.
    """
    if spend.delta <= 0:
        raise InputError(
            f"delta ({spend.delta}) must be > 0 for MST/AIM: their Gaussian noise is zCDP, "
            f"which gives (epsilon, delta)-DP only for delta > 0"
        )
    from snsynth.utils import cdp_rho

    try:
        rho = float(cdp_rho(float(spend.epsilon), float(spend.delta)))
    except Exception as exc:  # OpenDP raises its own error type when the search fails
        raise InputError(
            f"cannot convert epsilon={spend.epsilon}, delta={spend.delta} to zCDP: {exc}"
        ) from exc
    if not (math.isfinite(rho) and rho > 0):
        raise InputError(f"epsilon={spend.epsilon}, delta={spend.delta} gives no usable zCDP budget")
    return rho


@contextlib.contextmanager
def mechanism_randomness() -> Iterator[np.random.Generator]:
    """Point smartnoise's exponential-mechanism generators at fresh OS entropy for the duration.

    Yields the generator (pass it explicitly where smartnoise takes a ``prng`` argument). The
    previous module globals are restored even if the fit fails.
    """
    import snsynth.aim.aim as sn_aim
    import snsynth.utils as sn_utils

    # default_rng() with no seed draws its state from the OS (numpy's SeedSequence entropy)
    prng = np.random.default_rng()
    with _GLOBALS_LOCK:
        saved = (sn_utils.prng, sn_aim.prng)
        sn_utils.prng = prng
        sn_aim.prng = prng
        try:
            yield prng
        finally:
            sn_utils.prng, sn_aim.prng = saved


# the stdout in force outside ``quiet``, so that progress callbacks still reach the user
_OUTER_STDOUT: list[Any] = []


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow smartnoise's prints and its pandas-deprecation warnings."""
    with _GLOBALS_LOCK:
        _OUTER_STDOUT.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("ignore", category=DeprecationWarning)
                yield
        finally:
            _OUTER_STDOUT.pop()


def report(progress: Progress | None, message: str, fraction: float | None) -> None:
    """Call ``progress`` if given, with the caller's stdout; fractions are clamped to [0, 1]."""
    if progress is None:
        return
    frac = None if fraction is None else min(1.0, max(0.0, fraction))
    if _OUTER_STDOUT:
        with contextlib.redirect_stdout(_OUTER_STDOUT[-1]):
            progress(message, frac)
    else:
        progress(message, frac)


def _public_code_transformer_class() -> type:
    # imported lazily so that importing the registry does not import smartnoise
    from snsynth.transform.base import ColumnTransformer
    from snsynth.transform.definitions import ColumnType

    class PublicCodeTransformer(ColumnTransformer):
        """Identity on integer codes, with the schema's cardinality fixed at construction.

        It reports ``fit_complete`` from the start, so smartnoise never fits it on the data;
        ``_fit`` ignores what it is given.
        """

        def __init__(self, cardinality: int) -> None:
            self._k = int(cardinality)
            super().__init__()

        @property
        def output_type(self) -> Any:
            return ColumnType.CATEGORICAL

        @property
        def cardinality(self) -> list[int]:
            return [self._k]

        def _clear_fit(self) -> None:
            self._fit_complete = True
            self.output_width = 1

        def _fit(self, val: Any) -> None:
            return None

        def _transform(self, val: Any) -> int:
            code = int(val)
            if not 0 <= code < self._k:
                raise ValueError(f"code outside 0..{self._k - 1}")
            return code

        def _inverse_transform(self, val: Any) -> int:
            return int(val)

    return PublicCodeTransformer


def public_transformer(discretizer: Discretizer) -> Any:
    """A smartnoise ``TableTransformer`` over codes whose cardinalities are the schema's."""
    from snsynth.transform.table import TableTransformer

    cls = _public_code_transformer_class()
    tt = TableTransformer([cls(k) for k in discretizer.cardinalities])
    assert tt.fit_complete and tt.cardinality == discretizer.cardinalities
    return tt


@dataclass(frozen=True)
class PreparedData:
    """What a marginal generator hands smartnoise: codes, and a transformer fixed by the schema."""

    discretizer: Discretizer
    codes: np.ndarray
    transformer: Any


def prepare(data: pl.DataFrame, schema: Schema) -> PreparedData:
    """Encode the conformed data with the schema's domain; nothing about the domain is read from it."""
    if data.height == 0:
        raise InputError("the training data has no rows")
    discretizer = Discretizer.from_schema(schema)
    codes = discretizer.encode(data)
    return PreparedData(discretizer=discretizer, codes=codes, transformer=public_transformer(discretizer))


def noisy_total(measurements: list[Any]) -> float:
    """Minimum-variance combination of the sums of noisy identity measurements (post-processing)."""
    from mbi import estimation

    return float(estimation.minimum_variance_unbiased_total(measurements))


def decompress(codes: np.ndarray, mappings: tuple[np.ndarray | None, ...], rng: np.random.Generator) -> np.ndarray:
    """Undo domain compression: a merged code becomes one of its original codes, uniformly."""
    out = codes.copy()
    for j, mapping in enumerate(mappings):
        if mapping is None:
            continue
        perm = np.argsort(mapping, kind="stable")
        counts = np.bincount(mapping)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        col = codes[:, j]
        offsets = rng.integers(0, counts[col]) if col.size else col
        out[:, j] = perm[starts[col] + offsets]
    return out


class MarginalModel:
    """A fitted MST/AIM model: the card, a numpy sampling plan and the public domain.

    Picklable with the standard ``pickle`` module (no mbi, JAX or smartnoise objects inside).
    """

    def __init__(
        self,
        *,
        card: GeneratorCard,
        plan: SamplingPlan,
        discretizer: Discretizer,
        mappings: tuple[np.ndarray | None, ...],
        estimated_rows: int,
    ) -> None:
        if len(plan.attrs) != len(discretizer.codecs) or len(mappings) != len(discretizer.codecs):
            raise ValueError("plan, mappings and discretizer disagree on the number of columns")
        self.card = card
        self._plan = plan
        self._discretizer = discretizer
        self._mappings = mappings
        self._estimated_rows = int(estimated_rows)

    @property
    def estimated_rows(self) -> int:
        """The model's DP estimate of the number of training rows (never ``len(data)``)."""
        return self._estimated_rows

    def sample(self, n: int, seed: int) -> pl.DataFrame:
        """``n`` synthetic rows, schema columns and dtypes; the same seed gives the same rows."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n ({n}) must be an integer >= 0")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed ({seed}) must be an integer >= 0")
        rng = np.random.default_rng(int(seed))
        codes = self._plan.sample(int(n), rng)
        codes = decompress(codes, self._mappings, rng)
        return self._discretizer.decode(codes, rng)


def make_card(
    *, name: str, parameters: dict[str, Any], spend: PrivacySpend, rho: float, notes: tuple[str, ...] = ()
) -> GeneratorCard:
    """The card every marginal generator records."""
    return GeneratorCard(
        name=name,
        parameters=parameters,
        library_versions=library_versions(),
        spend=PrivacySpend(epsilon=spend.epsilon, delta=spend.delta, rho=rho),
        accounting=ACCOUNTING.format(rho=rho),
        unit_of_privacy=UNIT_OF_PRIVACY,
        domain_sources=dict(DOMAIN_SOURCES),
        notes=COMMON_NOTES + notes,
    )


def run_smartnoise_fit(synth: Any, prepared: PreparedData) -> None:
    """Call smartnoise's ``fit`` on the codes with the public transformer, quietly.

    The caller holds ``mechanism_randomness()`` around this.
    """
    with quiet():
        synth.fit(prepared.codes, transformer=prepared.transformer)


def project_many(model: Any, cliques: list[tuple[str, ...]]) -> dict[tuple[str, ...], np.ndarray]:
    """Marginals of an mbi model over many small cliques, by variable elimination in numpy.

    mbi's ``model.project`` does the same elimination with eager JAX operations, which compile
    once per new shape: in AIM's first rounds that is most of the time (about a minute per round
    on Adult). The model is post-processing of DP measurements, so how its marginals are computed
    is a matter of speed only. Returns flat count vectors (C order, clique's attribute order).
    """
    sizes = dict(model.domain.config)
    factors = [(tuple(cl), np.asarray(f.values, dtype=np.float64)) for cl, f in model.potentials.arrays.items()]
    total = float(model.total)
    return {tuple(q): _eliminate(factors, tuple(q), sizes, total) for q in cliques}


def _expand(attrs: tuple[str, ...], values: np.ndarray, target: tuple[str, ...], sizes: dict[str, int]) -> np.ndarray:
    """Broadcast a factor over ``attrs`` to the axes of ``target`` (a superset)."""
    order = sorted(range(len(attrs)), key=lambda i: target.index(attrs[i]))
    moved = np.transpose(values, order)
    shape = [sizes[a] if a in attrs else 1 for a in target]
    return moved.reshape(shape)


def _eliminate(factors: list[tuple[tuple[str, ...], np.ndarray]], query: tuple[str, ...],
               sizes: dict[str, int], total: float) -> np.ndarray:
    from scipy.special import logsumexp

    pool = list(factors)
    variables = {a for attrs, _ in pool for a in attrs}
    todo = variables - set(query)
    while todo:
        # greedy: eliminate the variable whose merged factor is smallest
        def cost(z: str) -> int:
            merged = {a for attrs, _ in pool if z in attrs for a in attrs}  # noqa: B023 - used in this iteration only
            return int(np.prod([sizes[a] for a in merged]))

        z = min(sorted(todo), key=cost)
        todo.discard(z)
        involved = [f for f in pool if z in f[0]]
        pool = [f for f in pool if z not in f[0]]
        merged = tuple(sorted({a for attrs, _ in involved for a in attrs}))
        acc = sum(_expand(attrs, vals, merged, sizes) for attrs, vals in involved)
        acc = np.broadcast_to(acc, [sizes[a] for a in merged])
        pool.append((tuple(a for a in merged if a != z), logsumexp(acc, axis=merged.index(z))))
    log_joint = np.zeros([sizes[a] for a in query])
    for attrs, vals in pool:
        log_joint = log_joint + _expand(attrs, vals, query, sizes)
    log_joint = log_joint - logsumexp(log_joint)
    return (np.exp(log_joint) * total).ravel()
