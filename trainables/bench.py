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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LoopRate:
    """One loop's speed over its timed windows."""

    step_s: float  # seconds a step, median over the windows
    images_per_s: float  # at that median
    slowest: float  # images/s of the slowest window
    fastest: float  # images/s of the fastest window
    faults_per_step: float  # minor page faults a step, median over the windows


def _loop_rate(batch_size: int, per_step: list[float], faults: list[float]) -> LoopRate:
    step_s = statistics.median(per_step)
    return LoopRate(
        step_s=step_s,
        images_per_s=batch_size / step_s,
        slowest=batch_size / max(per_step),
        fastest=batch_size / min(per_step),
        faults_per_step=statistics.median(faults),
    )


@dataclass(frozen=True)
class TrainerComparison:
    """``compare``'s figures: this trainer (``config``) against the conventional loop
    (the same config in fp32, eager), ``windows`` turns of ``window`` steps each."""

    config: TrialConfig
    device: str  # "CPU" or the CUDA device's name
    cuda: bool
    threads: int
    channels_last: bool  # the trainer's layout
    cached: bool  # batches from the cached packed grid, else rendered per batch
    windows: int
    window: int
    setup_s: float  # the trainer's set-up, not timed in the rates
    ours: LoopRate
    conventional: LoopRate
    turn_ratio: float  # median over the turns of the conventional seconds over ours
    turn_ratio_low: float  # the quartiles of those ratios
    turn_ratio_high: float
    step_flops: int  # floating-point operations of one training step
    matmul_flops: float  # this device's fp32 matrix-product rate, FLOP/s
    probe_s: float  # one probe measurement
    probed_images_per_s: float  # the trainer's rate with a probe every report_every steps

    @property
    def ratio(self) -> float:
        """The trainer's median images/s over the conventional loop's."""
        return self.ours.images_per_s / self.conventional.images_per_s


def compare(steps: int, overrides: dict[str, Any], window: int = 25) -> TrainerComparison:
    """Run both loops interleaved, each in its own process with this process's thread
    count; their figures."""
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
    finally:
        for loop in loops.values():
            loop.close()
    peak = matmul_flops(dev)
    rates = {k: _loop_rate(cfg.batch_size, per_step[k], loop.faults) for k, loop in loops.items()}
    turn, low, high = paired_ratios(per_step)
    probed = cfg.batch_size * cfg.report_every / (rates["ours"].step_s * cfg.report_every + probe_s)
    return TrainerComparison(
        config=cfg,
        device=_device_name(dev),
        cuda=dev.type == "cuda",
        threads=threads,
        channels_last=info["channels_last"],
        cached=info["cached"],
        windows=len(per_step["ours"]),
        window=window,
        setup_s=info["setup"],
        ours=rates["ours"],
        conventional=rates["conventional"],
        turn_ratio=turn,
        turn_ratio_low=low,
        turn_ratio_high=high,
        step_flops=info["flops"],
        matmul_flops=peak,
        probe_s=probe_s,
        probed_images_per_s=probed,
    )


def format_compare(result: TrainerComparison) -> list[str]:
    """The lines ``betastudy bench trainer`` prints for ``result``."""
    r, cfg = result, result.config
    data = "cached packed grid" if r.cached else "rendered per batch"
    ours, plain = r.ours, r.conventional
    return [
        f"device: {r.device}  threads {r.threads}  batch {cfg.batch_size}  "
        f"latent_dim {cfg.latent_dim}  encoder {cfg.encoder}  precision {cfg.precision}  "
        f"channels_last {r.channels_last}  compile {cfg.compile}  "
        f"cuda_graph {cfg.cuda_graph}  data: {data}",
        f"{r.windows} windows of {r.window} steps per loop, interleaved, each loop "
        f"in its own process; trainer set-up {r.setup_s:.1f} s (not timed below)",
        f"betastudy trainer:  {ours.images_per_s:12,.0f} images/s  (median; windows "
        f"{ours.slowest:,.0f}-{ours.fastest:,.0f}; "
        f"{ours.faults_per_step:,.0f} page faults a step)",
        f"conventional loop:  {plain.images_per_s:12,.0f} images/s  (median; windows "
        f"{plain.slowest:,.0f}-{plain.fastest:,.0f}; "
        f"{plain.faults_per_step:,.0f} page faults a step)",
        f"ratio:              {r.ratio:12.2f}x",
        f"ratio per turn:     {r.turn_ratio:12.2f}x  (median of the {r.windows} turns' "
        f"ratios; middle half {r.turn_ratio_low:.2f}-{r.turn_ratio_high:.2f}x)",
        f"arithmetic:         {r.step_flops / 1e9:12.2f} GFLOP a step; trainer "
        f"{r.step_flops / ours.step_s / 1e9:,.0f} GFLOP/s, conventional "
        f"{r.step_flops / plain.step_s / 1e9:,.0f}; this device's fp32 matmul "
        f"{r.matmul_flops / 1e9:,.0f} GFLOP/s",
        f"with the probe:     {r.probed_images_per_s:12,.0f} images/s  ({cfg.probe_points} probe "
        f"inputs every {cfg.report_every} steps, {r.probe_s * 1e3:.0f} ms each: "
        f"{100 * (1 - r.probed_images_per_s / ours.images_per_s):.1f}% of the training rate"
        + (
            "; added in series, so at most: on CUDA the probe's host part runs while "
            "the next window trains)"
            if r.cuda
            else ")"
        ),
    ]


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"


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


@dataclass(frozen=True)
class PopulationRate:
    """Aggregate images/s of a population of ``k`` and of its members as solo trials."""

    k: int
    forward: str  # how the population ran its k forwards: "vmap" or "loop"
    population_images_per_s: float  # median over the turns
    solo_images_per_s: float  # the k solo trials one after another, median over the turns

    @property
    def ratio(self) -> float:
        return self.population_images_per_s / self.solo_images_per_s


@dataclass(frozen=True)
class PopulationComparison:
    """``compare_population``'s figures, one ``PopulationRate`` per size, each side
    taking ``rounds`` turns of ``steps`` steps."""

    config: TrialConfig
    device: str  # "CPU" or the CUDA device's name
    threads: int
    rounds: int
    steps: int
    sizes: tuple[PopulationRate, ...]


def compare_population(
    sizes: list[int], steps: int, overrides: dict[str, Any], forward: str = "auto", rounds: int = 3
) -> PopulationComparison:
    """Aggregate images/s of a population of K against its K members trained as solo
    trials one after another, for each K in ``sizes``: the two take turns, ``steps``
    steps a turn, ``rounds`` times, in one process; medians."""
    from trainables.population import Population

    cfg = timing_config(overrides)
    dev = resolve_device(cfg.device)
    threads = torch.get_num_threads()
    rates = []
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
        rates.append(
            PopulationRate(
                k=k,
                forward=pop.forward,
                population_images_per_s=k * cfg.batch_size / statistics.median(together),
                solo_images_per_s=k * cfg.batch_size / statistics.median(apart),
            )
        )
        del pop, solos
    return PopulationComparison(cfg, _device_name(dev), threads, rounds, steps, tuple(rates))


def format_population(result: PopulationComparison) -> list[str]:
    """The lines ``betastudy bench population`` prints for ``result``: a header, then a
    table of one row per population size."""
    cfg = result.config
    return [
        f"device: {result.device}  threads {result.threads}  batch {cfg.batch_size}  "
        f"latent_dim {cfg.latent_dim}  encoder {cfg.encoder}  precision {cfg.precision}  "
        f"{result.rounds} turns of {result.steps} steps each, interleaved",
        f"{'K':>4}  {'forward':>7}  {'population img/s':>17}  {'K solo trials img/s':>20}  ratio",
        *(
            f"{r.k:>4}  {r.forward:>7}  {r.population_images_per_s:>17,.0f}  "
            f"{r.solo_images_per_s:>20,.0f}  {r.ratio:.2f}x"
            for r in result.sizes
        ),
    ]


@dataclass(frozen=True)
class LayerTime:
    """One convolution layer inside a training step: its forward and its backward (the
    input gradient where training needs one, the weight and bias gradients)."""

    name: str  # the module's name in the model, e.g. "encoder.conv.0"
    input_shape: tuple[int, ...]  # channels, height, width
    output_shape: tuple[int, ...]
    forward_flops: int  # a step's
    forward_s: float  # seconds a step
    backward_flops: int
    backward_s: float


@dataclass(frozen=True)
class LayerProfile:
    """``profile_layers``' figures: each convolution's time in a step, and the step's."""

    config: TrialConfig
    device: str  # "CPU" or the CUDA device's name
    threads: int
    channels_last: bool
    steps: int  # profiled steps
    layers: tuple[LayerTime, ...]
    step_s: float  # seconds a step without the profiler
    profiled_step_s: float  # with it (the layers' times are the profiled steps')
    matmul_flops: float  # this device's fp32 matrix-product rate, FLOP/s

    @property
    def conv_s(self) -> float:
        """Seconds a step in the convolutions, forward and backward."""
        return sum(layer.forward_s + layer.backward_s for layer in self.layers)

    @property
    def conv_flops(self) -> int:
        return sum(layer.forward_flops + layer.backward_flops for layer in self.layers)


def profile_layers(overrides: dict[str, Any], steps: int = 20) -> LayerProfile:
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
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # (input, output)

    def scoped(name: str, m: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        forward = m.forward

        def run(x: torch.Tensor) -> torch.Tensor:
            with record_function(f"layer:{name}"):
                y = forward(x)
            shapes[name] = (tuple(x.shape[1:]), tuple(y.shape[1:]))
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
    layers = []
    for name in convs:
        f_fl, all_fl = flops[name]
        ins, outs = shapes.get(name, ((), ()))
        layers.append(
            LayerTime(
                name=name,
                input_shape=ins,
                output_shape=outs,
                forward_flops=f_fl,
                forward_s=fwd[name] / steps,
                backward_flops=all_fl - f_fl,
                backward_s=bwd[name] / steps,
            )
        )
    return LayerProfile(
        config=cfg,
        device=_device_name(dev),
        threads=torch.get_num_threads(),
        channels_last=trainer._channels_last,
        steps=steps,
        layers=tuple(layers),
        step_s=step_s,
        profiled_step_s=profiled_step,
        matmul_flops=matmul_flops(dev),
    )


def format_layers(result: LayerProfile) -> list[str]:
    """The lines ``betastudy bench layers`` prints for ``result``: a header, a table of
    one row per convolution, the convolutions' total and the whole step's."""
    cfg, conv_s, step_s = result.config, result.conv_s, result.profiled_step_s

    def dims(shape: tuple[int, ...]) -> str:
        return "x".join(map(str, shape))

    rows = []
    for layer in result.layers:
        shapes = f"{dims(layer.input_shape)} -> {dims(layer.output_shape)}"
        f_fl, f_s = layer.forward_flops, layer.forward_s
        b_fl, b_s = layer.backward_flops, layer.backward_s
        rows.append(
            f"{layer.name:<18} {shapes if layer.input_shape else '':<22} {f_fl / 1e6:>8,.1f} "
            f"{f_s * 1e3:>8.2f} {f_fl / max(f_s, 1e-9) / 1e9:>8,.0f} {b_fl / 1e6:>8,.1f} "
            f"{b_s * 1e3:>8.2f} {b_fl / max(b_s, 1e-9) / 1e9:>8,.0f}"
        )
    head = f"{'layer':<18} {'input -> output':<22} {'MFLOP':>8} {'fwd ms':>8} {'GFLOP/s':>8}"
    head += f" {'MFLOP':>8} {'bwd ms':>8} {'GFLOP/s':>8}"
    return [
        f"device: {result.device}  threads {result.threads}  batch {cfg.batch_size}  "
        f"precision {cfg.precision}  channels_last {result.channels_last}  "
        f"{result.steps} profiled steps",
        head,
        *rows,
        f"convolutions:  {conv_s * 1e3:8.2f} ms a step at "
        f"{result.conv_flops / conv_s / 1e9:,.0f} GFLOP/s; this device's fp32 matmul "
        f"{result.matmul_flops / 1e9:,.0f} GFLOP/s",
        f"whole step:    {step_s * 1e3:8.2f} ms profiled ({result.step_s * 1e3:.2f} without "
        f"the profiler); the rest (fully connected layers, activations, loss, optimizer, "
        f"data): {(step_s - conv_s) * 1e3:.2f} ms",
    ]
