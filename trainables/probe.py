"""What the code tells, measured at every report row on a fixed held-out probe set.

The probe set (inputs, their factors, and the standard normal draws that sample each
posterior) is drawn once from the trial's seed, so successive rows differ only by the
model. Encoding runs on the device; the estimators are analysis' numpy functions
(``analysis.metrics.information``), on (n, d) arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.contract import (
    INFO_X,
    INFO_X_POINTS,
    factor_info_key,
    info_key,
    latent_factor_info_key,
    mean_var_key,
)
from analysis.metrics.information import factor_information_bounds, input_information, mean_variance
from trainables.data import DSprites

PROBE_SEED = 7_919  # mixed with the trial's seed: the probe set never overlaps a batch stream
INPUT_INFO_POINTS = INFO_X_POINTS  # I(x; z) bounds read this many probe inputs


class Probe:
    """A fixed set of ``n`` held-out inputs; ``columns(*encode(encoder))`` -> the probe columns."""

    def __init__(self, data: DSprites, encoder_input: str, n: int, seed: int, latents: int):
        rng = np.random.default_rng([seed, PROBE_SEED])
        self.factors = data.sample_factors(n, rng)  # (n, 5) int
        f = torch.as_tensor(self.factors, device=data.device)
        image = encoder_input == "image"
        self.inputs = data.observations(self.factors) if image else data.features(f)
        self.noise = rng.standard_normal((n, latents))  # (n, d) draws of each posterior
        self.names = list(data.factor_names)
        self.sizes = list(data.factor_sizes)

    @torch.no_grad()
    def encode(self, encoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The probe set's posteriors (mu, logvar), left on the device: no sync."""
        was = encoder.training
        encoder.eval()
        mu, logvar = encoder(self.inputs)
        encoder.train(was)
        return mu.float(), logvar.float()

    def columns(
        self, mu: torch.Tensor | np.ndarray, logvar: torch.Tensor | np.ndarray
    ) -> dict[str, float]:
        """The probe columns of the results contract from the probe set's posteriors."""
        mu, logvar = _host(mu), _host(logvar)
        m = INPUT_INFO_POINTS
        per_latent, joint = input_information(mu[:m], logvar[:m], self.noise[:m])
        # the larger of two held-out bounds: p(f | z) from the probe set's own mixture of
        # posteriors, and a Gaussian classifier's
        whole, by_latent = factor_information_bounds(
            mu, logvar, self.noise, self.factors, self.sizes
        )
        row = {mean_var_key(i): _short(v) for i, v in enumerate(mean_variance(mu))}
        row.update({info_key(i): _short(v) for i, v in enumerate(per_latent)})
        row[INFO_X] = _short(joint)
        row.update({factor_info_key(f): _short(whole[j]) for j, f in enumerate(self.names)})
        for i in range(by_latent.shape[0]):
            for j, f in enumerate(self.names):
                row[latent_factor_info_key(i, f)] = _short(by_latent[i, j])
        return row


def _host(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _short(value: float) -> float:
    """Four significant digits: estimates this noisy need no more, and a row carries
    5d + 2d + 6 of them (JSON lines a third the size of full-precision floats)."""
    return float(f"{float(value):.4g}")
