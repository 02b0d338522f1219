"""Information estimators on codes whose information is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.metrics.information import (
    factor_information,
    input_information,
    latent_factor_information,
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
