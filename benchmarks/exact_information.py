"""The probe's per-factor information against the exact calculation, on a trained model.

    python benchmarks/exact_information.py [--steps 2000] [--samples 2000] [--seed 0]
                                           [--curve STEPS]

Trains the README's example trial (the factor encoder q(z|f), which sees the factors,
so its posterior is known at every one of the 737,280 grid points), then computes
I(f_j; z) exactly: p(f_j | z) is the share of the whole grid's mixture of posteriors at
z that comes from grid points with that value, and H(f_j | z) its expected
cross-entropy over samples z ~ q(z | f) of random grid points (Monte Carlo over
``--samples`` draws: the only error left), written out directly in float64. Prints, per
factor, that value, the row's reading (``info/{factor}`` of the last row: the same
calculation on the device over the probe's first ``grid_info_samples`` draws), the
probe set's held-out bound (what a row read before: the mixture of the 1,024 probe
posteriors or the Gaussian classifier, the larger) and the classifier alone, and the
per-latent I(x; z_i) against its exact value. ``--curve STEPS`` also prints the exact
value and the bound every STEPS steps of training.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from analysis.contract import FACTOR_NAMES, FACTOR_SIZES, factor_info_key, info_key
from analysis.metrics.information import factor_information, factor_information_bounds
from trainables.config import TrialConfig
from trainables.trainer import Trainer

EXAMPLE = {  # the README's trial.yaml
    "objective": "capacity", "encoder": "factors", "gamma": 100.0, "c_max": 12.0,
    "c_steps": 1500, "batch_size": 32, "latent_dim": 6, "channels": 16, "hidden": 64,
    "lr": 1e-3, "report_every": 50, "eval_every": 0, "checkpoint_every": 0, "device": "cpu",
}  # fmt: skip
CHUNK = 32_768  # grid points a block when encoding the grid
BLOCK = 4_096  # grid points per block of the samples x grid density table (M x BLOCK x d)


def whole_grid(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every grid point's factors (N, 5) and posterior (mu, logvar), each (N, d)."""
    axes = [torch.arange(n) for n in FACTOR_SIZES]
    grid = torch.cartesian_prod(*axes)  # (737280, 5), in the dataset's order
    enc = trainer.model.encoder.eval()
    mus, logvars = [], []
    with torch.no_grad():
        for part in grid.split(CHUNK):
            mu, logvar = enc(trainer.data.features(part))
            mus.append(mu.float())
            logvars.append(logvar.float())
    return grid, torch.cat(mus), torch.cat(logvars)


def exact_information(grid, mu, logvar, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact I(f_j; z) per factor (k,) and I(x; z_i) per latent (d,), Monte Carlo over
    ``samples`` draws z_a ~ q(z | f_a) of uniformly drawn grid points."""
    gen = torch.Generator().manual_seed(seed)
    n, d = mu.shape
    idx = torch.randint(n, (samples,), generator=gen)
    sigma = (0.5 * logvar).exp()
    z = (mu[idx] + torch.randn(samples, d, generator=gen) * sigma[idx]).double()  # (M, d)
    offsets = torch.tensor(np.r_[0, np.cumsum(FACTOR_SIZES)[:-1]])
    values = int(sum(FACTOR_SIZES))

    def log_density(part: slice) -> torch.Tensor:  # log q(z_a,i | x_b), (M, c, d)
        m, s, lv = mu[part].double(), sigma[part].double(), logvar[part].double()
        return -0.5 * ((z[:, None] - m[None]) / s[None]) ** 2 - 0.5 * lv[None]

    parts = [slice(i, min(i + BLOCK, n)) for i in range(0, n, BLOCK)]
    top = torch.full((samples,), -math.inf, dtype=torch.float64)
    top_i = torch.full((samples, d), -math.inf, dtype=torch.float64)
    for p in parts:  # pass 1: each sample's largest weight, jointly and per latent
        dens = log_density(p)
        top = torch.maximum(top, dens.sum(-1).amax(1))
        top_i = torch.maximum(top_i, dens.amax(1))
    mass = torch.zeros(samples, values, dtype=torch.float64)  # mixture mass per value
    total_i = torch.zeros(samples, d, dtype=torch.float64)
    for p in parts:  # pass 2: the mixture's mass per factor value, and per latent
        dens = log_density(p)
        w = (dens.sum(-1) - top[:, None]).exp()  # (M, c)
        onehot = torch.zeros(p.stop - p.start, values, dtype=torch.float64)
        onehot[torch.arange(p.stop - p.start)[:, None], offsets + grid[p]] = 1.0
        mass += w @ onehot
        total_i += (dens - top_i[:, None]).exp().sum(1)
    own = mass.gather(1, offsets + grid[idx])  # (M, k)
    total = mass[:, : FACTOR_SIZES[0]].sum(1, keepdim=True)  # every value of one factor
    info = np.log(FACTOR_SIZES) - (-(own / total).log()).mean(0).numpy()
    # I(x; z_i) = E[log q(z_a,i | x_a) - log mean_b q(z_a,i | x_b)]
    own_i = log_density(idx.tolist()).diagonal(dim1=0, dim2=1).T  # (M, d)
    per_latent = (own_i - top_i - (total_i / n).log()).mean(0).numpy()
    return info, per_latent


def probe_posterior(trainer: Trainer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probe set's posteriors (mu, logvar) and draws, on the host."""
    mu, logvar = (a.cpu().numpy() for a in trainer.probe.encode(trainer.model.encoder)[:2])
    return mu, logvar, trainer.probe.noise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", type=int, default=0, help="exact and bound every N steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = TrialConfig.from_dict({**EXAMPLE, "steps": args.steps, "seed": args.seed})
    trainer = Trainer(cfg)
    row: dict = {}
    probe = trainer.probe
    while trainer.step < cfg.steps:
        row = {**trainer.train_steps(cfg.report_every), **trainer.measure()}
        if args.curve and trainer.step % args.curve == 0 and trainer.step < cfg.steps:
            exact, _ = exact_information(*whole_grid(trainer), min(args.samples, 500), args.seed)
            bound, _ = factor_information_bounds(
                *probe_posterior(trainer), probe.factors, probe.sizes
            )
            print(f"step {trainer.step} C {row['C']:.2f}  exact/bound  " + "  ".join(
                f"{f} {exact[j]:.2f}/{bound[j]:.2f}" for j, f in enumerate(FACTOR_NAMES)
            ), flush=True)  # fmt: skip
    mu_p, logvar_p, noise_p = probe_posterior(trainer)
    z_p = mu_p + noise_p * np.exp(0.5 * logvar_p)
    classifier = factor_information(z_p, probe.factors, probe.sizes)
    bound, _ = factor_information_bounds(mu_p, logvar_p, noise_p, probe.factors, probe.sizes)
    grid, mu, logvar = whole_grid(trainer)
    exact, exact_latent = exact_information(grid, mu, logvar, args.samples, args.seed)
    print(
        f"trained {cfg.steps} steps: recon {row['recon']:.1f}, KL {row['kl']:.2f}, C "
        f"{row['C']:.2f}; probe {cfg.probe_points} inputs, the row's exact value from "
        f"{cfg.grid_info_samples} of their draws; exact here from {args.samples} draws"
    )
    print(f"{'factor':<12}{'exact':>8}{'row':>8}{'bound':>8}{'classifier':>12}")
    for j, f in enumerate(FACTOR_NAMES):
        print(
            f"{f:<12}{exact[j]:8.3f}{row[factor_info_key(f)]:8.3f}{bound[j]:8.3f}"
            f"{classifier[j]:12.3f}"
        )
    print(f"{'latent':<12}{'exact':>8}{'probe':>8}   I(x; z_i)")
    for i in range(cfg.latent_dim):
        print(f"z{i:<11}{exact_latent[i]:8.3f}{row[info_key(i)]:8.3f}")


if __name__ == "__main__":
    main()
