"""The results contract: the names a trial reports and the files it leaves behind.

Trainers write these names, analysis reads them; if a name changes, it changes here.

Every report row carries ``step``, ``images_seen``, ``recon``, ``kl``, ``kl_z{i}``
(per latent), ``C``, ``loss`` and ``images_per_s``; all losses are nats per image,
reconstruction summed over pixels. Evaluation rows add the disentanglement metrics in
``METRICS`` and the latent x factor normalized mutual information ``mi/z{i}/{factor}``.
"""

from __future__ import annotations

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
DONE_FILE = "done.json"  # written when a trial finishes: final row and status

# Study-level files (``betastudy run``).
STUDY_SPEC_FILE = "study.yaml"  # the resolved, validated study spec
OPTUNA_DB_FILE = "optuna.db"  # Optuna's own storage (sqlite) for Optuna studies


def kl_key(i: int) -> str:
    """Column of latent ``i``'s KL (nats)."""
    return f"kl_z{i}"


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
#                                rows ordered by KL, largest first
#   values (s,)                  the swept values, in prior standard deviations
#   latent_index (d,) int        which latent each row traverses
#   kl (d,) float                that latent's KL (nats)
#   factor (d,) str              the factor it codes, "" when inactive
TRAVERSAL_ARRAYS: tuple[str, ...] = (
    "inputs",
    "reconstructions",
    "traversals",
    "values",
    "latent_index",
    "kl",
    "factor",
)
