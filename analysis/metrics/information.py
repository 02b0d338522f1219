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
- ``marginal_factor_information``: I(f_j; z) for each factor from p(f_j | z) read off
  the encoded set itself: q(z) is the mixture of the n posteriors, and p(f_j = v | z)
  the share of that mixture's density at z that comes from inputs with f_j = v. Scored
  on a sample z_a ~ q(z | x_a) of each input with input a left out of its own mixture,
  it is a held-out classifier's cross-entropy, so a lower bound on the information.
  When the set is the whole (uniform) factor grid and a is kept in, the same sum is
  the exact p(f_j | z) and the estimate is the exact information up to Monte Carlo
  error. It makes no assumption on the shape of p(z | f_j): orientation's symmetric
  images give multimodal class densities, which a Gaussian classifier reads as 0.
  ``marginal_information`` gives it for the whole code and for each latent alone.
- ``factor_information``: the older lower bound, H(f) minus the held-out cross-entropy
  of a Gaussian classifier of f given sampled codes. Close for position and scale,
  34% of the exact value for shape and 0% for orientation on a trained factor-encoder
  model (exact calculation over the whole grid); kept for comparison, with
  ``latent_factor_information``, the same for each latent alone.

Sampled codes, not means, throughout: the posterior noise hides what a nearly collapsed
latent's means still vary by.
"""

from __future__ import annotations

import numpy as np

from analysis.metrics.mutual_info import discrete_entropy

LOG_2PI = float(np.log(2 * np.pi))
SHRINK = 0.5  # class covariances shrunk halfway to the pooled one (Friedman 1989's RDA)
RIDGE = 1e-6  # added to covariances: a class of identical codes stays invertible
CHUNK = 128  # probe rows per block of the n x n density table
SUBSET_NATS = 0.02  # a latent telling this much about a factor joins its subset
# Kernel widths of the held-out mixture, in units of each latent's spread of means: on a
# sample, posteriors narrow against the spacing of the means leave each sample's nearest
# other input at another factor value, and the posterior mixture (t = 0) reads little
# (posX 0.12 nats on a short plain VAE's 256 probe inputs; 0.91 with these widths); a
# widened mixture is still a held-out classifier, so each width gives a bound and the
# best is kept.
WIDTHS = (0.0, 0.05, 0.15, 0.5)


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


def marginal_factor_information(
    mu: np.ndarray,
    logvar: np.ndarray,
    noise: np.ndarray,
    factors: np.ndarray,
    sizes: np.ndarray | list[int] | None = None,
    leave_one_out: bool = True,
) -> np.ndarray:
    """I(f_j; z) per factor (nats) from the encoded set's own mixture: (n, d) posteriors,
    (n, d) standard normal draws, (n, k) int factors -> (k,).

    ``leave_one_out`` (the default) leaves each input out of the mixture that scores its
    own sample: a held-out bound, for a sample of the data. ``leave_one_out=False`` on
    the whole factor grid is the exact calculation. H(f_j) = ln(sizes[j]) for uniform
    factors (default: the plug-in entropy of the sample). Clipped at 0."""
    return marginal_information(mu, logvar, noise, factors, sizes, leave_one_out)[0]


def latent_factor_information(
    codes: np.ndarray, factors: np.ndarray, sizes: np.ndarray | list[int] | None = None
) -> np.ndarray:
    """The Gaussian classifier's lower bounds on I(f_j; z_i) for each latent alone: (n, d)
    sampled codes -> (d, k). The probe reads ``factor_information_bounds``."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors, np.int64)
    h = _entropies(factors, sizes)
    out = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        ce = _cross_fit(codes[:, :, None], factors[:, j])  # (d,)
        out[:, j] = np.maximum(0.0, h[j] - ce)
    return out


def marginal_information(
    mu: np.ndarray,
    logvar: np.ndarray,
    noise: np.ndarray,
    factors: np.ndarray,
    sizes: np.ndarray | list[int] | None = None,
    leave_one_out: bool = True,
    whole_code: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The marginal estimates: I(f_j; z) (k,) and I(f_j; z_i) for each latent alone (d, k).
    ``whole_code=False`` reads the latents alone only (the first is then their best).

    The whole code's estimate is the largest of three lower bounds on it, each read off
    the mixture: from the whole code, from the latents that each tell at least
    ``SUBSET_NATS`` about f_j, and from the best single latent (I(f_j; z_S) <= I(f_j; z)
    for any subset S). On a sample the mixture over every latent thins out: a code that
    tells ten nats leaves no neighbour close in all latents, so p(f_j | z) from all of
    them undershoots (measured on a synthetic code of known information, orientation
    0.19 of 0.49 nats on 2,048 points); the latents that tell about f_j keep it close
    (0.43)."""
    mu, logvar, noise = (np.asarray(a, np.float64) for a in (mu, logvar, noise))
    factors = np.asarray(factors, np.int64)
    d = mu.shape[1]
    h = _entropies(factors, sizes)
    masks = np.vstack([np.ones((1, d)), np.eye(d)])  # the whole code, then each latent
    masks = masks if whole_code else masks[1:]
    widths = WIDTHS if leave_one_out else (0.0,)  # exact over a whole grid: the posteriors
    ce = _mixture_ce(mu, logvar, noise, factors, masks, leave_one_out, widths).min(0)
    info = np.maximum(h - ce, 0.0)
    if not whole_code:
        return info.max(0), info
    whole, per_latent = info[0], info[1:]  # (k,), (d, k)
    chosen = per_latent.T >= SUBSET_NATS  # (k, d): per factor, the latents that tell about it
    partial = chosen.sum(1)
    todo = np.flatnonzero((partial > 1) & (partial < d))
    if len(todo):
        sub = chosen[todo].astype(float)
        ce = _mixture_ce(mu, logvar, noise, factors, sub, leave_one_out, widths).min(0)
        whole[todo] = np.maximum(whole[todo], h[todo] - ce[np.arange(len(todo)), todo])
    return np.maximum(whole, per_latent.max(0)), per_latent


def factor_information_bounds(
    mu: np.ndarray,
    logvar: np.ndarray,
    noise: np.ndarray,
    factors: np.ndarray,
    sizes: np.ndarray | list[int] | None = None,
    whole_code: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """What the probe reports: I(f_j; z) (k,) and I(f_j; z_i) (d, k), each the larger of
    the marginal estimate and the Gaussian classifier's bound. Both are held-out bounds,
    and each fails where the other holds: the classifier on multimodal class densities
    (orientation), the mixture on a small set when the posteriors are narrow against the
    spacing of the inputs' means (a code that tells the 256 inputs of a probe apart
    leaves each sample's nearest other input at another position: posX at most 0.12
    nats from either, measured on a short plain VAE; the widened mixture, ``WIDTHS``,
    reads 0.91). ``whole_code=False``: the latents alone only, where the whole code's
    information comes from elsewhere (the factor encoder's exact one over the grid)."""
    whole, per_latent = marginal_information(
        mu, logvar, noise, factors, sizes, whole_code=whole_code
    )
    z = np.asarray(mu, np.float64) + np.asarray(noise) * np.exp(0.5 * np.asarray(logvar))
    by_latent = latent_factor_information(z, factors, sizes)
    if not whole_code:
        return np.maximum(whole, by_latent.max(0)), np.maximum(per_latent, by_latent)
    joint = factor_information(z, factors, sizes)
    return np.maximum(np.maximum(whole, joint), by_latent.max(0)), np.maximum(per_latent, by_latent)


def _mixture_ce(
    mu, logvar, noise, factors, masks: np.ndarray, leave_one_out: bool, widths=(0.0,)
) -> np.ndarray:
    """Mean -log p(f_aj | z_a,S) over the n inputs, for each kernel width t of
    ``widths``, latent subset S (a row of ``masks``, (m, d)) and factor j: (T, m, k).
    p(f_j | z_S) is the share of a mixture over the n inputs (marginalised to S) at
    z_a,S that comes from inputs with that value of f_j: at t = 0 the mixture of their
    posteriors, at t > 0 of their posteriors widened to variance sigma^2 + (t s_i)^2,
    s_i the spread of latent i's means. z_a is a sample of input a's posterior, left out
    of its own mixture when ``leave_one_out``."""
    n = len(mu)
    width = factors.max(0) + 1  # values per factor present
    offsets = np.r_[0, np.cumsum(width)[:-1]]
    cols = offsets + factors  # (n, k): each input's own value's column
    onehot = np.zeros((n, int(width.sum())), np.float32)  # (n, V): all factors' values
    onehot[np.arange(n)[:, None], cols] = 1.0
    # held out, mixed with the uniform: a value the mixture misses costs ln(n V_j), not inf
    floor = 1.0 / n if leave_one_out else 0.0
    var = np.exp(logvar)
    z = mu + noise * np.sqrt(var)  # (n, d)
    spread = mu.var(axis=0)  # (d,)
    # the n x n tables in float32 (the weights are relative to each row's largest, and
    # the sums are taken in float64); per width, 1 / variance and half its log: (n, d)
    kernels = [
        ((1 / (var + t * t * spread)).astype(np.float32), (0.5 * np.log(var + t * t * spread)))
        for t in widths
    ]
    z32, mu32, masks32 = z.astype(np.float32), mu.astype(np.float32), masks.T.astype(np.float32)
    total = np.zeros((len(widths), len(masks), factors.shape[1]))
    for start in range(0, n, CHUNK):
        rows = np.arange(start, min(start + CHUNK, n))
        sq = -0.5 * (z32[rows, None, :] - mu32[None]) ** 2  # (c, n, d)
        for w_i, (inv, half_log) in enumerate(kernels):
            # log of each input's kernel at z_a per latent, up to a constant, summed over S
            logw = (sq * inv[None] - half_log.astype(np.float32)[None]) @ masks32  # (c, n, m)
            if leave_one_out:
                logw[np.arange(len(rows)), rows] = -np.inf
            w = np.exp(logw - logw.max(axis=1, keepdims=True)).transpose(0, 2, 1)  # (c, m, n)
            own = np.take_along_axis(w @ onehot, cols[rows][:, None, :], axis=2)  # (c, m, k)
            p = own.astype(np.float64) / w.sum(axis=2, dtype=np.float64)[..., None]
            total[w_i] -= np.log((1 - floor) * p + floor / width).sum(0)
    return total / n


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
