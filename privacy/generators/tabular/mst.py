"""MST (McKenna, Miklau & Sheldon 2021) through smartnoise-synth, with its DP leaks closed.

We call smartnoise's ``MSTSynthesizer.fit`` with our schema-fixed transformer (see
``marginal.prepare``) and override the steps of ``MSTSynthesizer`` that break DP:

- ``MST``: smartnoise estimates the model with ``known_total = len(data)``. Under add/remove DP
  (the relation its sensitivity-1 measurements assume) the row count is private, so we pass a
  *noisy* total: the minimum-variance combination of the sums of the noisy 1-way and 2-way
  measurements (post-processing). ``estimated_rows`` is that total, never ``len(data)``.
- ``select``: smartnoise's selection model also uses ``known_total = len(data)``; the quality
  score ``||x - xhat||_1`` has sensitivity 1 only if ``xhat`` depends on the data through noisy
  measurements alone, so it gets the noisy total too. Its exponential mechanism draws from
  ``np.random``; ours from the OS-entropy generator of ``marginal.mechanism_randomness``.
- domain compression: smartnoise's port to mbi 1.1 re-expresses a compressed 1-way measurement
  with its merged cell scaled down but keeps the identity query, which biases the model (a utility
  bug, not a privacy one); we give the measurement the matching scaled query, as private-pgm does.
  Decompression at sampling time uses the sample seed (smartnoise uses ``np.random``).
- with a single column smartnoise divides by zero in ``select``; we then measure the one 1-way
  marginal with the whole budget.

Budget (zCDP): rho/3 for the 1-way marginals, rho/3 for the tree selection (exponential
mechanism, eps^2/8 each), rho/3 for the 2-way marginals; ``card.parameters["rho_used"]`` adds
up what was actually spent. The fitted ``MarginalModel`` pickles with the standard library.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from privacy.generators.tabular.base import Progress
from privacy.generators.tabular.marginal import (
    MarginalModel,
    make_card,
    mechanism_randomness,
    noisy_total,
    prepare,
    report,
    run_smartnoise_fit,
    zcdp_rho,
)
from privacy.generators.tabular.sampler import SamplingPlan
from privacy.schema import Schema
from privacy.spend import PrivacySpend

#: mirror-descent iterations for the final model (smartnoise's value) and the selection model
ESTIMATION_ITERS = 5000
SELECTION_ITERS = 1000


@dataclass(frozen=True)
class ScaledIdentity:
    """A linear query: the marginal's data vector times fixed public weights (hashable for JAX)."""

    weights: tuple[float, ...]

    def __call__(self, factor: Any) -> Any:
        import jax.numpy as jnp

        return factor.datavector() * jnp.asarray(self.weights)


def compress_measurements(data: Any, measurements: list[Any]) -> tuple[Any, list[Any], list[np.ndarray | None]]:
    """Merge the cells of each 1-way marginal whose noisy count is under 3 sigma (private-pgm's rule).

    Depends on the data only through the noisy measurements. Returns the compressed dataset, the
    re-expressed measurements and, per column, the map original code -> compressed code (None
    where nothing was merged).
    """
    from mbi import LinearMeasurement

    mappings: dict[str, np.ndarray] = {}
    out = []
    for m in measurements:
        (col,) = m.clique
        y = np.asarray(m.noisy_measurement, dtype=np.float64)
        keep = y >= 3 * m.stddev
        kept = int(keep.sum())
        if kept < 2 or kept == y.size:
            out.append(m)
            continue
        mapping = np.full(y.size, kept, dtype=np.int64)
        mapping[keep] = np.arange(kept)
        mappings[col] = mapping
        y2 = np.append(y[keep], y[~keep].sum())
        # the merged cell's noise has sd sigma*sqrt(#merged); scaling both sides keeps the loss's
        # per-cell weights right (private-pgm uses 1/sqrt(#merged + 1), kept here)
        weights = np.ones(y2.size)
        weights[-1] = 1.0 / np.sqrt(y.size - kept + 1.0)
        out.append(LinearMeasurement(y2 * weights, (col,), m.stddev, query=ScaledIdentity(tuple(weights.tolist()))))
    compressed = data.compress(mappings) if mappings else data
    per_column = [mappings.get(a) for a in data.domain.attrs]
    return compressed, out, per_column


@functools.cache
def smartnoise_class() -> type:
    """Our subclass of smartnoise's ``MSTSynthesizer`` (built on first use: importing smartnoise is slow)."""
    from mbi import estimation, marginal_oracles
    from snsynth.mst.mst import MSTSynthesizer

    class PrivateMST(MSTSynthesizer):
        """smartnoise's MST with the noisy total, OS-entropy selection and fixed compression."""

        def __init__(self, *, epsilon: float, delta: float, rho: float, prng: np.random.Generator,
                     progress: Progress | None) -> None:
            super().__init__(epsilon=epsilon, delta=delta)
            self._rho = rho
            self._prng = prng
            self._progress = progress
            self.rho_used = 0.0
            self.edges: list[tuple[str, str]] = []
            self.mappings: list[np.ndarray | None] = []

        def _spent(self, measurements: list[Any]) -> None:
            self.rho_used += sum(0.5 / float(m.stddev) ** 2 for m in measurements)

        def MST(self, data: Any, epsilon: float, delta: float) -> None:  # noqa: N802 (smartnoise's name)
            rho = self._rho
            attrs = list(data.domain.attrs)
            if len(attrs) == 1:
                sigma = np.sqrt(1 / (2 * rho))
                cliques: list[tuple[str, ...]] = [(attrs[0],)]
            else:
                sigma = np.sqrt(3 / (2 * rho))
                cliques = [(col,) for col in attrs]
            report(self._progress, "MST: measuring 1-way marginals", 0.0)
            log1 = self.measure(data, cliques, sigma)
            self._spent(log1)
            total = noisy_total(log1)
            data, log1c, self.mappings = compress_measurements(data, log1)
            log2: list[Any] = []
            if len(attrs) > 1:
                report(self._progress, "MST: selecting the spanning tree", 0.2)
                edges = self.select(data, rho / 3.0, log1c, total)
                report(self._progress, f"MST: measuring {len(edges)} 2-way marginals", 0.5)
                log2 = self.measure(data, edges, sigma)
                self._spent(log2)
                self.edges = [tuple(e) for e in edges]
                total = noisy_total(log1 + log2)
            report(self._progress, "MST: estimating the graphical model", 0.6)
            self.synthesizer = estimation.mirror_descent(
                data.domain, log1c + log2, known_total=total, iters=ESTIMATION_ITERS,
                marginal_oracle=marginal_oracles.message_passing_stable,
            )

        def select(self, data: Any, rho: float, measurement_log: list[Any], total: float, cliques: Any = ()) -> list:
            import networkx as nx
            from disjoint_set import DisjointSet

            est = estimation.mirror_descent(
                data.domain, measurement_log, known_total=total, iters=SELECTION_ITERS,
                marginal_oracle=marginal_oracles.message_passing_stable,
            )
            # est has 1-way cliques only, so its 2-way marginals are outer products (exact, and
            # much faster than smartnoise's variable elimination per pair)
            one = {a: np.asarray(est.project((a,)).datavector(), dtype=np.float64) for a in data.domain.attrs}
            scale = float(est.total)
            weights = {}
            candidates = list(itertools.combinations(data.domain.attrs, 2))
            for a, b in candidates:
                xhat = np.outer(one[a], one[b]).ravel() / scale
                x = np.asarray(data.project([a, b]).datavector(), dtype=np.float64)
                weights[a, b] = np.linalg.norm(x - xhat, 1)

            tree = nx.Graph()
            tree.add_nodes_from(data.domain.attrs)
            ds: Any = DisjointSet()
            r = len(list(nx.connected_components(tree)))
            epsilon = np.sqrt(8 * rho / (r - 1))
            for _ in range(r - 1):
                candidates = [e for e in candidates if not ds.connected(*e)]
                wgts = np.array([weights[e] for e in candidates])
                idx = self.exponential_mechanism(wgts, epsilon, sensitivity=1.0, prng=self._prng)
                e = candidates[idx]
                tree.add_edge(*e)
                ds.union(*e)
                self.rho_used += epsilon**2 / 8
            return list(tree.edges)

    return PrivateMST


class MSTGenerator:
    """The ``mst`` generator: a maximum-spanning-tree graphical model over public-domain marginals."""

    name = "mst"

    def __init__(self) -> None:
        pass

    def fit(
        self, data: pl.DataFrame, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None,
        rho: float | None = None,
    ) -> MarginalModel:
        """Fit on the conformed training split, spending exactly ``spend`` (as zCDP rho).

        ``rho`` (keyword): spend exactly this zCDP rho instead of converting ``spend``; for a
        generator that runs MST as one part of its own zCDP budget (``spend`` is then what the
        card reports, the caller's business to make consistent).
        """
        if rho is None:
            rho = zcdp_rho(spend)
        elif not (isinstance(rho, float) and rho > 0 and rho < float("inf")):
            raise ValueError(f"rho ({rho}) must be a finite float > 0")
        prepared = prepare(data, schema)
        with mechanism_randomness() as prng:
            synth = smartnoise_class()(
                epsilon=float(spend.epsilon), delta=float(spend.delta), rho=rho, prng=prng,
                progress=progress,
            )
            run_smartnoise_fit(synth, prepared)
        model = synth.synthesizer
        names = schema.names
        col_name = {f"col{i}": n for i, n in enumerate(names)}
        plan = SamplingPlan.from_model(model)
        if list(plan.attrs) != [f"col{i}" for i in range(len(names))]:
            raise RuntimeError("smartnoise changed its column naming; refusing to guess the order")
        card = make_card(
            name=self.name,
            parameters={
                "selected_edges": len(synth.edges),
                "edges": [[col_name[a], col_name[b]] for a, b in synth.edges],
                "compressed_columns": [n for n, m in zip(names, synth.mappings) if m is not None],
                "estimation_iters": ESTIMATION_ITERS,
                "rho": rho,
                "rho_used": synth.rho_used,
            },
            spend=spend,
            rho=rho,
        )
        report(progress, "MST: done", 1.0)
        return MarginalModel(
            card=card,
            plan=plan,
            discretizer=prepared.discretizer,
            mappings=tuple(synth.mappings),
            estimated_rows=int(round(float(model.total))),
        )
