"""Population training: K trials of one architecture trained together in one process.

A study of many configurations at batch 64 cannot fill a GPU one trial at a time: a step
is a few hundred small kernels. A population stacks the parameters of K members
(``torch.func.stack_module_state``) and runs one vmapped forward and backward over all
of them (vmap turns each convolution into one grouped convolution) and one Adam step.

Members share what makes their tensors the same shape (``ARCHITECTURE``) and differ in
everything else: objective, beta, gamma, the C schedule, lr, seed, steps, how often
they report. Per-member hyperparameters are (K,) device tensors; each member's loss is
its own objective at its own C(step), and Adam's step size and bias correction follow
each member's own step.

Each member is an ordinary :class:`~trainables.trainer.Trainer` that is not stepped
itself: the population trains the stacked copy and writes the member's weights, Adam
state, step and random stream back into it whenever a row, an evaluation or a
checkpoint needs them. Rows, evaluations, traversals and checkpoints are therefore the
trainer's own, and a member's checkpoint resumes alone (``betastudy train --resume``) or
back in a population (``admit``).

Data (``data_mode``): ``own`` (the default) draws each member's batch and noise from
its own generator, in the order its solo trial draws them, so member k computes what
its solo trial computes (to float rounding: grouped convolutions sum in another order)
and its trajectory does not depend on who shares its population. ``shared`` draws one
batch and one noise draw per step for the whole population from the first member's
seed (common random numbers: differences between members are then differences of
configuration, not of data); it saves K-1 gathers a step, and a member resumed alone
continues with its own stream, not the shared one.

A member whose loss becomes non-finite is frozen at that step (its updates masked with
``torch.where``; NaN times zero is NaN) and reported failed with its step at its next
row, while the others go on. A finished or failed member's slot can be refilled with a
new configuration (``admit``): its weights, Adam state, step and hyperparameters are
written in place, so the shapes, and any captured graph, stay as they were.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from trainables import grid
from trainables.config import ConfigError, TrialConfig
from trainables.data import DSprites, load_dataset
from trainables.objectives import (
    bernoulli_recon,
    capacity_of_points,
    kl_per_latent,
    objective,
    schedule_points,
)
from trainables.trainer import (
    WARMUP_STEPS,
    Row,
    Trainer,
    TrainingDiverged,
    Window,
    capture_graph,
    resolve_device,
)

# Fields every member of a population shares: they fix the shapes of its tensors.
ARCHITECTURE = (
    "encoder", "latent_dim", "channels", "hidden", "batch_size", "precision", "data",
    "device", "channels_last", "cuda_graph", "compile",
)  # fmt: skip
DATA_MODES = ("own", "shared")
# How the K forwards run: ``vmap`` (each convolution one grouped convolution: one kernel
# for the population, what fills a GPU) or ``loop`` (K ordinary forwards on views of the
# stacked weights, one autograd graph: on a CPU, whose convolutions are compute-bound,
# measured faster than vmap's grouped ones); ``auto``: vmap on CUDA, loop on a CPU.
FORWARDS = ("auto", "vmap", "loop")
MAX_POINTS = 16  # C-schedule points a member may have (a piecewise schedule's c_points)
BETAS = (0.9, 0.999)  # Adam's defaults, as the solo trainer uses them
EPS = 1e-8

OnReport = Callable[[int, Row, bool], None]  # (slot, row, checkpoint_due)
OnEvaluate = Callable[[int, bool], None]  # (slot, final), before the evaluation
OnEnd = Callable[[int, Exception | None], None]  # (slot, None or TrainingDiverged)
OnSlotTraversals = Callable[[int, int, dict], None]  # (slot, step, traversal arrays)


def architecture(cfg: TrialConfig) -> tuple[Any, ...]:
    """The key that decides which configurations can share a population."""
    return tuple(getattr(cfg, k) for k in ARCHITECTURE)


@dataclass
class Slot:
    """One place in the population: the member trainer in it, and how it stands."""

    member: Trainer | None = None
    acc_n: int = 0  # steps accumulated in the population's statistics since its last row
    seconds: float = 0.0  # wall time of those steps (the population's), set-up left out
    timed: int = 0  # the steps ``seconds`` counts (a CUDA graph's warm-up steps left out)
    ended: bool = True  # finished, failed or never filled: trains no more


class Population:
    """K members of one architecture (``ARCHITECTURE``), trained in one step."""

    def __init__(
        self, configs: list[TrialConfig], data_mode: str = "own", forward: str = "auto"
    ) -> None:
        if not configs:
            raise ConfigError("a population needs at least one trial config")
        if data_mode not in DATA_MODES:
            raise ConfigError(f"population data_mode={data_mode!r}: one of {DATA_MODES}")
        first = configs[0]
        for cfg in configs[1:]:
            _check_fits(first, cfg)
        if first.compile != "none":
            raise ConfigError(
                f"trial config compile={first.compile!r}: a population's step is vmapped or "
                "captured whole (cuda_graph=true on CUDA); use compile=none"
            )
        self.template = first  # the architecture every member shares
        self.device = dev = resolve_device(first.device)
        if first.cuda_graph and dev.type != "cuda":
            raise ConfigError("trial config cuda_graph=true needs a CUDA device")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            torch.backends.cudnn.benchmark = True
        self._graph: torch.cuda.CUDAGraph | None = None
        if forward not in FORWARDS:
            raise ConfigError(f"population forward={forward!r}: one of {FORWARDS}")
        if forward == "auto":
            forward = "vmap" if self.device.type == "cuda" else "loop"
        self.forward = forward
        self.data_mode = data_mode
        cached = first.data == "procedural" and grid.wanted(
            first.prerender, sum(c.steps for c in configs) * first.batch_size
        )
        self.data: DSprites = load_dataset(first.data, dev, cached)
        self.k = k = len(configs)
        members = [Trainer(cfg, self.data) for cfg in configs]
        # one template module on the meta device: functional_call runs it on any weights
        self._base = copy.deepcopy(members[0].model).to("meta")
        if forward == "vmap":
            _autocast_under_vmap(self._base)
        params, _ = stack_module_state([m.model for m in members])
        # Weights, their gradients and Adam's two moments: each one flat buffer, every
        # parameter a view of its block (``_flat``): the update is a dozen ops on four
        # buffers, not a dozen per parameter, and autograd adds each gradient into its
        # view in place (the buffer is zeroed once a step).
        layout = {n: p.shape for n, p in params.items()}
        # the members' own values spread over the buffer: block (parameter, member) has
        # that parameter's size per member; repeat_interleave with a fixed output size
        per_member = [math.prod(shape[1:]) for shape in layout.values() for _ in range(k)]
        self._repeats = torch.tensor(per_member, device=dev)
        self._w, self.params = _flat(layout, first.channels_last, dev)
        self._g, grads = _flat(layout, first.channels_last, dev)
        self._m, self.exp_avg = _flat(layout, first.channels_last, dev)
        self._v, self.exp_avg_sq = _flat(layout, first.channels_last, dev)
        with torch.no_grad():
            for name, q in self.params.items():
                q.copy_(params[name])
                q.requires_grad_(True)
                q.grad = grads[name]
        # Adam's step count per member; float64, as torch computes the bias corrections
        self._adam_step = torch.zeros(k, dtype=torch.float64, device=dev)
        self.step_t = torch.zeros(k, dtype=torch.long, device=dev)  # each member's step
        self.alive = torch.zeros(k, dtype=torch.bool, device=dev)  # trains this step
        self.bad = torch.full((k,), -1, dtype=torch.long, device=dev)  # first non-finite step
        self.points = torch.zeros(k, MAX_POINTS, 2, dtype=torch.float64, device=dev)
        self.is_beta = torch.zeros(k, dtype=torch.bool, device=dev)
        self.beta = torch.zeros(k, device=dev)
        self.gamma = torch.zeros(k, device=dev)
        self.lr = torch.zeros(k, dtype=torch.float64, device=dev)
        d = first.latent_dim
        self._acc = torch.zeros(k, 3 + d, device=dev)  # sums: recon, kl, loss, kl per latent
        self.slots = [Slot() for _ in range(k)]
        # Each slot's random stream: a member admitted copies its own stream in and then
        # draws from the slot's (a captured graph has the slots' generators registered).
        self.gens = [torch.Generator(dev) for _ in range(k)]
        self._shared_gen = torch.Generator(dev)
        self._shared_gen.manual_seed(first.seed)
        self._autocast = members[0].autocast
        for i, m in enumerate(members):
            self.admit(i, m)

    # ---- members in and out ----------------------------------------------------------

    @property
    def members(self) -> list[Trainer | None]:
        return [s.member for s in self.slots]

    def admit(self, slot: int, member: Trainer) -> None:
        """Put ``member`` (new, or resumed from its checkpoint) into ``slot``, in place:
        its weights, Adam state, step, random stream and hyperparameters."""
        cfg = member.cfg
        _check_fits(self.template, cfg)
        if member.data is not self.data:
            member.data = self.data
        self.gens[slot].set_state(member.gen.get_state())
        member.gen = self.gens[slot]
        points = schedule_points(cfg)
        if len(points) > MAX_POINTS:
            raise ConfigError(
                f"trial config c_points has {len(points)} points; a population member may "
                f"have at most {MAX_POINTS}"
            )
        padded = list(points) + [points[-1]] * (MAX_POINTS - len(points))
        with torch.no_grad():
            model = dict(member.model.named_parameters())
            exp_avg, exp_avg_sq, steps = member.adam_state()  # empty for a new member
            for name, p in self.params.items():
                p[slot].copy_(model[name].detach())
                for moments, theirs in ((self.exp_avg, exp_avg), (self.exp_avg_sq, exp_avg_sq)):
                    if name in theirs:
                        moments[name][slot].copy_(theirs[name])
                    else:
                        moments[name][slot].zero_()
            self._adam_step[slot] = steps
            self.step_t[slot] = member.step
            self.points[slot] = torch.tensor(padded, dtype=torch.float64)
            self.is_beta[slot] = cfg.objective == "beta"
            self.beta[slot] = cfg.beta
            self.gamma[slot] = cfg.gamma
            self.lr[slot] = cfg.lr
            acc, acc_n, bad = member.window_state()
            self._acc[slot] = acc.to(self.device)
            self.bad[slot] = bad.to(self.device)
            self.alive[slot] = bool(member.step < cfg.steps and int(bad) < 0)
        self.slots[slot] = Slot(member, acc_n, 0.0, ended=member.step >= cfg.steps)
        if member.pending is not None and member.step >= cfg.steps:
            self.slots[slot].ended = False  # stopped in its final evaluation: run() ends it

    def retire(self, slot: int) -> None:
        """Stop training ``slot``'s member for good (it failed in an earlier run, or
        successive halving stopped it; a callback may then ``admit`` another)."""
        self.slots[slot].ended = True
        with torch.no_grad():
            self.alive[slot] = False

    def sync(self, slot: int, adam_steps: float | None = None) -> Trainer:
        """Write the slot's stacked state back into its member trainer (weights, Adam
        state in torch's own layout, step) and return it: ready to be probed, evaluated,
        checkpointed or resumed alone. ``adam_steps``: the slot's Adam step count when
        the caller has read it already (a read waits for the device)."""
        member = self.slots[slot].member
        assert member is not None
        member.load_trained(
            {name: p[slot] for name, p in self.params.items()},
            {name: m[slot] for name, m in self.exp_avg.items()},
            {name: v[slot] for name, v in self.exp_avg_sq.items()},
            float(self._adam_step[slot]) if adam_steps is None else adam_steps,
        )
        return member

    # ---- one step ----------------------------------------------------------------------

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(K, B, ...) inputs and images and (K, B, d) noise, per ``data_mode``."""
        cfg = self.template
        b, d, k = cfg.batch_size, cfg.latent_dim, self.k
        if self.data_mode == "shared":
            idx = self.data.sample_indices(b, self._shared_gen)
            noise = torch.randn(b, d, generator=self._shared_gen, device=self.device)
            idx, noise = idx.repeat(k), noise.expand(k, b, d)
        else:
            idxs, noises = [], []
            for gen in self.gens:  # each member's stream, drawn as its solo trial draws it
                idxs.append(self.data.sample_indices(b, gen))
                noises.append(torch.randn(b, d, generator=gen, device=self.device))
            idx, noise = torch.cat(idxs), torch.stack(noises)
        x = self.data.images_at(idx)  # (K*B, 1, 64, 64)
        inputs = x if cfg.encoder == "image" else self.data.features(self.data.factors_of(idx))
        return inputs.unflatten(0, (k, b)), x.unflatten(0, (k, b)), noise

    def _forward(
        self, inputs: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        def one(params, inputs, noise):
            return functional_call(self._base, params, (inputs, noise))

        with self._autocast:
            if self.forward == "vmap":
                return torch.vmap(one)(self.params, inputs, noise)
            # unbind, not p[k]: its backward stacks the K gradients once, where indexing
            # would add K full-size zero tensors
            per_member = {n: p.unbind(0) for n, p in self.params.items()}
            outs = []
            for k in range(self.k):
                x = inputs[k]
                if self.template.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                outs.append(one({n: ps[k] for n, ps in per_member.items()}, x, noise[k]))
            return tuple(torch.stack(t) for t in zip(*outs))

    def _train_step(self) -> None:
        inputs, x, noise = self._batch()
        logits, mu, logvar = self._forward(inputs, noise)
        recon = bernoulli_recon(logits, x)  # (K,)
        kl_lat = kl_per_latent(mu, logvar)  # (K, d)
        kl = kl_lat.sum(1)
        c = capacity_of_points(self.step_t, self.points)
        loss = objective(recon, kl, c, self.beta, self.gamma, self.is_beta)
        finite = torch.isfinite(loss.detach())
        newly_bad = self.alive & ~finite & (self.bad < 0)
        self.bad.copy_(torch.where(newly_bad, self.step_t + 1, self.bad))
        update = self.alive & finite  # a member frozen now takes no update from this step
        self._g.zero_()
        torch.where(update, loss, torch.zeros_like(loss)).sum().backward()
        self._adam(update)
        stats = torch.cat([torch.stack([recon, kl, loss], 1), kl_lat], 1).detach()
        self._acc.add_(torch.where(self.alive.unsqueeze(1), stats, torch.zeros_like(stats)))
        self.alive.copy_(update)
        self.step_t.add_(update.long())

    @torch.no_grad()
    def _adam(self, update: torch.Tensor) -> None:
        """Adam (torch's formula, its defaults) per member: each member's own lr and bias
        correction; members not in ``update`` keep their weights and moments."""
        b1, b2 = BETAS
        t = self._adam_step + update.double()  # the step this update is
        tt = t.clamp(min=1.0)
        step_size = (self.lr / (1 - b1**tt)).float()
        bc2_sqrt = (1 - b2**tt).sqrt().float()
        per_member = torch.stack([step_size, bc2_sqrt, update.float()], 1)  # (K, 3)
        blocks = per_member.repeat(len(self.params), 1)  # (parameters x K, 3)
        step_size, bc2_sqrt, keep = torch.repeat_interleave(
            blocks, self._repeats, dim=0, output_size=self._w.numel()
        ).unbind(1)  # each element's member's values
        keep = keep > 0
        g, m, v, w = self._g, self._m, self._v, self._w
        m.copy_(torch.where(keep, m.lerp(g, 1 - b1), m))
        v.copy_(torch.where(keep, v * b2 + (1 - b2) * g * g, v))
        new = w - step_size * m / (v.sqrt() / bc2_sqrt + EPS)
        w.copy_(torch.where(keep, new, w))
        self._adam_step.copy_(t)

    # ---- the loop ------------------------------------------------------------------------

    def _active(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.member is not None and not s.ended]

    def train_steps(self, n: int) -> float:
        """Take n population steps; returns their wall time in seconds (on CUDA with
        ``cuda_graph``, the first call captures the step after a few eager ones)."""
        t0 = time.perf_counter()
        self._timed_steps(n)
        return time.perf_counter() - t0

    def _timed_steps(self, n: int) -> tuple[float, int]:
        """Take n population steps -> (seconds, steps they count): as a solo trial's row
        does (``Trainer._window``), the one-time set-up (the eager warm-up steps and the
        capture of a CUDA graph) and its time are left out."""
        t0 = time.perf_counter()
        done = self._set_up(n)
        t1 = time.perf_counter()
        for _ in range(n - done):
            if self._graph is not None:
                self._graph.replay()
            else:
                self._train_step()
        self._sync()
        if n > done:
            return time.perf_counter() - t1, n - done
        return time.perf_counter() - t0, n

    def _set_up(self, n: int) -> int:
        """The capture of a CUDA graph at the start of a window of n steps, once (with
        ``cuda_graph``); returns the training steps it took (its eager warm-up)."""
        if self.template.cuda_graph and self._graph is None and n > WARMUP_STEPS:
            self._capture()
            self._sync()
            return WARMUP_STEPS
        return 0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _capture(self) -> None:
        """One population step as a CUDA graph (``capture_graph``): every slot's
        generator is registered (and the shared one, with shared data), so each replay
        draws fresh numbers from each member's stream; refilling a slot writes into the
        captured tensors and generator, and the graph stays valid."""
        shared = [self._shared_gen] if self.data_mode == "shared" else []
        self._graph = capture_graph(self._train_step, self.device, [*self.gens, *shared])

    def run(
        self,
        on_report: OnReport | None = None,
        on_evaluate: OnEvaluate | None = None,
        on_end: OnEnd | None = None,
        on_traversals: OnSlotTraversals | None = None,
    ) -> None:
        """Train until every member has ended.

        For each member, ``on_report(slot, row, checkpoint_due)``,
        ``on_evaluate(slot, final)`` and ``on_traversals(slot, step, arrays)`` are called
        exactly when its solo trial would call them (``Trainer.run``), with the same
        rows; ``on_end(slot, error)`` when it finishes (``error`` None) or diverges
        (``error``: the TrainingDiverged naming its step). ``on_end`` may ``admit`` a new
        member into the freed slot, and ``on_report`` may ``retire`` any slot and
        ``admit`` into it: a slot changed that way is not read again this window.
        """
        report = on_report or (lambda slot, row, due: None)
        ended = on_end or (lambda slot, error: None)
        while True:
            for i in self._active():  # each member hands its traversals to the callback
                self.slots[i].member.on_traversals = (
                    None if on_traversals is None else partial(on_traversals, i)
                )
            for i in self._active():  # stopped in its final evaluation: finish that first
                m = self.slots[i].member
                if m.pending is not None and m.step >= m.cfg.steps:
                    self._conclude(i, dict(m.pending), report, on_evaluate, ended)
            active = self._active()
            if not active:
                return
            # the next report, evaluation, checkpoint or end of any member (host steps:
            # every active member takes every step until it ends)
            # (an active member is short of its end, so n >= 1)
            n = min(self.slots[i].member.next_event() - self.slots[i].member.step for i in active)
            seconds, timed = self._timed_steps(n)
            for i in active:
                slot = self.slots[i]
                slot.member.step += n
                slot.acc_n += n
                slot.seconds += seconds
                slot.timed += timed
            trained = {i: self.slots[i] for i in active}
            host = self._read_window()
            posteriors = self._probe_all([i for i in active if self._probed_now(i, host)])
            for i in active:  # a callback may have stopped or refilled a slot meanwhile
                if self.slots[i] is trained[i] and not trained[i].ended:
                    self._after_window(i, host, report, on_evaluate, ended, posteriors.get(i))

    def _read_window(self) -> tuple[torch.Tensor, list[int], list[float]]:
        """Every slot's statistics, first non-finite step and Adam step count, read from
        the device at once (one wait for the window, not three per member)."""
        return self._acc.detach().cpu(), self.bad.tolist(), self._adam_step.tolist()

    def _probed_now(self, i: int, host: tuple[torch.Tensor, list[int], list[float]]) -> bool:
        """Whether member i reports a row with the probe after this window."""
        member = self.slots[i].member
        return host[1][i] < 0 and member.probe is not None and member.at_event()

    @torch.no_grad()
    def _probe_all(self, slots: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """The probe posteriors (mu, logvar) of these slots' members from the stacked
        weights, one vmapped encode per probe size (with ``forward="vmap"``; a CPU's
        ``loop`` encodes member by member in ``_after_window``, as it trains)."""
        if self.forward != "vmap" or not slots:
            return {}
        prefix = "encoder."
        names = [n for n in self.params if n.startswith(prefix)]

        def encode(params, x):
            return functional_call(self._base.encoder, params, (x,))

        out: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i in slots:
            by_size.setdefault(tuple(self.slots[i].member.probe.inputs.shape), []).append(i)
        for group in by_size.values():
            index = torch.tensor(group, device=self.device)
            params = {n[len(prefix) :]: self.params[n].index_select(0, index) for n in names}
            inputs = torch.stack([self.slots[i].member.probe.inputs for i in group])
            mu, logvar = torch.vmap(encode)(params, inputs)
            out.update({i: (mu[j].float(), logvar[j].float()) for j, i in enumerate(group)})
        return out

    def _after_window(
        self,
        i: int,
        host: tuple[torch.Tensor, list[int], list[float]],
        report: OnReport,
        on_evaluate: OnEvaluate | None,
        ended: OnEnd,
        posterior: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """Member i's row, evaluation, checkpoint or end, where its step is one; ``host``:
        the window's statistics as ``_read_window`` read them; ``posterior``: its probe
        posteriors when ``_probe_all`` encoded them already."""
        slot = self.slots[i]
        member = slot.member
        acc, bads, adam_steps = host
        bad = bads[i]
        if bad >= 0:  # frozen at that step: fails there, the others go on
            slot.ended = True
            self.alive[i] = False
            ended(i, TrainingDiverged(bad))
            return
        if not member.at_event():
            return  # not one of its events: it keeps accumulating
        w = Window(
            step=member.step,
            span=slot.acc_n,
            steps=slot.timed,
            acc=acc[i] / slot.acc_n,
            bad=torch.tensor(bad),
            seconds=slot.seconds,
        )
        self._acc[i].zero_()
        slot.acc_n, slot.seconds, slot.timed = 0, 0.0, 0
        self.sync(i, adam_steps[i])
        if member.probe is not None and posterior is not None:
            w.posterior = (*posterior, *member.probe.exact(member.model.encoder))
        elif member.probe is not None:
            w.posterior = member.probe.encode(member.model.encoder)
        self._conclude(i, member.read(w), report, on_evaluate, ended)

    def _conclude(
        self, i: int, row: Row, report: OnReport, on_evaluate: OnEvaluate | None, ended: OnEnd
    ) -> None:
        """The member's own schedule after its row (``Trainer.conclude``: evaluation,
        report, or at its end the final evaluation), then, at its end, ``ended``."""
        slot = self.slots[i]
        member = slot.member
        final = member.step >= member.cfg.steps
        if final:
            slot.ended = True
            self.alive[i] = False
        member.conclude(
            row,
            lambda r, due: report(i, r, due),
            (lambda last: on_evaluate(i, last)) if on_evaluate is not None else None,
        )
        if final:
            ended(i, None)


def _autocast_under_vmap(model: nn.Module) -> None:
    """Make ``model``'s convolutions and linear layers follow autocast under vmap.

    With batched weights and biases (a population's stacked parameters), vmap's rules
    for these layers run below autocast: the convolution stays fp32 whatever the
    autocast dtype, and the bias is added with a plain ``add`` that bf16 + fp32 promotes
    to fp32, so every layer of a bf16 population would run and return fp32. Under an
    enabled autocast each such layer here casts its input, weight and bias to the
    autocast dtype itself, as autocast casts them for a solo trial (its output is bf16
    like the solo trial's); with autocast off (fp32, or the fp32 posterior head of
    ``model.fp32_head``) it runs its own forward, unchanged."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.forward = partial(_cast_like_autocast, m)


def _cast_like_autocast(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    dev = x.device.type
    if not torch.is_autocast_enabled(dev):
        return type(m).forward(m, x)
    dt = torch.get_autocast_dtype(dev)
    w = m.weight.to(dt)
    b = None if m.bias is None else m.bias.to(dt)
    x = x.to(dt)
    if isinstance(m, nn.ConvTranspose2d):
        pad, out_pad = m.padding, m.output_padding
        return F.conv_transpose2d(x, w, b, m.stride, pad, out_pad, m.groups, m.dilation)
    if isinstance(m, nn.Conv2d):
        assert m.padding_mode == "zeros", m
        return F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)
    return F.linear(x, w, b)


def _flat(
    layout: dict[str, torch.Size], channels_last: bool, device: torch.device
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A zero 1-D buffer and, for each stacked parameter shape (K, ...) of ``layout``, a
    dense view of its own block of it, each member's slice after the other's: a
    parameter is laid out as a stacked copy of its own would be, so vmap's reshapes stay
    views and the kernels are the same. With ``channels_last`` a convolution's
    (K, O, I, h, w) weight is laid out so that each member's slice is NHWC, as a solo
    trial's weights are (one reorder less per convolution and step)."""
    sizes = [math.prod(shape) for shape in layout.values()]
    buffer = torch.zeros(sum(sizes), device=device)
    views, offset = {}, 0
    for (name, shape), size in zip(layout.items(), sizes):
        if channels_last and len(shape) == 5:
            k, o, i, h, w = shape  # explicit strides: a 1-channel weight is NHWC too
            strides = (o * h * w * i, h * w * i, 1, w * i, i)
        else:
            strides = torch.empty(shape, device="meta").stride()
        views[name] = buffer.as_strided(shape, strides, offset)
        offset += size
    return buffer, views


def _check_fits(first: TrialConfig, cfg: TrialConfig) -> None:
    for key in ARCHITECTURE:
        a, b = getattr(first, key), getattr(cfg, key)
        if a != b:
            raise ConfigError(
                f"population members must share {key}: {a!r} and {b!r}; put configurations "
                f"that differ in {', '.join(ARCHITECTURE)} in separate populations"
            )
