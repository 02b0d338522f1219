"""Throughput of this trainer against a conventional PyTorch training loop.

The conventional loop is written the way popular beta-VAE implementations do it: a
``DataLoader`` over a CPU ``TensorDataset`` of images, fp32, eager, NCHW, torch's stock
layers, Adam with its defaults, and ``.item()`` logging every step. Same model, same
objective, same device, same batch size, same thread count.

The two loops run interleaved, each in a process of its own, a window of steps each in
turn (A B A B ...), so a machine that speeds up or slows down part-way (another job, a
turbo clock) moves both; the figures are the medians over the windows, and the median
of each turn's own ratio.
"""

from __future__ import annotations

import contextlib
import math
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from trainables.config import TrialConfig
from trainables.data import DSprites, load_dataset
from trainables.model import VAE, Deconv
from trainables.objectives import vae_loss
from trainables.trainer import Trainer, resolve_device

WARMUP = 10  # steps of each loop before timing (allocator, oneDNN primitives, capture)


def timing_config(overrides: dict[str, Any], probe: bool = False) -> TrialConfig:
    """The trial config the benchmarks time, with the user's ``overrides``: no
    evaluations or checkpoints, batches from the cached grid, too long to end, and no
    probe unless ``probe``."""
    fixed = {"eval_every": 0, "checkpoint_every": 0, "prerender": "on", "steps": 1_000_000}
    return TrialConfig.from_dict({**fixed, **({} if probe else {"probe_points": 0}), **overrides})


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
    with torch.random.fork_rng(devices=[]):  # the trainer's weights (Trainer.__init__)
        torch.default_generator.manual_seed(cfg.seed)
        model = stock_layers(VAE(cfg)).to(dev)
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


def stock_layers(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with torch's stock layers in place of ours (``model.Deconv`` becomes
    ``nn.ConvTranspose2d``, same weights), as other implementations write it."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Deconv):
                stock = torch.nn.ConvTranspose2d(child.in_channels, child.out_channels, 4, 2, 1)
                stock.load_state_dict(child.state_dict())
                setattr(parent, name, stock)
    return model


def interleaved(
    loops: dict[str, Callable[[int], float]], steps: int, window: int
) -> dict[str, list[float]]:
    """Seconds per step of each loop, window by window, the loops taking turns; each
    ``take(n)`` returns its own seconds for n steps."""
    per_step: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(max(1, steps // window)):
        for name, take in loops.items():
            per_step[name].append(take(window) / window)
    return per_step


def paired_ratios(per_step: dict[str, list[float]]) -> tuple[float, float, float]:
    """The conventional loop's seconds per step over ours, window by window (the two
    windows of a turn ran back to back, so a machine slowing down moves both): the
    median and the quartiles of those ratios."""
    ratios = sorted(c / o for o, c in zip(per_step["ours"], per_step["conventional"], strict=True))
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    low, mid, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return mid, low, high


class Loop:
    """One loop in a process of its own (spawned: a fresh interpreter and allocator),
    driven over a pipe: ``take(n)`` runs n steps there and returns their seconds.

    Each loop gets its own process so that what a trainer sets for its process (the
    allocator, ``trainables.host``) is not shared with the loop it is compared with,
    as two users' runs would not share it."""

    def __init__(self, kind: str, cfg: TrialConfig, steps: int, threads: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(kind, cfg.to_dict(), steps, threads, child), daemon=True
        )
        self.process.start()
        child.close()
        self.info: dict[str, Any] = self._answer()
        self.faults: list[float] = []

    def _answer(self) -> Any:
        try:
            kind, value = self.conn.recv()
        except EOFError:
            raise RuntimeError("a benchmark loop's process ended before answering") from None
        if kind == "error":
            raise RuntimeError(f"a benchmark loop failed: {value}")
        return value

    def take(self, n: int) -> float:
        """Seconds for n steps (their minor page faults go to ``faults``, per step)."""
        self.conn.send(("take", n))
        seconds, faults = self._answer()
        self.faults.append(faults / n)
        return seconds

    def probe_seconds(self) -> float:
        self.conn.send(("probe", 0))
        return self._answer()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop", 0))
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


def _serve(kind: str, values: dict[str, Any], steps: int, threads: int, conn: Any) -> None:
    """The loop's process: build it, say what it is, then take steps when asked."""
    try:
        torch.set_num_threads(threads)
        cfg = TrialConfig.from_dict(values)
        dev = resolve_device(cfg.device)
        t0 = time.perf_counter()
        trainer = None
        if kind == "ours":
            trainer, take = ours(cfg)
            info = {
                "setup": time.perf_counter() - t0,
                "flops": step_flops(cfg, trainer.data),
                "channels_last": trainer._channels_last,
                "cached": getattr(trainer.data, "cached", True),
            }
        else:
            take, info = conventional(cfg, steps), {}
        conn.send(("ok", info))
        while True:
            what, n = conn.recv()
            if what == "stop":
                return
            if what == "probe":
                probe = trainer is not None and trainer.probe is not None
                seconds = min(_timed(trainer.measure) for _ in range(3)) if probe else 0.0
                conn.send(("ok", seconds))
                continue
            _sync(dev)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            take(n)
            _sync(dev)
            seconds = time.perf_counter() - t0
            conn.send(
                ("ok", (seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
            )
    except Exception as e:  # the parent says it in one line
        conn.send(("error", f"{type(e).__name__}: {e}"))


def compare(steps: int, overrides: dict[str, Any], window: int = 25) -> list[str]:
    """Run both loops interleaved, each in its own process with this process's thread
    count, and return the lines to print."""
    cfg = timing_config(overrides, probe=True).replace(steps=steps + 2 * WARMUP + 10)
    dev = resolve_device(cfg.device)
    threads = torch.get_num_threads()
    loops = {}
    try:
        loops["ours"] = Loop("ours", cfg, steps, threads)
        plain = cfg.replace(precision="fp32", compile="none", cuda_graph=False)
        loops["conventional"] = Loop("conventional", plain, steps, threads)
        per_step = interleaved({k: v.take for k, v in loops.items()}, steps, window)
        probe_s = loops["ours"].probe_seconds()
        info = loops["ours"].info
        faults = {k: statistics.median(v.faults) for k, v in loops.items()}
    finally:
        for loop in loops.values():
            loop.close()
    peak = matmul_flops(dev)
    ms = {k: statistics.median(v) for k, v in per_step.items()}
    lo_hi = {k: (min(v), max(v)) for k, v in per_step.items()}
    rate = {k: cfg.batch_size / s for k, s in ms.items()}
    pair = paired_ratios(per_step)
    probed = cfg.batch_size * cfg.report_every / (ms["ours"] * cfg.report_every + probe_s)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    data = "cached packed grid" if info["cached"] else "rendered per batch"
    return [
        f"device: {name}  threads {threads}  batch {cfg.batch_size}  "
        f"latent_dim {cfg.latent_dim}  encoder {cfg.encoder}  precision {cfg.precision}  "
        f"channels_last {info['channels_last']}  compile {cfg.compile}  "
        f"cuda_graph {cfg.cuda_graph}  data: {data}",
        f"{len(per_step['ours'])} windows of {window} steps per loop, interleaved, each loop "
        f"in its own process; trainer set-up {info['setup']:.1f} s (not timed below)",
        f"betastudy trainer:  {rate['ours']:12,.0f} images/s  (median; windows "
        f"{cfg.batch_size / lo_hi['ours'][1]:,.0f}-{cfg.batch_size / lo_hi['ours'][0]:,.0f}; "
        f"{faults['ours']:,.0f} page faults a step)",
        f"conventional loop:  {rate['conventional']:12,.0f} images/s  (median; windows "
        f"{cfg.batch_size / lo_hi['conventional'][1]:,.0f}-"
        f"{cfg.batch_size / lo_hi['conventional'][0]:,.0f}; "
        f"{faults['conventional']:,.0f} page faults a step)",
        f"ratio:              {rate['ours'] / rate['conventional']:12.2f}x",
        "ratio per turn:     {:12.2f}x  (median of the {} turns' ratios; middle half "
        "{:.2f}-{:.2f}x)".format(pair[0], len(per_step["ours"]), pair[1], pair[2]),
        f"arithmetic:         {info['flops'] / 1e9:12.2f} GFLOP a step; trainer "
        f"{info['flops'] / ms['ours'] / 1e9:,.0f} GFLOP/s, conventional "
        f"{info['flops'] / ms['conventional'] / 1e9:,.0f}; this device's fp32 matmul "
        f"{peak / 1e9:,.0f} GFLOP/s",
        f"with the probe:     {probed:12,.0f} images/s  ({cfg.probe_points} probe inputs "
        f"every {cfg.report_every} steps, {probe_s * 1e3:.0f} ms each: "
        f"{100 * (1 - probed / rate['ours']):.1f}% of the training rate"
        + (
            "; added in series, so at most: on CUDA the probe's host part runs while "
            "the next window trains)"
            if dev.type == "cuda"
            else ")"
        ),
    ]


def step_flops(cfg: TrialConfig, data: DSprites | None = None) -> int:
    """Floating-point operations of one training step of ``cfg`` (convolutions and
    matrix products, forward and backward: torch's FlopCounterMode), counted on an
    eager trainer of the same model: a CUDA graph's replay and a compiled step pass no
    operator through the dispatcher the counter listens on, so the trainer being timed
    would count 0. ``data``: a dataset already loaded for the device."""
    from torch.utils.flop_counter import FlopCounterMode

    eager = Trainer(cfg.replace(cuda_graph=False, compile="none", probe_points=0), data)
    with FlopCounterMode(display=False) as counter:
        eager.train_steps(1)
    return counter.get_total_flops()


def matmul_flops(dev: torch.device, n: int = 2048, tries: int = 5) -> float:
    """This device's fp32 matrix-product rate at the current thread count (FLOP/s, best
    of ``tries``): what the step's convolutions could approach at best."""
    a = torch.randn(n, n, device=dev)
    best = math.inf
    for _ in range(tries + 1):  # the first warms up
        _sync(dev)
        t0 = time.perf_counter()
        a @ a
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


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

    cfg = timing_config(overrides)
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


def layer_lines(overrides: dict[str, Any], steps: int = 20) -> list[str]:
    """Where a training step's time goes, measured inside real steps: each convolution
    layer's forward and backward (its input gradient where training needs one, its
    weight and bias gradients), with GFLOP/s against this device's matmul rate, and the
    rest of the step. torch.profiler over ``steps`` steps; a backward is matched to its
    layer through the autograd node's sequence number. On CUDA the times are the GPU
    kernels' (eager only: a CUDA graph replays as one)."""
    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.utils.flop_counter import FlopCounterMode

    # eager: each layer runs its own kernels
    cfg = timing_config(overrides).replace(cuda_graph=False, compile="none")
    dev = resolve_device(cfg.device)
    cuda = dev.type == "cuda"
    trainer = Trainer(cfg)
    trainer.train_steps(WARMUP)
    convs = {
        name: m
        for name, m in trainer.model.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    }
    shapes: dict[str, str] = {}

    def scoped(name: str, m: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        forward = m.forward

        def run(x: torch.Tensor) -> torch.Tensor:
            with record_function(f"layer:{name}"):
                y = forward(x)
            shapes[name] = " -> ".join("x".join(map(str, t.shape[1:])) for t in (x, y))
            return y

        return run

    for name, m in convs.items():
        m.forward = scoped(name, m)
    try:
        step_s = _timed(lambda: (trainer.train_steps(steps), _sync(dev))) / steps
        flops = {}  # per layer: (forward, forward + backward) of one step
        with FlopCounterMode(display=False) as counter:
            trainer.train_steps(1)
        total = counter.get_flop_counts()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            trainer._forward_loss()
        forward = counter.get_flop_counts()
        for name in convs:
            key = f"VAE.{name}" if f"VAE.{name}" in total else name
            flops[name] = (sum(forward.get(key, {}).values()), sum(total.get(key, {}).values()))
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            profiled_step = _timed(lambda: (trainer.train_steps(steps), _sync(dev))) / steps
    finally:
        for m in convs.values():
            del m.forward  # the class's forward again

    def took(e: Any) -> float:  # seconds
        return (e.device_time_total if cuda else e.cpu_time_total) / 1e6

    events = prof.events()
    fwd = dict.fromkeys(convs, 0.0)
    bwd = dict.fromkeys(convs, 0.0)
    seq: dict[int, str] = {}
    for e in events:
        if e.name.startswith("layer:"):
            name = e.name[len("layer:") :]
            fwd[name] += took(e)
            stack = list(e.cpu_children)
            while stack:  # the autograd nodes this layer's forward made
                c = stack.pop()
                if c.sequence_nr >= 0:
                    seq[c.sequence_nr] = name
                stack.extend(c.cpu_children)
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function") and e.sequence_nr in seq:
            bwd[seq[e.sequence_nr]] += took(e)
    rows, conv_s, conv_flops = [], 0.0, 0
    for name in convs:
        f_s, b_s = fwd[name] / steps, bwd[name] / steps
        f_fl, all_fl = flops[name]
        b_fl = all_fl - f_fl
        conv_s += f_s + b_s
        conv_flops += all_fl
        rows.append(
            f"{name:<18} {shapes.get(name, ''):<22} {f_fl / 1e6:>8,.1f} {f_s * 1e3:>8.2f} "
            f"{f_fl / max(f_s, 1e-9) / 1e9:>8,.0f} {b_fl / 1e6:>8,.1f} {b_s * 1e3:>8.2f} "
            f"{b_fl / max(b_s, 1e-9) / 1e9:>8,.0f}"
        )
    name = torch.cuda.get_device_name(dev) if cuda else "CPU"
    head = f"{'layer':<18} {'input -> output':<22} {'MFLOP':>8} {'fwd ms':>8} {'GFLOP/s':>8}"
    head += f" {'MFLOP':>8} {'bwd ms':>8} {'GFLOP/s':>8}"
    return [
        f"device: {name}  threads {torch.get_num_threads()}  batch {cfg.batch_size}  "
        f"precision {cfg.precision}  channels_last {trainer._channels_last}  "
        f"{steps} profiled steps",
        head,
        *rows,
        f"convolutions:  {conv_s * 1e3:8.2f} ms a step at {conv_flops / conv_s / 1e9:,.0f} "
        f"GFLOP/s; this device's fp32 matmul {matmul_flops(dev) / 1e9:,.0f} GFLOP/s",
        f"whole step:    {profiled_step * 1e3:8.2f} ms profiled ({step_s * 1e3:.2f} without "
        f"the profiler); the rest (fully connected layers, activations, loss, optimizer, "
        f"data): {(profiled_step - conv_s) * 1e3:.2f} ms",
    ]
