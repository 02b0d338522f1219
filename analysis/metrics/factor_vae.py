"""The FactorVAE disentanglement score (Kim & Mnih 2018, "Disentangling by Factorising",
https://arxiv.org/abs/1802.05983).

Follows disentanglement_lib's ``compute_factor_vae`` (``evaluation/metrics/factor_vae.py``)
with its reference config: latents are scaled by their global standard deviation
(estimated on 10,000 points; latents with std < 0.05 are pruned as collapsed); a point
fixes one factor across a batch of 64 and votes for the latent of least scaled variance;
the classifier maps each latent to the factor it received most training votes for
(10,000 points), and the score is its accuracy on 5,000 evaluation points. Like the
reference, variances use ddof = 1.
"""

from __future__ import annotations

import numpy as np

from analysis.metrics.ground_truth import GroundTruthData, Represent, represent_factors

BATCH_SIZE = 64
NUM_TRAIN = 10_000
NUM_EVAL = 5_000
NUM_VARIANCE_ESTIMATE = 10_000
PRUNE_THRESHOLD = 0.05  # prune_dims.threshold in the reference config


def factor_vae_score(
    data: GroundTruthData,
    represent: Represent,
    rng: np.random.Generator,
    batch_size: int = BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_EVAL,
    num_variance_estimate: int = NUM_VARIANCE_ESTIMATE,
    prune_threshold: float = PRUNE_THRESHOLD,
) -> float:
    """Majority-vote accuracy in [0, 1]. When every latent is pruned (e.g. constant codes)
    there is no classifier and the score is undefined: NaN (the reference returns 0,
    which reads as a measured worst score)."""
    k = len(data.factor_sizes)
    factors = np.asarray(data.sample_factors(num_variance_estimate, rng))
    global_var = np.var(represent_factors(data, represent, factors), axis=0, ddof=1)  # (d,)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return float("nan")
    train = _votes(data, represent, rng, batch_size, num_train, global_var, active, k)
    evals = _votes(data, represent, rng, batch_size, num_eval, global_var, active, k)
    classifier = np.argmax(train, axis=0)  # (n_active,) factor each latent stands for
    columns = np.arange(train.shape[1])
    return float(evals[classifier, columns].sum() / evals.sum())


def _votes(
    data: GroundTruthData,
    represent: Represent,
    rng: np.random.Generator,
    batch_size: int,
    num_points: int,
    global_var: np.ndarray,
    active: np.ndarray,
    k: int,
) -> np.ndarray:
    """Vote counts (k, n_active): factor fixed x latent of least scaled variance.

    Draws all batches at once instead of one by one as the reference does: the
    distribution is the same, the random stream is not.
    """
    labels = rng.integers(k, size=num_points)  # (n,) the fixed factor of each batch
    f = np.asarray(data.sample_factors(num_points * batch_size, rng))
    f = f.reshape(num_points, batch_size, k)
    rows = np.arange(num_points)[:, None]
    f[rows, :, labels[:, None]] = f[rows, :1, labels[:, None]]  # fix it to the first row's
    z = represent_factors(data, represent, f.reshape(-1, k)).reshape(num_points, batch_size, -1)
    local_var = np.var(z, axis=1, ddof=1)  # (n, d)
    argmin = np.argmin(local_var[:, active] / global_var[active], axis=1)  # (n,)
    votes = np.zeros((k, int(active.sum())), dtype=np.int64)
    np.add.at(votes, (labels, argmin), 1)
    return votes
