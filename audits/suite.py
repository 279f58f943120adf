"""The audit suite: every audit in order, timed, and the audit document the gate and report read."""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from audits.audit_schema import AUDIT_SCHEMA_URI
from audits.context import AuditContext
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema

if TYPE_CHECKING:
    import polars as pl

#: Version of the audit document's layout; bump when a key changes meaning.
DOCUMENT_VERSION = 2


class AuditFunction(Protocol):
    """The signature every ``run_<name>`` audit shares."""

    def __call__(
        self,
        real_train: pl.DataFrame,
        real_holdout: pl.DataFrame,
        synthetic: pl.DataFrame,
        schema: Schema,
        policy: Policy,
        ctx: AuditContext | None = None,
    ) -> AuditResult: ...


def _imported_when_run(module: str, name: str) -> AuditFunction:
    """The audit ``module.name``, imported on its first call: the audits' libraries (sklearn,
    sdmetrics, anonymeter, torch under them) take seconds to import, and the commands that audit
    nothing (``--help``, ``verify``, ``runs``, ...) import none of them."""

    def audit(*args: Any, **kwargs: Any) -> AuditResult:
        run: AuditFunction = getattr(importlib.import_module(module), name)
        return run(*args, **kwargs)

    audit.__name__ = audit.__qualname__ = name
    audit.__module__ = module
    return audit


#: The audits in the order they run: cheap and decisive first, the shadow-model game (minutes of
#: refitting in the thorough profile) after the one-run audit that can already refute a DP claim.
AUDITS: tuple[tuple[str, AuditFunction], ...] = (
    ("membership", _imported_when_run("audits.membership", "run_membership")),
    ("domias", _imported_when_run("audits.domias", "run_domias")),
    ("one_run", _imported_when_run("audits.one_run", "run_one_run")),
    ("shadow_game", _imported_when_run("audits.shadow_game", "run_shadow_game")),
    ("anonymeter", _imported_when_run("audits.anonymeter_risks", "run_anonymeter")),
    ("fidelity", _imported_when_run("audits.fidelity", "run_fidelity")),
    ("utility", _imported_when_run("audits.utility", "run_utility")),
)


def run_audits(
    real_train: pl.DataFrame,
    real_holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[AuditResult]:
    """Run every audit in ``AUDITS`` order; ``progress(name)`` is called before each starts.

    Each result carries its wall-clock ``seconds``; the first result checks that the membership
    profile used is the one the policy requires. Usage errors (``InputError``) propagate; a library
    failure inside an audit becomes a NaN metric that fails the gate.
    """
    ctx = ctx or AuditContext()
    if ctx.profile not in policy.audit.membership:
        raise InputError(f"unknown membership profile {ctx.profile!r} (known: fast, thorough)")
    return run_in_order(AUDITS, real_train, real_holdout, synthetic, schema, policy, ctx, progress=progress)


def run_in_order(
    audits: Sequence[tuple[str, Any]], real_train: Any, real_holdout: Any, synthetic: Any, schema: Schema,
    policy: Policy, ctx: AuditContext, *, progress: Callable[[str], None] | None = None,
) -> list[AuditResult]:
    """The profile check, then every ``(name, audit)`` in order, each timed; shared by the suites of
    every data kind (tables here, sequences in ``audits.sequential.suite``)."""
    results = [profile_check(policy, ctx)]
    for name, audit in audits:
        if progress is not None:
            progress(name)
        started = time.perf_counter()
        result = audit(real_train, real_holdout, synthetic, schema, policy, ctx)
        results.append(dataclasses.replace(result, seconds=time.perf_counter() - started))
    return results


_PROFILE_RANK = {"fast": 0, "thorough": 1}


def profile_check(policy: Policy, ctx: AuditContext) -> AuditResult:
    """Gate check that the membership attacks ran with at least the profile the policy requires."""
    used, required = _PROFILE_RANK[ctx.profile], _PROFILE_RANK[policy.audit.membership_required]
    metric = Metric(
        name="membership_profile",
        value=float(used),
        goal="maximize",
        threshold=float(required),
        meaning=f"The membership attacks ran with the {ctx.profile} profile; the policy requires "
                f"{policy.audit.membership_required} or stronger (0 = fast, 1 = thorough).",
        details={"used": ctx.profile, "required": policy.audit.membership_required,
                 "settings": policy.audit.membership[ctx.profile].model_dump()},  # type: ignore[index]
    )
    return AuditResult(audit="protocol", metrics=(metric,))


def gate_checks(results: Sequence[AuditResult]) -> list[dict[str, Any]]:
    """One JSON-able row per metric with role "gate": what it measured, what it was held to, the outcome."""
    checks = []
    for result in results:
        for metric in result.metrics:
            if metric.role != "gate":
                continue
            d = metric.to_dict()
            checks.append(
                {
                    "audit": result.audit,
                    "name": d["name"],
                    "value": d["value"],
                    "interval": d["interval"],
                    "gated_on": d["gated_on"],
                    "gated_value": d["gated_value"],
                    "threshold": d["threshold"],
                    "goal": d["goal"],
                    "passed": bool(metric.passed),
                    "kind": metric.kind,
                    "flags": d["flags"],
                    "meaning": d["meaning"],
                }
            )
    return checks


def gate_passed(results: Sequence[AuditResult]) -> bool:
    """True iff there is at least one gate metric and every gate metric passed.

    An empty set of checks is refused rather than trivially passed.
    """
    checks = gate_checks(results)
    return bool(checks) and all(c["passed"] for c in checks)


def audit_document(results: Sequence[AuditResult], context: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able audit document: context, every result, and the gate's decision with its checks.

    ``"schema"`` names the JSON Schema it follows (``audits/schemas/audit-v1.schema.json``) once the
    release code has replaced ``"gate"`` with ``release.gate.evaluate(results).to_dict()``.
    """
    return {
        "synthgate_audit": DOCUMENT_VERSION,
        "schema": AUDIT_SCHEMA_URI,
        "context": dict(context),
        "results": [r.to_dict() for r in results],
        "gate": {"passed": gate_passed(results), "checks": gate_checks(results)},
    }
