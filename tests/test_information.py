"""Information estimators on codes whose information is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.contract import FACTOR_NAMES
from analysis.metrics.information import (
    _mixture_ce,
    factor_information,
    factor_information_bounds,
    input_information,
    latent_factor_information,
    marginal_factor_information,
    marginal_information,
    mean_variance,
)
from analysis.metrics.mutual_info import mutual_info_matrix
from analysis.switch_on import ACTIVE_NATS

N = 1024
SIZES = [3, 6, 40, 32, 32]


def _factors(rng: np.random.Generator, n: int = N) -> np.ndarray:
    return np.stack([rng.integers(k, size=n) for k in SIZES], axis=1)


def _kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    return 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).mean(0)


def test_constant_offset_with_sigma_not_one_has_kl_but_no_information():
    rng = np.random.default_rng(0)
    mu = np.full((N, 2), [3.0, -2.0])  # the same posterior for every input
    logvar = np.full((N, 2), [math.log(0.25), math.log(2.0)])
    per_latent, joint = input_information(mu, logvar, rng.standard_normal((N, 2)))
    assert (_kl(mu, logvar) > 1.0).all()  # KL a capacity target would count
    np.testing.assert_allclose(per_latent, 0.0, atol=1e-12)
    assert abs(joint) < 1e-12
    np.testing.assert_allclose(mean_variance(mu), 0.0)


def test_gaussian_channel_matches_closed_form():
    # means spread N(0, s^2) across inputs, posterior sd sigma: I = 0.5 ln(1 + s^2/sigma^2)
    rng = np.random.default_rng(1)
    s, sigma = 1.0, np.array([2.0, 1.0, 0.5])
    mu = rng.standard_normal((N, 1)) * s * np.ones((1, 3))
    logvar = np.log(sigma**2) * np.ones((N, 3))
    per_latent, _ = input_information(mu, logvar, rng.standard_normal((N, 3)))
    truth = 0.5 * np.log(1 + s**2 / sigma**2)  # 0.11, 0.35, 0.80 nats
    np.testing.assert_allclose(per_latent, truth, atol=0.06)
    assert (per_latent <= math.log(N) + 1e-9).all()


def test_information_is_bounded_by_log_n():
    rng = np.random.default_rng(2)
    mu = rng.standard_normal((256, 4)) * 100  # every input told apart
    per_latent, joint = input_information(
        mu, np.full((256, 4), -8.0), rng.standard_normal((256, 4))
    )
    assert joint == pytest.approx(math.log(256), abs=1e-6)
    assert (per_latent <= math.log(256) + 1e-9).all()


def test_latent_that_is_a_factor_plus_noise_tells_about_that_factor_only():
    rng = np.random.default_rng(3)
    f = _factors(rng)
    z = np.stack(
        [
            f[:, 3] / 31 * 4 - 2 + 0.05 * rng.standard_normal(N),  # posX
            f[:, 1] / 5 * 4 - 2 + 0.05 * rng.standard_normal(N),  # scale
            rng.standard_normal(N),  # noise
        ],
        axis=1,
    )
    by_latent = latent_factor_information(z, f, SIZES)  # (3, 5)
    assert by_latent[0, 3] > 2.5  # of ln 32 = 3.47
    assert by_latent[1, 1] > 1.5  # of ln 6 = 1.79
    assert np.argmax(by_latent[0]) == 3 and np.argmax(by_latent[1]) == 1
    off = np.ones_like(by_latent, bool)
    off[0, 3] = off[1, 1] = False
    assert by_latent[off].max() < 0.05
    whole = factor_information(z, f, SIZES)
    assert whole[3] > 2.5 and whole[1] > 1.5
    assert max(whole[0], whole[2], whole[4]) < 0.05


def test_classifier_bound_on_a_code_with_known_information():
    # binary factor, z = +-delta + N(0, 1): I(f; z) = H(f) - E[H(f | z)] by quadrature
    rng = np.random.default_rng(4)
    n, delta = 4000, 1.0
    f = rng.integers(2, size=(n, 1))
    z = (2 * f - 1) * delta + rng.standard_normal((n, 1))
    grid = np.linspace(-10, 10, 20001)
    p1 = np.exp(-0.5 * (grid - delta) ** 2)
    p0 = np.exp(-0.5 * (grid + delta) ** 2)
    post = p1 / (p0 + p1)
    h_post = -(post * np.log(post) + (1 - post) * np.log(1 - post))
    density = (p0 + p1) / 2 / math.sqrt(2 * math.pi)
    truth = math.log(2) - float(np.sum(h_post * density) * (grid[1] - grid[0]))  # 0.30 nats
    got = factor_information(z, f, [2])[0]
    assert truth - 0.04 < got <= truth + 0.02  # a lower bound, and a tight one here


def test_code_that_determines_a_factor_reaches_its_entropy():
    rng = np.random.default_rng(5)
    f = rng.integers(4, size=(2000, 1))
    z = f * 10.0 + 0.01 * rng.standard_normal((2000, 1))
    assert factor_information(z, f, [4])[0] == pytest.approx(math.log(4), abs=0.01)


def test_independent_code_tells_nothing():
    rng = np.random.default_rng(6)
    f = _factors(rng)
    z = rng.standard_normal((N, 4))
    assert factor_information(z, f, SIZES).max() < 0.03
    assert latent_factor_information(z, f, SIZES).max() < 0.03


def test_dead_latent_is_inactive_whatever_its_means_mi():
    # posterior means that still track posX (tiny spread) under sigma = 1: the means'
    # histogram MI calls it a posX latent; the information it carries is nil
    rng = np.random.default_rng(7)
    f = _factors(rng)
    mu = (f[:, 3:4] / 31 - 0.5) * 1e-3 + 0.8  # offset 0.8, spread 1e-3
    logvar = np.zeros((N, 1))
    assert mutual_info_matrix(mu, f)[0, 3] > 0.5  # normalized MI of the means
    per_latent, _ = input_information(mu, logvar, rng.standard_normal((N, 1)))
    assert per_latent[0] < ACTIVE_NATS / 10
    z = mu + rng.standard_normal((N, 1))
    assert latent_factor_information(z, f, SIZES).max() < 0.03


# ---- the marginal estimator against exact values ------------------------------------------

FOLD = np.array([4, 2, 1])  # square, ellipse, heart: images repeat every 90, 180, 360 degrees
SIGMA = np.array([0.3, 0.5, 0.3, 1.0, 1.0])


def _known_code(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A code of dSprites factors whose information is known by quadrature: z0 posX, z1
    scale, z2 orientation through each shape's symmetry (for one orientation the means of
    the three shapes differ: a multimodal class density), z3 a weak shape latent, z4 noise."""
    shape, scale, orient, x = f[:, 0], f[:, 1], f[:, 2], f[:, 3]
    mu = np.stack(
        [
            (x / 31 - 0.5) * 4,
            (scale / 5 - 0.5) * 2,
            1.5 * np.cos(2 * np.pi * orient * FOLD[shape] / 40),
            np.array([-0.5, 0.0, 0.5])[shape],
            np.zeros(len(f)),
        ],
        axis=1,
    )
    return mu, np.broadcast_to(2 * np.log(SIGMA), mu.shape).copy()


def _normal(z: np.ndarray, m: np.ndarray, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((z - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def _exact_information() -> dict[str, float]:
    """I(f; z) of ``_known_code`` by quadrature: 1-D for posX and scale, 2-D over
    (z2, z3) for orientation and shape; posY is coded by nothing."""
    out = {"posY": 0.0}
    z = np.linspace(-6, 6, 12001)
    for name, means, s in (
        ("posX", (np.arange(32) / 31 - 0.5) * 4, 0.3),
        ("scale", (np.arange(6) / 5 - 0.5) * 2, 0.5),
    ):
        joint = _normal(z[:, None], means[None], s) / len(means)  # p(z, v)
        post = joint / joint.sum(1, keepdims=True)
        out[name] = math.log(len(means)) + float((joint * np.log(post + 1e-300)).sum()) * (
            z[1] - z[0]
        )
    a, b = np.linspace(-3.5, 3.5, 501), np.linspace(-5.5, 5.5, 501)
    m2 = 1.5 * np.cos(2 * np.pi * np.arange(40)[:, None] * FOLD[None] / 40)  # (40, 3)
    g2 = _normal(a[:, None, None], m2[None], 0.3)  # (A, 40, 3)
    g3 = _normal(b[:, None], np.array([-0.5, 0.0, 0.5])[None], 1.0)  # (B, 3)
    joint = g2[:, None] * g3[None, :, None, :] / 120  # (A, B, 40, 3): p(z2, z3, o, s)
    cell = (a[1] - a[0]) * (b[1] - b[0])
    pz = joint.sum((2, 3))[..., None]
    for name, axis, k in (("orientation", 3, 40), ("shape", 2, 3)):
        p = joint.sum(axis)
        out[name] = math.log(k) + float((p * np.log(p / pz + 1e-300)).sum()) * cell
    return out


def test_marginal_estimate_is_close_to_the_exact_information_where_the_classifier_is_not():
    exact = _exact_information()  # posX 1.33, scale 0.52, orientation 0.49, shape 0.08
    rng = np.random.default_rng(8)
    f = _factors(rng, 2048)
    mu, logvar = _known_code(f)
    noise = rng.standard_normal(mu.shape)
    got = dict(zip(FACTOR_NAMES, marginal_factor_information(mu, logvar, noise, f, SIZES)))
    for name in FACTOR_NAMES:  # a held-out bound: close, and not far above
        assert exact[name] - 0.08 <= got[name] <= exact[name] + 0.02, (name, got, exact)
    classifier = factor_information(mu + noise * np.exp(0.5 * logvar), f, SIZES)
    assert classifier[FACTOR_NAMES.index("orientation")] < 0.2 * exact["orientation"]


def test_marginal_over_the_whole_grid_without_leaving_out_is_the_exact_calculation():
    # every (shape, orientation) cell 10 times, each with its own draw: the mixture over
    # the rows is q(z) itself, so only Monte Carlo error remains
    cells = np.stack(np.meshgrid(np.arange(3), np.arange(40), indexing="ij"), -1).reshape(-1, 2)
    rows = np.repeat(cells, 10, axis=0)  # (1200, 2)
    f = np.zeros((len(rows), 5), np.int64)
    f[:, 0], f[:, 2] = rows[:, 0], rows[:, 1]
    mu, logvar = _known_code(f)
    mu, logvar = mu[:, 2:4], logvar[:, 2:4]  # the two latents that tell orientation and shape
    noise = np.random.default_rng(9).standard_normal(mu.shape)
    got = marginal_factor_information(mu, logvar, noise, f[:, [0, 2]], [3, 40], False)
    exact = _exact_information()
    assert got[0] == pytest.approx(exact["shape"], abs=0.03)
    assert got[1] == pytest.approx(exact["orientation"], abs=0.05)


def test_marginal_estimate_of_a_code_that_tells_nothing_is_nil():
    rng = np.random.default_rng(10)
    f = _factors(rng)
    mu = np.full((N, 3), 0.7)  # every input the same posterior, sigma != 1
    logvar = np.full((N, 3), -1.0)
    whole, per_latent = marginal_information(mu, logvar, rng.standard_normal((N, 3)), f, SIZES)
    assert whole.max() < 0.03 and per_latent.max() < 0.03


def test_marginal_estimate_of_a_code_that_determines_a_factor_reaches_its_entropy():
    rng = np.random.default_rng(11)
    f = _factors(rng)
    mu = f[:, 1:2] * 10.0  # scale, told exactly
    whole, per_latent = marginal_information(
        mu, np.full((N, 1), -4.0), rng.standard_normal((N, 1)), f, SIZES
    )
    assert whole[1] == pytest.approx(math.log(6), abs=0.01)
    assert per_latent[0, 1] == pytest.approx(math.log(6), abs=0.01)
    assert max(whole[0], whole[2], whole[3], whole[4]) < 0.03


def test_a_precise_rotated_position_code_is_read_by_the_widened_mixture_and_the_classifier():
    # z = (posX + posY, posX - posY, scale) with sigma 0.01: the code determines position
    # (I = ln 32 per axis), but no other probe input sits within a posterior's width of a
    # sample, so the posterior mixture itself (width 0) reads nothing
    rng = np.random.default_rng(12)
    f = _factors(rng)
    x, y = f[:, 3] / 31 * 4, f[:, 4] / 31 * 4
    mu = np.stack([x + y, x - y, f[:, 1] / 5 * 2], 1)
    logvar = np.full(mu.shape, 2 * math.log(0.01))
    noise = rng.standard_normal(mu.shape)
    whole = np.ones((1, 3))  # the whole code as one subset
    at_zero = np.log(SIZES) - _mixture_ce(mu, logvar, noise, f, whole, True, (0.0,))[0, 0]
    assert max(at_zero[3], at_zero[4]) < 0.1
    widened = marginal_factor_information(mu, logvar, noise, f, SIZES)
    assert min(widened[3], widened[4]) > 2.5
    best, _ = factor_information_bounds(mu, logvar, noise, f, SIZES)
    assert best[3] == pytest.approx(math.log(32), abs=0.1)
    assert best[4] == pytest.approx(math.log(32), abs=0.1)
    assert best[1] == pytest.approx(math.log(6), abs=0.02)
