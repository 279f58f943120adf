"""AIM (McKenna, Mullins, Sheldon & Miklau 2022) through smartnoise-synth, bounded in time and rounds.

We call smartnoise's ``AIMSynthesizer.fit`` with our schema-fixed transformer (see
``marginal.prepare``; it builds the workload from public cardinalities) and replace its ``AIM``
loop, which follows the paper (Algorithm 1) as smartnoise does, with these changes:

- a round cap and a time limit: when round ``max_rounds`` starts, or a round starts after
  ``time_limit_s`` has elapsed, that round is the last and spends *all* the remaining rho in one
  measurement (the branch AIM takes anyway when the budget is nearly gone). So the zCDP spend is
  exactly rho whichever way the loop ends; ``card.parameters`` records ``rho_used``,
  ``rounds_run``, ``stopped_early`` and ``stop_reason``. The limit is soft: the last round and the
  estimation after it still run. Which round is last must depend on the data only through DP
  outputs (fully adaptive composition), so the rounds read the data only through answers computed
  before the clock starts. Wall-clock time is still not a DP quantity (machine load, float timing);
  ``max_rounds`` is the bound with a clean argument, ``time_limit_s`` the pragmatic one.
- the initial noise is calibrated for the paper's T = 16 * columns rounds whatever the cap
  (smartnoise's ``rounds`` sets T itself, and with T < columns its 1-way measurements alone
  overspend rho, after which the loop takes the square root of a negative remainder).
- every column's 1-way marginal is measured first (smartnoise measures only those in the
  workload's downward closure; a column in no workload marginal would be left unmeasured).
- the model-size filter uses mbi's junction-tree size, as private-pgm's AIM does (smartnoise sums
  clique sizes, which ignores triangulation fill-in and can let the model outgrow
  ``max_model_size``); each round's estimation starts from the previous model's potentials, and
  the model's marginals for the selection step are computed in numpy (``marginal.project_many``)
  instead of mbi's eager-JAX variable elimination, which recompiles per shape (most of a round's
  time on Adult). Both are post-processing: they change speed and utility, not privacy.
- the exponential mechanism's randomness is the OS-entropy generator of
  ``marginal.mechanism_randomness`` (smartnoise: numpy's global generator); prints are silenced
  and each round is reported through ``progress``.

The estimate never uses ``len(data)``: mbi estimates the total from the noisy measurements, and
``estimated_rows`` is that total. The fitted ``MarginalModel`` pickles with the standard library.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.base import Progress
from privacy.generators.tabular.marginal import (
    MarginalModel,
    make_card,
    mechanism_randomness,
    prepare,
    project_many,
    report,
    run_smartnoise_fit,
    zcdp_rho,
)
from privacy.generators.tabular.sampler import SamplingPlan
from privacy.schema import Schema
from privacy.spend import PrivacySpend

ESTIMATION_ITERS = 1000


@dataclass(frozen=True, kw_only=True)
class AIMConfig:
    """AIM's options. ``max_rounds`` and ``time_limit_s`` bound the loop (None: no bound)."""

    max_rounds: int | None = None
    time_limit_s: float | None = None
    #: megabytes the junction tree may reach once all rho is spent (the paper's default 80)
    max_model_size: float = 80
    #: workload: all marginals over this many columns ...
    degree: int = 2
    #: ... with at most this many cells
    max_cells: int = 10000

    def __post_init__(self) -> None:
        if self.max_rounds is not None and (not _is_int(self.max_rounds) or self.max_rounds < 1):
            raise InputError(f"max_rounds ({self.max_rounds}) must be an integer >= 1")
        if self.time_limit_s is not None and (
            not _is_number(self.time_limit_s) or not math.isfinite(self.time_limit_s) or self.time_limit_s <= 0
        ):
            raise InputError(f"time_limit_s ({self.time_limit_s}) must be > 0")
        if not _is_number(self.max_model_size) or not math.isfinite(self.max_model_size) or self.max_model_size <= 0:
            raise InputError(f"max_model_size ({self.max_model_size}) must be > 0")
        if not _is_int(self.degree) or self.degree < 1:
            raise InputError(f"degree ({self.degree}) must be an integer >= 1")
        if not _is_int(self.max_cells) or self.max_cells < 1:
            raise InputError(f"max_cells ({self.max_cells}) must be an integer >= 1")


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@dataclass
class _RunLog:
    """What the loop did, for the card."""

    rho_used: float = 0.0
    rounds_run: int = 0
    stop_reason: str = ""
    budgeted_rounds: int = 0
    workload_size: int = 0
    measured: list[tuple[str, ...]] | None = None


@functools.cache
def smartnoise_class() -> type:
    """Our subclass of smartnoise's ``AIMSynthesizer`` (built on first use: importing smartnoise is slow)."""
    from mbi import estimation, junction_tree, marginal_oracles
    from snsynth.aim import aim as sn_aim
    from snsynth.aim.aim import AIMSynthesizer, compile_workload, downward_closure
    from snsynth.utils import gaussian_noise

    def exponential_mechanism(*args: Any, **kwargs: Any) -> Any:
        # looked up at call time, so that a test can watch smartnoise's mechanism being called
        return sn_aim.exponential_mechanism(*args, **kwargs)

    class BoundedAIM(AIMSynthesizer):
        """smartnoise's AIM with a round cap, a time limit and exact rho accounting."""

        def __init__(self, *, config: AIMConfig, epsilon: float, delta: float, rho: float,
                     progress: Progress | None, names: list[str]) -> None:
            super().__init__(epsilon=epsilon, delta=delta, max_model_size=config.max_model_size,
                             degree=config.degree, max_cells=config.max_cells)
            self._config = config
            self._rho = rho
            self._progress = progress
            self._names = {f"col{i}": n for i, n in enumerate(names)}
            self.log = _RunLog()

        def _label(self, cl: tuple[str, ...]) -> str:
            return " x ".join(self._names.get(a, a) for a in cl)

        def _measure(self, x: np.ndarray, cl: tuple[str, ...], sigma: float) -> Any:
            from mbi import LinearMeasurement

            y = x + np.asarray(gaussian_noise(float(sigma), x.size))
            return LinearMeasurement(y, cl, float(sigma))

        def _filter(self, candidates: dict, model: Any, size_limit: float) -> dict:
            free = set(downward_closure(model.cliques))
            out = {}
            for cl, wgt in candidates.items():
                if cl in free or junction_tree.hypothetical_model_size(model.domain, model.cliques + [cl]) <= size_limit:
                    out[cl] = wgt
            return out

        def _select(self, candidates: dict, answers: dict, estimates: dict, domain: Any,
                    epsilon: float, sigma: float) -> tuple[str, ...]:
            """smartnoise's ``_worst_approximated`` with the model's marginals computed in numpy."""
            errors = {}
            for cl, wgt in candidates.items():
                bias = np.sqrt(2 / np.pi) * sigma * domain.size(cl)
                errors[cl] = wgt * (np.linalg.norm(answers[cl] - estimates[cl], 1) - bias)
            # the quality of cl changes by at most its weight when one record is added or removed
            sensitivity = max(abs(w) for w in candidates.values())
            # draws from snsynth.utils.prng, which mechanism_randomness points at OS entropy
            return exponential_mechanism(errors, epsilon, sensitivity)

        def AIM(self, data: Any, workload: list) -> None:  # noqa: N802 (smartnoise's name)
            cfg, rho, log = self._config, self._rho, self.log
            candidates = compile_workload(workload)
            if not workload:
                raise InputError(
                    f"AIM has an empty workload: no marginal over {cfg.degree} columns has at most "
                    f"{cfg.max_cells} cells (lower degree or raise max_cells)"
                )
            log.workload_size = len(workload)
            oneway = [(a,) for a in data.domain.attrs]
            answers = {cl: np.asarray(data.project(cl).datavector(), dtype=np.float64)
                       for cl in list(candidates) + oneway}
            # The clock starts after the last read of the raw data: from here on the data is
            # touched only through these precomputed answers, so when the time limit fires
            # depends on the DP outputs (and the machine), not on, say, the row count.
            started = time.monotonic()
            rounds = 16 * len(data.domain)
            log.budgeted_rounds = rounds
            sigma = np.sqrt(rounds / (2 * 0.9 * rho))
            epsilon = np.sqrt(8 * 0.1 * rho / rounds)

            measurements = [self._measure(answers[cl], cl, sigma) for cl in oneway]
            rho_used = len(oneway) * 0.5 / sigma**2
            report(self._progress, "AIM: measured the 1-way marginals", rho_used / rho)
            model = estimation.mirror_descent(data.domain, measurements, iters=ESTIMATION_ITERS,
                                              marginal_oracle=marginal_oracles.message_passing_stable)
            measured = []
            t = 0
            terminate = False
            while not terminate:
                t += 1
                forced = ""
                if cfg.max_rounds is not None and t >= cfg.max_rounds:
                    forced = "max_rounds"
                elif cfg.time_limit_s is not None and time.monotonic() - started >= cfg.time_limit_s:
                    forced = "time_limit"
                exhausted = rho - rho_used < 2 * (0.5 / sigma**2 + 1.0 / 8 * epsilon**2)
                if exhausted or forced:
                    # the last round: all that is left, split as AIM splits every round
                    remaining = rho - rho_used
                    sigma = np.sqrt(1 / (2 * 0.9 * remaining))
                    epsilon = np.sqrt(8 * 0.1 * remaining)
                    terminate = True
                    log.stop_reason = "budget" if exhausted else forced
                rho_used += 1.0 / 8 * epsilon**2 + 0.5 / sigma**2
                size_limit = cfg.max_model_size * rho_used / rho

                small = self._filter(candidates, model, size_limit)
                estimates = project_many(model, list(small))
                cl = self._select(small, answers, estimates, model.domain, epsilon, sigma)
                n = data.domain.size(cl)
                measurements.append(self._measure(answers[cl], cl, sigma))
                z = estimates[cl]
                model = estimation.mirror_descent(data.domain, measurements, iters=ESTIMATION_ITERS,
                                                  potentials=model.potentials,
                                                  marginal_oracle=marginal_oracles.message_passing_stable)
                w = project_many(model, [cl])[cl]
                measured.append(cl)
                report(self._progress, f"AIM round {t}: measured {self._label(cl)} ({n} cells), "
                       f"rho used {rho_used / rho:.1%}", rho_used / rho)
                if not terminate and np.linalg.norm(w - z, 1) <= sigma * np.sqrt(2 / np.pi) * n:
                    # the model already knew this marginal: spend more per round from now on
                    sigma /= 2
                    epsilon *= 2
            log.rho_used = float(rho_used)
            log.rounds_run = t
            log.measured = measured
            self.synthesizer = model

    return BoundedAIM


class AIMGenerator:
    """The ``aim`` generator: adaptive, iterative selection and measurement of workload marginals."""

    name = "aim"

    def __init__(
        self,
        max_rounds: int | None = None,
        time_limit_s: float | None = None,
        max_model_size: float = 80,
        degree: int = 2,
        max_cells: int = 10000,
    ) -> None:
        self.config = AIMConfig(
            max_rounds=max_rounds,
            time_limit_s=time_limit_s,
            max_model_size=max_model_size,
            degree=degree,
            max_cells=max_cells,
        )

    def fit(
        self, data: pl.DataFrame, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None
    ) -> MarginalModel:
        """Fit on the conformed training split, spending exactly ``spend`` (as zCDP rho)."""
        if self.config.degree > len(schema.columns):
            raise InputError(f"degree ({self.config.degree}) must be <= the number of columns ({len(schema.columns)})")
        rho = zcdp_rho(spend)
        prepared = prepare(data, schema)
        with mechanism_randomness():
            synth = smartnoise_class()(
                config=self.config, epsilon=float(spend.epsilon), delta=float(spend.delta), rho=rho,
                progress=progress, names=schema.names,
            )
            run_smartnoise_fit(synth, prepared)
        model = synth.synthesizer
        log: _RunLog = synth.log
        names = schema.names
        plan = SamplingPlan.from_model(model)
        if list(plan.attrs) != [f"col{i}" for i in range(len(names))]:
            raise RuntimeError("smartnoise changed its column naming; refusing to guess the order")
        stopped_early = log.stop_reason in ("max_rounds", "time_limit")
        card = make_card(
            name=self.name,
            parameters={
                **asdict(self.config),
                "budgeted_rounds": log.budgeted_rounds,
                "rounds_run": log.rounds_run,
                "stopped_early": stopped_early,
                "stop_reason": {
                    "max_rounds": f"max_rounds ({self.config.max_rounds}) reached; the last round spent the rest of rho",
                    "time_limit": f"time_limit_s ({self.config.time_limit_s}) elapsed; the last round spent the rest of rho",
                    "budget": "budget exhausted (AIM's own stopping rule)",
                }[log.stop_reason],
                "workload_size": log.workload_size,
                "measured_marginals": [[names[int(a[3:])] for a in cl] for cl in (log.measured or [])],
                "rho": rho,
                "rho_used": log.rho_used,
            },
            spend=spend,
            rho=rho,
            notes=("time_limit_s is soft: the final round and its estimation run after the limit",),
        )
        report(progress, "AIM: done", 1.0)
        return MarginalModel(
            card=card,
            plan=plan,
            discretizer=prepared.discretizer,
            mappings=tuple(None for _ in names),
            estimated_rows=int(round(float(model.total))),
        )
