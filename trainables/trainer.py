"""The trainer: one trial of beta-VAE or capacity-annealed VAE training, pure PyTorch.

The hot loop keeps everything on the device: factor indices are drawn with a device
generator, images rendered (or gathered from the .npz) there, and the report
statistics accumulate in a device tensor that is read once per report. With
``cuda_graph=True`` the whole step (data, forward, backward, Adam) is one CUDA graph.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.contract import (
    CONFIG_FILE,
    DIVERGED_KEY,
    ERROR_KEY,
    STATE_FILE,
    TRAVERSALS_FILE,
    Row,
    kl_key,
)
from trainables import grid, host
from trainables.config import ConfigError, TrialConfig
from trainables.data import DSprites, load_dataset
from trainables.model import VAE
from trainables.objectives import (
    capacity_check_steps,
    capacity_table,
    step_check_steps,
    vae_loss,
)
from trainables.probe import Probe

WARMUP_STEPS = 3  # eager steps before a CUDA graph is captured
# On CUDA, report rows are read from the device in bursts at most this often (seconds):
# each read waits for the GPU, so reading every row would idle it at every report.
REPORT_SECONDS = 1.0
# Config keys a resume may change: length, reporting and the runtime, not the model.
RESUMABLE = frozenset(
    {"steps", "report_every", "eval_every", "eval_fast", "eval_points", "checkpoint_every",
     "device", "precision", "compile", "cuda_graph", "prerender", "probe_points"}
)  # fmt: skip
OnReport = Callable[[Row, bool], None]
OnEvaluate = Callable[[bool], None]  # called before each evaluation; True: the final one
OnTraversals = Callable[[int, dict[str, np.ndarray]], None]  # (step, arrays) at each evaluation


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the first such step."""

    def __init__(self, step: int) -> None:
        super().__init__(
            f"non-finite loss at step {step}; lower lr, gamma or beta, or try precision=fp32"
        )
        self.step = step

    def __reduce__(self):  # pickled by Ray: rebuild from the step, not the message
        return (TrainingDiverged, (self.step,))


NAN_COLUMNS = ("recon", "kl", "loss")  # NaN in a diverged row: metrics a scheduler may expect


def diverged_row(e: TrainingDiverged, cfg: TrialConfig) -> Row:
    """The last row of a diverged trial: its step, NaN losses and the reason."""
    row: Row = {"step": e.step, "images_seen": e.step * cfg.batch_size}
    row.update({k: math.nan for k in NAN_COLUMNS})
    row[DIVERGED_KEY] = True
    row[ERROR_KEY] = f"{type(e).__name__}: {e}"
    return row


def resolve_device(name: str) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a device; CUDA always with its index (a
    graph capture's ``set_device`` and the graph's streams need one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trial config device={name!r}: no CUDA device here; use device=cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def use_threads(cpus: float | None = None) -> int:
    """Set torch's intra-op threads to the CPUs a trial was given (``cpus``; None: the
    CPUs this process may run on) and return the count. Four trials on four cores then
    run a thread each instead of four each, which on a busy machine is many times
    faster. OMP_NUM_THREADS, when set, wins: the user chose."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        n = int(os.environ["OMP_NUM_THREADS"])
    elif cpus is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    else:
        n = int(cpus)  # a fraction of a CPU runs one thread
    n = max(1, n or 1)
    torch.set_num_threads(n)
    return n


def capture_graph(
    step: Callable[[], None],
    device: torch.device,
    generators: list[torch.Generator],
    before: Callable[[], None] | None = None,
    stance: contextlib.AbstractContextManager | None = None,
) -> torch.cuda.CUDAGraph:
    """``step`` recorded as a CUDA graph on ``device``, after WARMUP_STEPS eager runs on a
    side stream (real steps: optimiser state and kernels initialised). ``generators``
    are registered with the graph, so each replay draws fresh numbers from each;
    ``before`` runs just before the recording (a trainer frees its gradients there, to
    have them allocated in the graph's pool), which runs under ``stance``. A solo
    trial's step and a population's are captured here alike."""
    torch.cuda.set_device(device)  # graph streams live on the current device
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_STEPS):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    for gen in generators:
        graph.register_generator_state(gen)
    if before is not None:
        before()
    with stance or contextlib.nullcontext(), torch.cuda.graph(graph, stream=side):  # on device
        step()
    return graph


@dataclass
class Window:
    """A window of steps whose statistics are still on the device (``Trainer.read``
    makes it a row): a solo trial's own, or a population slot's."""

    step: int  # the step at its end
    span: int  # steps its statistics average over
    steps: int  # steps its images/s counts (set-up left out)
    acc: torch.Tensor  # (3 + d,) means of recon, kl, loss and kl per latent
    bad: torch.Tensor  # first non-finite step so far, or -1
    seconds: float | None  # its time (CUDA: read from its events in read)
    start: torch.cuda.Event | None = None
    end: torch.cuda.Event | None = None
    posterior: tuple[torch.Tensor, ...] | None = None  # probe mu, logvar (, exact I(f; z))


class Trainer:
    """Trains one VAE per ``cfg``; ``run`` reports rows of the results contract."""

    def __init__(self, cfg: TrialConfig, data: DSprites | None = None) -> None:
        """``data``: a dataset already loaded for this device (a population's members
        share one); by default the trial loads its own."""
        self.cfg = cfg
        self.device = dev = resolve_device(cfg.device)
        cuda = dev.type == "cuda"
        if cfg.cuda_graph and not cuda:
            raise ConfigError(f"trial config cuda_graph={cfg.cuda_graph!r} needs a CUDA device")
        if cfg.precision == "bf16" and not (cuda or torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            raise ConfigError(
                "trial config precision='bf16': this CPU has no bf16 units (AVX512-BF16 or "
                "AMX); use precision=fp32"
            )
        if cuda:
            # the trial's device is the current one: streams, events and graphs live there
            torch.cuda.set_device(dev)
            torch.backends.cudnn.benchmark = True  # the shapes never change: tune once
        else:
            host.keep_freed_memory()  # no page faults for each step's activations
        cached = cfg.data == "procedural" and grid.wanted(cfg.prerender, cfg.steps * cfg.batch_size)
        self.data = data if data is not None else load_dataset(cfg.data, dev, cached)
        # Weights depend on the seed alone: the model is built on the CPU from the CPU
        # generator seeded here and put back as it was. Only that generator: torch's
        # manual_seed would reseed every CUDA device's default generator as well.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(cfg.seed)
            self.model = VAE(cfg).to(dev)
        self._channels_last = cfg.channels_last
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._fused = True  # fused Adam: one kernel (CUDA) or one loop (CPU) for all params
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, capturable=cfg.cuda_graph, fused=self._fused
        )
        # Draws the data and the reparameterisation noise: the trial's own generator (a
        # CUDA graph registers it, so two graphed trials never share a stream).
        self.gen = torch.Generator(dev)
        self.gen.manual_seed(cfg.seed)
        self.c_table = capacity_table(cfg, dev)  # (steps + 1,)
        self._c_host = self.c_table.cpu().numpy()  # for the rows' window means of C
        self.step = 0
        d = cfg.latent_dim
        self._step_t = torch.zeros((), dtype=torch.long, device=dev)  # the step, on the device
        self._acc = torch.zeros(3 + d, device=dev)  # sums of recon, kl, loss, kl per latent
        self._acc_n = 0
        self._bad = torch.full((), -1, dtype=torch.long, device=dev)  # first non-finite step
        self._graph: torch.cuda.CUDAGraph | None = None
        self._compiled = False  # compile / capture done (the set-up a rate leaves out)
        self._defer_reads = cuda  # read report rows in bursts (see run)
        self._loss_fn = self._loss
        if cfg.compile != "none":  # the pure part only: sampling with a generator stays eager
            self._loss_fn = torch.compile(self._loss, mode=cfg.compile)
        self.probe = (
            Probe(self.data, cfg.encoder, cfg.probe_points, cfg.seed, d, cfg.grid_info_samples)
            if cfg.probe_points
            else None
        )
        self._grid_when, self._grid_checks = _grid_schedule(cfg, dev)
        # probe columns of every row so far: the switch-on rule reads the traversal labels
        self.history: list[dict[str, float]] = []
        # the last row while the final evaluation runs: a checkpoint written then carries
        # it, so a resume from there evaluates and reports it instead of doing nothing
        self.pending: Row | None = None
        self.on_traversals: OnTraversals | None = None
        self.autocast = (
            torch.autocast(dev.type, dtype=torch.bfloat16)
            if cfg.precision == "bf16"
            else contextlib.nullcontext()
        )

    # ---- one step ---------------------------------------------------------------------

    def _forward_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, data = self.cfg, self.data
        idx = data.sample_indices(cfg.batch_size, self.gen)  # (B,)
        x = data.images_at(idx)  # (B, 1, 64, 64)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs = x if cfg.encoder == "image" else data.features(data.factors_of(idx))
        noise = torch.randn(cfg.batch_size, cfg.latent_dim, generator=self.gen, device=self.device)
        # index_select, not [tensor]: indexing with a 0-dim tensor reads it on the host
        c = self.c_table.index_select(0, self._step_t.clamp(max=cfg.steps).view(1))[0]
        return self._loss_fn(inputs, x, noise, c)

    def _loss(
        self, inputs: torch.Tensor, x: torch.Tensor, noise: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self.autocast:
            logits, mu, logvar = self.model(inputs, noise)
        return vae_loss(logits, x, mu, logvar, c, self.cfg)

    def _train_step(self) -> None:
        loss, logs = self._forward_loss()
        self.opt.zero_grad(set_to_none=True)  # under capture: grads in the graph's pool
        loss.backward()
        self.opt.step()
        stats = torch.cat([torch.stack([logs["recon"], logs["kl"], loss]), logs["kl_per_latent"]])
        self._acc.add_(stats.detach())
        bad = (self._bad < 0) & ~torch.isfinite(loss.detach())
        self._bad.copy_(torch.where(bad, self._step_t + 1, self._bad))
        self._step_t.add_(1)

    def _capture(self) -> None:
        """Record one whole train step as a CUDA graph (``capture_graph``).

        The trial's generator is registered with the graph, so each replay draws fresh
        numbers from it (and from no other trial's stream). A compiled loss must not
        recompile while it is captured: capture runs with torch.compile's
        ``fail_on_recompile`` stance and a recompile becomes a one-line ConfigError.
        """
        stance = (
            torch.compiler.set_stance("fail_on_recompile")
            if self.cfg.compile != "none"
            else contextlib.nullcontext()
        )
        try:
            self._graph = capture_graph(
                self._train_step,
                self.device,
                [self.gen],
                before=lambda: self.opt.zero_grad(set_to_none=True),  # grads in its pool
                stance=stance,
            )
        except RuntimeError as e:
            if "recompil" not in str(e).lower():
                raise
            raise ConfigError(
                f"trial config compile={self.cfg.compile!r} recompiled inside the CUDA graph "
                "capture; use compile=none with cuda_graph=true, or cuda_graph=false"
            ) from e

    def _set_up(self, n: int) -> int:
        """One-time set-up at the start of a window of n steps: the eager warm-up and
        capture of a CUDA graph, or the first (compiling) step of torch.compile. Returns
        the training steps it took; a row's images/s leaves them and their time out."""
        done = 0
        if self.cfg.cuda_graph and self._graph is None and n > WARMUP_STEPS:
            self._capture()
            done = WARMUP_STEPS
        elif self.cfg.compile != "none" and not self._compiled and n > 1:
            self._train_step()
            done = 1
        if done:
            self._compiled = True
            self._sync()
        return done

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # time the GPU's work, not the launches

    # ---- the loop -----------------------------------------------------------------------

    def _intervals(self) -> tuple[int, ...]:
        cfg = self.cfg
        return tuple(e for e in (cfg.report_every, cfg.eval_every, cfg.checkpoint_every) if e > 0)

    def next_event(self) -> int:
        """The next step at which to report: a report, evaluation or checkpoint, or the end."""
        return min([self.cfg.steps, *((self.step // e + 1) * e for e in self._intervals())])

    def at_event(self) -> bool:
        """Whether the current step is a report, evaluation or checkpoint step, or the end."""
        return self.step >= self.cfg.steps or any(self.step % e == 0 for e in self._intervals())

    def _window(self, n: int, probe: bool) -> Window:
        """Take n steps and snapshot their statistics (and, with ``probe``, the probe
        set's posteriors) without waiting for the device: on CUDA the host runs ahead
        while the GPU trains, and ``read`` reads the snapshot later."""
        cuda = self.device.type == "cuda"
        t0 = time.perf_counter()
        done = self._set_up(n)
        t1 = time.perf_counter()
        stream = torch.cuda.current_stream(self.device) if cuda else None
        start = torch.cuda.Event(enable_timing=True) if cuda else None
        if start is not None:
            start.record(stream)
        for _ in range(n - done):
            if self._graph is not None:
                self._graph.replay()
            else:
                self._train_step()
        self.step += n
        self._acc_n += n  # more than n after a resume from a mid-window checkpoint
        w = Window(
            step=self.step,
            span=self._acc_n,
            steps=n - done if n > done else n,
            acc=self._acc / self._acc_n,
            bad=self._bad.clone(),
            seconds=None if cuda else time.perf_counter() - (t1 if n > done else t0),
            start=start,
        )
        self._acc.zero_()
        self._acc_n = 0
        if probe and self.probe is not None:
            w.posterior = self.probe.encode(self.model.encoder)
        if cuda:
            # Copies to pinned host memory, queued behind this window and ahead of the
            # next: once `end` has passed they are readable without waiting for the
            # stream (a plain .cpu() would wait for every step queued after them too).
            w.acc, w.bad = (t.to("cpu", non_blocking=True) for t in (w.acc, w.bad))
            if w.posterior is not None:
                w.posterior = tuple(t.to("cpu", non_blocking=True) for t in w.posterior)
            w.end = torch.cuda.Event(enable_timing=True)
            w.end.record(stream)
        return w

    def read(self, w: Window) -> Row:
        """The contract row of a window (waits for its snapshot, not for later work)."""
        if w.end is not None:
            w.end.synchronize()
            w.seconds = w.start.elapsed_time(w.end) / 1e3
        cfg = self.cfg
        sums = w.acc.tolist()
        bad = int(w.bad)
        if bad >= 0:
            raise TrainingDiverged(bad)
        # steps s in [step - n, step) trained at C(s): the row's C is their mean, like kl
        window = self._c_host[max(w.step - w.span, 0) : max(w.step, 1)]
        window = window if window.size else self._c_host[w.step : w.step + 1]
        row: Row = {
            "step": w.step,
            "images_seen": w.step * cfg.batch_size,
            "recon": sums[0],
            "kl": sums[1],
            # the beta objective has no capacity: its rows carry none to plot against
            "C": float(window.mean()) if cfg.objective == "capacity" else math.nan,
            "loss": sums[2],
            "images_per_s": w.steps * cfg.batch_size / max(w.seconds, 1e-9),
        }
        row.update({kl_key(i): v for i, v in enumerate(sums[3:])})
        if w.posterior is not None:
            row.update(self._probed(w.step, w.posterior))
        return row

    def _probed(self, step: int, posterior: tuple[torch.Tensor, ...]) -> Row:
        """The probe columns of the probe set's posteriors at ``step``; kept in history."""
        probed = self.probe.columns(*posterior)
        self.history.append({"step": step, **probed})
        return probed

    def train_steps(self, n: int) -> Row:
        """Take n steps and return their report row (no probe, evaluation or callbacks)."""
        return self.read(self._window(n, probe=False))

    def measure(self) -> Row:
        """The probe columns (what the code tells) of the current model; kept in history."""
        if self.probe is None:
            return {}
        return self._probed(self.step, self.probe.encode(self.model.encoder))

    def run(
        self,
        on_report: OnReport | None = None,
        on_evaluate: OnEvaluate | None = None,
        on_traversals: OnTraversals | None = None,
    ) -> Row | None:
        """Train from ``self.step`` to ``cfg.steps``; return the last row.

        ``on_report(row, checkpoint_due)`` is called every ``report_every`` steps, at
        evaluation and checkpoint steps, and at the end; ``checkpoint_due`` is True every
        ``checkpoint_every`` steps and at the final step. ``on_evaluate(final)`` is called
        before each evaluation: the final one comes after training, so that is where a
        caller saves the trained weights before minutes of metrics.
        ``on_traversals(step, arrays)`` receives the traversal images after each
        evaluation (``evaluate.traversals``), to keep beside the rows. Raises
        TrainingDiverged.
        """
        cfg = self.cfg
        row = None
        self.on_traversals = on_traversals
        self.model.train()
        report = on_report or (lambda row, due: None)
        if self.pending is not None and self.step >= cfg.steps:  # stopped in the final eval
            row = self.finish(dict(self.pending), report, on_evaluate)
        queue: list[Window] = []  # windows trained, not yet read (CUDA)
        flushed = time.perf_counter()
        while self.step < cfg.steps:
            queue.append(self._window(self.next_event() - self.step, probe=True))
            s = self.step
            evaluate = bool(cfg.eval_every and s % cfg.eval_every == 0)
            due = bool(cfg.checkpoint_every and s % cfg.checkpoint_every == 0)
            if not (s >= cfg.steps or evaluate or due or s in self._grid_checks):
                # A plain report. On a CPU every window is done when it returns: report it.
                # On CUDA, read the rows in bursts at most every REPORT_SECONDS, all but
                # the newest, whose steps the GPU is still training meanwhile.
                if self._defer_reads:
                    if time.perf_counter() - flushed < REPORT_SECONDS:
                        continue
                    ready, queue = queue[:-1], queue[-1:]
                else:
                    ready, queue = queue, []
                for w in ready:
                    report(self.read(w), False)
                flushed = time.perf_counter()
                continue
            # Evaluation, checkpoint or the end: everything is read, in order, first.
            *earlier, newest = queue
            queue = []
            for w in earlier:
                report(self.read(w), False)
            row = self.conclude(self.read(newest), report, on_evaluate)
            flushed = time.perf_counter()
        return row

    def conclude(self, row: Row, report: OnReport, on_evaluate: OnEvaluate | None) -> Row:
        """What the current step asks for after its ``row``, then the row's report: at
        the end the final evaluation (``finish``); every ``eval_every`` steps an
        evaluation (metrics into the row, traversal images to ``on_traversals``); a
        checkpoint is due every ``checkpoint_every`` steps; the exact information over
        the grid where ``grid_info_images`` asks. The one schedule of a solo trial and of a
        population's member."""
        cfg, s = self.cfg, self.step
        if s >= cfg.steps:
            return self.finish(row, report, on_evaluate)
        if cfg.eval_every and s % cfg.eval_every == 0:
            if on_evaluate is not None:
                on_evaluate(False)
            row.update(self.evaluate(fast=cfg.eval_fast))
            self._snapshot()
        row.update(self.grid_information(final=False))  # {} unless due at this step
        report(row, bool(cfg.checkpoint_every and s % cfg.checkpoint_every == 0))
        return row

    def _snapshot(self) -> None:
        """The traversal images at this evaluation, to ``on_traversals`` (see run)."""
        if self.on_traversals is not None:
            self.on_traversals(self.step, self.traversals())

    def finish(self, row: Row, report: OnReport, on_evaluate: OnEvaluate | None) -> Row:
        """The final evaluation of the last row, then its report (a checkpoint is due)."""
        self.pending = row
        if on_evaluate is not None:
            on_evaluate(True)
        row.update(self.evaluate(fast=False))
        row.update(self.grid_information(final=True))
        self._snapshot()
        self.pending = None
        report(row, True)
        return row

    # ---- evaluation ---------------------------------------------------------------------

    def evaluate(self, fast: bool) -> Row:
        """Disentanglement metrics and the latent x factor MI matrix of the current model."""
        from trainables.evaluate import evaluate_model

        return evaluate_model(self.model, self.data, self.cfg, self.step, fast=fast)

    def grid_information(self, final: bool) -> Row:
        """An image trial's exact I(f_j; z) over the whole grid of images (``exact/{factor}``)
        at this step, when ``grid_info_images`` asks for it here (``final``: the end);
        else {}. A factor-encoder trial's rows carry the exact value already."""
        when, every = self._grid_when, self.cfg.eval_every
        due = when != "off" and (
            final
            or (when == "eval" and bool(every) and self.step % every == 0)
            or (when == "capacity" and self.step in self._grid_checks)
        )
        return self.exact_information() if due else {}

    def exact_information(self) -> Row:
        """An image trial's exact I(f_j; z) over the whole grid of images now, whatever
        ``grid_info_images`` says ({} for the factor encoder or without a probe)."""
        if self.cfg.encoder != "image" or self.probe is None:
            return {}

        def prepare(x: torch.Tensor) -> torch.Tensor:
            return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

        return self.probe.grid_images_information(self.model.encoder, self.data, prepare)

    def traversals(self) -> dict[str, np.ndarray]:
        """The traversal images of the current model (``evaluate.traversals``)."""
        from trainables.evaluate import traversals

        return traversals(self.model, self.data, self.cfg, self.step, self.history)

    # ---- a state trained elsewhere (a population's slot) ------------------------------

    def window_state(self) -> tuple[torch.Tensor, int, torch.Tensor]:
        """The statistics since the last row: (sums of recon, kl, loss and kl per latent
        (3 + d,), the steps they sum, the first non-finite step or -1)."""
        return self._acc, self._acc_n, self._bad

    def adam_state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
        """Adam's moments by parameter name (exp_avg, exp_avg_sq; empty before the first
        step) and its step count."""
        m, v, steps = {}, {}, 0.0
        for name, p in self.model.named_parameters():
            st = self.opt.state.get(p, {})
            if "exp_avg" in st:
                m[name], v[name], steps = st["exp_avg"], st["exp_avg_sq"], float(st["step"])
        return m, v, steps

    @torch.no_grad()
    def load_trained(
        self,
        weights: dict[str, torch.Tensor],
        exp_avg: dict[str, torch.Tensor],
        exp_avg_sq: dict[str, torch.Tensor],
        adam_steps: float,
    ) -> None:
        """Take over weights and Adam's state trained elsewhere, at ``self.step``: the
        trainer can then be probed, evaluated, checkpointed or trained on alone."""
        for name, p in self.model.named_parameters():
            p.copy_(weights[name])
            if adam_steps > 0:
                self.opt.state[p] = {  # fused Adam keeps its step on the device
                    "step": torch.tensor(adam_steps, dtype=torch.float32, device=p.device),
                    "exp_avg": exp_avg[name].clone(),
                    "exp_avg_sq": exp_avg_sq[name].clone(),
                }
        self._step_t.fill_(self.step)

    # ---- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "generator": self.gen.get_state(),
            "acc": self._acc.clone(),
            "acc_n": self._acc_n,
            "bad": self._bad.clone(),
            "history": self.history,
            "pending": self.pending,
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self, directory: str | Path) -> Path:
        """Write state.pt and config.json (and traversals.npz at the final step)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (STATE_FILE + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, directory / STATE_FILE)  # atomic: a crash never leaves half a file
        self.cfg.save(directory / CONFIG_FILE)
        if self.step >= self.cfg.steps:
            np.savez_compressed(directory / TRAVERSALS_FILE, **self.traversals())
        return directory

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self._adam_flags_from_config()
        saved, here = state["generator"], self.gen.get_state()
        if saved.numel() != here.numel():  # a CPU generator's state is 5 KB, CUDA's 16 bytes
            raise ConfigError(
                "the checkpoint's random stream comes from another device type than "
                f"{self.device.type}; resume it on the device it was trained on (--set device=...)"
            )
        self.gen.set_state(saved)
        self.step = int(state["step"])
        self._step_t.fill_(self.step)
        self._acc.copy_(state["acc"])
        self._acc_n = int(state["acc_n"])
        self._bad.copy_(state["bad"])
        self.history = [dict(h) for h in state.get("history", [])]
        self.pending = dict(state["pending"]) if state.get("pending") else None
        self._graph = None  # captured again on the loaded tensors

    def _adam_flags_from_config(self) -> None:
        """``capturable`` and ``fused`` follow this run's config, not the saved run's (a
        resume may switch cuda_graph or the device); Adam's step counters live where
        those flags need them: on the parameters' device, else on the CPU."""
        for group in self.opt.param_groups:
            group["capturable"] = self.cfg.cuda_graph
            group["fused"] = self._fused
            on_device = bool(group["capturable"] or group["fused"])
            for p in group["params"]:
                st = self.opt.state.get(p, {})
                if "step" in st:
                    where = p.device if on_device else torch.device("cpu")
                    st["step"] = st["step"].to(where, torch.float32)

    @classmethod
    def from_checkpoint(
        cls, directory: str | Path, data: DSprites | None = None, **overrides: Any
    ) -> Trainer:
        """Resume exactly where ``save_checkpoint`` left off (``data``: see __init__).

        ``overrides`` may change only how long and where the trial runs (RESUMABLE keys);
        anything that changes the model or the random stream would not be a resume.
        """
        directory = Path(directory)
        path = directory / STATE_FILE
        if not path.is_file():
            raise ConfigError(f"{directory}: no {STATE_FILE} here; is it a checkpoint directory?")
        fixed = sorted(set(overrides) - RESUMABLE)
        if fixed:
            raise ConfigError(
                f"cannot change {fixed[0]!r} when resuming; only {', '.join(sorted(RESUMABLE))}"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            cfg = TrialConfig.from_dict({**state["config"], **overrides})
        except ConfigError:
            raise
        except Exception as e:  # unpickling errors of every kind: the file is damaged
            raise ConfigError(f"{path}: cannot read the checkpoint ({type(e).__name__})") from e
        trainer = cls(cfg, data)
        try:
            trainer.load_state_dict(state)
        except ConfigError:
            raise
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{path}: checkpoint does not fit its config ({e})") from e
        return trainer


def _grid_schedule(cfg: TrialConfig, device: torch.device) -> tuple[str, frozenset[int]]:
    """``grid_info_images`` resolved for this device, and the report steps it checks
    besides evaluations and the end: ``auto`` is ``capacity`` on CUDA and ``off`` on a CPU
    (a minute a check there); ``capacity`` checks at log-spaced steps where C does not
    ramp (``objectives.step_check_steps``)."""
    when = cfg.grid_info_images
    if when == "auto":
        when = "capacity" if device.type == "cuda" else "off"
    if cfg.encoder != "image" or cfg.probe_points == 0:
        return "off", frozenset()
    if when != "capacity":
        return when, frozenset()
    checks = frozenset(capacity_check_steps(cfg) or step_check_steps(cfg))
    return ("capacity", checks) if checks else ("end", frozenset())
