"""The results contract: the names a trial reports and the files it leaves behind.

Trainers write these names, analysis reads them; if a name changes, it changes here.

Every report row carries ``step``, ``images_seen``, ``recon``, ``kl``, ``kl_z{i}``
(per latent), ``C``, ``loss`` and ``images_per_s``; all losses are nats per image,
reconstruction summed over pixels. Evaluation rows add the disentanglement metrics in
``METRICS`` and the latent x factor normalized mutual information ``mi/z{i}/{factor}``.

Every report row also carries what the code *tells*, measured on a fixed held-out probe
set of inputs (``analysis.metrics.information``), because KL alone is not information
(KL = I(x; z) + KL(q(z) || p(z))):

- ``var_mu_z{i}``: Var_x E[z_i|x], the active-unit statistic (Burda et al. 2016);
- ``info_z{i}``: a lower bound on I(x; z_i) in nats, 0 for a latent whose posterior is
  the same for every input whatever its offset or sigma; ``info_x`` the same for z;
- ``info/{factor}``: I(f; z) in nats, what the whole code tells about each factor: exact
  over the whole factor grid for the factor encoder, a held-out lower bound for the image
  encoder; ``info/z{i}/{factor}`` a lower bound on the same for latent i alone.

An image trial's checked rows (its evaluations, or report rows where C reaches chosen
capacities: ``grid_info_images``) may add ``exact/{factor}``, I(f; z) over the whole grid
of images, against which its ``info/{factor}`` bound is checked.

``C`` in a row is the mean of C(step) over the steps the row averages, like ``kl``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)

# Columns of every training report.
TRAIN_COLUMNS: tuple[str, ...] = (
    "step",
    "images_seen",
    "recon",
    "kl",
    "C",
    "loss",
    "images_per_s",
)

# Scalar disentanglement metrics of an evaluation report (higher is better for all).
METRICS: tuple[str, ...] = (
    "mig",
    "beta_vae",
    "factor_vae",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "sap",
)

# Reconstruction of a model that ignores its input and predicts the mean image: the sum
# over pixels of the entropy of each pixel's mean, in nats per image, over all 737,280
# images of the procedural grid (565.33; tests/test_data.py checks it on a sample). A trial
# whose reconstruction is within a few nats of it has learned nothing.
MEAN_IMAGE_RECON = 565.3

# One report row of a trial: the keys below (step, recon, kl, ..., the probe columns and
# the metrics) with numbers as values (a diverged trial's last row adds DIVERGED_KEY and
# ERROR_KEY).
Row = dict[str, Any]
DIVERGED_KEY = "diverged"  # True in the last row of a diverged trial
ERROR_KEY = "error"  # that row's reason, "TrainingDiverged: non-finite loss at step ..."

# Direction of every reportable objective, for searches and frontiers.
DIRECTIONS: dict[str, str] = {
    "recon": "min",
    "kl": "max",
    "loss": "min",
    **{m: "max" for m in METRICS},
}

# Files of a trial directory (``betastudy train --out``) and of each checkpoint directory.
METRICS_FILE = "metrics.jsonl"  # one JSON object per report row
CONFIG_FILE = "config.json"  # the trial config
STATE_FILE = "state.pt"  # weights, optimizer, step, RNG states (torch; analysis never opens it)
TRAVERSALS_FILE = "traversals.npz"  # traversal images, in the final checkpoint
CHECKPOINTS_DIR = "checkpoints"  # its checkpoint directories: CHECKPOINTS_DIR/step_NNNNNNN/
# Traversal images at every evaluation, in the trial's folder: TRAVERSALS_DIR/step_NNNNNNN.npz
# (the TRAVERSAL_ARRAYS, images as uint8 0-255 to stay small)
TRAVERSALS_DIR = "traversals"


def traversal_snapshot(step: int) -> str:
    return f"{TRAVERSALS_DIR}/step_{step:07d}.npz"


# Files of a Ray trial's folder (Ray's names; a population member's folder has the same).
RESULT_FILE = "result.json"  # one report row per line
PARAMS_FILE = "params.json"  # the trial's config
ERROR_FILE = "error.txt"  # a failed trial's reason: its last non-empty line
# A population member that successive halving stopped (trainables.halving): the reason.
# Its status is TERMINATED, stopped early (its rows end before its last step).
STOPPED_FILE = "stopped.txt"
# Trial statuses (Ray's names): the ended ones, and those whose final values count.
TERMINATED, ERROR = "TERMINATED", "ERROR"
RUNNING, PENDING = "RUNNING", "PENDING"  # reported something / nothing yet
ENDED = (TERMINATED, ERROR)  # trained no more
FINISHED = (TERMINATED,)  # ended well: their final values count

# Study-level files (``betastudy run``).
TRIALS_FILE = "trials.json"  # the runner's list of trials (id, folder, status, error, config)
STUDY_SPEC_FILE = "study.yaml"  # the resolved, validated study spec
OPTUNA_DB_FILE = "optuna.db"  # Optuna's own storage (sqlite) for Optuna studies
OPTUNA_JOURNAL_FILE = "optuna.journal"  # the study as the sampler saw it, written live
REPORT_FILE = "report.html"  # the study's report, written when the study ends
# A packed study (resources.population > 1): each Ray trial trains a population, its
# config lists the members' trial configs under MEMBERS_KEY, and member j is written to
# the folder member_dirname(j) inside the trial's, laid out as an unpacked trial's.
MEMBERS_KEY = "__members"
# With a scheduler a population has more members than slots (SLOTS_KEY: how many train
# at once) and successive halving (HALVING_KEY: metric, mode, grace, eta) frees slots.
SLOTS_KEY = "__slots"
HALVING_KEY = "__halving"


# A study's trials table has one column per trial-config field, named config_col(field).
CONFIG_PREFIX = "config/"


def config_col(field: str) -> str:
    return f"{CONFIG_PREFIX}{field}"


def member_dirname(j: int) -> str:
    return f"member_{j:03d}"


def member_id(population_id: str, j: int) -> str:
    return f"{population_id}-{j:02d}"


def kl_key(i: int) -> str:
    """Column of latent ``i``'s KL (nats)."""
    return f"kl_z{i}"


def parse_kl_key(column: str) -> int | None:
    """``"kl_z3"`` -> 3; None for any other column."""
    m = re.fullmatch(r"kl_z(\d+)", column)
    return int(m.group(1)) if m else None


def mean_var_key(i: int) -> str:
    """Column of Var_x E[z_i|x], latent ``i``'s spread of posterior means."""
    return f"var_mu_z{i}"


def info_key(i: int) -> str:
    """Column of the lower bound on I(x; z_i) (nats)."""
    return f"info_z{i}"


INFO_X = "info_x"  # lower bound on I(x; z) of the whole code (nats)
# info_x and info_z{i} are read on the first this many probe inputs (cost ~ n^2): each is
# a contrastive bound, at most ln of that number (fewer when probe_points is smaller)
INFO_X_POINTS = 512


def factor_info_key(factor: str) -> str:
    """Column of I(factor; z) of the whole code (nats): exact for the factor encoder, a
    held-out lower bound for the image encoder."""
    return f"info/{factor}"


def exact_info_key(factor: str) -> str:
    """Column of I(factor; z) of the whole code computed over the whole factor grid (every
    grid input encoded; Monte Carlo over ``grid_info_samples`` draws, no bound): an image
    trial's checked rows (``grid_info_images``). A factor-encoder trial's
    ``info/{factor}`` is this value at every row."""
    return f"exact/{factor}"


def parse_exact_info_key(key: str) -> str | None:
    """``"exact/scale"`` -> ``"scale"``; anything else -> None."""
    head, _, factor = key.partition("/")
    return factor if head == "exact" and factor in FACTOR_NAMES else None


def latent_factor_info_key(i: int, factor: str) -> str:
    """Column of the lower bound on I(factor; z_i) of latent ``i`` alone (nats)."""
    return f"info/z{i}/{factor}"


def is_probe_key(key: str) -> bool:
    """Whether a column is one of the per-row information measures above."""
    return (
        key == INFO_X
        or key.startswith("info/")
        or (key.startswith(("var_mu_z", "info_z")) and key.rsplit("z", 1)[-1].isdigit())
    )


def mi_key(i: int, factor: str) -> str:
    """Column of the normalized mutual information between latent ``i`` and ``factor``."""
    return f"mi/z{i}/{factor}"


def parse_mi_key(key: str) -> tuple[int, str] | None:
    """``"mi/z3/scale"`` -> ``(3, "scale")``; anything else -> None."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "mi" or not parts[1].startswith("z"):
        return None
    try:
        return int(parts[1][1:]), parts[2]
    except ValueError:
        return None


# Arrays of TRAVERSALS_FILE (float32 images in [0, 1], 64x64):
#   inputs (n, H, W)             a few held-out inputs
#   reconstructions (n, H, W)    their reconstructions (Bernoulli means)
#   traversals (d, s, H, W)      row r: latent latent_index[r] swept over `values`,
#                                rows ordered by information (info_z), largest first
#   values (s,)                  the swept values, in prior standard deviations
#   latent_index (d,) int        which latent each row traverses
#   kl (d,) float                that latent's KL (nats)
#   info (d,) float              its information about the input, info_z (nats)
#   factor (d,) str              the factor it codes (analysis.switch_on), "" when inactive
TRAVERSAL_ARRAYS: tuple[str, ...] = (
    "inputs",
    "reconstructions",
    "traversals",
    "values",
    "latent_index",
    "kl",
    "info",
    "factor",
)


# ---- reading and writing the files ---------------------------------------------------


def last_line(text: str) -> str | None:
    """The reason of a failure: the last non-empty line of an error.txt."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def jsonable(row: dict) -> dict:
    """A row as JSON can hold it: undefined metrics (NaN, infinities) become null."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def metric_value(v: object) -> float | None:
    """A reported metric as a float, or None where it is undefined (missing, NaN,
    infinite, or not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def mean_defined(values: Iterable[float | None]) -> float | None:
    """The mean of the defined values (a configuration's seed replicates), or None where
    none is defined."""
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def format_value(v: object) -> str:
    """A value as lines and labels show it: four significant digits, whole floats as ints."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)
