"""How much a stochastic code tells, in nats: about the input, and about each factor.

KL(q(z|x) || p(z)) averaged over x is I(x; z) + KL(q(z) || p(z)); a capacity target can be
met by a constant mean offset or a sigma != 1 that tells nothing. These estimators read
information itself, from the posterior parameters of a fixed probe set of inputs:

- ``mean_variance``: Var_x E[z_i | x] per latent, the active-unit statistic of Burda et
  al. 2016 ("Importance Weighted Autoencoders", sec. 5.2; active when > 0.01).
- ``input_information``: I(x; z_i) per latent and I(x; z) for the whole code, by the
  contrastive (InfoNCE) bound with the true posterior as critic (Poole et al. 2019,
  "On Variational Bounds of Mutual Information", eq. 12): for a sample z_a ~ q(z|x_a),
  log q(z_a|x_a) - log mean_b q(z_a|x_b). A lower bound on the information, at most
  ln n; exactly 0 when every input has the same posterior, whatever its offset or sigma.
- ``factor_information``: a lower bound on I(f; z) for each factor, H(f) minus the
  held-out cross-entropy of a Gaussian classifier of f given sampled codes (any
  classifier's held-out cross-entropy bounds H(f|z) from above). Sampled codes, not
  means: the posterior noise hides what a nearly collapsed latent's means still vary by.
  ``latent_factor_information`` is the same for each latent alone: (d, k).
"""

from __future__ import annotations

import numpy as np

from analysis.metrics.mutual_info import discrete_entropy

LOG_2PI = float(np.log(2 * np.pi))
SHRINK = 0.5  # class covariances shrunk halfway to the pooled one (Friedman 1989's RDA)
RIDGE = 1e-6  # added to covariances: a class of identical codes stays invertible
CHUNK = 256  # probe rows per block of the n x n density table


def mean_variance(mu: np.ndarray) -> np.ndarray:
    """Var_x E[z_i|x] per latent: (n, d) posterior means -> (d,)."""
    return np.asarray(mu, np.float64).var(axis=0)


def input_information(
    mu: np.ndarray, logvar: np.ndarray, noise: np.ndarray
) -> tuple[np.ndarray, float]:
    """Contrastive lower bounds (nats) on I(x; z_i) per latent and on I(x; z) jointly.

    ``mu``, ``logvar``, ``noise`` are (n, d): the posteriors of n probe inputs and the
    standard normal draws that sample z_a = mu_a + noise_a * sigma_a. Both bounds are at
    most ln n; the joint one saturates there once the code tells the inputs apart. Clipped
    at 0 (a sample estimate can dip below; I >= 0 is itself a bound).
    """
    mu, logvar, noise = (np.asarray(a, np.float64) for a in (mu, logvar, noise))
    n, d = mu.shape
    sigma = np.exp(0.5 * logvar)
    z = mu + noise * sigma  # (n, d)
    per_latent = np.zeros(d)
    joint = 0.0
    for start in range(0, n, CHUNK):
        za = z[start : start + CHUNK]  # (c, d)
        # log q(z_a | x_b) per latent, up to the constant: (c, n, d)
        dens = -0.5 * ((za[:, None, :] - mu[None]) / sigma[None]) ** 2 - 0.5 * logvar[None]
        own = dens[np.arange(len(za)), np.arange(start, start + len(za))]  # (c, d)
        per_latent += (own - _logmeanexp(dens, axis=1)).sum(0)
        total = dens.sum(-1)  # (c, n)
        joint += float((own.sum(-1) - _logmeanexp(total, axis=1)).sum())
    return np.maximum(per_latent / n, 0.0), max(joint / n, 0.0)


def factor_information(
    codes: np.ndarray, factors: np.ndarray, sizes: np.ndarray | list[int] | None = None
) -> np.ndarray:
    """Lower bounds (nats) on I(f_j; z) for each factor j: (n, d) codes, (n, k) ints -> (k,).

    Two-fold cross-fitting: a Gaussian classifier (one full-covariance Gaussian per
    class, shrunk towards the pooled covariance) is fit on one half and scored on the
    other, and the other way round. H(f_j) is ln(sizes[j]) for uniformly sampled factors
    (the default: the plug-in entropy of the sample). Clipped at 0, itself a bound.
    """
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors, np.int64)
    h = _entropies(factors, sizes)
    out = np.zeros(factors.shape[1])
    for j in range(factors.shape[1]):
        ce = _cross_fit(codes[:, None, :], factors[:, j])[0]
        out[j] = max(0.0, h[j] - ce)
    return out


def latent_factor_information(
    codes: np.ndarray, factors: np.ndarray, sizes: np.ndarray | list[int] | None = None
) -> np.ndarray:
    """Lower bounds (nats) on I(f_j; z_i) for each latent alone: -> (d, k)."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors, np.int64)
    h = _entropies(factors, sizes)
    out = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        ce = _cross_fit(codes[:, :, None], factors[:, j])  # (d,)
        out[:, j] = np.maximum(0.0, h[j] - ce)
    return out


# ---- the Gaussian classifier ---------------------------------------------------------


def _entropies(factors: np.ndarray, sizes) -> np.ndarray:
    if sizes is not None:
        return np.log(np.asarray(sizes, np.float64))
    return discrete_entropy(factors)


def _cross_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean held-out -log p(y|x) over two folds. ``x`` is (n, g, e): g independent groups
    of e-dimensional inputs (g latents of width 1, or one group of width d)."""
    n = len(y)
    half = np.arange(n) < n // 2
    k = int(y.max()) + 1
    total = np.zeros(x.shape[1])
    for train in (half, ~half):
        test = ~train
        total += _nll(x[train], y[train], x[test], y[test], k).sum(0)
    return total / n


def _nll(xt: np.ndarray, yt: np.ndarray, xs: np.ndarray, ys: np.ndarray, k: int) -> np.ndarray:
    """Fit on (xt, yt), return -log p(ys | xs) per test point and group: (m, g)."""
    _, g, e = xt.shape
    counts = np.bincount(yt, minlength=k).astype(np.float64)  # (k,)
    prior = np.log((counts + 1) / (counts.sum() + k))  # Laplace: unseen classes keep mass
    onehot = np.eye(k)[yt]  # (n, k)
    seen = np.maximum(counts, 1)[:, None, None]
    means = np.einsum("nk,nge->kge", onehot, xt) / seen  # (k, g, e)
    means[counts == 0] = xt.mean(0)
    dev = xt - means[yt]  # (n, g, e)
    pooled = np.einsum("nge,ngf->gef", dev, dev) / len(xt)  # (g, e, e)
    own = np.einsum("nk,nge,ngf->kgef", onehot, dev, dev) / seen[..., None]  # (k, g, e, e)
    small = counts < 2
    own[small] = pooled
    cov = (1 - SHRINK) * own + SHRINK * pooled[None] + RIDGE * np.eye(e)
    chol = np.linalg.cholesky(cov)  # (k, g, e, e)
    inv = np.linalg.inv(chol)  # (k, g, e, e)
    diff = xs[:, None] - means[None]  # (m, k, g, e)
    sol = np.einsum("kgef,mkgf->mkge", inv, diff)  # L^-1 (x - mean)
    logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (k, g)
    loglik = -0.5 * ((sol**2).sum(-1) + logdet[None] + e * LOG_2PI) + prior[None, :, None]
    logp = loglik - _logsumexp(loglik, axis=1)[:, None]  # (m, k, g)
    return -logp[np.arange(len(ys)), ys]  # (m, g)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def _logmeanexp(a: np.ndarray, axis: int) -> np.ndarray:
    return _logsumexp(a, axis) - np.log(a.shape[axis])
