"""What the code tells, measured at every report row on a fixed held-out probe set.

The probe set (inputs, their factors, and the standard normal draws that sample each
posterior) is drawn once from the trial's seed, so successive rows differ only by the
model. Encoding runs on the device; the estimators are analysis' numpy functions
(``analysis.metrics.information``), on (n, d) arrays, except one: a factor-encoder
trial's I(f_j; z) is computed exactly, with the whole factor grid as the reference of
p(f_j | z) (``grid_factor_information``, on the device: its table is samples x 737,280).
The probe set's held-out bounds undershoot it where the code is precise: on the
README's example trial after 2,000 steps they read shape 0.23, scale 0.70, orientation
0.02, posX 1.71, posY 1.85 nats against exact values 0.52, 1.24, 0.92, 2.65 and 2.74
(``benchmarks/exact_information.py``). Orientation's information there is in no single
latent (each tells at most 0.04 nats) but in the joint code: once the precise position
latents pin a sample to one grid cell, the other latents' small shifts tell the
orientation apart, which no sample of 1,024 inputs can show (it seldom holds two inputs
of one position cell).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from analysis.contract import (
    INFO_X,
    INFO_X_POINTS,
    exact_info_key,
    factor_info_key,
    info_key,
    latent_factor_info_key,
    mean_var_key,
)
from analysis.metrics.information import factor_information_bounds, input_information, mean_variance
from trainables.data import DSprites

PROBE_SEED = 7_919  # mixed with the trial's seed: the probe set never overlaps a batch stream
INPUT_INFO_POINTS = INFO_X_POINTS  # I(x; z) bounds read this many probe inputs
GRID_ENCODE = 65_536  # grid points a block when encoding the whole grid
GRID_IMAGES = 8_192  # grid images a block (128 MiB in float32)
GRID_SAMPLES = 128  # samples a block of the samples x grid table
GRID_CELLS = 16  # cells of the non-position factors a block (of posX x posY points each)


class Probe:
    """A fixed set of ``n`` held-out inputs; ``columns(*encode(encoder))`` -> the probe columns."""

    def __init__(
        self,
        data: DSprites,
        encoder_input: str,
        n: int,
        seed: int,
        latents: int,
        grid_samples: int = 0,
    ):
        rng = np.random.default_rng([seed, PROBE_SEED])
        self.factors = data.sample_factors(n, rng)  # (n, 5) int
        f = torch.as_tensor(self.factors, device=data.device)
        image = encoder_input == "image"
        self.inputs = data.observations(self.factors) if image else data.features(f)
        self.noise = rng.standard_normal((n, latents))  # (n, d) draws of each posterior
        self.names = list(data.factor_names)
        self.sizes = list(data.factor_sizes)
        # the exact I(f_j; z): the first grid_samples probe inputs are its Monte Carlo draws
        m = min(grid_samples, n)
        self.grid = _grid_features(data) if m and encoder_input == "factors" else None
        self.grid_index = data.index_of(f[:m]) if m else None
        self.grid_noise = torch.as_tensor(self.noise[:m], dtype=torch.float32, device=data.device)

    @torch.no_grad()
    def encode(self, encoder: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        """The probe set's posteriors (mu, logvar), and for a factor-encoder trial the
        exact I(f_j; z) (k,), left on the device: no sync."""
        was = encoder.training
        encoder.eval()
        mu, logvar = encoder(self.inputs)
        encoder.train(was)
        return (mu.float(), logvar.float(), *self.exact(encoder))

    @torch.no_grad()
    def exact(self, encoder: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        """A factor-encoder trial's exact I(f_j; z) (k,) over the whole factor grid, as a
        one-tuple on the device; () for an image trial (``grid_images_information``)."""
        if self.grid is None:
            return ()
        was = encoder.training
        encoder.eval()
        parts = [encoder(x) for x in self.grid.split(GRID_ENCODE)]
        encoder.train(was)
        grid_mu = torch.cat([p[0] for p in parts]).float()
        grid_logvar = torch.cat([p[1] for p in parts]).float()
        return (
            grid_factor_information(
                grid_mu, grid_logvar, self.grid_index, self.grid_noise, self.sizes
            ),
        )

    @torch.no_grad()
    def grid_images_information(
        self,
        encoder: torch.nn.Module,
        data: DSprites,
        prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    ) -> dict[str, float]:
        """An image encoder's exact I(f_j; z) per factor (``exact/{factor}`` columns): every
        grid image encoded, ``GRID_IMAGES`` at a time (``prepare`` puts a block in the
        trial's memory format), then ``grid_factor_information`` over the probe's first
        ``grid_info_samples`` draws. {} without them. Minutes on a CPU, a second on a GPU."""
        if self.grid_index is None or not len(self.grid_index):
            return {}
        was = encoder.training
        encoder.eval()
        mus, logvars = [], []
        for s in range(0, math.prod(self.sizes), GRID_IMAGES):
            index = torch.arange(s, min(s + GRID_IMAGES, math.prod(self.sizes)), device=data.device)
            mu, logvar = encoder(prepare(data.images_at(index)))
            mus.append(mu.float())
            logvars.append(logvar.float())
        encoder.train(was)
        info = grid_factor_information(
            torch.cat(mus), torch.cat(logvars), self.grid_index, self.grid_noise, self.sizes
        )
        return {exact_info_key(f): _short(max(v, 0.0)) for f, v in zip(self.names, info.tolist())}

    def columns(
        self,
        mu: torch.Tensor | np.ndarray,
        logvar: torch.Tensor | np.ndarray,
        exact: torch.Tensor | np.ndarray | None = None,
    ) -> dict[str, float]:
        """The probe columns of the results contract from the probe set's posteriors (and
        the exact per-factor information, where ``encode`` gave it)."""
        mu, logvar = _host(mu), _host(logvar)
        m = INPUT_INFO_POINTS
        per_latent, joint = input_information(mu[:m], logvar[:m], self.noise[:m])
        # the larger of two held-out bounds: p(f | z) from the probe set's own mixture of
        # posteriors, and a Gaussian classifier's
        whole, by_latent = factor_information_bounds(
            mu, logvar, self.noise, self.factors, self.sizes, whole_code=exact is None
        )
        if exact is not None:
            whole = np.maximum(_host(exact), 0.0)  # I >= 0: a Monte Carlo mean can dip below
        row = {mean_var_key(i): _short(v) for i, v in enumerate(mean_variance(mu))}
        row.update({info_key(i): _short(v) for i, v in enumerate(per_latent)})
        row[INFO_X] = _short(joint)
        row.update({factor_info_key(f): _short(whole[j]) for j, f in enumerate(self.names)})
        for i in range(by_latent.shape[0]):
            for j, f in enumerate(self.names):
                row[latent_factor_info_key(i, f)] = _short(by_latent[i, j])
        return row


@torch.no_grad()
def grid_factor_information(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    index: torch.Tensor,
    noise: torch.Tensor,
    sizes: list[int] | tuple[int, ...],
) -> torch.Tensor:
    """Exact I(f_j; z) per factor (k,) in nats, on the device, for a code of the whole
    uniform factor grid: ``mu``, ``logvar`` (G, d) are the posteriors of every grid point
    in the official order (the last two factors varying fastest), ``index`` (M,) the
    grid points of M Monte Carlo draws and ``noise`` (M, d) their standard normal draws.

    For a draw z_a ~ q(z | x_a), p(f_j = v | z_a) is the share of the grid's mixture of
    posteriors at z_a that comes from points with f_j = v (sum_x q(z_a | x) over them,
    over the sum over all x); I(f_j; z) = ln |f_j| - mean_a -ln p(f_ja | z_a). Exact up
    to the Monte Carlo error of the M draws, and unbiased for the conditional entropy:
    no bound. log q(z | x) is a quadratic form in (z^2, z), one matmul per block, taken
    relative to each draw's own posterior density (the sum is then at least 1: no
    underflow; a point denser than that by e^60 is clipped, never met in practice,
    and one below e^-80 is floored there: exp in the denormal range is many times slower
    on a CPU, and 737,280 such terms add under 1e-29).
    """
    with torch.autocast(mu.device.type, enabled=False):  # float32 whatever the trial's precision
        return _grid_information(mu.float(), logvar.float(), index, noise.float(), sizes)


def _grid_information(mu, logvar, index, noise, sizes) -> torch.Tensor:
    g = len(mu)
    head, cell = math.prod(sizes[:-2]), sizes[-2] * sizes[-1]
    centre = mu.mean(0)
    m = mu - centre
    prec = torch.exp(-logvar)
    weights = torch.cat([-0.5 * prec, m * prec], 1).T.contiguous()  # (2d, G)
    bias = -0.5 * (m * m * prec).sum(1) - 0.5 * logvar.sum(1)  # (G,)
    zc = m[index] + noise * torch.exp(0.5 * logvar[index])  # draws, centred like m
    x = torch.cat([zc * zc, zc], 1)  # (M, 2d)
    own = (x * weights.T[index]).sum(1) + bias[index]  # log q(z_a | x_a), same constant
    factors = torch.stack(
        [(index // math.prod(sizes[j + 1 :])) % n for j, n in enumerate(sizes)], 1
    )
    ce = torch.zeros(len(sizes), dtype=torch.float64, device=mu.device)
    block = GRID_CELLS * cell
    for s in range(0, len(index), GRID_SAMPLES):
        xs, shift = x[s : s + GRID_SAMPLES], own[s : s + GRID_SAMPLES, None]
        rest = torch.empty(len(xs), head, device=mu.device)  # mass per non-position cell
        pos = torch.zeros(len(xs), cell, device=mu.device)  # mass per position
        for c0 in range(0, g, block):
            w = torch.addmm(bias[c0 : c0 + block], xs, weights[:, c0 : c0 + block])
            w = w.sub_(shift).clamp_(-80.0, 60.0).exp_().view(len(xs), -1, cell)
            rest[:, c0 // cell : c0 // cell + w.shape[1]] = w.sum(2)
            pos += w.sum(1)
        total = rest.sum(1, dtype=torch.float64)
        grids = (rest.view(len(xs), *sizes[:-2]), pos.view(len(xs), *sizes[-2:]))
        for j in range(len(sizes)):
            part, axis = (grids[0], j) if j < len(sizes) - 2 else (grids[1], j - len(sizes) + 2)
            other = [a + 1 for a in range(part.dim() - 1) if a != axis]
            marginal = part.sum(other) if other else part  # (b, |f_j|)
            mine = marginal.gather(1, factors[s : s + GRID_SAMPLES, j : j + 1])[:, 0]
            ce[j] -= (mine.double() / total).log().sum()
    return torch.log(torch.tensor(sizes, dtype=torch.float64, device=mu.device)) - ce / len(index)


_GRIDS: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}


def _grid_features(data: DSprites) -> torch.Tensor:
    """The factor encoder's input at every grid point (G, 8), on the data's device: one
    copy per device, shared by every probe (a population's members)."""
    key = (str(data.device), tuple(data.factor_sizes))
    if key not in _GRIDS:
        axes = [torch.arange(n, device=data.device) for n in data.factor_sizes]
        _GRIDS[key] = data.features(torch.cartesian_prod(*axes))
    return _GRIDS[key]


def _host(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _short(value: float) -> float:
    """Four significant digits: estimates this noisy need no more, and a row carries
    5d + 2d + 6 of them (JSON lines a third the size of full-precision floats)."""
    return float(f"{float(value):.4g}")
