"""The one place that maps generator names to classes (the CLI, policies and tests list them here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.aim import AIMGenerator
from privacy.generators.tabular.base import TabularGenerator
from privacy.generators.tabular.deep.diffusion import DPDiffusionGenerator
from privacy.generators.tabular.deep.dpctgan import DPCTGANGenerator
from privacy.generators.tabular.deep.patectgan import PATECTGANGenerator
from privacy.generators.tabular.mst import MSTGenerator
from privacy.schema import Schema
from privacy.spend import PrivacySpend

GENERATORS: dict[str, type] = {
    "aim": AIMGenerator,
    "dpctgan": DPCTGANGenerator,
    "dpdiffusion": DPDiffusionGenerator,
    "mst": MSTGenerator,
    "patectgan": PATECTGANGenerator,
}

#: generators trained by gradient descent: they take --epochs, --batch-size, --device, --time-limit
DEEP_GENERATORS = ("dpctgan", "dpdiffusion", "patectgan")


def generator_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(GENERATORS)


def get_generator(name: str, **options: Any) -> TabularGenerator:
    """An instance of the named generator; ``InputError`` for an unknown name or bad options."""
    try:
        cls = GENERATORS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown generator {name!r} (known: {', '.join(generator_names())})") from None
    try:
        return cls(**options)
    except TypeError as exc:
        # an unknown or misspelt option: name the generator, not Python's call machinery
        raise InputError(f"generator {name!r}: {exc}") from exc


@dataclass(frozen=True)
class RegisteredRefitter:
    """Refits a registered generator with a run's exact options and spend (the audits' shadow models).

    Picklable, so that shadow fits can run in worker processes. Shadow fits read holdout rows only
    and are never released; they charge no budget (audits run on the steward's side, DESIGN 3).
    """

    name: str
    options: dict[str, Any]
    epsilon: float
    delta: float

    def fit_sample(self, data: pl.DataFrame, schema: Schema, n: int, seed: int) -> pl.DataFrame:
        """Fit a fresh instance on ``data`` and draw ``n`` rows with ``seed``."""
        fitted = get_generator(self.name, **self.options).fit(
            data, schema, PrivacySpend(epsilon=self.epsilon, delta=self.delta)
        )
        return fitted.sample(n, seed)
