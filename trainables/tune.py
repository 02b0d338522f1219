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
import math
import tempfile
from typing import Any

import ray
from ray import tune

from trainables.config import TrialConfig
from trainables.trainer import Row, Trainer, TrainingDiverged, use_threads

DIVERGED_KEY = "diverged"  # True in the last row of a diverged trial
ERROR_KEY = "error"  # that row's reason, "TrainingDiverged: non-finite loss at step ..."
NAN_COLUMNS = ("recon", "kl", "loss")  # NaN in that row: metrics a scheduler may expect


def trial_config(config: dict[str, Any]) -> TrialConfig:
    """Ray's config dict -> TrialConfig; Ray's own ``__``-keys are dropped."""
    return TrialConfig.from_dict({k: v for k, v in config.items() if not k.startswith("__")})


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train one trial, resuming from Ray's checkpoint."""
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
        row = _finite(row)
        if not checkpoint_due:
            tune.report(row)
            return
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(tmp)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        trainer.run(on_report)
    except TrainingDiverged as e:
        tune.report(diverged_row(e, cfg))
        raise


def diverged_row(e: TrainingDiverged, cfg: TrialConfig) -> Row:
    """The last row of a diverged trial: its step, NaN losses and the reason."""
    row: Row = {"step": e.step, "images_seen": e.step * cfg.batch_size}
    row.update({k: math.nan for k in NAN_COLUMNS})
    row[DIVERGED_KEY] = True
    row[ERROR_KEY] = f"{type(e).__name__}: {e}"
    return row


def _finite(row: Row) -> Row:
    # undefined metrics (NaN) are reported as None: JSON has no NaN
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }
