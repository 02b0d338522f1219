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
    """Driver-side times: when each trial was started, and when its first result arrived."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.first: dict[str, tuple[float, dict[str, Any]]] = {}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.first.setdefault(trial.trial_id, (time.perf_counter(), dict(result)))


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
    done = [r for r in result.records if r.status == "TERMINATED"]
    own = [float(r.last.get("time_total_s", 0.0)) for r in done]
    startup, setup = [], []
    for r in done:
        if r.trial_id in clock.started and r.trial_id in clock.first:
            arrived, row = clock.first[r.trial_id]
            first_own = float(row.get("time_this_iter_s", 0.0))  # trainable start -> 1st row
            startup.append(arrived - clock.started[r.trial_id] - first_own)
            ips = row.get("images_per_s") or 0.0
            setup.append(first_own - (row["images_seen"] / ips if ips else 0.0))
    slots = min(concurrent or trials, trials)
    overhead = (wall * slots - sum(own)) / max(len(done), 1)
    return [
        f"Ray start-up: {ray_start:.1f} s" + ("" if started else " (already running)"),
        f"{len(done)}/{trials} trials of {steps} steps, {slots} at a time: {wall:.1f} s",
        f"trial's own time (model, {steps} steps, final evaluation, checkpoint): "
        f"median {_median(own):.2f} s, total {sum(own):.1f} s",
        f"driver overhead per trial ((wall x slots - trials' own time) / trials): {overhead:.2f} s",
        f"trial start-up (driver starts it -> its trainable runs): median "
        f"{_median(startup):.2f} s, max {max(startup, default=0):.2f} s",
        f"in-trial set-up before the first step (data, model): median {_median(setup):.2f} s",
    ]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quiet(line: str) -> None:
    pass
