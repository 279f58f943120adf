"""DP-SGD plumbing shared by synthgate's neural generators (opacus 1.6).

What lives here, and why:

- ``resolve_device``: ``auto`` picks CUDA when torch sees a GPU, else the CPU; ``cuda`` without a
  GPU is an input error, never a silent fallback.
- ``entropy_generator``: DP-SGD's Gaussian noise and its Poisson sampling draw from a torch
  generator seeded from OS entropy (``secrets``), never from a user seed or torch's global
  generator (a published seed would make the noise a known function of the data).
- ``Plan``: everything about the training fixed *before* the data is read by DP-SGD: the noisy
  row count (bought with budget), the Poisson sampling rate ``batch_size / noisy count``, the
  number of steps ``ceil(epochs / rate)``, the Renyi order ``alpha0`` of the guarantee (from public
  inputs only: ``accounting.fixed_order``) and the noise multiplier calibrated so that the
  pre-processing measurements plus all planned steps have RDP at ``alpha0`` at most the budget
  ``B(alpha0)`` whose conversion is the requested epsilon. Because rate and steps depend on the
  noisy count, the guarantee must hold at one order for every count (adaptive RDP composition is
  per order; ``accounting``'s docstring): the card's epsilon is ``order_epsilon(B, alpha0)``.
  opacus' ``make_private_with_epsilon`` calibrates with an order optimised per plan and cannot put our
  pre-processing measurements in its accountant and sets the sampling rate from ``len(data)`` (a
  data-dependent quantity bought with no budget); we build the same parts it builds
  (``GradSampleModule`` or its fast-gradient-clipping twin, ``DPOptimizer``) with our rate.
- ``PrivateModule``: one module trained by DP-SGD with per-sample clipping. ``ghost`` mode uses
  opacus' ghost clipping (per-sample gradient *norms* without materialising per-sample gradients;
  it needs every trainable layer to be a type opacus supports, which our MLPs are); ``hooks`` and
  ``functorch`` materialise per-sample gradients (opacus' hook samplers, or functorch's vmap).
- ``poisson_indices``: a Poisson sample of rows (each row independently with the plan's rate),
  the sampling the RDP analysis assumes; an empty sample is a valid step.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from privacy.errors import InputError
from privacy.generators.tabular.base import GeneratorCard
from privacy.generators.tabular.deep.accounting import (
    ACCOUNTANT,
    REFERENCE_BATCHES,
    History,
    calibrate_measurement,
    calibrate_sgd_at_order,
    fixed_order,
    gaussian_entry,
    order_epsilon,
    rdp_at,
    rdp_budget,
    rdp_epsilon,
)

GradMode = Literal["ghost", "hooks", "functorch"]
GRAD_MODES = ("ghost", "hooks", "functorch")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(option: str) -> Any:
    """A ``torch.device`` for ``auto`` / ``cpu`` / ``cuda``."""
    import torch

    if option not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, not {option!r}")
    if option == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if option == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA GPU on this machine (use auto or cpu)")
    return torch.device(option)


def entropy_generator(device: Any) -> Any:
    """A torch generator on ``device`` seeded from OS entropy (for DP noise and sampling only)."""
    import torch

    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


def check_common_options(*, epochs: int, batch_size: int, max_grad_norm: float, device: str,
                         grad_sample_mode: str, time_limit_s: float | None, preprocess_share: float) -> None:
    """``InputError`` with one clear line for a bad training option."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 10_000:
        raise InputError(f"epochs ({epochs}) must be an integer in [1, 10000]")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 2 <= batch_size <= 1_000_000:
        raise InputError(f"batch size ({batch_size}) must be an integer in [2, 1000000]")
    if not (isinstance(max_grad_norm, (int, float)) and math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise InputError(f"max_grad_norm ({max_grad_norm}) must be a finite number > 0")
    # resolved here, when the generator is built: synthesize builds it before charging the budget,
    # so asking for a GPU this machine lacks is refused without spending anything
    resolve_device(device)
    if grad_sample_mode not in GRAD_MODES:
        raise InputError(f"grad_sample_mode must be one of {', '.join(GRAD_MODES)}, not {grad_sample_mode!r}")
    if time_limit_s is not None and not (
        isinstance(time_limit_s, (int, float)) and math.isfinite(time_limit_s) and time_limit_s > 0
    ):
        raise InputError(f"time limit ({time_limit_s}) must be a number of seconds > 0")
    if not (isinstance(preprocess_share, (int, float)) and 0 < preprocess_share < 0.5):
        raise InputError(f"preprocess_share ({preprocess_share}) must be in (0, 0.5)")


@dataclass(frozen=True)
class Measurement:
    """A Gaussian measurement made before training, with the noise actually drawn."""

    values: np.ndarray
    std: float
    l2_sensitivity: float

    @property
    def entry(self) -> tuple[float, float, int]:
        return gaussian_entry(self.std, self.l2_sensitivity)


def gaussian_measurement(true_values: np.ndarray, l2_sensitivity: float, epsilon: float, delta: float) -> Measurement:
    """Release ``true_values`` + Gaussian noise spending ``epsilon`` alone (RDP), OS-entropy noise."""
    sigma = calibrate_measurement(epsilon, delta)
    std = sigma * l2_sensitivity
    rng = np.random.default_rng(secrets.randbits(128))
    noisy = np.asarray(true_values, dtype=np.float64) + rng.normal(0.0, std, size=np.shape(true_values))
    return Measurement(values=noisy, std=std, l2_sensitivity=l2_sensitivity)


@dataclass(frozen=True)
class Plan:
    """The DP-SGD training fixed before DP-SGD reads the data.

    ``order`` is the Renyi order ``alpha0`` of the guarantee (``accounting.fixed_order``, public
    inputs only); ``None`` only in hand-built plans (tests, the non-private twins), which certify
    nothing.
    """

    epsilon: float
    delta: float
    noisy_rows: float
    batch_size: int
    sample_rate: float
    planned_steps: int
    noise_multiplier: float
    max_grad_norm: float
    fixed_history: History = field(default_factory=list)
    order: float | None = None

    @staticmethod
    def rate_and_steps(noisy_rows: float, batch_size: int, epochs: int) -> tuple[float, int]:
        """The Poisson rate ``batch_size / noisy rows`` and ``ceil(epochs / rate)`` steps."""
        rows = max(float(noisy_rows), 1.0)
        rate = min(1.0, batch_size / rows)
        return rate, max(1, math.ceil(epochs / rate))

    @staticmethod
    def public_order(*, epsilon: float, delta: float, epochs: int, fixed_history: History) -> float:
        """``alpha0`` from the spend, the epochs and the pre-processing measurements' noise (no count)."""
        return fixed_order(epsilon, delta, epochs, fixed_history)

    @classmethod
    def make(cls, *, epsilon: float, delta: float, noisy_rows: float, batch_size: int, epochs: int,
             max_grad_norm: float, fixed_history: History, steps: int | None = None,
             order: float | None = None) -> "Plan":
        """Calibrate the noise for ``epochs`` (or exactly ``steps``, e.g. from a time limit).

        The noise multiplier is the smallest with which ``fixed_history`` + all the steps have RDP
        at ``alpha0`` at most ``rdp_budget(epsilon, delta, alpha0)``. ``alpha0`` is ``order`` when
        given (a time limit's re-plan keeps the first plan's), else ``public_order``: never a
        function of ``noisy_rows``.
        """
        rate, planned = cls.rate_and_steps(noisy_rows, batch_size, epochs)
        steps = planned if steps is None else max(1, int(steps))
        if order is None:
            order = cls.public_order(epsilon=epsilon, delta=delta, epochs=epochs, fixed_history=fixed_history)
        sigma = calibrate_sgd_at_order(order, rdp_budget(epsilon, delta, order), rate, steps, fixed_history)
        plan = cls(epsilon=epsilon, delta=delta, noisy_rows=float(noisy_rows), batch_size=batch_size,
                   sample_rate=rate, planned_steps=steps, noise_multiplier=sigma, max_grad_norm=max_grad_norm,
                   fixed_history=list(fixed_history), order=float(order))
        if not plan.rdp_at_order(steps) <= plan.rdp_budget:  # the calibration guarantees this
            raise AssertionError(f"plan's RDP at order {order:g} exceeds its budget")
        return plan

    def history(self, steps: int) -> History:
        return [*self.fixed_history, (self.noise_multiplier, self.sample_rate, steps)] if steps else list(
            self.fixed_history
        )

    def _order(self) -> float:
        if self.order is None:
            raise ValueError("a hand-built plan without a Renyi order certifies nothing")
        return self.order

    @property
    def rdp_budget(self) -> float:
        """``B(alpha0)``: the RDP at ``alpha0`` that every plan of this spend stays within, whatever the count."""
        return rdp_budget(self.epsilon, self.delta, self._order())

    @property
    def epsilon_guarantee(self) -> float:
        """The (epsilon, ``delta``) guarantee of measurements + DP-SGD: ``B(alpha0)`` converted at ``alpha0``.

        This is what a card reports and the ledger keeps. It bounds the adaptive mechanism, not one
        plan: the plan (rate, steps, noise) depends on the noisy count, and every count's plan has
        RDP at ``alpha0`` at most ``B``, so the composition's RDP at ``alpha0`` is at most ``B``. It is
        the requested epsilon (within rounding, never above it), whatever this run's count was and
        however many steps it ran (fewer steps stay under ``B``: RDP grows with the steps). It
        overstates the loss only where the noise floor ``MIN_SIGMA``, not the budget, sets the noise
        of every count's plan (an epsilon far above what the epochs need): a safe over-charge.
        """
        return order_epsilon(self.rdp_budget, self._order(), self.delta)

    def rdp_at_order(self, steps: int) -> float:
        """RDP at ``alpha0`` of the measurements and ``steps`` DP-SGD steps of this plan."""
        return rdp_at(self.history(steps), self._order())

    def epsilon_after(self, steps: int) -> float:
        """This plan's history after ``steps`` steps, converted at ``alpha0`` (progress reports).

        At most ``epsilon_guarantee`` for any ``steps <= planned_steps``; for this run's history
        only, so a card charges ``epsilon_guarantee``, not this.
        """
        return order_epsilon(self.rdp_at_order(steps), self._order(), self.delta)

    def epsilon_optimised_order(self, steps: int) -> float:
        """INFORMATION ONLY: opacus' figure for this run's history with the order optimised for it.

        Not a guarantee: the order would be chosen after the noisy count that set this plan
        (``accounting``'s docstring).
        """
        return rdp_epsilon(self.history(steps), self.delta)

    def guarantee_parameters(self, steps: int) -> dict[str, Any]:
        """The card's accounting fields: the guarantee and, marked as such, the information figures."""
        return {
            "rdp_order": self._order(),
            "rdp_order_rule": ORDER_RULE,
            "rdp_budget_at_order": self.rdp_budget,
            "rdp_at_order": self.rdp_at_order(steps),
            "epsilon_guarantee_basis": "RDP at the fixed order rdp_order <= rdp_budget_at_order for every noisy "
                                       "count, converted at that order (epsilon_spent)",
            "epsilon_optimised_order_info": self.epsilon_optimised_order(steps),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fixed_history"] = [list(h) for h in self.fixed_history]
        return d


#: how ``Plan.order`` is chosen, for cards
ORDER_RULE = (
    "fixed before the data is read: opacus' optimal order for a reference plan (the same pre-processing "
    f"measurements, Poisson rate 1/{REFERENCE_BATCHES}, {REFERENCE_BATCHES} x epochs steps) calibrated to the "
    "requested epsilon; a function of epsilon, delta, epochs and the measurements' noise only"
)


class PrivateModule:
    """A torch module trained with per-sample clipping and Gaussian noise (opacus)."""

    def __init__(self, module: Any, *, lr: float, betas: tuple[float, float], weight_decay: float, plan: Plan,
                 expected_batch: int, mode: str, device: Any, private: bool = True) -> None:
        import torch

        self.private = private
        self.mode = mode
        if not private:
            self.module = module
            self.optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
            return
        gen = entropy_generator(device)
        if mode == "ghost":
            from opacus.grad_sample import GradSampleModuleFastGradientClipping
            from opacus.optimizers import DPOptimizerFastGradientClipping

            self.module = GradSampleModuleFastGradientClipping(
                module, loss_reduction="sum", max_grad_norm=plan.max_grad_norm, use_ghost_clipping=True
            )
            opt = torch.optim.Adam(self.module.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
            self.optimizer = DPOptimizerFastGradientClipping(
                opt, noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                expected_batch_size=expected_batch, loss_reduction="mean", generator=gen,
            )
        else:
            from opacus import GradSampleModule
            from opacus.optimizers import DPOptimizer

            self.module = GradSampleModule(module, loss_reduction="sum", force_functorch=mode == "functorch")
            opt = torch.optim.Adam(self.module.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
            self.optimizer = DPOptimizer(
                opt, noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                expected_batch_size=expected_batch, loss_reduction="mean", generator=gen,
            )

    def __call__(self, *args: Any) -> Any:
        return self.module(*args)

    def step(self, loss_per_sample: Any) -> float:
        """One optimiser step on per-sample losses (each sample's gradient clipped, then noise)."""
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # opacus' hooks warn that no *input* requires a gradient (true and harmless: inputs are data)
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            if not self.private:
                loss_per_sample.mean().backward()
            elif self.mode == "ghost":
                from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

                DPTensorFastGradientClipping(self.module, self.optimizer, loss_per_sample, "sum").backward()
            else:
                loss_per_sample.sum().backward()
        self.optimizer.step()
        return float(loss_per_sample.detach().mean().item()) if loss_per_sample.numel() else 0.0

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Forward passes that train something else (a GAN's generator) through this module.

        Gradients flow through the module to its inputs, but its parameters take none and opacus
        records nothing (no activations, no per-sample gradients).
        """
        params = list(self.plain_module().parameters())
        flags = [p.requires_grad for p in params]
        if self.private:
            self.module.disable_hooks()
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
            if self.private:
                self.module.enable_hooks()

    def plain_module(self) -> Any:
        """The underlying ``nn.Module`` (without opacus' wrapper)."""
        return getattr(self.module, "_module", self.module)


def shuffled_batches(n: int, batch_size: int, steps: int, generator: Any) -> Iterator[Any]:
    """Non-private twins only: shuffled fixed-size batches, epoch after epoch (NOT a DP sampler)."""
    import torch

    done = 0
    while done < steps and n > 0:
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            if done >= steps:
                return
            yield perm[start:start + batch_size]
            done += 1


@dataclass(kw_only=True)
class FittedTorchModel:
    """What a fitted neural generator keeps: its card, weights (CPU tensors) and DP row count.

    The torch module is rebuilt from the weights on first use and never pickled (the fitted object
    pickles with the standard library: audits refit in worker processes, runs store the model).
    """

    card: GeneratorCard
    state: dict[str, Any]
    noisy_rows: float
    #: throughput and losses of the training run, for the steward and the benchmark only: they are
    #: computed on the real records without noise (the exact number of Poisson-sampled records, a
    #: loss on the last real batches), so they never enter the card, which the bundle releases
    training_stats: dict[str, Any] = field(default_factory=dict, compare=False)
    _model: Any = field(default=None, repr=False, compare=False)

    @property
    def estimated_rows(self) -> int:
        return max(0, int(round(self.noisy_rows)))

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_model"] = None
        return d

    def _build(self) -> Any:
        """A fresh module with this model's architecture (subclasses)."""
        raise NotImplementedError

    def module(self) -> Any:
        """The trained module in eval mode, built once."""
        if self._model is None:
            model = self._build()
            model.load_state_dict(self.state)
            model.eval()
            self._model = model
        return self._model


def poisson_indices(n: int, rate: float, steps: int, generator: Any) -> Iterator[Any]:
    """Per step, the indices of a Poisson sample of ``range(n)`` (each row with probability ``rate``)."""
    import torch

    for _ in range(steps):
        mask = torch.rand(n, generator=generator, device=generator.device) < rate
        yield torch.nonzero(mask, as_tuple=False).flatten()


@dataclass
class Clock:
    """Stops training at a wall-clock limit (checked between steps) and reports progress."""

    time_limit_s: float | None
    progress: Callable[[str, float | None], None] | None
    started: float = field(default_factory=time.monotonic)
    stopped_by_time: bool = False

    def out_of_time(self) -> bool:
        if self.time_limit_s is not None and time.monotonic() - self.started >= self.time_limit_s:
            self.stopped_by_time = True
        return self.stopped_by_time

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str, fraction: float | None) -> None:
        if self.progress is not None:
            self.progress(message, fraction)


def steps_for_time(time_limit_s: float, elapsed_s: float, planned_steps: int, probe: Callable[[int], None],
                   probe_steps: int = 4) -> tuple[int, float]:
    """How many training steps fit in what is left of a time limit, timed on public rows only.

    A wall-clock stop *during* training would make the number of steps (hence the epsilon spent
    and the model) depend on how long each step took, which depends on the Poisson batch sizes,
    i.e. on the data. Instead the limit becomes a step count before DP-SGD reads the data:
    ``probe(k)`` runs ``k`` steps of the same training on rows drawn uniformly from the schema's
    domain (throwaway models), and the count is 90% of what the remaining time allows at that
    pace, at most the planned steps, at least one. The noise is then calibrated for that many
    steps at the first plan's Renyi order (``Plan.make(..., order=plan.order)``), so the whole
    budget is still spent (with less noise per step) and the RDP at that order stays within the
    same budget whatever count or timing chose the steps. The training may overrun the limit by the
    probe's timing error; it is never cut short.

    Returns (steps, seconds per step measured).
    """
    probe(1)  # warm-up (allocations, first-call overheads)
    t0 = time.monotonic()
    probe(probe_steps)
    per_step = max((time.monotonic() - t0) / probe_steps, 1e-6)
    remaining = time_limit_s - elapsed_s - (time.monotonic() - t0)
    return max(1, min(planned_steps, int(0.9 * remaining / per_step))), per_step


def accounting_text(plan: Plan) -> str:
    return (
        f"{ACCOUNTANT}; DP-SGD with Poisson sampling (rate {plan.sample_rate:.4g}), per-sample clipping "
        f"(norm {plan.max_grad_norm:g}) and Gaussian noise (multiplier {plan.noise_multiplier:.4g}), composed in the "
        f"same accountant with the Gaussian pre-processing measurements. {guarantee_text(plan)}"
    )


def guarantee_text(plan: Plan) -> str:
    """What the card's epsilon is: the fixed-order guarantee, and why it covers the count-dependent plan."""
    return (
        f"Guarantee: the Renyi order alpha0 = {plan._order():g} is fixed before the data is read (from epsilon, "
        f"delta, epochs and the measurements' noise); the noise multiplier is calibrated so that measurements + "
        f"all planned steps have RDP at alpha0 at most {plan.rdp_budget:.6g}, whatever the noisy count that set the "
        f"sampling rate and steps, so adaptive RDP composition at alpha0 gives epsilon "
        f"{plan.epsilon_guarantee:.6g} at delta {plan.delta:.3g} (opacus' conversion at alpha0); the card's epsilon "
        "is that figure. The optimised-order epsilon of this run's history (parameters, "
        "epsilon_optimised_order_info) is information only, not a guarantee"
    )


def torch_versions() -> dict[str, str]:
    import importlib.metadata

    out = {}
    for dist in ("torch", "opacus", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
