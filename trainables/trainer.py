"""The trainer: one trial of beta-VAE or capacity-annealed VAE training, pure PyTorch.

The hot loop keeps everything on the device: factor indices are drawn with a device
generator, images rendered (or gathered from the .npz) there, and the report
statistics accumulate in a device tensor that is read once per report. With
``cuda_graph=True`` the whole step (data, forward, backward, Adam) is one CUDA graph.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.contract import CONFIG_FILE, STATE_FILE, TRAVERSALS_FILE, kl_key
from trainables.config import ConfigError, TrialConfig
from trainables.data import load_dataset
from trainables.model import VAE
from trainables.objectives import capacity_table, vae_loss
from trainables.probe import Probe

Row = dict[str, Any]
WARMUP_STEPS = 3  # eager steps before a CUDA graph is captured
# Config keys a resume may change: length, reporting and the runtime, not the model.
RESUMABLE = frozenset(
    {"steps", "report_every", "eval_every", "eval_fast", "eval_points", "checkpoint_every",
     "device", "precision", "compile", "cuda_graph", "prerender", "probe_points"}
)  # fmt: skip
OnReport = Callable[[Row, bool], None]
OnEvaluate = Callable[[bool], None]  # called before each evaluation; True: the final one


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the first such step."""

    def __init__(self, step: int) -> None:
        super().__init__(
            f"non-finite loss at step {step}; lower lr, gamma or beta, or try precision=fp32"
        )
        self.step = step

    def __reduce__(self):  # pickled by Ray: rebuild from the step, not the message
        return (TrainingDiverged, (self.step,))


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


class Trainer:
    """Trains one VAE per ``cfg``; ``run`` reports rows of the results contract."""

    def __init__(self, cfg: TrialConfig) -> None:
        self.cfg = cfg
        self.device = dev = resolve_device(cfg.device)
        cuda = dev.type == "cuda"
        for key, on in (("precision", cfg.precision == "bf16"), ("cuda_graph", cfg.cuda_graph)):
            if on and not cuda:
                raise ConfigError(f"trial config {key}={getattr(cfg, key)!r} needs a CUDA device")
        prerender = cfg.prerender == "on" or (cfg.prerender == "auto" and cuda)
        self.data = load_dataset(cfg.data, dev, prerender)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # weights depend on the seed alone
            self.model = VAE(cfg).to(dev)
        self._fused = cuda or None  # fused Adam where the device has it
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, capturable=cfg.cuda_graph, fused=self._fused
        )
        # Draws the data and the reparameterisation noise. A CUDA graph may only use the
        # device's default generator, so a graphed trial seeds that one.
        if cfg.cuda_graph:
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            self.gen = torch.cuda.default_generators[index]
        else:
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
        self._loss_fn = self._loss
        if cfg.compile != "none":  # the pure part only: sampling with a generator stays eager
            self._loss_fn = torch.compile(self._loss, mode=cfg.compile)
        self.probe = (
            Probe(self.data, cfg.encoder, cfg.probe_points, cfg.seed, d)
            if cfg.probe_points
            else None
        )
        # probe columns of every row so far: the switch-on rule reads the traversal labels
        self.history: list[dict[str, float]] = []
        # the last row while the final evaluation runs: a checkpoint written then carries
        # it, so a resume from there evaluates and reports it instead of doing nothing
        self.pending: Row | None = None
        self._autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if cfg.precision == "bf16"
            else contextlib.nullcontext()
        )

    # ---- one step ---------------------------------------------------------------------

    def _forward_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, data = self.cfg, self.data
        idx = data.sample_indices(cfg.batch_size, self.gen)  # (B,)
        x = data.images_at(idx)  # (B, 1, 64, 64)
        inputs = x if cfg.encoder == "image" else data.features(data.factors_of(idx))
        noise = torch.randn(cfg.batch_size, cfg.latent_dim, generator=self.gen, device=self.device)
        # index_select, not [tensor]: indexing with a 0-dim tensor reads it on the host
        c = self.c_table.index_select(0, self._step_t.clamp(max=cfg.steps).view(1))[0]
        return self._loss_fn(inputs, x, noise, c)

    def _loss(
        self, inputs: torch.Tensor, x: torch.Tensor, noise: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self._autocast:
            logits, mu, logvar = self.model(inputs, noise)
        return vae_loss(logits, x, mu, logvar, c, self.cfg)

    def _train_step(self) -> None:
        loss, logs = self._forward_loss()
        self.opt.zero_grad(set_to_none=self._graph is None)
        loss.backward()
        self.opt.step()
        stats = torch.cat([torch.stack([logs["recon"], logs["kl"], loss]), logs["kl_per_latent"]])
        self._acc.add_(stats.detach())
        bad = (self._bad < 0) & ~torch.isfinite(loss.detach())
        self._bad.copy_(torch.where(bad, self._step_t + 1, self._bad))
        self._step_t.add_(1)

    def _capture(self) -> None:
        """Record one whole train step as a CUDA graph, after a few eager warm-up steps."""
        torch.cuda.set_device(self.device)  # graph streams live on the current device
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):  # real steps: Adam state and kernels initialised
                self._train_step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._train_step()
        self._graph = graph

    def _advance(self, n: int) -> None:
        """Take n optimizer steps."""
        done = 0
        if self.cfg.cuda_graph and self._graph is None and n > WARMUP_STEPS:
            self._capture()
            done = WARMUP_STEPS
        for _ in range(n - done):
            if self._graph is not None:
                self._graph.replay()
            else:
                self._train_step()
        self.step += n
        self._acc_n += n

    # ---- the loop -----------------------------------------------------------------------

    def _next_event(self) -> int:
        """The next step at which to report: a report, evaluation or checkpoint, or the end."""
        cfg, s = self.cfg, self.step
        nxt = [cfg.steps]
        for every in (cfg.report_every, cfg.eval_every, cfg.checkpoint_every):
            if every > 0:
                nxt.append((s // every + 1) * every)
        return min(nxt)

    def _collect(self, seconds: float, steps: int) -> Row:
        """Read the accumulated statistics (one device sync) into a contract row."""
        cfg = self.cfg
        sums = (self._acc / max(self._acc_n, 1)).tolist()
        bad = int(self._bad)
        if bad >= 0:
            raise TrainingDiverged(bad)
        # steps s in [step - n, step) trained at C(s): the row's C is their mean, like kl
        window = self._c_host[max(self.step - self._acc_n, 0) : max(self.step, 1)]
        window = window if window.size else self._c_host[self.step : self.step + 1]
        self._acc.zero_()
        self._acc_n = 0
        row: Row = {
            "step": self.step,
            "images_seen": self.step * cfg.batch_size,
            "recon": sums[0],
            "kl": sums[1],
            # the beta objective has no capacity: its rows carry none to plot against
            "C": float(window.mean()) if cfg.objective == "capacity" else math.nan,
            "loss": sums[2],
            "images_per_s": steps * cfg.batch_size / max(seconds, 1e-9),
        }
        row.update({kl_key(i): v for i, v in enumerate(sums[3:])})
        return row

    def train_steps(self, n: int) -> Row:
        """Take n steps and return their report row (no evaluation, no callbacks)."""
        start, t0 = self.step, time.perf_counter()
        self._advance(n)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # time the GPU's work, not the launches
        return self._collect(time.perf_counter() - t0, self.step - start)

    def measure(self) -> Row:
        """The probe columns (what the code tells) of the current model; kept in history."""
        if self.probe is None:
            return {}
        row = self.probe.measure(self.model.encoder)
        self.history.append({"step": self.step, **row})
        return row

    def run(
        self, on_report: OnReport | None = None, on_evaluate: OnEvaluate | None = None
    ) -> Row | None:
        """Train from ``self.step`` to ``cfg.steps``; return the last row.

        ``on_report(row, checkpoint_due)`` is called every ``report_every`` steps, at
        evaluation and checkpoint steps, and at the end; ``checkpoint_due`` is True every
        ``checkpoint_every`` steps and at the final step. ``on_evaluate(final)`` is called
        before each evaluation: the final one comes after training, so that is where a
        caller saves the trained weights before minutes of metrics. Raises
        TrainingDiverged.
        """
        cfg = self.cfg
        row = None
        self.model.train()
        if self.pending is not None and self.step >= cfg.steps:  # stopped in the final eval
            row = self._finish(dict(self.pending), on_report, on_evaluate)
        while self.step < cfg.steps:
            row = self.train_steps(self._next_event() - self.step)
            row.update(self.measure())
            if self.step >= cfg.steps:
                row = self._finish(row, on_report, on_evaluate)
                break
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                if on_evaluate is not None:
                    on_evaluate(False)
                row.update(self.evaluate(fast=cfg.eval_fast))
            due = bool(cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
            if on_report is not None:
                on_report(row, due)
        return row

    def _finish(self, row: Row, on_report: OnReport | None, on_evaluate: OnEvaluate | None) -> Row:
        """The final evaluation of the last row, then its report (a checkpoint is due)."""
        self.pending = row
        if on_evaluate is not None:
            on_evaluate(True)
        row.update(self.evaluate(fast=False))
        self.pending = None
        if on_report is not None:
            on_report(row, True)
        return row

    # ---- evaluation ---------------------------------------------------------------------

    def evaluate(self, fast: bool) -> Row:
        """Disentanglement metrics and the latent x factor MI matrix of the current model."""
        from trainables.evaluate import evaluate_model

        return evaluate_model(self, fast=fast)

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
            from trainables.evaluate import traversals

            np.savez_compressed(directory / TRAVERSALS_FILE, **traversals(self))
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
    def from_checkpoint(cls, directory: str | Path, **overrides: Any) -> Trainer:
        """Resume exactly where ``save_checkpoint`` left off.

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
        trainer = cls(cfg)
        try:
            trainer.load_state_dict(state)
        except ConfigError:
            raise
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{path}: checkpoint does not fit its config ({e})") from e
        return trainer


def read_config(directory: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint or trial directory, as a dict."""
    return json.loads((Path(directory) / CONFIG_FILE).read_text())
