"""Sampling records from a fitted mbi graphical model, without mbi 1.1's spurious dependence.

mbi 1.1's ``MarkovRandomField.synthetic_data`` (method "round") walks the junction-tree
elimination order and, for each column, turns the conditional distribution given the column's
already-sampled parents into values by *randomized rounding with ranks taken in row order* inside
each parent group: ``u = (rank + U(0,1)) / group_size``, then inverts the conditional CDF. Every
column that shares a parent set therefore comes out monotone in the same within-group rank, so
sibling columns (B and C in a star A-B, A-C) are co-monotone given their parent: a dependence the
model does not contain.

This sampler follows the same elimination order and the same conditional marginals, but inside
each parent group it (1) fixes how many rows take each value by randomized rounding of the
conditional counts and (2) assigns those values to the group's rows in a uniformly random order,
as private-pgm's original sampler and mbi 2.0 do. Siblings are then conditionally independent
given their parents, up to the negligible dependence of drawing without replacement.

``SamplingPlan`` holds only numpy arrays (conditional probability tables), so a fitted generator
that keeps a plan pickles without mbi or JAX objects. All randomness comes from the
``numpy.random.Generator`` the caller passes: same seed, same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # mbi imports JAX: keep it out of the import of the registry
    from mbi import MarkovRandomField


@dataclass(frozen=True)
class _Step:
    """Sample column ``column`` given the already-sampled columns ``parents``."""

    column: int
    parents: tuple[int, ...]
    #: conditional probabilities, shape ``parent sizes + (size of column,)``; rows sum to 1
    table: np.ndarray


@dataclass(frozen=True)
class SamplingPlan:
    """The model reduced to what sampling needs: an order and one conditional table per column."""

    attrs: tuple[str, ...]
    sizes: tuple[int, ...]
    steps: tuple[_Step, ...]

    @classmethod
    def from_model(cls, model: MarkovRandomField) -> "SamplingPlan":
        """Derive the plan as mbi 1.1 does: junction tree, elimination order, parent marginals."""
        from mbi import junction_tree, marginal_oracles

        domain = model.domain
        attrs = tuple(domain.attrs)
        index = {a: i for i, a in enumerate(attrs)}
        cliques = [set(cl) for cl in model.cliques]
        jtree, elimination_order = junction_tree.make_junction_tree(domain, [tuple(c) for c in cliques])
        # marginals over the junction tree's maximal cliques support every (parents + column) set
        potentials = model.potentials.expand(list(jtree.nodes))
        marginals = marginal_oracles.message_passing_stable(potentials)

        order = list(elimination_order)[::-1]
        # columns the model does not touch (no clique) are absent from the order: sample them last
        order += [a for a in attrs if a not in order]
        steps = []
        used: set[str] = set()
        for col in order:
            relevant = [cl for cl in cliques if col in cl]
            parents = tuple(a for a in attrs if a in used and any(a in cl for cl in relevant))
            used.add(col)
            clique = parents + (col,)
            if marginals.supports(clique):
                marg = np.asarray(marginals.project(clique).datavector(flatten=False), dtype=np.float64)
            else:  # a column in no clique: the model says uniform
                marg = np.ones(domain[col], dtype=np.float64)
            steps.append(_Step(index[col], tuple(index[p] for p in parents), _conditional(marg)))
        return cls(attrs=attrs, sizes=tuple(int(domain[a]) for a in attrs), steps=tuple(steps))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """An ``(n, len(attrs))`` int64 array of codes, columns in ``attrs`` order."""
        if n < 0:
            raise ValueError(f"n ({n}) must be >= 0")
        out = np.zeros((n, len(self.attrs)), dtype=np.int64)
        if n == 0:
            return out
        for step in self.steps:
            if not step.parents:
                out[:, step.column] = _round_and_shuffle(step.table, n, rng)
                continue
            parent_sizes = [self.sizes[p] for p in step.parents]
            group = np.ravel_multi_index(tuple(out[:, p] for p in step.parents), parent_sizes)
            flat = step.table.reshape(-1, step.table.shape[-1])
            order = np.argsort(group, kind="stable")
            keys, starts, counts = np.unique(group[order], return_index=True, return_counts=True)
            col = np.empty(n, dtype=np.int64)
            for key, start, count in zip(keys, starts, counts):
                col[order[start : start + count]] = _round_and_shuffle(flat[key], int(count), rng)
            out[:, step.column] = col
        return out


def sample_model(model: MarkovRandomField, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` records (codes, columns in ``model.domain.attrs`` order) from an mbi model."""
    return SamplingPlan.from_model(model).sample(n, rng)


def _conditional(marg: np.ndarray) -> np.ndarray:
    """Normalise the last axis; a parent cell the model gives no mass becomes uniform."""
    marg = np.clip(marg, 0.0, None)
    denom = marg.sum(axis=-1, keepdims=True)
    k = marg.shape[-1]
    return np.where(denom > 0, marg / np.where(denom > 0, denom, 1.0), 1.0 / k)


def randomized_round(probs: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer counts summing to ``total`` whose expectation is ``probs * total``.

    Each value gets the floor of its expected count; the remaining rows go to distinct values
    drawn without replacement with probability proportional to the fractional parts.
    """
    expected = np.asarray(probs, dtype=np.float64) * total
    counts = np.floor(expected).astype(np.int64)
    extra = int(total - counts.sum())
    if extra > 0:
        frac = np.clip(expected - counts, 0.0, None)
        nonzero = int(np.count_nonzero(frac))
        if nonzero >= extra and frac.sum() > 0:
            idx = rng.choice(frac.size, size=extra, replace=False, p=frac / frac.sum())
            counts[idx] += 1
        else:  # floating-point corner: fewer fractional parts than rows left over
            p = probs / probs.sum() if probs.sum() > 0 else np.full(probs.size, 1.0 / probs.size)
            counts += rng.multinomial(extra, p)
    elif extra < 0:  # rounding pushed the floors over total (float error): take them back
        for _ in range(-extra):
            counts[int(np.argmax(counts))] -= 1
    return counts


def _round_and_shuffle(probs: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` values with randomized-rounded counts, in a uniformly random order."""
    counts = randomized_round(probs, total, rng)
    vals = np.repeat(np.arange(probs.size, dtype=np.int64), counts)
    return rng.permutation(vals)
