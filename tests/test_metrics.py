"""Disentanglement metrics on representations whose answer is known.

The dataset's observations are its factors, so ``represent`` decides exactly what the
codes know: the factors themselves, constants, noise, duplicates, mixtures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from analysis.contract import METRICS, mi_key
from analysis.metrics import (
    DEFAULT,
    FAST,
    GroundTruthData,
    Sizes,
    beta_vae_score,
    dci,
    discrete_entropy,
    evaluate,
    factor_vae_score,
    histogram_discretize,
    mi_columns,
    mi_from_columns,
    mig,
    mutual_info_matrix,
    sap,
)
from analysis.metrics.beta_vae import training_set
from analysis.metrics.mutual_info import discrete_mutual_info
from tests.helpers import FactorData


def identity(obs):
    return obs.astype(float)


def constant(obs):
    return np.zeros((len(obs), 3))


def duplicated(obs):
    return np.repeat(obs.astype(float), 2, axis=1)  # z0 = z1 = f0, z2 = z3 = f1, ...


class Noise:
    """Codes independent of the factors."""

    def __init__(self, d=3, seed=0):
        self.d, self.rng = d, np.random.default_rng(seed)

    def __call__(self, obs):
        return self.rng.standard_normal((len(obs), self.d))


# Small enough to keep the file fast, large enough for stable scores.
SMALL = Sizes(
    num_train=2000,
    num_test=1000,
    beta_vae_train=400,
    beta_vae_eval=200,
    factor_vae_train=400,
    factor_vae_eval=200,
    factor_vae_variance=1000,
)


def arrays(represent, n=2000, seed=0, data=None):
    """Codes and factors of n fresh points."""
    data = data or FactorData()
    f = data.sample_factors(n, np.random.default_rng(seed))
    return represent(f), f


def train_test(represent, data=None):
    z, f = arrays(represent, 2000, 0, data)
    zt, ft = arrays(represent, 1000, 1, data)
    return z, f, zt, ft


def sampled(score, represent, data=None, **sizes):
    return score(data or FactorData(), represent, np.random.default_rng(0), **sizes)


# --- closed forms -------------------------------------------------------------------


def test_entropy_of_uniform_three_way_factor_is_log_3():
    f = np.array([[0], [1], [2]] * 5)
    assert discrete_entropy(f)[0] == pytest.approx(math.log(3), abs=1e-12)


def test_mutual_info_matches_sklearn_and_its_bounds():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, (500, 3))
    y = np.stack([x[:, 0] % 3, rng.integers(0, 4, 500)], axis=1)
    m = discrete_mutual_info(x, y)
    for i in range(3):
        for j in range(2):
            assert m[i, j] == pytest.approx(mutual_info_score(y[:, j], x[:, i]), abs=1e-12)
    # x0 determines y0, so I(x0; y0) = H(y0)
    assert m[0, 0] == pytest.approx(discrete_entropy(y)[0], abs=1e-12)


def test_histogram_discretize_is_the_references_rule():
    rng = np.random.default_rng(0)
    z = np.c_[rng.normal(size=300), rng.exponential(size=300), np.full(300, 4.2)]
    binned = histogram_discretize(z, 20)
    for i in range(3):
        want = np.digitize(z[:, i], np.histogram(z[:, i], 20)[1][:-1])
        np.testing.assert_array_equal(binned[:, i], want)
    assert binned[:, :2].min() == 1 and binned[:, :2].max() == 20
    assert np.all(binned[:, 2] == binned[0, 2])  # a constant latent is one bin


def test_mig_of_exact_codes_is_one_and_of_a_duplicated_code_is_zero():
    f = np.array([[a, b] for a in range(4) for b in range(3)] * 10)
    assert mig(f.astype(float), f) == pytest.approx(1.0)
    # both latents copy factor a: gap 0 for a; b is coded by no latent: gap 0
    assert mig(np.c_[f[:, 0], f[:, 0]].astype(float), f) == pytest.approx(0.0)
    # a single latent: the second-best MI counts as 0
    assert mig(f[:, :1].astype(float), f) == pytest.approx(0.5)


def test_dci_of_hand_built_importance_matrices():
    from analysis.metrics import completeness, disentanglement

    eye = np.eye(3)
    assert disentanglement(eye) == pytest.approx(1.0)
    assert completeness(eye) == pytest.approx(1.0)
    # one latent covers two factors equally: useless for disentanglement, complete
    both = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert disentanglement(both) == pytest.approx(0.0, abs=1e-6)
    assert completeness(both) == pytest.approx(1.0, abs=1e-6)
    # z0 codes f0 only, z1 codes both: D = (1 * 1 + 0 * 2) / 3, C = (0 * 2 + 1 * 1) / 3
    r = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert disentanglement(r) == pytest.approx(1 / 3, abs=1e-6)
    assert completeness(r) == pytest.approx(1 / 3, abs=1e-6)
    assert disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-6)
    assert disentanglement(np.zeros((3, 2))) == 0.0 == completeness(np.zeros((3, 2)))


def test_dci_of_a_code_that_covers_two_factors_equally():
    data = FactorData(sizes=(4, 4), names=("a", "b"))

    def packed(obs):  # z0 = 4 a + b carries both factors, z1 carries nothing
        return np.c_[4.0 * obs[:, 0] + obs[:, 1], np.zeros(len(obs))]

    scores = dci(*train_test(packed, data))
    assert scores["disentanglement"] < 0.05
    assert scores["completeness"] > 0.95
    assert scores["informativeness"] > 0.99


# --- known representations ------------------------------------------------------------


def test_identity_codes_score_high_everywhere():
    z, f, zt, ft = train_test(identity)
    assert mig(z, f) >= 0.9
    assert sampled(beta_vae_score, identity, num_train=400, num_eval=200) >= 0.9
    assert sampled(factor_vae_score, identity, num_train=400, num_eval=200) >= 0.9
    scores = dci(z, f, zt, ft)
    assert scores["disentanglement"] >= 0.9
    assert scores["completeness"] >= 0.9
    assert scores["informativeness"] >= 0.99


def test_sap_where_its_answer_is_known():
    # Binary factors coded exactly: the right latent is always right, the others are at
    # chance (0.5), so each factor's gap is 0.5.
    data = FactorData(sizes=(2, 2, 2), names=("a", "b", "c"))
    assert sap(*train_test(identity, data)) == pytest.approx(0.5, abs=0.05)
    # Each binary factor coded twice: no gap.
    assert sap(*train_test(duplicated, data)) == pytest.approx(0.0, abs=0.02)
    # Exact codes of many-valued factors: a 1-d linear classifier cannot pick out middle
    # values, so SAP sits well below 1 but far above codes that know nothing.
    assert 0.3 < sap(*train_test(identity)) < 0.9


def test_constant_codes_score_zero_chance_or_undefined():
    z, f, zt, ft = train_test(constant)
    assert mig(z, f) == 0.0
    assert sap(z, f, zt, ft) == 0.0
    scores = dci(z, f, zt, ft)
    assert scores["disentanglement"] == 0.0 == scores["completeness"]
    assert scores["informativeness"] < 1 / 3 + 0.05  # guessing the commonest value
    assert np.isnan(sampled(factor_vae_score, constant))  # every latent pruned: undefined
    chance = 1 / 3  # three factors to tell apart from all-zero features
    assert sampled(beta_vae_score, constant, num_train=200, num_eval=400) == pytest.approx(
        chance, abs=0.08
    )


def test_noise_scores_low():
    z, f, zt, ft = train_test(Noise())
    assert mig(z, f) < 0.05
    assert sap(z, f, zt, ft) < 0.05
    scores = dci(z, f, zt, ft)
    assert scores["disentanglement"] < 0.1 and scores["completeness"] < 0.1
    assert scores["informativeness"] < 0.4
    chance = 1 / 3
    assert sampled(beta_vae_score, Noise(), num_train=400, num_eval=400) < chance + 0.1
    assert sampled(factor_vae_score, Noise(), num_train=400, num_eval=400) < chance + 0.1


def test_duplicated_latents_drive_mig_down():
    z, f = arrays(identity)
    zd, fd = arrays(duplicated)
    assert mig(z, f) > 0.9
    assert mig(zd, fd) < 0.05
    # duplicating one latent costs exactly that factor's share
    partial = np.c_[z, z[:, :1]]
    assert mig(partial, f) == pytest.approx(mig(z, f) * 2 / 3, abs=0.02)


def test_beta_vae_pairs_share_the_fixed_factor():
    data = FactorData()
    x, y = training_set(data, identity, np.random.default_rng(0), 16, 300)
    assert x.shape == (300, 3) and set(y) == {0, 1, 2}
    # with exact codes the fixed factor's mean difference is 0, the others' are not
    assert np.all(x[np.arange(300), y] == 0)
    others = np.ones_like(x, dtype=bool)
    others[np.arange(300), y] = False
    assert np.all(x[others] > 0)


# --- invariances ------------------------------------------------------------------------


def test_mig_is_invariant_to_permuting_and_affinely_rescaling_latents():
    z, f = arrays(lambda o: identity(o) + 0.3 * np.random.default_rng(1).normal(size=o.shape))
    base = mig(z, f)
    assert mig(z[:, [2, 0, 1]], f) == pytest.approx(base, abs=1e-12)
    assert mig(z * np.array([10.0, 0.01, 3.0]) + 5.0, f) == pytest.approx(base, abs=1e-9)
    np.testing.assert_allclose(
        mutual_info_matrix(z[:, [2, 0, 1]], f), mutual_info_matrix(z, f)[[2, 0, 1]]
    )


def test_factor_vae_is_invariant_to_permuting_and_rescaling_latents():
    def noisy(perm, scale=1.0):  # the same noise stream on every run
        noise = Noise(3, seed=2)
        return lambda o: (identity(o) + 1.5 * noise(o))[:, perm] * scale

    base = sampled(factor_vae_score, noisy([0, 1, 2]))
    assert 0.5 < base < 1.0
    assert sampled(factor_vae_score, noisy([1, 2, 0])) == base
    assert sampled(factor_vae_score, noisy([0, 1, 2], np.array([100.0, 0.5, 3.0]))) == base


def test_dci_and_sap_are_invariant_to_permuting_latents():
    rep = lambda o: identity(o) @ np.array([[1.0, 0.3, 0], [0, 1, 0.5], [0.2, 0, 1]])  # noqa: E731
    z, f, zt, ft = train_test(rep)
    perm = [2, 0, 1]
    base, permuted = dci(z, f, zt, ft), dci(z[:, perm], f, zt[:, perm], ft)
    for key in base:
        assert permuted[key] == pytest.approx(base[key], abs=0.02)
    assert sap(z[:, perm], f, zt[:, perm], ft) == pytest.approx(sap(z, f, zt, ft), abs=1e-9)
    # trees see only the order of a latent's values
    scaled = dci(z * 50.0 - 3.0, f, zt * 50.0 - 3.0, ft)
    for key in base:
        assert scaled[key] == pytest.approx(base[key], abs=1e-6)


def test_beta_vae_is_invariant_to_permuting_latents():
    def noisy(perm):  # the same noise stream on every run
        noise = Noise(3, seed=2)
        return lambda o: (identity(o) + 2.0 * noise(o))[:, perm]

    sizes = {"num_train": 300, "num_eval": 300}
    base = sampled(beta_vae_score, noisy([0, 1, 2]), **sizes)
    assert 0.5 < base < 1.0
    assert sampled(beta_vae_score, noisy([1, 2, 0]), **sizes) == pytest.approx(base, abs=0.01)


# --- the latent x factor MI matrix (MIG's, not the switch-on rule's) ---------------------


def test_mutual_info_matrix_finds_the_coded_factor():
    def rep(obs):  # z0 codes c, z1 codes a, z2 is collapsed
        return np.c_[obs[:, 2], obs[:, 0], np.zeros(len(obs))].astype(float)

    mi = mutual_info_matrix(*arrays(rep))
    assert mi.shape == (3, 3)
    assert mi[0, 2] == pytest.approx(1.0) and mi[1, 0] == pytest.approx(1.0)
    assert np.all(mi[2] == 0) and np.all((0 <= mi) & (mi <= 1 + 1e-12))


def test_mi_columns_round_trip():
    mi = np.arange(6.0).reshape(3, 2) / 10
    row = {"step": 5, **mi_columns(mi, ["shape", "scale"])}
    assert row[mi_key(2, "scale")] == 0.5
    np.testing.assert_array_equal(mi_from_columns(row, ["shape", "scale"]), mi)


# --- the suite --------------------------------------------------------------------------


def test_evaluate_reports_every_contract_column():
    data = FactorData()
    row = evaluate(data, identity, np.random.default_rng(0), sizes=SMALL)
    mi_keys = [mi_key(i, name) for i in range(3) for name in data.factor_names]
    assert list(row) == list(METRICS) + mi_keys
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in row.values())
    assert row[mi_key(1, "b")] == pytest.approx(1.0) and row[mi_key(1, "a")] < 0.01
    assert row["mig"] > 0.9 and row["dci_disentanglement"] > 0.9


def test_evaluate_survives_constant_codes_and_rejects_nan():
    row = evaluate(FactorData(), constant, np.random.default_rng(0), sizes=SMALL)
    assert row["mig"] == row["sap"] == row["dci_completeness"] == 0.0
    assert np.isnan(row["factor_vae"])  # no latent left to vote: shown as n/a
    assert all(math.isfinite(v) for k, v in row.items() if k != "factor_vae")
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate(FactorData(), lambda o: np.full((len(o), 2), np.nan), np.random.default_rng(0))


def test_evaluate_is_seeded():
    a = evaluate(FactorData(), identity, np.random.default_rng(3), sizes=SMALL)
    b = evaluate(FactorData(), identity, np.random.default_rng(3), sizes=SMALL)
    assert a == b


def test_presets_follow_the_reference_sizes():
    assert (DEFAULT.num_train, DEFAULT.num_test) == (10_000, 5_000)
    assert (DEFAULT.beta_vae_batch, DEFAULT.beta_vae_train, DEFAULT.beta_vae_eval) == (
        64,
        10_000,
        5_000,
    )
    assert (
        DEFAULT.factor_vae_batch,
        DEFAULT.factor_vae_train,
        DEFAULT.factor_vae_eval,
        DEFAULT.factor_vae_variance,
    ) == (64, 10_000, 5_000, 10_000)
    assert DEFAULT.dci_estimators == 100
    assert FAST.num_train < DEFAULT.num_train and FAST.beta_vae_batch == 64


def test_input_checks():
    assert isinstance(FactorData(), GroundTruthData)
    z, f = arrays(identity, 50)
    with pytest.raises(ValueError, match="rows"):
        mig(z, f[:10])
    with pytest.raises(ValueError, match="integer"):
        mig(z, f.astype(float))
    with pytest.raises(ValueError, match="shape"):
        mig(z[:, 0], f)
