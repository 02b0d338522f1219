"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in
Variational Autoencoders", https://arxiv.org/abs/1802.04942).

Follows disentanglement_lib's ``compute_mig`` (``evaluation/metrics/mig.py``) with its
reference config (10,000 points, 20 histogram bins). Like the reference and unlike the
paper, which estimates I(z; f) from the encoder's full posterior q(z|x), mutual
information is estimated from histogram-discretized posterior means.
"""

from __future__ import annotations

import numpy as np

from analysis.metrics.ground_truth import check_pair
from analysis.metrics.mutual_info import (
    NUM_BINS,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
)


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """Mean over factors of (largest - second-largest I(z_i; f_j)) / H(f_j).

    ``codes`` (n, d) float posterior means, ``factors`` (n, k) integer class indices.
    In [0, 1]; 0 for constant codes. Where the reference would divide by zero or index
    out of range we define: factors constant in the sample (H = 0) are left out of the
    mean (NaN if every factor is constant), and with a single latent the second-largest
    MI is taken as 0.
    """
    codes, factors = check_pair(codes, factors)
    m = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)  # (d, k)
    h = discrete_entropy(factors)  # (k,)
    top = np.sort(m, axis=0)[::-1]  # each column descending
    second = top[1] if len(top) > 1 else np.zeros(m.shape[1])
    varies = h > 0
    if not varies.any():
        return float("nan")
    return float(np.mean((top[0, varies] - second[varies]) / h[varies]))
