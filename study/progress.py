"""Progress on the terminal while a study runs: one line per trial event, a status
line every few seconds (Tune's own tables are turned off: 50 MI columns do not fit), and,
while trials wait for a node, a wait line that says for what (Tune's insufficient-
resources warning and Ray's autoscaler events are folded into it: see study.runner)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from analysis.contract import ERROR_KEY, MEMBERS_KEY, PENDING, RUNNING, format_value, last_line
from analysis.switch_on import ACTIVE_NATS
from study.spec import request_text

WAIT_FIRST_S = 10.0  # no trial running this long, one pending and no node fits it: waiting
WAIT_EVERY_S = 30.0
NO_NODE_TYPE = "No available node types can fulfill resource request"
RAY_STATUS_TIP = "Tip: use `ray status`"


class AutoscalerEvents:
    """Ray's autoscaler events, taken from the driver's log stream (study.runner) instead
    of printed; the newest is folded into the wait line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest: str | None = None

    def add(self, line: str) -> None:
        line = line.strip()
        if line and not line.startswith(RAY_STATUS_TIP):
            with self._lock:
                self._newest = line

    def newest(self) -> str | None:
        with self._lock:
            return self._newest

    def clear(self) -> None:
        with self._lock:
            self._newest = None


AUTOSCALER = AutoscalerEvents()


def autoscaler_says(event: str) -> str:
    """An autoscaler event, as the wait line ends."""
    if NO_NODE_TYPE in event:  # a cluster whose workers join by hand says so every 35 s
        return "; Ray's autoscaler can start no such node: join a worker (ray start --address)"
    return f"; autoscaler: {event.removeprefix('Error: ').removeprefix('Warning: ')}"


class Progress(tune.Callback):
    """``fits(cpu, gpu)``: whether a live node could take a trial that asks so much (None:
    no wait lines)."""

    def __init__(
        self,
        echo: Callable[[str], None],
        varied: Sequence[str],
        every_s: float = 15.0,
        fits: Callable[[float, float], bool] | None = None,
        wait_first_s: float = WAIT_FIRST_S,
        wait_every_s: float = WAIT_EVERY_S,
    ):
        self.echo = echo
        self.varied = list(varied)
        self.every_s = every_s
        self.t0 = time.monotonic()
        self.last_status = self.t0
        self.rows: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, str] = {}
        self.fits = fits
        self.wait_first_s, self.wait_every_s = wait_first_s, wait_every_s
        self.waiting_since: float | None = None  # no trial running, some pending, since
        self.next_wait_line = 0.0

    def _say(self, text: str) -> None:
        self.echo(f"[{time.monotonic() - self.t0:6.0f}s] {text}")

    def _name(self, trial) -> str:
        members = trial.config.get(MEMBERS_KEY)
        if isinstance(members, list):  # a packed study's trial: a population
            return f"{trial.trial_id} (population of {len(members)})"
        params = " ".join(f"{k}={format_value(trial.config.get(k))}" for k in self.varied)
        return f"{trial.trial_id} ({params})" if params else trial.trial_id

    def on_step_end(self, iteration, trials, **info) -> None:
        pending = [t for t in trials if t.status == PENDING]
        if self.fits is None or not pending or any(t.status == RUNNING for t in trials):
            self.waiting_since = None
            return
        now = time.monotonic()
        if self.waiting_since is None:
            self.waiting_since, self.next_wait_line = now, now + self.wait_first_s
            AUTOSCALER.clear()  # what it said before is not about this wait
        if now < self.next_wait_line:
            return
        cpu, gpu = _request(pending[0])
        if self.fits(cpu, gpu):  # a node has room: the trial is starting, not waiting
            self.next_wait_line = now + self.wait_first_s
            return
        self.next_wait_line = now + self.wait_every_s
        n = len(pending)
        event = AUTOSCALER.newest()
        self._say(
            f"waiting for a node with {request_text(cpu, gpu)} for {n} pending "
            f"trial{'s' if n > 1 else ''}: {now - self.waiting_since:.0f} s"
            + (autoscaler_says(event) if event else "")
        )

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._say(f"start    {self._name(trial)}")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._say(f"restart  {self._name(trial)} from its last checkpoint")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.rows[trial.trial_id] = result
        now = time.monotonic()
        if now - self.last_status >= self.every_s:
            self.last_status = now
            self._say(self._status(trials))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.ended[trial.trial_id] = "done"
        self._say(f"done     {self._name(trial)} {_row(self.rows.get(trial.trial_id, {}))}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.ended[trial.trial_id] = "failed"
        reason = self.rows.get(trial.trial_id, {}).get(ERROR_KEY) or _error_line(trial)
        self._say(f"failed   {self._name(trial)}: {reason}")

    def _status(self, trials) -> str:
        running = [t for t in trials if t.status == RUNNING]
        done = sum(v == "done" for v in self.ended.values())
        failed = sum(v == "failed" for v in self.ended.values())
        parts = [f"{len(running)} running, {done} done, {failed} failed of {len(trials)}"]
        for t in running[:4]:
            row = self.rows.get(t.trial_id)
            if row:
                parts.append(f"{t.trial_id} {_row(row)}")
        return " | ".join(parts)


def _request(trial) -> tuple[float, float]:
    """The CPUs and GPUs a trial asks of one node."""
    try:
        asked = trial.placement_group_factory.required_resources
    except AttributeError:
        return 0.0, 0.0
    return asked.get("CPU", 0), asked.get("GPU", 0)


def _row(row: dict[str, Any]) -> str:
    shown = []
    for key, fmt in (("step", "{}"), ("recon", "{:.1f}"), ("kl", "{:.2f}"), ("C", "{:.2f}")):
        if isinstance(row.get(key), (int, float)):
            shown.append(f"{key} " + fmt.format(row[key]))
    active = [k for k, v in row.items() if k.startswith("info_z") and isinstance(v, float)]
    if active:  # what the code tells, beside KL (which offsets can fill)
        on = sum(row[k] >= ACTIVE_NATS for k in active)
        shown.append(f"active {on}/{len(active)}")
    if isinstance(row.get("mig"), float):
        shown.append(f"mig {row['mig']:.3f}")
    if isinstance(row.get("members"), int):  # a population's summary row
        if isinstance(row.get("best_recon"), float):
            shown.append(f"best recon {row['best_recon']:.1f}")
        done, failed = row.get("members_done", 0), row.get("members_failed", 0)
        shown.append(f"members {row['members']} ({done} done, {failed} failed)")
    return " ".join(shown)


def _error_line(trial) -> str:
    try:
        text = Path(trial.error_file).read_text()
    except (OSError, TypeError, AttributeError):
        return "see error.txt in its folder"
    return last_line(text) or "see error.txt in its folder"
