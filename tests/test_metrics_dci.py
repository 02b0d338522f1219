"""The fast DCI (histogram gradient boosting, split-gain importances) against the
reference's classic ``GradientBoostingClassifier`` importances, on the same data."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.metrics import completeness, dci, disentanglement, gbt_importance
from tests.helpers import FactorData

DATA = FactorData(sizes=(3, 4, 6), names=("shape", "scale", "pos"))


def partly_disentangled(factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Six latents as a beta-VAE might learn them: two clean, one entangled, one mixed,
    two collapsed; Gaussian posterior-mean jitter."""
    x = factors / (np.asarray(DATA.factor_sizes) - 1.0)  # (n, 3) in [0, 1]
    z = np.c_[x[:, 0], x[:, 1], x[:, 2] + 0.4 * x[:, 1], 0.5 * (x[:, 0] + x[:, 2])]
    z = z + 0.08 * rng.standard_normal(z.shape)
    return np.c_[z, 0.01 * rng.standard_normal((len(z), 2))]


def rotated(factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same code seen through a fixed random rotation: entangled everywhere."""
    q = np.linalg.qr(np.random.default_rng(7).standard_normal((6, 6)))[0]
    return partly_disentangled(factors, rng) @ q


@pytest.mark.parametrize("represent", [partly_disentangled, rotated])
def test_fast_dci_agrees_with_classic_gradient_boosting(represent):
    rng = np.random.default_rng(0)
    f, ft = DATA.sample_factors(1000, rng), DATA.sample_factors(500, rng)
    z, zt = represent(f, rng), represent(ft, rng)
    r_fast, acc_fast = gbt_importance(z, f, zt, ft)
    r_classic, acc_classic = gbt_importance(z, f, zt, ft, classic=True)
    np.testing.assert_allclose(r_fast.sum(axis=0), 1.0)
    np.testing.assert_allclose(r_classic.sum(axis=0), 1.0)
    assert disentanglement(r_fast) == pytest.approx(disentanglement(r_classic), abs=0.05)
    assert completeness(r_fast) == pytest.approx(completeness(r_classic), abs=0.05)
    assert acc_fast == pytest.approx(acc_classic, abs=0.05)
    # the two agree latent by latent too, not only in the summaries
    assert np.abs(r_fast - r_classic).max() < 0.1
    fast = dci(z, f, zt, ft)
    assert fast["disentanglement"] == disentanglement(r_fast)
    assert fast["informativeness"] == acc_fast
