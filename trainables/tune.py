"""The Ray Tune adapter: one trial of a study (the only trainables module importing ray).

Ray's config dict becomes a TrialConfig at the edge; the trial resumes from
``tune.get_checkpoint()`` when Ray restarts it, reports every row of the results
contract with ``tune.report`` and hands a checkpoint directory to Ray when one is due.

A diverged trial reports one last row carrying ``DIVERGED_KEY`` and ``ERROR_KEY`` and
then raises TrainingDiverged, so Ray records it as failed with its reason. Rerunning it
from its last checkpoint would diverge again at the same step (training is
deterministic), so the driver reads that row and does not retry it (study/runner.py).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from typing import Any

import ray
from ray import tune

from analysis.contract import HALVING_KEY, MEMBERS_KEY, SLOTS_KEY, Row, jsonable
from analysis.fs import join_location
from trainables.config import TrialConfig
from trainables.members import write_snapshot
from trainables.trainer import Trainer, TrainingDiverged, diverged_row, use_threads

MEMBER_RESULTS_KEY = "member_results"  # a population's last row: each member's last row
STUDY_DIR_KEY = "__study_dir"  # ... and the study directory its members are written to


def trial_config(config: dict[str, Any]) -> TrialConfig:
    """Ray's config dict -> TrialConfig; Ray's own ``__``-keys are dropped."""
    return TrialConfig.from_dict({k: v for k, v in config.items() if not k.startswith("__")})


def quiet_teardown() -> None:
    """Ray ends an idle worker with SIGTERM, whose handler raises SystemExit wherever the
    process happens to be; inside a weakref callback Python then prints "Exception
    ignored in ... SystemExit" to stderr, which reaches the driver's terminal as a stray
    traceback after a study that went well. Such unraisable exits are dropped; every
    other unraisable exception is reported as before."""
    default = sys.__unraisablehook__

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, (SystemExit, KeyboardInterrupt)):
            return
        default(unraisable)

    sys.unraisablehook = hook


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train one trial, resuming from Ray's checkpoint."""
    quiet_teardown()
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line a save
    cfg = trial_config(config)
    use_threads(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        trainer = Trainer(cfg)
    else:
        with checkpoint.as_directory() as directory:
            trainer = Trainer.from_checkpoint(directory)

    def on_report(row: Row, checkpoint_due: bool) -> None:
        row = jsonable(row)
        if not checkpoint_due:
            tune.report(row)
            return
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(tmp)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))

    folder = trial_folder(config)

    def on_traversals(step: int, arrays: dict[str, Any]) -> None:
        if folder:  # beside result.json in the trial's folder of the study
            write_snapshot(folder, step, arrays)

    try:
        trainer.run(on_report, on_traversals=on_traversals)
    except TrainingDiverged as e:
        tune.report(diverged_row(e, cfg))
        raise


def train_population(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: a population of trials (``config[MEMBERS_KEY]``)
    trained together (trainables.population), each member written to its own folder
    inside this trial's, as an unpacked trial's folder is laid out (result.json,
    params.json, checkpoint_NNNNNN/, error.txt when it fails), so analysis loads them
    as ordinary trials. Restarted by Ray, each member resumes from its own newest
    checkpoint. Tune sees one summary row per report of a member, at most one a second.
    """
    from trainables.halving import Halving, Roster
    from trainables.members import MemberFolder
    from trainables.population import Population

    quiet_teardown()
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    use_threads(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
    configs = [TrialConfig.from_dict(m) for m in config[MEMBERS_KEY]]
    trial_dir = trial_folder(config)
    folders = [MemberFolder.at(trial_dir, j, cfg) for j, cfg in enumerate(configs)]
    slots = min(int(config.get(SLOTS_KEY) or len(configs)), len(configs))
    halving = Halving(configs, **config[HALVING_KEY]) if config.get(HALVING_KEY) else None
    pop = Population(configs[:slots])
    summary = PopulationSummary(len(configs))
    roster = Roster(pop, configs, folders, halving, summary)
    try:
        pop.run(roster.on_report, on_end=roster.on_end, on_traversals=roster.on_traversals)
    finally:  # each member's TensorBoard files complete, in cloud storage too
        for folder in folders:
            folder.close()
    summary.report(final=[f.rows[-1] if f.rows else None for f in folders])


def trial_folder(config: dict[str, Any]) -> str | None:
    """This trial's folder in the study (Tune's working directory is a local staging
    copy of its name); None when the config does not say where the study is."""
    study_dir = config.get(STUDY_DIR_KEY)
    if not study_dir:
        return None
    return join_location(study_dir, os.path.basename(tune.get_context().get_trial_dir()))


class PopulationSummary:
    """The rows a population trial reports to Tune: its members' progress, at most one a
    second (a scheduler never reads them: packed studies have none)."""

    def __init__(self, k: int, every_s: float = 1.0) -> None:
        self.k, self.every_s = k, every_s
        self.last: dict[int, Row] = {}
        self.ended: dict[int, bool] = {}  # slot -> failed
        self.sent = 0.0

    def update(self, j: int, row: Row) -> None:
        self.last[j] = row
        self.report()

    def end(self, j: int, error: Exception | None) -> None:
        self.ended[j] = error is not None

    def report(self, final: list[Row | None] | None = None) -> None:
        """A summary row, at most every ``every_s``; ``final``: the last one, with each
        member's last row (an Optuna searcher tells its configurations from them)."""
        now = time.monotonic()
        if final is None and (not self.last or now - self.sent < self.every_s):
            return
        self.sent = now
        rows = list(self.last.values()) or [{"step": 0, "images_seen": 0, "recon": None}]
        extra = {} if final is None else {MEMBER_RESULTS_KEY: final}
        tune.report(
            {
                **extra,
                "step": max(r["step"] for r in rows),
                "images_seen": sum(r["images_seen"] for r in rows),
                "members": self.k,
                "members_done": sum(not f for f in self.ended.values()),
                "members_failed": sum(self.ended.values()),
                "best_recon": min(
                    (r["recon"] for r in rows if r["recon"] is not None), default=None
                ),
                "images_per_s": sum(r.get("images_per_s", 0.0) for r in rows),
            }
        )
