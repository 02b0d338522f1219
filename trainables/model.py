"""The Burgess et al. 2018 model: conv encoder q(z|x), factor encoder q(z|f), conv decoder.

Encoder: four 4x4 stride-2 convolutions (32 channels), FC 256, FC 256, then the mean and
log-variance of the latents. Decoder: the mirror image, ending in Bernoulli logits.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.data import FACTOR_FEATURES


def fp32_head(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run ``layers``, the last one (the mean/log-variance head) in fp32 even under
    autocast: the capacity objective multiplies the KL's rounding error by gamma."""
    *body, head = layers
    for layer in body:
        x = layer(x)
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())


class ImageEncoder(nn.Module):
    """q(z|x): (B, 1, 64, 64) -> mean, log-variance, each (B, d)."""

    def __init__(self, latent_dim: int, channels: int = 32, hidden: int = 256) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(),  # 32x32
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(),  # 4x4
        )  # fmt: skip
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * 4 * 4, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = fp32_head(self.fc, self.conv(x)).chunk(2, dim=-1)
        return mu, logvar


class FactorEncoder(nn.Module):
    """q(z|f): (B, 8) factor features (data.factor_features) -> mean, log-variance."""

    def __init__(self, latent_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FACTOR_FEATURES, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = fp32_head(self.net, f).chunk(2, dim=-1)
        return mu, logvar


class Decoder(nn.Module):
    """p(x|z): (B, d) -> (B, 1, 64, 64) Bernoulli logits."""

    def __init__(self, latent_dim: int, channels: int = 32, hidden: int = 256) -> None:
        super().__init__()
        c = channels
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, c * 4 * 4), nn.ReLU(),
            nn.Unflatten(1, (c, 4, 4)),
        )  # fmt: skip
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ReLU(),  # 32x32
            nn.ConvTranspose2d(c, 1, 4, 2, 1),  # 64x64 logits
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z))


class VAE(nn.Module):
    """An encoder (image or factors) and the shared decoder."""

    def __init__(self, cfg: TrialConfig) -> None:
        super().__init__()
        d = cfg.latent_dim
        if cfg.encoder == "image":
            self.encoder: nn.Module = ImageEncoder(d, cfg.channels, cfg.hidden)
        else:
            self.encoder = FactorEncoder(d, cfg.hidden)
        self.decoder = Decoder(d, cfg.channels, cfg.hidden)

    def forward(
        self, inputs: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs (images or factor features), noise (B, d) ~ N(0, I) -> logits, mu, logvar."""
        mu, logvar = self.encoder(inputs)
        z = mu + noise * torch.exp(0.5 * logvar)  # reparameterisation
        return self.decoder(z), mu, logvar
