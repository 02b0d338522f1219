"""In-trial evaluation: disentanglement metrics of posterior means, and traversal images.

The metrics are analysis' pure array functions; this module only encodes fresh samples
with the model (posterior means, no sampling) and hands over numpy arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from analysis.contract import Row
from analysis.metrics import evaluate
from analysis.metrics.evaluate import FAST, Sizes
from analysis.switch_on import latent_switch_on
from trainables.config import TrialConfig
from trainables.data import DSprites
from trainables.objectives import kl_per_latent

if TYPE_CHECKING:
    from trainables.model import VAE

TRAVERSAL_INPUTS = 8  # inputs and reconstructions shown
TRAVERSAL_STEPS = 9  # values per latent row
TRAVERSAL_RANGE = 3.0  # +- prior standard deviations
KL_SAMPLES = 2048  # images for each latent's KL in the traversal figure
CPU_EVAL_POINTS = 250  # eval_points=-1 on a CPU: the suite in seconds (~20k encoded images)


class FactorInputs:
    """The dataset seen by the factor encoder q(z|f): observations are factor features."""

    def __init__(self, data: DSprites) -> None:
        self.data = data
        self.factor_names = data.factor_names
        self.factor_sizes = data.factor_sizes

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.data.sample_factors(n, rng)

    def observations(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.data.features(torch.as_tensor(np.asarray(factors), device=self.data.device))


def _inputs(data: DSprites, encoder: str) -> DSprites | FactorInputs:
    return data if encoder == "image" else FactorInputs(data)


@torch.no_grad()
def _encode(model: VAE, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    was = model.training
    model.eval()
    mu, logvar = model.encoder(inputs)
    model.train(was)
    return mu.float(), logvar.float()


def evaluate_model(model: VAE, data: DSprites, cfg: TrialConfig, step: int, fast: bool) -> Row:
    """All metrics and the MI matrix (contract names) on fresh samples, seeded by step."""

    def represent(obs: torch.Tensor) -> np.ndarray:
        return _encode(model, obs)[0].cpu().numpy()  # posterior means (n, d)

    rng = np.random.default_rng([cfg.seed, step])
    sizes = capped_sizes(eval_points(cfg, data.device.type))
    return evaluate(_inputs(data, cfg.encoder), represent, rng, fast=fast, sizes=sizes)


def eval_points(cfg: TrialConfig, device_type: str) -> int:
    """``cfg.eval_points`` with -1 (auto) resolved: the metrics' own sizes on CUDA,
    ``CPU_EVAL_POINTS`` on a CPU (the full sizes encode ~2.9 M images: most of an hour)."""
    if cfg.eval_points >= 0:
        return cfg.eval_points
    return 0 if device_type == "cuda" else CPU_EVAL_POINTS


def capped_sizes(n: int) -> Sizes | None:
    """Metric sample sizes for ``eval_points`` = n > 0: n points per sample, groups of n/10.

    A small n (a few hundred) makes CPU runs cheap; scores at such sizes are noisy and
    serve to watch a run, not to compare models.
    """
    if n == 0:
        return None
    group = min(FAST.beta_vae_batch, max(2, n // 10))
    return Sizes(
        num_train=n,
        num_test=max(n // 2, 2),
        beta_vae_batch=group,
        beta_vae_train=n,
        beta_vae_eval=max(n // 2, 2),
        factor_vae_batch=group,
        factor_vae_train=n,
        factor_vae_eval=max(n // 2, 2),
        factor_vae_variance=n,
        dci_estimators=FAST.dci_estimators,
    )


@torch.no_grad()
def traversals(
    model: VAE, data: DSprites, cfg: TrialConfig, step: int, history: list[dict]
) -> dict[str, np.ndarray]:
    """The arrays of traversals.npz (see analysis.contract.TRAVERSAL_ARRAYS); ``history``:
    the probe columns of the trial's rows so far, which label the latents."""
    rng = np.random.default_rng([cfg.seed, step, 1])
    inputs = _inputs(data, cfg.encoder)
    factors = data.sample_factors(KL_SAMPLES, rng)  # (n, 5)
    mu, logvar = _encode(model, inputs.observations(factors))
    kl = kl_per_latent(mu, logvar).cpu().numpy()  # (d,)
    d = len(kl)
    names, info = [""] * d, np.full(d, np.nan)
    if history:  # the switch-on rule over this trial's rows so far
        rows = pd.DataFrame(history).assign(trial_id="")
        table = latent_switch_on(rows).set_index("latent")
        names = [table.at[i, "final_factor"] or "" for i in range(d)]  # what it codes now
        info = table["final_info"].reindex(range(d)).to_numpy(np.float64)
    # most informative first (KL when not measured): a dead latent's KL can be large
    order = np.lexsort((-kl, -np.nan_to_num(info, nan=-1.0)))

    shown = factors[:TRAVERSAL_INPUTS]
    images = data.observations(shown)[:, 0]  # (n, 64, 64)
    base = mu[:TRAVERSAL_INPUTS]
    recon = torch.sigmoid(model.decoder(base))[:, 0]
    values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
    z = base[0].repeat(len(order), TRAVERSAL_STEPS, 1)  # (d, s, d)
    for row, i in enumerate(order):
        z[row, :, i] = torch.as_tensor(values, device=z.device, dtype=z.dtype)
    sweep = torch.sigmoid(model.decoder(z.flatten(0, 1))).view(len(order), TRAVERSAL_STEPS, 64, 64)
    return {
        "inputs": images.float().cpu().numpy(),
        "reconstructions": recon.float().cpu().numpy(),
        "traversals": sweep.float().cpu().numpy(),
        "values": values.astype(np.float32),
        "latent_index": order.astype(np.int64),
        "kl": kl[order].astype(np.float32),
        "info": info[order].astype(np.float32),
        "factor": np.array([names[i] for i in order]),
    }


def snapshot_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """Traversal arrays as a compressed .npz, images in uint8 (a few hundred KB less per
    evaluation than float32; the report draws 8-bit PNGs anyway)."""
    import io

    small = dict(arrays)
    for key in ("inputs", "reconstructions", "traversals"):
        small[key] = np.clip(np.rint(np.asarray(arrays[key]) * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **small)
    return buf.getvalue()
