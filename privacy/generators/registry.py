"""The one place that maps generator names to classes and data kinds (CLI, policies, tests).

Generators of every kind are named here as ``"module:Class"`` and imported on first use: importing
torch or smartnoise is slow, and commands that fit nothing import no generator
(``privacy.generators.tabular.registry`` holds the tabular ones as classes). ``kind_of`` says which
data kind a generator synthesizes; the workflow refuses a generator whose kind differs from the
source's schema before anything is charged.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from privacy.errors import InputError
from privacy.schema import Schema
from privacy.spend import PrivacySpend

#: tabular generators: name -> "module:Class"
TABULAR: dict[str, str] = {
    "aim": "privacy.generators.tabular.aim:AIMGenerator",
    "dpctgan": "privacy.generators.tabular.deep.dpctgan:DPCTGANGenerator",
    "dpdiffusion": "privacy.generators.tabular.deep.diffusion:DPDiffusionGenerator",
    "mst": "privacy.generators.tabular.mst:MSTGenerator",
    "patectgan": "privacy.generators.tabular.deep.patectgan:PATECTGANGenerator",
}

#: tabular generators trained by gradient descent
DEEP_TABULAR = ("dpctgan", "dpdiffusion", "patectgan")

#: sequential generators: name -> "module:Class"
SEQUENTIAL: dict[str, str] = {
    "dpmarkov": "privacy.generators.sequential.dpmarkov:DPMarkovGenerator",
    "dpar": "privacy.generators.sequential.dpar:DPARGenerator",
}

#: graph generators: name -> "module:Class"
GRAPH: dict[str, str] = {
    "dpdegree": "privacy.generators.graph.dpdegree:DPDegreeGenerator",
    "dpdk2": "privacy.generators.graph.dpdk2:DPDK2Generator",
    "privgraph": "privacy.generators.graph.privgraph:PrivGraphGenerator",
}

#: generators trained by gradient descent: they take --epochs, --batch-size, --device, --time-limit
DEEP_GENERATORS = (*DEEP_TABULAR, "dpar")


def generator_names(kind: str | None = None) -> list[str]:
    """The registered names (of one data kind, or all), sorted."""
    names = [n for n in (*TABULAR, *SEQUENTIAL, *GRAPH) if kind is None or kind_of(n) == kind]
    return sorted(names)


def kind_of(name: str) -> str:
    """The data kind a generator synthesizes: "tabular", "sequential" or "graph"."""
    if name in TABULAR:
        return "tabular"
    if name in SEQUENTIAL:
        return "sequential"
    if name in GRAPH:
        return "graph"
    raise InputError(f"unknown generator {name!r} (known: {', '.join(generator_names())})")


def generator_class(name: str) -> type:
    if not isinstance(name, str):
        raise InputError(f"unknown generator {name!r} (known: {', '.join(generator_names())})")
    kind = kind_of(name)
    module, cls = (TABULAR if kind == "tabular" else SEQUENTIAL if kind == "sequential" else GRAPH)[name].split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def get_generator(name: str, **options: Any) -> Any:
    """An instance of the named generator; ``InputError`` for an unknown name or bad options."""
    cls = generator_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        # an unknown or misspelt option: name the generator, not Python's call machinery
        raise InputError(f"generator {name!r}: {exc}") from exc


def check_kind(name: str, schema: Schema) -> None:
    """Refuse a generator that does not synthesize the schema's kind of data."""
    kind = kind_of(name)
    if kind != schema.kind:
        raise InputError(
            f"generator {name!r} synthesizes {kind} data but the source is {schema.kind} "
            f"(use one of: {', '.join(generator_names(schema.kind))})"
        )


@dataclass(frozen=True)
class RegisteredRefitter:
    """Refits a registered generator with a run's exact options and spend (the audits' shadow models).

    Picklable, so that shadow fits can run in worker processes. Shadow fits read holdout rows (or
    entities, edges) only and are never released; they charge no budget (audits run on the steward's
    side, DESIGN 3). ``data`` is a conformed table, ``SequenceData`` or ``GraphData``, as the
    generator's kind takes; for graphs ``n`` is the node count.
    """

    name: str
    options: dict[str, Any]
    epsilon: float
    delta: float

    def fit_sample(self, data: Any, schema: Schema, n: int, seed: int) -> Any:
        """Fit a fresh instance on ``data`` and draw ``n`` rows (entities) with ``seed``."""
        fitted = get_generator(self.name, **self.options).fit(
            data, schema, PrivacySpend(epsilon=self.epsilon, delta=self.delta)
        )
        return fitted.sample(n, seed)
