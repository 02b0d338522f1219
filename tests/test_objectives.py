"""Objectives against closed forms: KL, Bernoulli NLL, C schedules, the capacity gradient."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.config import TrialConfig
from trainables.objectives import (
    bernoulli_recon,
    capacity,
    capacity_check_steps,
    capacity_table,
    kl_per_latent,
    step_check_steps,
    vae_loss,
)


def test_kl_of_known_gaussians():
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2, per latent, batch-averaged
    mu = torch.tensor([[0.0, 1.0, -2.0], [0.0, 3.0, -2.0]])
    var = torch.tensor([[1.0, 1.0, 0.25], [1.0, 1.0, 4.0]])
    kl = kl_per_latent(mu, var.log())
    want = [
        0.0,
        (0.5 * (1 + 0) + 0.5 * (9 + 0)) / 2,
        (0.5 * (4 + 0.25 - 1 - math.log(0.25)) + 0.5 * (4 + 4 - 1 - math.log(4))) / 2,
    ]
    assert kl.tolist() == pytest.approx(want, rel=1e-6)


def test_recon_is_summed_over_pixels_in_nats():
    x = torch.zeros(2, 1, 64, 64)
    x[0, 0, :32] = 1
    logits = torch.zeros_like(x)  # p = 1/2 everywhere: log 2 nats per pixel
    assert bernoulli_recon(logits, x).item() == pytest.approx(4096 * math.log(2), rel=1e-6)


@pytest.mark.parametrize(
    ("step", "want"), [(-5, 2.0), (0, 2.0), (50, 12.0), (100, 22.0), (101, 22.0), (10**6, 22.0)]
)
def test_linear_schedule_before_at_and_after_its_end(step, want):
    cfg = TrialConfig(c_start=2.0, c_max=22.0, c_steps=100)
    assert capacity(step, cfg) == pytest.approx(want)


def test_the_default_schedule_climbs_linearly_then_holds():
    cfg = TrialConfig()  # the paper's values are asserted once, in test_config
    assert capacity(cfg.c_steps // 2, cfg) == pytest.approx((cfg.c_start + cfg.c_max) / 2)
    assert capacity(cfg.c_steps, cfg) == capacity(cfg.c_steps * 3 // 2, cfg) == cfg.c_max


def test_constant_and_piecewise_schedules():
    assert capacity(0, TrialConfig(c_schedule="constant", c_max=7)) == 7.0
    assert capacity(10**6, TrialConfig(c_schedule="constant", c_max=7)) == 7.0
    cfg = TrialConfig(
        c_schedule="piecewise", c_points=((10, 1.0), (20, 5.0), (40, 5.0), (50, 10.0))
    )
    got = [capacity(s, cfg) for s in (0, 10, 15, 20, 30, 40, 45, 50, 60)]
    assert got == pytest.approx([1, 1, 3, 5, 5, 5, 7.5, 10, 10])


def test_capacity_checks_sit_on_the_first_report_row_reaching_each_capacity():
    # linear 0 -> 20 over 20,000 steps, a row every 1,000: C = 1 nat per row
    cfg = TrialConfig(c_max=20.0, c_steps=20_000, steps=25_000, report_every=1000)
    assert capacity_check_steps(cfg, (1.0, 2.5, 20.0, 30.0)) == (1000, 3000, 20_000)
    # the default: CAPACITY_CHECKS (1-6, 8, 11, 15, 20), each tenth of the ramp (2-20), and
    # four rows log-spaced over the hold (20,000 -> 25,000: 20.9k, 21.9k, 22.9k, 24.0k up)
    assert capacity_check_steps(cfg) == tuple(
        1000 * c for c in (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 14, 15, 16, 18, 20, 21, 22, 23, 24)
    )
    # a small ramp is checked at its tenths: 0 -> 1 nat over 10 rows, one a row
    small = TrialConfig(c_max=1.0, c_steps=1000, steps=2000, report_every=100)
    assert capacity_check_steps(small) == (*range(100, 1001, 100), 1200, 1400, 1600, 1800)
    # piecewise: held at 1 to step 10, 5 at step 20, held, 10 at step 50; rows every 5
    piece = TrialConfig(
        c_schedule="piecewise",
        c_points=((10, 1.0), (20, 5.0), (40, 5.0), (50, 10.0)),
        steps=60,
        report_every=5,
    )
    assert capacity_check_steps(piece, (2.0, 3.0, 4.9, 5.0, 6.0, 10.0)) == (15, 20, 45, 50)
    # no ramp, nothing to place checks on: a constant C, the beta objective, the last row
    assert capacity_check_steps(TrialConfig(c_schedule="constant", c_max=7.0)) == ()
    assert capacity_check_steps(TrialConfig(objective="beta")) == ()
    assert (
        capacity_check_steps(TrialConfig(c_max=5.0, c_steps=100, steps=100, report_every=100)) == ()
    )


def test_without_a_ramp_checks_are_log_spaced_in_the_step_dense_early():
    cfg = TrialConfig(objective="beta", steps=100_000, report_every=1000)
    # 1,000 * 100 ** (k / 11) rounded up to a report row; the end is checked anyway
    want = (1000, 2000, 3000, 4000, 6000, 9000, 13_000, 19_000, 29_000, 44_000, 66_000)
    assert step_check_steps(cfg) == want
    assert step_check_steps(TrialConfig(steps=40, report_every=10)) == (10, 20, 30)
    assert step_check_steps(TrialConfig(steps=10, report_every=10)) == ()


SCHEDULES = {
    "linear": dict(c_start=2.0, c_max=22.0, c_steps=37),
    "linear, held": dict(c_start=0.5, c_max=3.3, c_steps=7),
    "linear, not reached": dict(c_max=25.0, c_steps=1000),
    "constant": dict(c_schedule="constant", c_max=7.3),
    "piecewise": dict(c_schedule="piecewise", c_points=((0, 0.0), (13, 2.1), (29, 6.7))),
    "piecewise, late start": dict(
        c_schedule="piecewise", c_points=((10, 1.0), (20, 5.0), (40, 5.0), (50, 10.0))
    ),
    "piecewise, one point": dict(c_schedule="piecewise", c_points=((17, 3.3),)),
    "piecewise, beyond the end": dict(c_schedule="piecewise", c_points=((5, 1.0), (500, 9.0))),
}


@pytest.mark.parametrize("kind", SCHEDULES)
def test_capacity_table_is_capacity_at_every_step(kind):
    cfg = TrialConfig(steps=60, **SCHEDULES[kind])
    table = capacity_table(cfg)
    assert table.dtype == torch.float32 and table.shape == (61,)
    # bit for bit the values of the scalar schedule (what the table was once built from)
    want = torch.tensor([capacity(s, cfg) for s in range(61)])
    assert torch.equal(table, want)


@pytest.mark.parametrize("kind", ["linear", "constant", "piecewise"])
def test_a_million_step_table_is_built(kind):
    kw = {
        "linear": dict(c_start=1.0, c_max=25.0, c_steps=100_000),
        "constant": dict(c_schedule="constant", c_max=4.0),
        "piecewise": dict(
            c_schedule="piecewise", c_points=((0, 0.0), (250_000, 5.0), (750_000, 25.0))
        ),
    }[kind]
    cfg = TrialConfig(steps=1_000_000, **kw)
    table = capacity_table(cfg)
    assert table.shape == (1_000_001,)
    steps = [0, 1, 50_000, 99_999, 100_000, 250_000, 500_000, 999_999, 1_000_000]
    want = torch.tensor([capacity(s, cfg) for s in steps])
    assert torch.equal(table[steps], want)
    closed = {  # C(step) written out: linear then held; constant; two ramps then held
        "linear": lambda s: 1.0 + 24.0 * min(s / 100_000, 1.0),
        "constant": lambda s: 4.0,
        "piecewise": lambda s: (
            (5.0 * s / 250_000 if s <= 250_000 else 5.0 + 20.0 * (s - 250_000) / 500_000)
            if s <= 750_000
            else 25.0
        ),
    }[kind]
    assert table[steps].tolist() == pytest.approx([closed(s) for s in steps], rel=1e-6)


@pytest.mark.parametrize(("kl_above", "sign"), [(True, 1.0), (False, -1.0)])
def test_capacity_gradient_pushes_kl_towards_c(kl_above, sign):
    # d loss / d mu = gamma * sign(KL - C) * dKL/dmu; with mu > 0, dKL/dmu = mu > 0
    mu = torch.full((4, 2), 1.0, requires_grad=True)  # KL = 0.5 per latent: total 1.0
    logvar = torch.zeros(4, 2)
    x = torch.zeros(4, 1, 2, 2)
    c = 0.5 if kl_above else 1.5
    cfg = TrialConfig(objective="capacity", gamma=1000.0)
    loss, logs = vae_loss(torch.zeros_like(x), x, mu, logvar, c, cfg)
    assert logs["kl"].item() == pytest.approx(1.0)
    loss.backward()
    assert torch.all(torch.sign(mu.grad) == sign)
    assert mu.grad.abs().sum().item() == pytest.approx(1000.0 * 1.0 * 2, rel=1e-5)


def test_beta_loss_is_recon_plus_beta_kl():
    mu, logvar = torch.ones(3, 4), torch.zeros(3, 4)
    x = torch.ones(3, 1, 2, 2)
    logits = torch.zeros_like(x)
    loss, logs = vae_loss(logits, x, mu, logvar, 0.0, TrialConfig(objective="beta", beta=4.0))
    assert logs["kl_per_latent"].shape == (4,)
    assert loss.item() == pytest.approx(logs["recon"].item() + 4.0 * 2.0)
