"""Objectives in nats per image: Bernoulli reconstruction, per-latent KL, beta and capacity.

Reconstruction is summed over pixels and averaged over the batch; KL is computed per
latent in closed form against N(0, I) and averaged over the batch. Losses return
``(loss, logs)`` with tensors in ``logs``; nothing here logs or syncs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainables.config import TrialConfig


def bernoulli_recon(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels: summed over pixels, mean over the batch (nats).
    (B, 1, H, W) -> scalar; leading dimensions (a population's members) are kept."""
    nll = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
    return nll.flatten(-3).sum(-1).mean(-1)


def kl_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent, mean over the batch: (B, d) -> (d,);
    leading dimensions (a population's members) are kept."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean(-2)


def capacity(step: int, cfg: TrialConfig) -> float:
    """C(step) in nats: a pure function of the step and the schedule config."""
    if cfg.c_schedule == "constant":
        return cfg.c_max
    if cfg.c_schedule == "linear":
        frac = min(max(step, 0) / cfg.c_steps, 1.0)  # clamp: C is held after c_steps
        return cfg.c_start + (cfg.c_max - cfg.c_start) * frac
    # piecewise: linear between the given (step, C) points, held outside them
    pts = cfg.c_points
    if step <= pts[0][0]:
        return pts[0][1]
    for (s0, c0), (s1, c1) in zip(pts, pts[1:]):
        if step <= s1:
            return c0 + (c1 - c0) * (step - s0) / (s1 - s0)
    return pts[-1][1]


# The capacities (nats) at whose report rows an image trial's code is checked over every
# grid image (grid_info_images = capacity), besides each tenth of its ramp: a factor's
# switch-on read off exact values is dated only to the check, so the checks are dense
# where factors open (position and scale at C 1-8, shape and orientation at C 8-15 on the
# images protocol and the quick preset) and sparser above.
CAPACITY_CHECKS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 11.0, 15.0, 20.0, 25.0, 35.0, 50.0, 75.0)
RAMP_CHECKS = 10  # and where C reaches each tenth of the way from its start to its top
HOLD_CHECKS = 4  # and this many rows after it, log-spaced between the top and the end
STEP_CHECKS = 12  # where C does not ramp: this many rows, log-spaced from the first to the end


def capacity_check_steps(
    cfg: TrialConfig, capacities: tuple[float, ...] | None = None
) -> tuple[int, ...]:
    """The report steps (multiples of ``report_every`` before ``steps``) at which the
    schedule's C first reaches each of ``capacities`` nats. By default
    ``CAPACITY_CHECKS`` and each ``1 / RAMP_CHECKS`` of the way from C at step 0 to its
    top (the highest C at those steps), and ``HOLD_CHECKS`` steps log-spaced between the
    first reaching the top and the end, where a factor can still open. Empty where C does
    not rise (the beta objective, a constant schedule): there is no ramp to place checks
    on (``step_check_steps``)."""
    every = cfg.report_every
    if cfg.objective != "capacity" or every <= 0 or cfg.steps <= every:
        return ()
    steps = np.arange(every, cfg.steps, every, dtype=np.int64)
    c = capacity_values(cfg, steps)
    start = capacity(0, cfg)
    top = float(c.max())
    if top <= start + 1e-9:
        return ()
    if capacities is None:
        ramp = start + (top - start) * np.arange(1, RAMP_CHECKS + 1) / RAMP_CHECKS
        capacities = (*CAPACITY_CHECKS, *ramp.tolist())
        hold = int(steps[np.argmax(c >= top - 1e-9)])
        extra = _log_spaced(hold, cfg.steps, HOLD_CHECKS + 2, every)[1:]
    else:
        extra = ()
    out = set(extra)
    for target in capacities:
        if start + 1e-9 < target <= top + 1e-9:
            out.add(int(steps[np.argmax(c >= target - 1e-9)]))  # the first row reaching it
    return tuple(sorted(s for s in out if s < cfg.steps))


def step_check_steps(cfg: TrialConfig, n: int = STEP_CHECKS) -> tuple[int, ...]:
    """``n`` report steps log-spaced from the first report to the end (the end itself
    left out), rounded up to report rows: where to check a code whose C does not ramp,
    dense early, where factors open."""
    every = cfg.report_every
    if every <= 0 or cfg.steps <= every:
        return ()
    return tuple(s for s in _log_spaced(every, cfg.steps, n, every) if s < cfg.steps)


def _log_spaced(first: int, last: int, n: int, every: int) -> tuple[int, ...]:
    """``n`` steps log-spaced from ``first`` to ``last``, rounded up to multiples of
    ``every``, without repeats."""
    raw = np.geomspace(max(first, 1), max(last, 1), n)
    rows = np.ceil(raw / every - 1e-9).astype(np.int64) * every
    return tuple(sorted({int(s) for s in rows}))


def capacity_table(cfg: TrialConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """C at every step 0..cfg.steps as one float32 tensor, for indexing on the device."""
    c = capacity_values(cfg, np.arange(cfg.steps + 1, dtype=np.int64))
    return torch.from_numpy(c).to(torch.float32).to(device)


def capacity_values(cfg: TrialConfig, step: np.ndarray) -> np.ndarray:
    """C at each of ``step`` (int, (N,)) as float64: the values of ``capacity``, bit for
    bit (the same float64 operations in the same order), on all steps at once (a
    million steps in milliseconds, not seconds)."""
    if cfg.c_schedule == "constant":
        c = np.full(step.shape, float(cfg.c_max))
    elif cfg.c_schedule == "linear":
        frac = np.minimum(step / cfg.c_steps, 1.0)  # clamp: C is held after c_steps
        c = cfg.c_start + (cfg.c_max - cfg.c_start) * frac
    else:
        s = np.array([p[0] for p in cfg.c_points])  # (P,) strictly increasing
        v = np.array([p[1] for p in cfg.c_points], dtype=np.float64)
        # segment i covers s[i] < step <= s[i + 1]: the first whose end is >= step
        i = np.minimum(np.searchsorted(s[1:], step, side="left"), max(len(s) - 2, 0))
        if len(s) > 1:
            c = v[i] + (v[i + 1] - v[i]) * (step - s[i]) / (s[i + 1] - s[i])
        else:
            c = np.full(step.shape, v[0])
        c = np.where(step <= s[0], v[0], np.where(step > s[-1], v[-1], c))  # held outside
    return np.asarray(c, dtype=np.float64)


def vae_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    c: torch.Tensor | float,
    cfg: TrialConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The trial's objective at capacity ``c`` -> (loss, logs: recon, kl, kl_per_latent)."""
    recon = bernoulli_recon(logits, x)
    kl_lat = kl_per_latent(mu, logvar)
    kl = kl_lat.sum()
    loss = objective(recon, kl, c, cfg.beta, cfg.gamma, cfg.objective == "beta")
    return loss, {"recon": recon, "kl": kl, "kl_per_latent": kl_lat}


def objective(
    recon: torch.Tensor,
    kl: torch.Tensor,
    c: torch.Tensor | float,
    beta: torch.Tensor | float,
    gamma: torch.Tensor | float,
    is_beta: torch.Tensor | bool,
) -> torch.Tensor:
    """The loss: recon + beta KL (the beta objective) or recon + gamma |KL - C| (the
    capacity objective, Burgess et al. 2018 eq. 8). A trial's scalars take one branch; a
    population's (K,) tensors choose per member with ``torch.where``."""
    if isinstance(is_beta, bool):
        return recon + beta * kl if is_beta else recon + gamma * (kl - c).abs()
    return torch.where(is_beta, recon + beta * kl, recon + gamma * (kl - c).abs())


def schedule_points(cfg: TrialConfig) -> tuple[tuple[int, float], ...]:
    """Any C schedule as the (step, C) points of a piecewise-linear one (held outside)."""
    if cfg.c_schedule == "constant":
        return ((0, cfg.c_max),)
    if cfg.c_schedule == "linear":
        return ((0, cfg.c_start), (cfg.c_steps, cfg.c_max))
    return cfg.c_points


def capacity_of_points(step: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """C at each member's step, on the device: step (K,) int, points (K, P, 2) float64
    (step, C) rows padded by repeating the last -> (K,) float32. The same piecewise-linear
    function as ``capacity``, evaluated in float64 as Python evaluates that one."""
    s = step.to(torch.float64).unsqueeze(1)  # (K, 1)
    s0, s1 = points[:, :-1, 0], points[:, 1:, 0]
    c0, c1 = points[:, :-1, 1], points[:, 1:, 1]
    span = torch.where(s1 > s0, s1 - s0, torch.ones_like(s0))  # padding: zero-length
    frac = ((s - s0) / span).clamp(0.0, 1.0)
    return (points[:, 0, 1] + ((c1 - c0) * frac).sum(1)).to(torch.float32)
