"""The tabular generators as classes, by name (importing this module imports every one of them).

Their names live in ``privacy.generators.registry``, which imports none until one is used.
"""

from __future__ import annotations

from typing import Any

from privacy.errors import InputError
from privacy.generators.registry import DEEP_TABULAR, TABULAR, generator_class
from privacy.generators.tabular.base import TabularGenerator

GENERATORS: dict[str, type] = {name: generator_class(name) for name in TABULAR}

#: generators trained by gradient descent: they take --epochs, --batch-size, --device, --time-limit
DEEP_GENERATORS = DEEP_TABULAR


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

