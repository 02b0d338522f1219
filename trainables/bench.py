"""Throughput of this trainer against a conventional PyTorch training loop.

The conventional loop is written the way popular beta-VAE implementations do it: a
``DataLoader`` over a CPU ``TensorDataset`` of images, fp32, eager, and ``.item()``
logging every step. Same model, same objective, same device, same batch size.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from trainables.config import TrialConfig
from trainables.data import load_dataset
from trainables.model import VAE
from trainables.objectives import vae_loss
from trainables.trainer import Trainer, resolve_device

WARMUP = 10


def ours(cfg: TrialConfig, steps: int) -> tuple[float, float]:
    """Images per second of Trainer over ``steps`` steps (after a warm-up), reporting every
    ``cfg.report_every`` steps: (training alone, training with the probe that each report
    row runs, as ``Trainer.run`` does). The two are timed window by window in one run."""
    trainer = Trainer(cfg)
    trainer.train_steps(WARMUP)
    train_s = probe_s = 0.0
    done = 0
    while done < steps:
        n = min(cfg.report_every, steps - done)
        t0 = time.perf_counter()
        trainer.train_steps(n)  # ends with the one device sync of the report
        t1 = time.perf_counter()
        trainer.measure()
        probe_s += time.perf_counter() - t1
        train_s += t1 - t0
        done += n
    images = steps * cfg.batch_size
    return images / train_s, images / (train_s + probe_s)


def conventional(cfg: TrialConfig, steps: int) -> float:
    """Images per second of a DataLoader loop over pre-rendered CPU images."""
    dev = resolve_device(cfg.device)
    data = load_dataset(cfg.data, "cpu")  # rendered once on the CPU, as such loops do
    n = min((steps + WARMUP) * cfg.batch_size, 65_536)
    g = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randint(data.num_images, (n,), generator=g)
    images = torch.cat([data.images_at(i) for i in idx.split(4096)])  # (n, 1, 64, 64) on CPU
    features = data.features(data.factors_of(idx))  # (n, 8): the factor encoder's inputs
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, features),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        pin_memory=dev.type == "cuda",
    )
    model = VAE(cfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    log: list[float] = []
    done, t0 = 0, 0.0
    while done < steps + WARMUP:
        for x, f in loader:
            if done == WARMUP:
                t0 = time.perf_counter()
            x = x.to(dev)
            inputs = x if cfg.encoder == "image" else f.to(dev)
            noise = torch.randn(x.shape[0], cfg.latent_dim, device=dev)
            logits, mu, logvar = model(inputs, noise)
            loss, logs = vae_loss(logits, x, mu, logvar, cfg.c_max, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.append(loss.item())  # per-step logging: one device sync per step
            done += 1
            if done == steps + WARMUP:
                break
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def compare(steps: int, overrides: dict[str, Any]) -> list[str]:
    """Run both loops once and return the lines to print."""
    cfg = TrialConfig.from_dict({"eval_every": 0, "checkpoint_every": 0, **overrides})
    cfg = cfg.replace(steps=steps + WARMUP + 10)
    a, probed = ours(cfg, steps)
    b = conventional(cfg.replace(precision="fp32", compile="none", cuda_graph=False), steps)
    dev = resolve_device(cfg.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    return [
        f"device: {name}  batch {cfg.batch_size}  latent_dim {cfg.latent_dim}  "
        f"encoder {cfg.encoder}  precision {cfg.precision}  compile {cfg.compile}  "
        f"cuda_graph {cfg.cuda_graph}  threads {torch.get_num_threads()}",
        f"betastudy trainer:  {a:12,.0f} images/s",
        f"conventional loop:  {b:12,.0f} images/s",
        f"ratio:              {a / b:12.2f}x",
        f"with the probe:     {probed:12,.0f} images/s  ({cfg.probe_points} probe inputs "
        f"every {cfg.report_every} steps: {100 * (1 - probed / a):.1f}% of the training rate)",
    ]
