"""``betastudy bench study``: what the driver costs per trial, beyond training itself.

Runs a grid of tiny trials on local Ray, by default one at a time, and splits the
wall time: each trial's own time (``time_total_s``, from the trainable's start to its
last report: building the model, training, the final evaluation and checkpoints) and
the rest, which is Ray's and the runner's: scheduling, starting the trial's process
and importing torch, moving results and checkpoints, bookkeeping.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ray import tune

from analysis.contract import TERMINATED
from study.runner import connect, run_study
from study.spec import validate

BENCH_TRIAL = {
    "objective": "beta",
    "latent_dim": 4,
    "channels": 8,
    "hidden": 32,
    "batch_size": 16,
    "eval_every": 0,
    "eval_points": 100,  # the final evaluation on 100 points: a second, not minutes
}


class Startup(NamedTuple):
    """One trial's start, when trials run one at a time (seconds)."""

    gap: float  # the previous trial's end -> this one's first step
    actor: float  # of which Ray starting its actor
    setup: float  # of which building data and model


class Clock(tune.Callback):
    """Driver-side times of each trial: actor started, first result in, trial ended."""

    def __init__(self) -> None:
        self.begin = time.perf_counter()
        self.started: dict[str, float] = {}
        self.first: dict[str, tuple[float, dict[str, Any]]] = {}
        self.ended: dict[str, float] = {}

    def setup(self, **info) -> None:
        self.begin = time.perf_counter()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started.setdefault(trial.trial_id, time.perf_counter())

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.first.setdefault(trial.trial_id, (time.perf_counter(), dict(result)))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.ended[trial.trial_id] = time.perf_counter()

    def startups(self) -> list[Startup]:
        """Per trial, in start order, when they run one at a time."""
        out, previous_end = [], self.begin
        for tid, start in sorted(self.started.items(), key=lambda kv: kv[1]):
            if tid not in self.first or tid not in self.ended:
                continue
            arrived, row = self.first[tid]
            first_own = float(row.get("time_this_iter_s", 0.0))  # trainable start -> 1st row
            ips = row.get("images_per_s") or 0.0
            setup = first_own - (row["images_seen"] / ips if ips else 0.0)
            first_step = arrived - first_own + setup
            out.append(Startup(first_step - previous_end, start - previous_end, setup))
            previous_end = self.ended[tid]
        return out


@dataclass(frozen=True)
class StudyBench:
    """``bench_study``'s figures: ``trials`` trials of ``steps`` steps, ``slots`` at a time."""

    trials: int
    steps: int
    slots: int
    ray_start_s: float  # connecting to Ray (starting it, unless it was running)
    ray_was_running: bool
    finished: int  # trials that ended TERMINATED
    wall_s: float  # the study's wall time
    own_s: tuple[float, ...]  # each finished trial's own time (time_total_s)
    overhead_s: float  # per trial: (wall x slots - the trials' own time) / finished trials
    startups: tuple[Startup, ...]  # per trial; measured one at a time only, else empty


def bench_study(trials: int, steps: int, concurrent: int, address: str | None) -> StudyBench:
    """Run the benchmark study; its figures."""
    t0 = time.perf_counter()
    started = connect(address)
    ray_start = time.perf_counter() - t0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = validate(
                {
                    "name": "bench",
                    "trial": {**BENCH_TRIAL, "steps": steps, "report_every": max(1, steps // 4)},
                    "space": {"beta": [1.0 + i for i in range(trials)]},
                    "search": {"mode": "grid", "max_concurrent": concurrent},
                    "storage": tmp,
                    "checkpoint_every": steps,
                }
            )
            clock = Clock()
            t0 = time.perf_counter()
            result = run_study(spec, address, [clock], progress=False, echo=_quiet, report=False)
            wall = time.perf_counter() - t0
    finally:
        if started:
            import ray

            ray.shutdown()
    done = [r for r in result.records if r.status == TERMINATED]
    own = [float(r.last.get("time_total_s", 0.0)) for r in done]
    slots = min(concurrent or trials, trials)
    return StudyBench(
        trials=trials,
        steps=steps,
        slots=slots,
        ray_start_s=ray_start,
        ray_was_running=not started,
        finished=len(done),
        wall_s=wall,
        own_s=tuple(own),
        overhead_s=(wall * slots - sum(own)) / max(len(done), 1),
        startups=tuple(clock.startups()) if concurrent == 1 else (),
    )


def format_study(result: StudyBench) -> list[str]:
    """The lines ``betastudy bench study`` prints for ``result``."""
    r, gaps = result, result.startups
    return [
        f"Ray start-up: {r.ray_start_s:.1f} s"
        + (" (already running)" if r.ray_was_running else ""),
        f"{r.finished}/{r.trials} trials of {r.steps} steps, {r.slots} at a time: {r.wall_s:.1f} s",
        f"trial's own time (model, {r.steps} steps, final evaluation, checkpoint): "
        f"median {_median(r.own_s):.2f} s, total {sum(r.own_s):.1f} s",
        "driver overhead per trial ((wall x slots - trials' own time) / trials): "
        f"{r.overhead_s:.2f} s",
        "trial start-up, previous trial's end -> this one's first step "
        + (
            f"(one at a time): median {_median([g.gap for g in gaps]):.2f} s, "
            f"of which Ray starting its process {_median([g.actor for g in gaps]):.2f} s "
            f"and data + model {_median([g.setup for g in gaps]):.2f} s"
            if gaps
            else "(measured with --concurrent 1 only)"
        ),
    ]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quiet(line: str) -> None:
    pass
