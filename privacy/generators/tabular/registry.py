"""The one place that maps generator names to classes (the CLI, policies and tests list them here)."""

from __future__ import annotations

from typing import Any

from privacy.errors import InputError
from privacy.generators.tabular.aim import AIMGenerator
from privacy.generators.tabular.base import TabularGenerator
from privacy.generators.tabular.deep.diffusion import DPDiffusionGenerator
from privacy.generators.tabular.deep.dpctgan import DPCTGANGenerator
from privacy.generators.tabular.deep.patectgan import PATECTGANGenerator
from privacy.generators.tabular.mst import MSTGenerator

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

