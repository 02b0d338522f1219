"""The BetaVAE disentanglement score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual
Concepts with a Constrained Variational Framework",
https://openreview.net/forum?id=Sy2fzU9gl).

Follows disentanglement_lib's ``compute_beta_vae_sklearn`` (``evaluation/metrics/
beta_vae.py``) with its reference config (batches of 64 pairs, 10,000 training and 5,000
evaluation points). A point: pick a factor uniformly, draw 64 pairs of factor vectors that
agree on it, and take the mean absolute difference of the pairs' codes; a logistic
regression predicts the fixed factor from it, and the score is its evaluation accuracy.
As in the reference, and unlike the paper's linear classifier trained by SGD on
unnormalized codes, the classifier is scikit-learn's logistic regression (C = 1, today's
defaults: multinomial lbfgs, where the reference's 2018 scikit-learn used one-vs-rest
liblinear); we let lbfgs run to convergence (1,000 iterations) rather than stop at 100.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from analysis.metrics.ground_truth import GroundTruthData, Represent, represent_factors

BATCH_SIZE = 64
NUM_TRAIN = 10_000
NUM_EVAL = 5_000


def beta_vae_score(
    data: GroundTruthData,
    represent: Represent,
    rng: np.random.Generator,
    batch_size: int = BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_EVAL,
) -> float:
    """Evaluation accuracy in [0, 1] of predicting the fixed factor; chance is 1 / k.

    Constant codes give all-zero features, so the classifier predicts one factor:
    accuracy about 1 / k (0.2 on dSprites).
    """
    x_train, y_train = training_set(data, represent, rng, batch_size, num_train)
    x_eval, y_eval = training_set(data, represent, rng, batch_size, num_eval)
    if len(np.unique(y_train)) < 2:  # one factor (or one point): nothing to tell apart
        return float(np.mean(y_eval == y_train[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, y_train)
    return float(model.score(x_eval, y_eval))


def training_set(
    data: GroundTruthData,
    represent: Represent,
    rng: np.random.Generator,
    batch_size: int,
    num_points: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (num_points, d) and labels (num_points,) = index of the fixed factor.

    Draws all pairs at once instead of point by point as the reference does: the
    distribution is the same, the random stream is not.
    """
    k = len(data.factor_sizes)
    labels = rng.integers(k, size=num_points)  # (n,)
    shape = (num_points, batch_size, k)
    f1 = np.asarray(data.sample_factors(num_points * batch_size, rng)).reshape(shape)
    f2 = np.asarray(data.sample_factors(num_points * batch_size, rng)).reshape(shape)
    rows = np.arange(num_points)[:, None]
    f2[rows, :, labels[:, None]] = f1[rows, :, labels[:, None]]  # pairs share the factor
    z1 = represent_factors(data, represent, f1.reshape(-1, k))  # (n * B, d)
    z2 = represent_factors(data, represent, f2.reshape(-1, k))
    diff = np.abs(z1 - z2).reshape(num_points, batch_size, -1)
    return diff.mean(axis=1), labels
