"""Throughput of this trainer against a conventional PyTorch training loop.

The conventional loop is written the way popular beta-VAE implementations do it: a
``DataLoader`` over a CPU ``TensorDataset`` of images, fp32, eager, NCHW, Adam with
its defaults, and ``.item()`` logging every step. Same model, same objective, same
device, same batch size, same thread count.

The two loops run interleaved in one process, a window of steps each in turn
(A B A B ...), so a machine that speeds up or slows down part-way (another job, a
turbo clock) moves both; the figures are the medians over the windows.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from trainables.config import TrialConfig
from trainables.data import load_dataset
from trainables.model import VAE
from trainables.objectives import vae_loss
from trainables.trainer import Trainer, resolve_device

WARMUP = 10  # steps of each loop before timing (allocator, oneDNN primitives, capture)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def ours(cfg: TrialConfig) -> tuple[Trainer, Callable[[int], None]]:
    """The trainer, warmed up, and a function that takes n steps of it."""
    trainer = Trainer(cfg)
    trainer.train_steps(WARMUP)
    return trainer, lambda n: trainer.train_steps(n)  # ends with the report's device sync


def conventional(cfg: TrialConfig, steps: int) -> Callable[[int], None]:
    """A DataLoader loop over pre-rendered CPU images, warmed up: n -> take n steps."""
    dev = resolve_device(cfg.device)
    data = load_dataset(cfg.data, "cpu")  # rendered on the CPU, as such loops do
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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = VAE(cfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)  # the defaults
    log: list[float] = []

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from loader

    stream = batches()

    def take(k: int) -> None:
        for _ in range(k):
            x, f = next(stream)
            x = x.to(dev)
            inputs = x if cfg.encoder == "image" else f.to(dev)
            noise = torch.randn(x.shape[0], cfg.latent_dim, device=dev)
            logits, mu, logvar = model(inputs, noise)
            loss, logs = vae_loss(logits, x, mu, logvar, cfg.c_max, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.append(loss.item())  # per-step logging: one device sync per step

    take(WARMUP)
    return take


def interleaved(
    loops: dict[str, Callable[[int], None]], steps: int, window: int, dev: torch.device
) -> dict[str, list[float]]:
    """Seconds per step of each loop, window by window, the loops taking turns."""
    per_step: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(max(1, steps // window)):
        for name, take in loops.items():
            _sync(dev)
            t0 = time.perf_counter()
            take(window)
            _sync(dev)
            per_step[name].append((time.perf_counter() - t0) / window)
    return per_step


def compare(steps: int, overrides: dict[str, Any], window: int = 25) -> list[str]:
    """Run both loops interleaved and return the lines to print."""
    cfg = TrialConfig.from_dict(
        {"eval_every": 0, "checkpoint_every": 0, "prerender": "on", **overrides}
    )
    cfg = cfg.replace(steps=steps + 2 * WARMUP + 10)
    dev = resolve_device(cfg.device)
    t0 = time.perf_counter()
    trainer, a = ours(cfg)
    setup = time.perf_counter() - t0
    b = conventional(cfg.replace(precision="fp32", compile="none", cuda_graph=False), steps)
    per_step = interleaved({"ours": a, "conventional": b}, steps, window, dev)
    probe_s = 0.0
    if trainer.probe is not None:
        probe_s = min(_timed(trainer.measure) for _ in range(3))  # one report row's probe
    ms = {k: statistics.median(v) for k, v in per_step.items()}
    lo_hi = {k: (min(v), max(v)) for k, v in per_step.items()}
    rate = {k: cfg.batch_size / s for k, s in ms.items()}
    probed = cfg.batch_size * cfg.report_every / (ms["ours"] * cfg.report_every + probe_s)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    data = "cached packed grid" if getattr(trainer.data, "cached", True) else "rendered per batch"
    return [
        f"device: {name}  threads {torch.get_num_threads()}  batch {cfg.batch_size}  "
        f"latent_dim {cfg.latent_dim}  encoder {cfg.encoder}  precision {cfg.precision}  "
        f"channels_last {trainer._channels_last}  compile {cfg.compile}  "
        f"cuda_graph {cfg.cuda_graph}  data: {data}",
        f"{len(per_step['ours'])} windows of {window} steps per loop, interleaved; "
        f"trainer set-up {setup:.1f} s (not timed below)",
        f"betastudy trainer:  {rate['ours']:12,.0f} images/s  (median; windows "
        f"{cfg.batch_size / lo_hi['ours'][1]:,.0f}-{cfg.batch_size / lo_hi['ours'][0]:,.0f})",
        f"conventional loop:  {rate['conventional']:12,.0f} images/s  (median; windows "
        f"{cfg.batch_size / lo_hi['conventional'][1]:,.0f}-"
        f"{cfg.batch_size / lo_hi['conventional'][0]:,.0f})",
        f"ratio:              {rate['ours'] / rate['conventional']:12.2f}x",
        f"with the probe:     {probed:12,.0f} images/s  ({cfg.probe_points} probe inputs "
        f"every {cfg.report_every} steps, {probe_s * 1e3:.0f} ms each: "
        f"{100 * (1 - probed / rate['ours']):.1f}% of the training rate)",
    ]


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def population_lines(
    sizes: list[int], steps: int, overrides: dict[str, Any], forward: str = "auto", rounds: int = 3
) -> list[str]:
    """Aggregate images/s of a population of K against its K members trained as solo
    trials one after another, for each K in ``sizes``: the two take turns, ``steps``
    steps a turn, ``rounds`` times, in one process; medians and their ratio."""
    from trainables.population import Population

    cfg = TrialConfig.from_dict(
        {
            "eval_every": 0,
            "checkpoint_every": 0,
            "probe_points": 0,
            "prerender": "on",
            "steps": 1_000_000,
            **overrides,
        }  # fmt: skip
    )
    dev = resolve_device(cfg.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    lines = [
        f"device: {name}  threads {torch.get_num_threads()}  batch {cfg.batch_size}  "
        f"latent_dim {cfg.latent_dim}  encoder {cfg.encoder}  precision {cfg.precision}  "
        f"{rounds} turns of {steps} steps each, interleaved",
        f"{'K':>4}  {'forward':>7}  {'population img/s':>17}  {'K solo trials img/s':>20}  ratio",
    ]
    for k in sizes:
        members = [cfg.replace(seed=cfg.seed + i) for i in range(k)]
        pop = Population(members, forward=forward)
        solos = [Trainer(c, pop.data) for c in members]
        pop.train_steps(WARMUP)
        for t in solos:
            t.train_steps(WARMUP)
        together, apart = [], []
        for _ in range(rounds):
            together.append(pop.train_steps(steps) / steps)
            _sync(dev)
            t0 = time.perf_counter()
            for t in solos:
                t.train_steps(steps)
            _sync(dev)
            apart.append((time.perf_counter() - t0) / steps)
        rate_pop = k * cfg.batch_size / statistics.median(together)
        rate_solo = k * cfg.batch_size / statistics.median(apart)
        lines.append(
            f"{k:>4}  {pop.forward:>7}  {rate_pop:>17,.0f}  {rate_solo:>20,.0f}  "
            f"{rate_pop / rate_solo:.2f}x"
        )
        del pop, solos
    return lines
