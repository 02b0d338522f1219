"""The image encoder q(z|x) starts: its initialisation, and a short run that opens latents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from analysis import switch_on as so
from analysis.contract import MEAN_IMAGE_RECON
from tests.helpers import SMALL
from trainables.config import TrialConfig
from trainables.data import load_dataset
from trainables.model import VAE
from trainables.trainer import Trainer


def test_weights_are_he_normal_before_a_relu_glorot_at_the_outputs_and_biases_zero():
    torch.manual_seed(0)
    model = VAE(TrialConfig.from_dict({"encoder": "image"}))
    enc, dec = model.encoder, model.decoder
    cases = [
        (enc.conv[0], 2 / 16),  # 1 channel x 4 x 4, ReLU after
        (enc.conv[2], 2 / (32 * 16)),
        (enc.fc[1], 2 / 512),
        (enc.fc[5], 2 / (256 + 20)),  # the mean/log-variance head: linear
        (dec.deconv[0], 2 / (32 * 4)),  # transposed, stride 2: 32 channels x 2 x 2 taps
        (dec.deconv[6], 2 / (32 * 4 + 1 * 4)),  # the logits: linear
    ]
    for layer, var in cases:
        assert float(layer.weight.var()) == np_approx(var, rel=0.15), layer
        assert float(layer.bias.abs().max()) == 0.0
    linear = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert all(float(m.bias.abs().max()) == 0.0 for m in linear)


def np_approx(value: float, rel: float):
    import pytest

    return pytest.approx(value, rel=rel)


def test_the_image_encoders_means_depend_on_the_image_at_step_0():
    # under PyTorch's default initialisation Var_x E[z|x] is about 1e-7 here: the decoder
    # learns the mean image before the encoder tells it anything
    data = load_dataset("procedural", torch.device("cpu"), False)
    images = data.observations(data.sample_factors(256, np.random.default_rng(0)))
    for seed in range(3):
        torch.manual_seed(seed)
        model = VAE(TrialConfig.from_dict({"encoder": "image"}))
        with torch.no_grad():
            mu, _ = model.encoder(images)
        assert float(mu.var(0).mean()) > 1e-2


def test_a_short_plain_vae_on_images_learns_and_opens_latents():
    """i2 of the measurements in miniature: a plain VAE (beta = 1) on images, which
    collapsed to the mean image under PyTorch's default initialisation."""
    cfg = TrialConfig.from_dict(
        {**SMALL, "encoder": "image", "objective": "beta", "beta": 1.0, "channels": 8,
         "hidden": 64, "latent_dim": 4, "batch_size": 32, "lr": 1e-3, "steps": 300,
         "report_every": 100, "probe_points": 1024, "eval_points": 0}
    )  # fmt: skip
    trainer = Trainer(cfg)
    rows = []
    while trainer.step < cfg.steps:
        rows.append({**trainer.train_steps(100), **trainer.measure()})
    last = rows[-1]
    assert last["recon"] < MEAN_IMAGE_RECON - 150
    latents = so.latent_switch_on(pd.DataFrame(rows).assign(trial_id="t"))
    assert latents["active"].sum() >= 2
    assert max(last["info/posX"], last["info/posY"]) > 0.3  # nats, of ln 32 = 3.47
