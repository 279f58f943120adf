"""DP diffusion: a tabular denoising diffusion model in the TabDDPM design, trained by DP-SGD.

TabDDPM (Kotelnikov et al. 2023) models a table with two diffusion processes run side by side:
*multinomial diffusion* (Hoogeboom et al. 2021) for every categorical variable and *Gaussian
diffusion* (Ho et al. 2020) for the numeric part, with one MLP denoiser that sees the whole noisy
row and the timestep. This module keeps that design and trains the denoiser with DP-SGD.

Privacy argument, step by step (unit: one record of the training split, add/remove):

1. **Encoding, from the schema only.** TabDDPM scales numeric columns with a QuantileTransformer
   fitted to the data (a data-dependent statistic with no DP guarantee). We use
   ``encoding.SchemaEncoder`` instead: a categorical column is one categorical variable over the
   schema's categories; a numeric column is one categorical variable over its public bins (the
   schema's bins or the steward's cuts) plus, where a bin holds more than one value, an *offset*
   in [-1, 1] (the value's position inside its bin). Nothing is read from the data to build it,
   and each record's encoding is a function of that record alone.
2. **One Gaussian measurement before training**: the row count, sensitivity 1, with
   ``preprocess_share`` of epsilon (default 2%). The count sets the Poisson rate
   ``batch_size / noisy count`` (hence the number of steps) and ``estimated_rows``; it is the only
   data-dependent quantity used before DP-SGD (``pretraining_state`` builds everything else from
   the schema, the options and an OS-entropy seed, and the tests check it).
3. **DP-SGD** (opacus 1.6, ``dpsgd.PrivateModule``; ghost clipping by default): each step takes a
   Poisson sample of the training rows; one training sample is one record with one random timestep
   and one noise draw, so each per-sample loss depends on one record; each sample's gradient is
   clipped to ``max_grad_norm`` and Gaussian noise is added. An empty Poisson sample is a valid
   step (opacus then applies noise only).
4. **Accounting**: the count and all DP-SGD steps compose in one RDP accountant (``accounting``).
   The rate and steps depend on the noisy count (an adaptive choice), so the guarantee is taken at
   one Renyi order ``alpha0`` fixed from public inputs before the data is read
   (``accounting.fixed_order``); the noise multiplier is calibrated before training so that count +
   all planned steps have RDP at ``alpha0`` within the budget whose conversion is the requested
   epsilon, for every possible count, and the charge is that guarantee (``Plan.epsilon_guarantee``;
   the run's optimised-order figure is on the card as information only). ``time_limit_s`` becomes a
   step count before DP-SGD reads the data (timed on schema-random rows, ``dpsgd.steps_for_time``);
   the noise is calibrated for that count at the same ``alpha0``.
5. **Sampling is post-processing**: the reverse process starts from noise drawn with a
   ``torch.Generator`` seeded by the caller's seed (no global RNG is touched), and decoding uses the
   public encoder. DP noise, Poisson sampling, timesteps, diffusion noise and the initial weights
   come from OS entropy, never from a user seed.

The model (TabDDPM's choices unless said otherwise):

- *Multinomial diffusion* on each one-hot span (categories and numeric bins):
  ``q(x_t | x_0) = Cat(abar_t x_0 + (1 - abar_t) / K)``; the denoiser predicts ``x_0`` logits; the
  loss at a uniform timestep ``t`` is ``T *`` the KL between the true posterior
  ``q(x_{t-1} | x_t, x_0)`` and the one with the predicted ``x_0`` (``-log p(x_0 | x_1)`` at the first
  step), averaged over the categorical variables, all in log space.
- *Gaussian diffusion* on the offsets: epsilon prediction with a mean-squared error averaged over the
  offsets; sampling uses the posterior variance and clips the predicted ``x_0`` to [-1, 1].
- Training draws x_t ~ q(x_t | x_0) as "x_0 with probability abar_t, else uniform" (the same
  distribution); sampling computes the posterior in probability space and draws by inverse CDF
  (the same distribution as the log-space formulas, tested against them, about 2x faster).
- Same noise schedule for both (cosine by default, or linear), ``timesteps`` steps (default 100:
  TabDDPM's 1000 makes sampling ten times slower on a CPU for little gain on tables).
- Denoiser: TabDDPM's ``MLPDiffusion``: sinusoidal timestep embedding -> Linear/SiLU/Linear, added to
  a linear projection of the noisy row, then ``layers`` Linear+ReLU(+Dropout) blocks and a linear
  head of the encoding's width. Linear layers only (no BatchNorm), so opacus' ghost clipping
  applies. The input is the noisy one-hots (in span order) followed by the noisy offsets; the output
  is the ``x_0`` logits in the same order followed by the predicted offset noise.

``fit_nonprivate`` trains the same model the same way with no clipping and no noise, on shuffled
full-dataset batches and the exact row count: it is NOT differentially private and exists only for
the benchmark's DP/non-DP speed ratio (it is never registered as a generator).
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.deep.accounting import ACCOUNTANT, order_epsilon, rdp_at
from privacy.generators.tabular.deep.dpsgd import (
    Clock,
    FittedTorchModel,
    Measurement,
    Plan,
    PrivateModule,
    accounting_text,
    check_common_options,
    entropy_generator,
    gaussian_measurement,
    poisson_indices,
    resolve_device,
    shuffled_batches,
    steps_for_time,
    torch_versions,
)
from privacy.generators.tabular.deep.encoding import SchemaEncoder
from privacy.schema import Schema
from privacy.spend import PrivacySpend

NAME = "dpdiffusion"
UNIT_OF_PRIVACY = "one record of the training split; add/remove-one neighbouring datasets"
SCHEDULES = ("cosine", "linear")
#: the log of a one-hot's zeros (TabDDPM's ``log(1e-30)``)
LOG_ZERO = math.log(1e-30)
#: the value of the padding cells of the (variables x widest variable) layout; exp() of it is 0
PAD = -1e4
#: rows per chunk of the reverse process (bounds sampling memory)
SAMPLE_CHUNK = 8192
DOMAIN_SOURCES = {
    "categories": "schema",
    "numeric scaling": "schema bins and bounds (replaces TabDDPM's data-fitted quantile transform)",
    "row count (sampling rate, number of steps, estimated rows)": "DP: Gaussian noisy count (pre-processing share)",
}
NOTES = (
    "TabDDPM design: multinomial diffusion on categories and numeric bins, Gaussian diffusion on "
    "the within-bin offsets, MLPDiffusion denoiser (Linear layers only)",
    "numeric columns are encoded with the schema's public bins and an offset inside the bin, not "
    "TabDDPM's QuantileTransformer (which reads the data)",
    "one training sample = one record with one random timestep and one noise draw; per-sample "
    "gradients clipped, Gaussian noise added (opacus)",
    "DP noise, Poisson sampling, timesteps, diffusion noise and initial weights come from OS entropy; "
    "the sample seed only drives the reverse process (post-processing)",
)


@dataclass(frozen=True)
class DiffusionOptions:
    """Every option of the model and its training (public: chosen without the data)."""

    epochs: int = 30
    batch_size: int = 500
    timesteps: int = 100
    schedule: str = "cosine"
    hidden: int = 256
    layers: int = 3
    time_dim: int = 128
    dropout: float = 0.0
    lr: float = 2e-3
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    preprocess_share: float = 0.02
    device: str = "auto"
    grad_sample_mode: str = "ghost"
    time_limit_s: float | None = None

    def validate(self) -> None:
        """``InputError`` with one clear line for a bad option."""
        check_common_options(epochs=self.epochs, batch_size=self.batch_size, max_grad_norm=self.max_grad_norm,
                             device=self.device, grad_sample_mode=self.grad_sample_mode,
                             time_limit_s=self.time_limit_s, preprocess_share=self.preprocess_share)
        ints = {"timesteps": (self.timesteps, 2, 10_000), "hidden": (self.hidden, 1, 8192),
                "layers": (self.layers, 1, 64), "time_dim": (self.time_dim, 2, 4096)}
        for name, (v, lo, hi) in ints.items():
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise InputError(f"{NAME}: {name} ({v}) must be an integer in [{lo}, {hi}]")
        if self.time_dim % 2:
            raise InputError(f"{NAME}: time_dim ({self.time_dim}) must be even (sine and cosine halves)")
        if self.schedule not in SCHEDULES:
            raise InputError(f"{NAME}: schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if not (_real(self.lr) and 0 < self.lr < 1):
            raise InputError(f"{NAME}: lr ({self.lr}) must be in (0, 1)")
        if not (_real(self.dropout) and 0 <= self.dropout < 1):
            raise InputError(f"{NAME}: dropout ({self.dropout}) must be in [0, 1)")
        if not (_real(self.weight_decay) and 0 <= self.weight_decay < 1):
            raise InputError(f"{NAME}: weight_decay ({self.weight_decay}) must be in [0, 1)")

    def architecture(self, width: int) -> str:
        return (f"MLPDiffusion(in={width}, time_dim={self.time_dim}, hidden={self.hidden} x {self.layers} "
                f"Linear+ReLU, dropout={self.dropout:g}, out={width})")


def _real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --- layout and schedule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where each diffusion variable lives (from the public encoder).

    ``sizes``: categories per categorical variable (one per one-hot span, in span order);
    ``disc_columns`` / ``offset_columns``: the codec index (column) of each one-hot / offset span.
    """

    sizes: tuple[int, ...]
    disc_columns: tuple[int, ...]
    offset_columns: tuple[int, ...]

    @classmethod
    def from_encoder(cls, encoder: SchemaEncoder) -> "Layout":
        col = {c.name: j for j, c in enumerate(encoder.discretizer.codecs)}
        return cls(
            sizes=tuple(s.width for s in encoder.discrete_spans),
            disc_columns=tuple(col[s.column] for s in encoder.discrete_spans),
            offset_columns=tuple(col[s.column] for s in encoder.offset_spans),
        )

    @property
    def n_disc(self) -> int:
        """Total width of the one-hots (the first part of the model's input and output)."""
        return sum(self.sizes)

    @property
    def n_offsets(self) -> int:
        return len(self.offset_columns)

    @property
    def width(self) -> int:
        return self.n_disc + self.n_offsets

    def tensors(self, device: Any) -> "LayoutTensors":
        import torch

        kmax = max(self.sizes) if self.sizes else 1
        s = len(self.sizes)
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64) if s else np.zeros(0, np.int64)
        mask = np.zeros((s, kmax), dtype=bool)
        index = np.zeros((s, kmax), dtype=np.int64)
        for i, (k, st) in enumerate(zip(self.sizes, starts)):
            mask[i, :k] = True
            index[i, :k] = st + np.arange(k)
        return LayoutTensors(
            mask=torch.from_numpy(mask).to(device),
            index=torch.from_numpy(index).to(device),
            starts=torch.from_numpy(starts).to(device),
            log_k=torch.log(torch.tensor(self.sizes, dtype=torch.float32)).view(-1, 1).to(device),
            n_disc=self.n_disc,
        )


@dataclass(frozen=True)
class LayoutTensors:
    """The layout as tensors: ``(S, Kmax)`` mask and index of each variable's cells, ``log K``."""

    mask: Any
    index: Any
    starts: Any
    log_k: Any
    n_disc: int


@dataclass(frozen=True)
class Schedule:
    """The noise schedule and the constants both diffusions derive from it (float32 tensors)."""

    timesteps: int
    betas: Any
    log_alpha: Any
    log_1m_alpha: Any
    log_abar: Any
    log_1m_abar: Any
    abar: Any
    abar_prev: Any
    alphas: Any
    sqrt_abar: Any
    sqrt_1m_abar: Any
    post_coef_x0: Any
    post_coef_xt: Any
    post_var: Any


def make_schedule(timesteps: int, kind: str, device: Any = None) -> Schedule:
    """TabDDPM's schedules: cosine (Nichol & Dhariwal 2021, max beta 0.999) or DDPM's linear one."""
    import torch

    t = timesteps
    if kind == "cosine":
        def abar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = np.array([min(1 - abar((i + 1) / t) / abar(i / t), 0.999) for i in range(t)], dtype=np.float64)
    elif kind == "linear":
        scale = 1000.0 / t
        betas = np.linspace(scale * 1e-4, scale * 0.02, t, dtype=np.float64)
    else:
        raise InputError(f"{NAME}: schedule must be one of {', '.join(SCHEDULES)}, not {kind!r}")
    alphas = 1.0 - betas
    log_alpha = np.log(alphas)
    abar_ = np.cumprod(alphas)
    abar_prev = np.append(1.0, abar_[:-1])
    log_abar = np.cumsum(log_alpha)

    def f(a: np.ndarray) -> Any:
        return torch.tensor(a, dtype=torch.float32, device=device)

    return Schedule(
        timesteps=t,
        betas=f(betas),
        log_alpha=f(log_alpha),
        log_1m_alpha=f(np.log(1.0 - np.exp(log_alpha) + 1e-40)),
        log_abar=f(log_abar),
        log_1m_abar=f(np.log(1.0 - np.exp(log_abar) + 1e-40)),
        abar=f(abar_),
        abar_prev=f(abar_prev),
        alphas=f(alphas),
        sqrt_abar=f(np.sqrt(abar_)),
        sqrt_1m_abar=f(np.sqrt(1.0 - abar_)),
        post_coef_x0=f(betas * np.sqrt(abar_prev) / (1.0 - abar_)),
        post_coef_xt=f((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar_)),
        post_var=f(betas * (1.0 - abar_prev) / (1.0 - abar_)),
    )


# --- multinomial diffusion (log space, on a padded (batch, variables, Kmax) layout) --------------
#
# Timesteps are 0-based as in TabDDPM: index t is the paper's step t + 1, ``log_abar[t]`` is the
# log of prod_{s <= t} alpha_s, and the "x_{t-1}" of index 0 is x_0 itself.


def _remask(x: Any, lay: LayoutTensors) -> Any:
    import torch

    return torch.where(lay.mask, x, torch.full_like(x, PAD))


def log_onehot(codes: Any, lay: LayoutTensors) -> Any:
    """``(B, S)`` category codes -> ``(B, S, Kmax)`` log one-hots (``LOG_ZERO`` off, ``PAD`` padding)."""
    import torch

    base = torch.where(lay.mask, torch.full(lay.mask.shape, LOG_ZERO, device=codes.device),
                       torch.full(lay.mask.shape, PAD, device=codes.device))
    out = base.expand(codes.shape[0], -1, -1).clone()
    return out.scatter_(2, codes.unsqueeze(-1), 0.0)


def q_pred(log_x0: Any, t: Any, sch: Schedule, lay: LayoutTensors) -> Any:
    """log q(x_t | x_0) = log(abar_t x_0 + (1 - abar_t) / K)."""
    import torch

    a = sch.log_abar[t].view(-1, 1, 1)
    b = sch.log_1m_abar[t].view(-1, 1, 1)
    return _remask(torch.logaddexp(log_x0 + a, b - lay.log_k), lay)


def q_pred_one_step(log_xt: Any, t: Any, sch: Schedule, lay: LayoutTensors) -> Any:
    """log q(x_t | x_{t-1}) as a function of x_{t-1} (the transition is symmetric)."""
    import torch

    a = sch.log_alpha[t].view(-1, 1, 1)
    b = sch.log_1m_alpha[t].view(-1, 1, 1)
    return _remask(torch.logaddexp(log_xt + a, b - lay.log_k), lay)


def q_posterior(log_x0: Any, log_xt: Any, t: Any, sch: Schedule, lay: LayoutTensors) -> Any:
    """log q(x_{t-1} | x_t, x_0), normalised per variable (``log_x0`` may be a distribution)."""
    import torch

    ev = q_pred(log_x0, (t - 1).clamp(min=0), sch, lay)
    ev = torch.where((t == 0).view(-1, 1, 1), log_x0, ev)
    un = _remask(ev + q_pred_one_step(log_xt, t, sch, lay), lay)
    return _remask(un - torch.logsumexp(un, dim=-1, keepdim=True), lay)


def predicted_log_x0(logits: Any, lay: LayoutTensors) -> Any:
    """The model's ``(B, n_disc)`` logits -> ``(B, S, Kmax)`` log-probabilities of x_0."""
    import torch

    return _remask(torch.log_softmax(_remask(logits[:, lay.index], lay), dim=-1), lay)


def forward_codes(codes: Any, t: Any, sch: Schedule, lay: LayoutTensors, generator: Any) -> Any:
    """A draw of x_t ~ q(x_t | x_0) for one-hot x_0: x_0 with probability abar_t, else uniform.

    (``abar_t x_0 + (1 - abar_t) / K`` is exactly that mixture; drawing it so avoids log-space work
    on the ``(B, S, Kmax)`` layout.)
    """
    import torch

    shape = codes.shape
    sizes = lay.mask.sum(dim=1)
    keep = torch.rand(shape, generator=generator, device=codes.device) < sch.abar[t].view(-1, 1)
    uniform = (torch.rand(shape, generator=generator, device=codes.device) * sizes).long()
    return torch.where(keep, codes, torch.minimum(uniform, sizes - 1))


def posterior_probs(p_x0: Any, codes_t: Any, step: int, sch: Schedule, lay: LayoutTensors) -> Any:
    """q(x_{t-1} | x_t, x_0) in probability space, for one timestep index ``step`` (sampling only).

    The same distribution as ``exp(q_posterior(...))``, with multiply-adds instead of ``logaddexp``
    and ``logsumexp`` over the padded layout (most of the sampling time otherwise).
    """
    import torch

    k = torch.exp(lay.log_k)  # (S, 1)
    a_prev = float(sch.abar_prev[step])
    alpha = float(sch.alphas[step])
    ev = (a_prev * p_x0 + (1.0 - a_prev) / k) if step > 0 else p_x0
    one = torch.zeros_like(p_x0).scatter_(2, codes_t.unsqueeze(-1), alpha) + (1.0 - alpha) / k
    un = ev * one * lay.mask
    return un / un.sum(dim=-1, keepdim=True)


def draw_codes(probs: Any, lay: LayoutTensors, generator: Any) -> Any:
    """One draw per variable from ``(B, S, Kmax)`` probabilities (inverse CDF, one uniform each)."""
    import torch

    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[:2], generator=generator, device=probs.device).unsqueeze(-1) * cdf[..., -1:]
    return torch.minimum((cdf < u).sum(dim=-1), lay.mask.sum(dim=1) - 1)


def multinomial_kl(log_q: Any, log_p: Any, lay: LayoutTensors) -> Any:
    """KL(q || p) per ``(B, S)`` variable."""
    import torch

    terms = torch.exp(log_q) * (log_q - log_p)
    return torch.where(lay.mask, terms, torch.zeros_like(terms)).sum(dim=-1)


def model_input(codes: Any, offsets: Any, lay: LayoutTensors) -> Any:
    """The denoiser's input: the noisy one-hots (span order) followed by the noisy offsets."""
    import torch

    onehot = torch.zeros(codes.shape[0], lay.n_disc, device=codes.device)
    if codes.shape[1]:
        onehot.scatter_(1, codes + lay.starts, 1.0)
    return torch.cat([onehot, offsets], dim=1)


def diffusion_loss(model: Any, codes: Any, offsets: Any, sch: Schedule, lay: LayoutTensors,
                   generator: Any) -> Any:
    """Per-record training loss: one uniform timestep and one noise draw per record.

    ``codes``: ``(B, S)`` category/bin codes; ``offsets``: ``(B, O)`` offsets in [-1, 1]. Returns a
    ``(B,)`` vector; element i depends on record i (and on the randomness) only.
    """
    import torch

    b = codes.shape[0]
    dev = codes.device
    t = torch.randint(0, sch.timesteps, (b,), generator=generator, device=dev)
    with torch.no_grad():
        log_x0 = log_onehot(codes, lay)
        codes_t = forward_codes(codes, t, sch, lay, generator)
        noise = torch.randn(offsets.shape, generator=generator, device=dev)
        x_t = sch.sqrt_abar[t].view(-1, 1) * offsets + sch.sqrt_1m_abar[t].view(-1, 1) * noise
        log_xt = log_onehot(codes_t, lay)
        true_post = q_posterior(log_x0, log_xt, t, sch, lay)
    out = model(model_input(codes_t, x_t, lay), t)
    loss = torch.zeros(b, device=dev)
    if codes.shape[1]:
        model_post = q_posterior(predicted_log_x0(out[:, :lay.n_disc], lay), log_xt, t, sch, lay)
        kl = multinomial_kl(true_post, model_post, lay)
        nll = -model_post.gather(2, codes.unsqueeze(-1)).squeeze(-1)
        per_var = torch.where((t == 0).view(-1, 1), nll, kl)
        loss = loss + sch.timesteps * per_var.mean(dim=1)
    if offsets.shape[1]:
        loss = loss + ((out[:, lay.n_disc:] - noise) ** 2).mean(dim=1)
    return loss


def reverse_process(model: Any, n: int, sch: Schedule, lay: LayoutTensors, n_offsets: int,
                    generator: Any) -> tuple[Any, Any]:
    """Draw ``n`` rows from the model: ``(n, S)`` codes and ``(n, O)`` offsets (post-processing)."""
    import torch

    dev = lay.mask.device
    sizes = lay.mask.sum(dim=1)
    s = lay.mask.shape[0]
    codes = (torch.rand((n, s), generator=generator, device=dev) * sizes).long().clamp(max=sizes - 1)
    x = torch.randn((n, n_offsets), generator=generator, device=dev)
    for step in reversed(range(sch.timesteps)):
        t = torch.full((n,), step, dtype=torch.long, device=dev)
        out = model(model_input(codes, x, lay), t)
        if s:
            p_x0 = torch.softmax(_remask(out[:, :lay.n_disc][:, lay.index], lay), dim=-1)
            codes = draw_codes(posterior_probs(p_x0, codes, step, sch, lay), lay, generator)
        if n_offsets:
            eps = out[:, lay.n_disc:]
            x0 = ((x - sch.sqrt_1m_abar[step] * eps) / sch.sqrt_abar[step]).clamp(-1.0, 1.0)
            mean = sch.post_coef_x0[step] * x0 + sch.post_coef_xt[step] * x
            if step > 0:
                x = mean + torch.sqrt(sch.post_var[step]) * torch.randn(x.shape, generator=generator, device=dev)
            else:
                x = mean
    return codes, x


# --- the denoiser ----------------------------------------------------------------------------------


@functools.cache
def _mlp_class() -> type:
    """TabDDPM's MLPDiffusion (built on first use so that importing this module does not import torch)."""
    import torch
    from torch import nn

    class MLPDiffusion(nn.Module):
        def __init__(self, width: int, time_dim: int, hidden: int, layers: int, dropout: float) -> None:
            super().__init__()
            self.time_dim = time_dim
            self.proj = nn.Linear(width, time_dim)
            self.time_embed = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
            blocks: list[nn.Module] = []
            dim = time_dim
            for _ in range(layers):
                blocks += [nn.Linear(dim, hidden), nn.ReLU()]
                if dropout > 0:
                    blocks.append(nn.Dropout(dropout))
                dim = hidden
            blocks.append(nn.Linear(dim, width))
            self.mlp = nn.Sequential(*blocks)

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            half = self.time_dim // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
            args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
            emb = self.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=1))
            return self.mlp(self.proj(x) + emb)

    return MLPDiffusion


def build_denoiser(width: int, options: DiffusionOptions, *, init_seed: int | None, device: Any = None) -> Any:
    """The denoiser; ``init_seed``: initialise its weights (PyTorch's Linear init) from that seed,
    ``None``: leave them uninitialised (to load a state dict). Touches no global generator."""
    import torch
    from torch import nn

    with torch.device("meta"):
        model = _mlp_class()(width, options.time_dim, options.hidden, options.layers, options.dropout)
    model = model.to_empty(device=device or "cpu")
    if init_seed is not None:
        gen = torch.Generator(device=device or "cpu").manual_seed(init_seed)
        with torch.no_grad():
            for layer in model.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
                    bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features else 0.0
                    nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    return model


# --- before DP-SGD ---------------------------------------------------------------------------------


def training_arrays(encoder: SchemaEncoder, data: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per record, its ``(S,)`` category/bin codes and ``(O,)`` offsets (a function of the record alone)."""
    lay = Layout.from_encoder(encoder)
    codes, offsets = encoder.codes_and_offsets(data)
    return (np.ascontiguousarray(codes[:, list(lay.disc_columns)], dtype=np.int64),
            np.ascontiguousarray(offsets[:, list(lay.offset_columns)], dtype=np.float32))


def measure_rows(data: pl.DataFrame, spend: PrivacySpend, preprocess_share: float) -> Measurement:
    """The one pre-processing measurement: the row count + Gaussian noise (sensitivity 1)."""
    return gaussian_measurement(np.array([float(data.height)]), l2_sensitivity=1.0,
                                epsilon=preprocess_share * spend.epsilon, delta=spend.delta)


def make_plan(spend: PrivacySpend, options: DiffusionOptions, count: Measurement, steps: int | None = None,
              order: float | None = None) -> Plan:
    """The DP-SGD plan: Poisson rate ``batch_size / noisy count``, ``ceil(epochs / rate)`` steps (or
    ``steps``, from a time limit), and the noise multiplier with which count + all steps have RDP at
    the public order ``alpha0`` (``order``, else ``Plan.public_order``) within the budget whose
    conversion is ``spend.epsilon``. No data."""
    return Plan.make(epsilon=float(spend.epsilon), delta=float(spend.delta), noisy_rows=float(count.values[0]),
                     batch_size=options.batch_size, epochs=options.epochs, max_grad_norm=options.max_grad_norm,
                     fixed_history=[count.entry], steps=steps, order=order)


def steps_within_time(encoder: SchemaEncoder, options: DiffusionOptions, plan: Plan, elapsed: float) -> tuple[int, float]:
    """The DP-SGD steps that fit in what is left of ``time_limit_s``, timed on schema-random rows.

    ``dpsgd.steps_for_time``: a few steps of the same training on rows drawn uniformly from the
    schema's domain (throwaway models, never the data), so the step count does not depend on how
    long the real batches take.
    """
    assert options.time_limit_s is not None
    rng = np.random.default_rng(secrets.randbits(128))
    codes, offsets = encoder.random_parts(max(int(round(plan.noisy_rows)), 1), rng)
    codes, offsets = training_arrays(encoder, encoder.decode_parts(codes, offsets))

    def probe(k: int) -> None:
        dummy = Pretraining(encoder=encoder, options=options, plan=replace(plan, planned_steps=k),
                            init_seed=secrets.randbits(63), codes=codes, offsets=offsets)
        _train(dummy, private=True, clock=Clock(None, None))

    return steps_for_time(options.time_limit_s, elapsed, plan.planned_steps, probe)


@dataclass(frozen=True)
class Pretraining:
    """Everything fixed before DP-SGD starts (see ``pretraining_state``)."""

    encoder: SchemaEncoder
    options: DiffusionOptions
    plan: Plan
    init_seed: int
    #: the training records, encoded (read only by DP-SGD's per-sample losses)
    codes: np.ndarray = field(repr=False)
    offsets: np.ndarray = field(repr=False)

    @property
    def noisy_rows(self) -> float:
        return self.plan.noisy_rows

    def initial_state(self) -> dict[str, Any]:
        """The denoiser's initial weights (CPU)."""
        return build_denoiser(self.encoder.width, self.options, init_seed=self.init_seed).state_dict()


def pretraining_state(data: pl.DataFrame, schema: Schema, options: DiffusionOptions, *, plan: Plan,
                      init_seed: int) -> Pretraining:
    """What ``fit`` holds when its first DP-SGD step starts.

    The encoder comes from the schema, the architecture and schedule from the options, the initial
    weights from ``init_seed`` (OS entropy in ``fit``), the plan from ``make_plan`` (options, spend and
    the noisy count). The data enters only as the encoded training records, each a function of its
    own record, which only DP-SGD's per-sample losses read.
    """
    encoder = SchemaEncoder.from_schema(schema)
    codes, offsets = training_arrays(encoder, data)
    return Pretraining(encoder=encoder, options=options, plan=plan, init_seed=init_seed, codes=codes,
                       offsets=offsets)


# --- training --------------------------------------------------------------------------------------


class EpsilonMeter:
    """``plan.epsilon_after(steps)`` for progress reports: the run so far, converted at the plan's ``alpha0``.

    The RDP of ``k`` identical steps is ``k`` times that of one (opacus computes it so): the fixed
    part and one step are computed once, in the same order of operations as ``accounting.rdp_at``,
    and converted at the plan's order. The card charges ``plan.epsilon_guarantee``. A hand-built
    plan without an order (tests) reports NaN.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._fixed = rdp_at(plan.fixed_history, plan.order) if plan.order is not None else math.nan
        self._step = rdp_at([(plan.noise_multiplier, plan.sample_rate, 1)], plan.order) if plan.order is not None \
            else math.nan

    def __call__(self, steps: int) -> float:
        if self.plan.order is None:
            return math.nan
        total = self._fixed + self._step * steps if steps else self._fixed
        return order_epsilon(total if math.isfinite(total) else math.inf, self.plan.order, self.plan.delta)


@dataclass(frozen=True)
class TrainResult:
    state: dict[str, Any]
    steps: int
    records: int
    seconds: float
    last_loss: float


def _train(pre: Pretraining, *, private: bool, clock: Clock) -> TrainResult:
    import torch

    opts = pre.options
    plan = pre.plan
    device = resolve_device(opts.device)
    lay = Layout.from_encoder(pre.encoder).tensors(device)
    sch = make_schedule(opts.timesteps, opts.schedule, device)
    model = build_denoiser(pre.encoder.width, opts, init_seed=pre.init_seed, device=device)
    model.train()
    expected_batch = max(1, int(round(plan.sample_rate * max(plan.noisy_rows, 1.0))))
    module = PrivateModule(model, lr=opts.lr, betas=(0.9, 0.999), weight_decay=opts.weight_decay, plan=plan,
                           expected_batch=expected_batch, mode=opts.grad_sample_mode, device=device,
                           private=private)
    codes = torch.from_numpy(pre.codes).to(device)
    offsets = torch.from_numpy(pre.offsets).to(device)
    n = pre.codes.shape[0]
    cpu_gen = entropy_generator(torch.device("cpu"))
    dev_gen = cpu_gen if device.type == "cpu" else entropy_generator(device)
    if private:
        batches = poisson_indices(n, plan.sample_rate, plan.planned_steps, cpu_gen)
        steps_per_epoch = plan.planned_steps / opts.epochs
    else:
        batches = shuffled_batches(n, opts.batch_size, plan.planned_steps, cpu_gen)
        steps_per_epoch = max(1, math.ceil(n / opts.batch_size))
    meter = EpsilonMeter(plan) if private else None
    steps = records = 0
    epoch_loss = epoch_records = 0.0
    last_loss = float("nan")
    started = time.monotonic()
    with warnings.catch_warnings():
        # opacus' hooks warn that no *input* requires a gradient (true, and harmless: the inputs are data)
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for idx in batches:
            idx = idx.to(device)
            loss = diffusion_loss(module, codes[idx], offsets[idx], sch, lay, dev_gen)
            mean = module.step(loss)
            steps += 1
            records += int(idx.numel())
            epoch_loss += mean * int(idx.numel())
            epoch_records += int(idx.numel())
            if int(steps / steps_per_epoch + 1e-9) > int((steps - 1) / steps_per_epoch + 1e-9) or steps == plan.planned_steps:
                last_loss = epoch_loss / epoch_records if epoch_records else float("nan")
                epoch = min(opts.epochs, int(steps / steps_per_epoch + 1e-9))
                eps = f" eps {meter(steps):.3f}" if meter is not None else " (not private)"
                clock.say(f"{NAME} epoch {epoch}/{opts.epochs} loss {last_loss:.3f}{eps}", steps / plan.planned_steps)
                epoch_loss = epoch_records = 0.0
    seconds = time.monotonic() - started
    plain = module.plain_module()
    state = {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}
    return TrainResult(state=state, steps=steps, records=records, seconds=seconds, last_loss=last_loss)


# --- the fitted model and the generator ------------------------------------------------------------


@dataclass(kw_only=True)
class FittedDiffusion(FittedTorchModel):
    """The trained denoiser (CPU state dict), its options and public encoder, the noisy count, the card."""

    options: DiffusionOptions
    encoder: SchemaEncoder

    def _build(self) -> Any:
        return build_denoiser(self.encoder.width, self.options, init_seed=None)

    def sample(self, n: int, seed: int) -> pl.DataFrame:
        """``n`` rows with the schema's columns and dtypes; the same seed gives the same rows."""
        import torch

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n ({n}) must be an integer >= 0")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed ({seed}) must be an integer >= 0")
        n = int(n)
        model = self.module()
        layout = Layout.from_encoder(self.encoder)
        lay = layout.tensors("cpu")
        sch = make_schedule(self.options.timesteps, self.options.schedule)
        torch_seed = int(np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0] >> np.uint64(1))
        gen = torch.Generator().manual_seed(torch_seed)
        ncols = len(self.encoder.discretizer.codecs)
        codes = np.zeros((n, ncols), dtype=np.int64)
        offsets = np.zeros((n, ncols), dtype=np.float64)
        with torch.no_grad():
            for start in range(0, n, SAMPLE_CHUNK):
                m = min(SAMPLE_CHUNK, n - start)
                c, x = reverse_process(model, m, sch, lay, layout.n_offsets, gen)
                codes[start:start + m][:, list(layout.disc_columns)] = c.numpy()
                offsets[start:start + m][:, list(layout.offset_columns)] = x.double().numpy()
        return self.encoder.decode_parts(codes, offsets)


class DPDiffusionGenerator:
    """TabDDPM-style diffusion (multinomial + Gaussian) over the schema encoding, trained by DP-SGD."""

    name = NAME

    def __init__(self, *, epochs: int = 30, batch_size: int = 500, timesteps: int = 100,
                 schedule: str = "cosine", hidden: int = 256, layers: int = 3, time_dim: int = 128,
                 dropout: float = 0.0, lr: float = 2e-3, weight_decay: float = 0.0, max_grad_norm: float = 1.0,
                 preprocess_share: float = 0.02, device: str = "auto", grad_sample_mode: str = "ghost",
                 time_limit_s: float | None = None) -> None:
        self.options = DiffusionOptions(
            epochs=epochs, batch_size=batch_size, timesteps=timesteps, schedule=schedule, hidden=hidden,
            layers=layers, time_dim=time_dim, dropout=dropout, lr=lr, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, preprocess_share=preprocess_share, device=device,
            grad_sample_mode=grad_sample_mode, time_limit_s=time_limit_s,
        )
        self.options.validate()

    def fit(self, data: pl.DataFrame, schema: Schema, spend: PrivacySpend, *,
            progress: Progress | None = None) -> FittedDiffusion:
        """Train on the conformed training split, spending at most ``spend`` (RDP-accounted)."""
        if spend.delta <= 0:
            raise InputError(f"{NAME} needs delta > 0 (DP-SGD with Gaussian noise)")
        opts = self.options
        resolve_device(opts.device)  # fail on a missing GPU before spending anything
        started = time.monotonic()
        clock = Clock(None, progress)
        count = measure_rows(data, spend, opts.preprocess_share)
        plan = make_plan(spend, opts, count)
        steps_for_epochs = plan.planned_steps
        probe_per_step = None
        if opts.time_limit_s is not None:
            steps, probe_per_step = steps_within_time(SchemaEncoder.from_schema(schema), opts, plan,
                                                      time.monotonic() - started)
            if steps < plan.planned_steps:
                plan = make_plan(spend, opts, count, steps=steps, order=plan.order)
        pre = pretraining_state(data, schema, opts, plan=plan, init_seed=secrets.randbits(63))
        clock.say(f"{NAME}: noisy row count {pre.noisy_rows:.0f}; {pre.plan.planned_steps} DP-SGD steps at rate "
                  f"{pre.plan.sample_rate:.4g}, noise multiplier {pre.plan.noise_multiplier:.4g}", 0.0)
        result = _train(pre, private=True, clock=clock)
        # the guarantee of the adaptive mechanism (RDP at the fixed order within B for every count)
        spent = plan.epsilon_guarantee
        if spent > spend.epsilon * (1 + 1e-9) or not plan.rdp_at_order(result.steps) <= plan.rdp_budget:
            raise AssertionError(f"guarantee {spent} > budget {spend.epsilon}")  # the calibration guarantees this
        params = _parameters(pre, result, clock, private=True)
        params.update({
            "requested_epsilon": float(spend.epsilon),
            "epsilon_spent": spent,
            "delta": float(spend.delta),
            "count_noise_std": count.std,
            "count_l2_sensitivity": count.l2_sensitivity,
            "preprocess_epsilon": opts.preprocess_share * float(spend.epsilon),
            "preprocess_history": [list(h) for h in plan.fixed_history],
            **plan.guarantee_parameters(result.steps),
            "steps_for_epochs": steps_for_epochs,
            "steps_limited_by_time": plan.planned_steps < steps_for_epochs,
            "probe_seconds_per_step": probe_per_step,
        })
        card = GeneratorCard(
            name=NAME, parameters=params, library_versions=torch_versions(),
            spend=PrivacySpend(epsilon=spent, delta=float(spend.delta)), accounting=accounting_text(plan),
            unit_of_privacy=UNIT_OF_PRIVACY, domain_sources=dict(DOMAIN_SOURCES),
            notes=NOTES + ((f"the time limit allowed {plan.planned_steps} of the {steps_for_epochs} steps the epochs "
                            "ask for (timed on schema-random rows before training); the noise is calibrated for them",)
                           if plan.planned_steps < steps_for_epochs else ()),
        )
        clock.say(f"{NAME}: done, epsilon spent {spent:.3f}", 1.0)
        return FittedDiffusion(card=card, options=opts, encoder=pre.encoder, state=result.state,
                               noisy_rows=pre.noisy_rows, training_stats=_training_stats(result))


def _parameters(pre: Pretraining, result: TrainResult, clock: Clock, *, private: bool) -> dict[str, Any]:
    opts = pre.options
    plan = pre.plan
    return {
        **{k: v for k, v in asdict(opts).items()},
        "accountant": ACCOUNTANT if private else "none (NOT differentially private)",
        "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate,
        "noisy_rows": plan.noisy_rows,
        "planned_steps": plan.planned_steps,
        "steps": result.steps,
        "epochs_run": result.steps * plan.sample_rate,  # passes over the data, in expectation
        "architecture": opts.architecture(pre.encoder.width),
        "encoding_width": pre.encoder.width,
        "device_used": str(resolve_device(opts.device)),
        "loss": "T x multinomial posterior KL (-log p(x0|x1) at t=1), mean over variables, + offset-noise MSE",
    }


def _training_stats(result: TrainResult) -> dict[str, Any]:
    """Unnoised figures of the run (not released: see ``FittedTorchModel.training_stats``)."""
    return {
        "last_epoch_loss": result.last_loss if math.isfinite(result.last_loss) else None,
        "train_seconds": result.seconds,
        "records_processed": result.records,
        "samples_per_second": result.records / result.seconds if result.seconds > 0 else 0.0,
    }


def fit_nonprivate(data: pl.DataFrame, schema: Schema, *, progress: Progress | None = None,
                   **options: Any) -> FittedDiffusion:
    """The same model trained the same way WITHOUT DP (NOT differentially private).

    For the benchmark's DP/non-DP speed ratio only: exact row count, shuffled full-dataset batches,
    no clipping, no noise. Never registered as a generator.
    """
    opts = DPDiffusionGenerator(**options).options
    clock = Clock(opts.time_limit_s, progress)
    encoder = SchemaEncoder.from_schema(schema)
    codes, offsets = training_arrays(encoder, data)
    n = data.height
    per_epoch = max(1, math.ceil(n / opts.batch_size))
    plan = Plan(epsilon=math.inf, delta=0.0, noisy_rows=float(n), batch_size=opts.batch_size,
                sample_rate=min(1.0, opts.batch_size / max(n, 1)), planned_steps=opts.epochs * per_epoch,
                noise_multiplier=0.0, max_grad_norm=opts.max_grad_norm)
    pre = Pretraining(encoder=encoder, options=opts, plan=plan, init_seed=secrets.randbits(63),
                      codes=codes, offsets=offsets)
    result = _train(pre, private=False, clock=clock)
    params = _parameters(pre, result, clock, private=False)
    params["differentially_private"] = False
    card = GeneratorCard(
        name=f"{NAME}-nonprivate", parameters=params, library_versions=torch_versions(),
        spend=PrivacySpend(epsilon=1.0, delta=0.0), accounting="NOT differentially private (benchmark twin)",
        unit_of_privacy="none: NOT differentially private",
        domain_sources={"row count": "exact (NOT private)"},
        notes=("NOT differentially private: the spend field is a placeholder; never release or charge this",),
    )
    return FittedDiffusion(card=card, options=opts, encoder=encoder, state=result.state, noisy_rows=float(n),
                           training_stats=_training_stats(result))
