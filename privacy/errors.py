"""The one exception hierarchy of synthgate.

Every error a user can cause is a ``SynthgateError`` subclass with its own exit code; the CLI turns
it into one line on stderr in one place (``release.cli.main``). The module imports nothing from the
project so that every package (``policies`` included) can raise these errors.
"""

from __future__ import annotations


class SynthgateError(Exception):
    """Root of every error synthgate raises on purpose; exit code 1 is reserved for bugs."""

    exit_code = 1


class InputError(SynthgateError):
    """Bad input or usage: a missing file, a malformed schema, an unknown run."""

    exit_code = 2


class PolicyError(InputError):
    """A policy file that does not validate, or a request the policy does not allow."""


class GateError(SynthgateError):
    """The policy gate failed, or a release or approval was refused."""

    exit_code = 3


class BudgetError(SynthgateError):
    """A charge would pass the privacy budget."""

    exit_code = 4


class IntegrityError(SynthgateError):
    """A signature, hash or stored artefact does not check out."""

    exit_code = 5
