"""The exact per-factor information over the whole factor grid (trainables.probe):
against quadrature, against closed-form answers, and as the factor encoder's rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analysis.contract import FACTOR_NAMES, FACTOR_SIZES, exact_info_key, factor_info_key
from analysis.metrics.information import factor_information_bounds
from tests.test_information import _exact_information, _known_code
from trainables.config import ConfigError, TrialConfig
from trainables.data import DSprites
from trainables.probe import Probe, grid_factor_information
from trainables.trainer import Trainer

SIZES = list(FACTOR_SIZES)
GRID = np.stack(np.meshgrid(*[np.arange(n) for n in SIZES], indexing="ij"), -1).reshape(-1, 5)


def _draws(m: int, seed: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(len(GRID), (m,), generator=gen), torch.randn(m, d, generator=gen)


def _brute_force(
    mu: np.ndarray,
    logvar: np.ndarray,
    index: np.ndarray,
    noise: np.ndarray,
    sizes: list[int] = SIZES,
    grid: np.ndarray = GRID,
) -> np.ndarray:
    """The same Monte Carlo mean written out: log q(z_a | x) for every grid point in
    float64, p(f_j | z_a) by summing the grid's mixture per value."""
    sigma = np.exp(0.5 * logvar)
    z = mu[index] + noise * sigma[index]
    out = np.zeros(len(SIZES))
    for a in range(len(index)):
        log_q = (-0.5 * ((z[a] - mu) / sigma) ** 2 - 0.5 * logvar).sum(1)
        w = np.exp(log_q - log_q.max())
        for j, n in enumerate(sizes):
            mass = np.bincount(grid[:, j], weights=w, minlength=n)
            out[j] -= math.log(mass[grid[index[a], j]] / mass.sum())
    return np.log(sizes) - out / len(index)


def test_exact_information_of_a_code_known_by_quadrature_orientation_and_shape_included():
    # posX 1.33, scale 0.52, orientation 0.49 (multimodal: the shapes' symmetries),
    # shape 0.08, posY 0 nats; 2,048 draws leave a Monte Carlo error of a few hundredths
    mu, logvar = (torch.as_tensor(a, dtype=torch.float32) for a in _known_code(GRID))
    index, noise = _draws(2048, 0, mu.shape[1])
    got = dict(zip(FACTOR_NAMES, grid_factor_information(mu, logvar, index, noise, SIZES).tolist()))
    exact = _exact_information()
    for name in FACTOR_NAMES:
        assert got[name] == pytest.approx(exact[name], abs=0.05), (name, got, exact)


def test_information_only_the_joint_code_holds_is_read_in_full():
    # one precise latent: posX in steps of 0.13, each orientation shifting it by up to
    # 0.12 more; z determines (posX, orientation), and tells nothing about the rest
    f = GRID
    mu = np.stack([f[:, 3] * 0.13 + f[:, 2] * 0.003, np.zeros(len(f))], 1)
    logvar = np.broadcast_to(2 * np.log([1e-4, 1.0]), mu.shape).copy()
    index, noise = _draws(512, 1, 2)
    got = grid_factor_information(
        torch.as_tensor(mu).float(), torch.as_tensor(logvar).float(), index, noise, SIZES
    )
    want = [0.0, 0.0, math.log(40), math.log(32), 0.0]
    assert got.tolist() == pytest.approx(want, abs=1e-3)
    # a held-out sample of 1,024 inputs reads little of it: two inputs seldom share a cell
    probe = index[:1024].numpy()
    bound, _ = factor_information_bounds(mu[probe], logvar[probe], noise.numpy(), f[probe], SIZES)
    assert bound[2] < 0.5 * math.log(40)


def test_matches_the_calculation_written_out_in_float64():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(8, 3))
    feats = np.c_[GRID / (np.array(SIZES) - 1), np.cos(GRID[:, 2] * 0.3)]  # (G, 6)
    mu = np.tanh(feats @ rng.normal(size=(6, 8)) * 2) @ w
    logvar = np.log(0.05 + 0.3 * (feats[:, :3] @ rng.random((3, 3))))
    index, noise = _draws(48, 3, 3)
    got = grid_factor_information(
        torch.as_tensor(mu).float(), torch.as_tensor(logvar).float(), index, noise, SIZES
    )
    want = _brute_force(mu, logvar, index.numpy(), noise.numpy().astype(np.float64))
    assert got.numpy() == pytest.approx(want, abs=2e-3)
    assert (want[1:3] > 0.05).all()  # scale and orientation are told: not a trivial answer


def test_a_factor_encoder_row_carries_the_exact_information_of_its_draws():
    cfg = TrialConfig.from_dict(
        {"objective": "capacity", "encoder": "factors", "gamma": 100.0, "c_max": 12.0,
         "c_steps": 300, "steps": 200, "batch_size": 32, "latent_dim": 4, "channels": 8,
         "hidden": 32, "lr": 1e-3, "report_every": 100, "eval_every": 0,
         "checkpoint_every": 0, "device": "cpu", "probe_points": 256, "grid_info_samples": 32}
    )  # fmt: skip
    trainer = Trainer(cfg)
    trainer.train_steps(200)
    row = trainer.measure()
    axes = [torch.arange(n) for n in SIZES]
    with torch.no_grad():
        mu, logvar = trainer.model.encoder.eval()(
            trainer.data.features(torch.cartesian_prod(*axes))
        )
    probe = trainer.probe
    want = _brute_force(
        mu.double().numpy(), logvar.double().numpy(), probe.grid_index.numpy(), probe.noise[:32]
    )
    got = [row[factor_info_key(f)] for f in FACTOR_NAMES]
    assert got == pytest.approx(np.maximum(want, 0), abs=2e-3)
    assert max(got) > 0.1  # 200 steps have started coding


def test_an_image_encoder_row_keeps_the_probe_bound():
    cfg = TrialConfig.from_dict(
        {"steps": 10, "latent_dim": 3, "channels": 8, "hidden": 32, "report_every": 10,
         "eval_every": 0, "checkpoint_every": 0, "device": "cpu", "probe_points": 64}
    )  # fmt: skip
    assert Trainer(cfg).probe.grid is None


class _FactorPixels(DSprites):
    """Stand-in images: the five factor indices as five pixels, (B, 1, 1, 5)."""

    def images(self, factors: torch.Tensor) -> torch.Tensor:
        return factors.float().view(-1, 1, 1, 5)


class _KnownCodeEncoder(torch.nn.Module):
    """Reads the factors back from ``_FactorPixels`` and encodes them with the known code."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = _known_code(x.view(-1, 5).long().numpy())
        return torch.as_tensor(mu).float(), torch.as_tensor(logvar).float()


def test_an_image_encoders_exact_information_encodes_every_grid_image_in_order():
    # the known code read from images: equal to the calculation on the code itself, and
    # near quadrature's values (orientation 0.49 and shape 0.08 included)
    data = _FactorPixels()
    probe = Probe(data, "image", 512, seed=3, latents=5, grid_samples=512)
    got = probe.grid_images_information(_KnownCodeEncoder(), data)
    mu, logvar = (torch.as_tensor(a).float() for a in _known_code(GRID))
    direct = grid_factor_information(mu, logvar, probe.grid_index, probe.grid_noise, SIZES)
    assert [got[exact_info_key(f)] for f in FACTOR_NAMES] == pytest.approx(
        np.maximum(direct.numpy(), 0), abs=1e-3
    )
    exact = _exact_information()
    for name in FACTOR_NAMES:
        assert got[exact_info_key(name)] == pytest.approx(exact[name], abs=0.1), name


class _RandomImages(DSprites):
    """A small grid (3 x 2 x 4 x 4 x 4 = 384 points) of fixed random binary images."""

    def __init__(self) -> None:
        super().__init__("cpu", (3, 2, 4, 4, 4))
        gen = torch.Generator().manual_seed(0)
        self.table = (torch.rand(self.num_images, 1, 64, 64, generator=gen) < 0.2).float()

    def images(self, factors: torch.Tensor) -> torch.Tensor:
        return self.table[self.index_of(factors)]


CHECKED_AT = {  # grid_info_images, objective -> the steps whose rows carry exact values
    ("end", "beta"): [40],
    ("eval", "beta"): [20, 40],
    ("capacity", "beta"): [10, 20, 30, 40],  # no ramp: log-spaced steps (every row here)
    # C 0 -> 5 over 40 steps, rows at 1.25/2.5/3.75 nats: each reaches a tenth of the ramp
    ("capacity", "capacity"): [10, 20, 30, 40],
}


@pytest.mark.parametrize(("when", "objective"), list(CHECKED_AT))
def test_an_image_trial_reports_the_exact_information_where_asked(when, objective):
    data = _RandomImages()
    cfg = TrialConfig.from_dict(
        {"objective": objective, "beta": 1.0, "gamma": 10.0, "c_max": 5.0, "c_steps": 40,
         "steps": 40, "batch_size": 16, "latent_dim": 3,
         "channels": 4, "hidden": 16, "lr": 2e-3, "report_every": 10, "eval_every": 20,
         "eval_points": 64, "checkpoint_every": 0, "device": "cpu", "probe_points": 64,
         "grid_info_samples": 24, "grid_info_images": when}
    )  # fmt: skip
    trainer = Trainer(cfg, data)
    rows: list[dict] = []
    trainer.run(on_report=lambda row, due: rows.append(dict(row)))
    keys = [exact_info_key(f) for f in FACTOR_NAMES]
    with_exact = [r["step"] for r in rows if keys[0] in r]
    assert with_exact == CHECKED_AT[when, objective]
    with torch.no_grad():
        images = data.table.contiguous(memory_format=torch.channels_last)
        mu, logvar = trainer.model.encoder.eval()(images)
    probe = trainer.probe
    sizes = list(data.factor_sizes)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, 5)
    want = _brute_force(
        mu.double().numpy(), logvar.double().numpy(), probe.grid_index.numpy(),
        probe.noise[:24], sizes=sizes, grid=grid,
    )  # fmt: skip
    assert [rows[-1][k] for k in keys] == pytest.approx(np.maximum(want, 0), abs=2e-3)


def test_grid_info_images_auto_is_off_on_a_cpu_and_a_bad_value_is_refused():
    cfg = TrialConfig.from_dict(
        {"steps": 10, "latent_dim": 3, "channels": 4, "hidden": 16, "report_every": 10,
         "eval_every": 0, "checkpoint_every": 0, "device": "cpu", "probe_points": 64}
    )  # fmt: skip
    assert cfg.grid_info_images == "auto"
    assert Trainer(cfg, _RandomImages()).grid_information(final=True) == {}
    with pytest.raises(ConfigError, match="grid_info_images"):
        TrialConfig.from_dict({"grid_info_images": "always"})


def test_on_cuda_auto_checks_where_c_reaches_each_capacity_and_each_tenth_of_the_ramp():
    from trainables.objectives import step_check_steps
    from trainables.trainer import _grid_schedule

    cuda = torch.device("cuda")  # resolved, not used: no GPU needed
    burgess = TrialConfig(c_max=25.0, c_steps=100_000, steps=300_000, report_every=1000)
    when, checks = _grid_schedule(burgess, cuda)
    want = {1, 2, 2.5, 3, 4, 5, 6, 7.5, 8, 10, 11, 12.5, 15, 17.5, 20, 22.5, 25}
    hold = {125_000, 156_000, 194_000, 241_000}  # log-spaced from 100,000 to 300,000
    assert when == "capacity" and checks == {int(4000 * c) for c in want} | hold  # 4k a nat
    assert _grid_schedule(burgess, torch.device("cpu")) == ("off", frozenset())
    beta = TrialConfig(objective="beta", steps=100_000, report_every=1000)  # no ramp
    assert _grid_schedule(beta, cuda) == ("capacity", frozenset(step_check_steps(beta)))
    factors = TrialConfig(encoder="factors")  # its rows are exact already
    assert _grid_schedule(factors, cuda) == ("off", frozenset())
