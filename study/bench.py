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
from typing import Any

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

    def startups(self) -> list[tuple[float, float, float]]:
        """Per trial, when they run one at a time: (previous trial's end -> this one's
        first step, of which Ray starting its actor, of which building data and model)."""
        out, previous_end = [], self.begin
        for tid, start in sorted(self.started.items(), key=lambda kv: kv[1]):
            if tid not in self.first or tid not in self.ended:
                continue
            arrived, row = self.first[tid]
            first_own = float(row.get("time_this_iter_s", 0.0))  # trainable start -> 1st row
            ips = row.get("images_per_s") or 0.0
            setup = first_own - (row["images_seen"] / ips if ips else 0.0)
            first_step = arrived - first_own + setup
            out.append((first_step - previous_end, start - previous_end, setup))
            previous_end = self.ended[tid]
        return out


def bench_study(trials: int, steps: int, concurrent: int, address: str | None) -> list[str]:
    """Run the benchmark study; return the lines to print."""
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
    gaps = clock.startups() if concurrent == 1 else []
    slots = min(concurrent or trials, trials)
    overhead = (wall * slots - sum(own)) / max(len(done), 1)
    return [
        f"Ray start-up: {ray_start:.1f} s" + ("" if started else " (already running)"),
        f"{len(done)}/{trials} trials of {steps} steps, {slots} at a time: {wall:.1f} s",
        f"trial's own time (model, {steps} steps, final evaluation, checkpoint): "
        f"median {_median(own):.2f} s, total {sum(own):.1f} s",
        f"driver overhead per trial ((wall x slots - trials' own time) / trials): {overhead:.2f} s",
        "trial start-up, previous trial's end -> this one's first step "
        + (
            f"(one at a time): median {_median([g[0] for g in gaps]):.2f} s, "
            f"of which Ray starting its process {_median([g[1] for g in gaps]):.2f} s "
            f"and data + model {_median([g[2] for g in gaps]):.2f} s"
            if gaps
            else "(measured with --concurrent 1 only)"
        ),
    ]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quiet(line: str) -> None:
    pass
