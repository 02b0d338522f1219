"""The whole metric suite on one representation: what an evaluation report carries.

``evaluate`` samples points from a ground-truth dataset, encodes them with ``represent``
and returns the results-contract columns: every name in ``analysis.contract.METRICS`` and
the normalized mutual information ``mi/z{i}/{factor}`` of every latent and factor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analysis.contract import METRICS
from analysis.metrics import beta_vae as bv
from analysis.metrics import factor_vae as fv
from analysis.metrics.dci import N_ESTIMATORS, dci
from analysis.metrics.ground_truth import GroundTruthData, Represent, sample_codes
from analysis.metrics.mig import mig
from analysis.metrics.mutual_info import mi_columns, mutual_info_matrix
from analysis.metrics.sap import sap


@dataclass(frozen=True)
class Sizes:
    """Sample sizes of the suite; the defaults are disentanglement_lib's reference configs."""

    num_train: int = 10_000  # points for MIG, the MI matrix, DCI and SAP training
    num_test: int = 5_000  # held-out points for DCI and SAP
    beta_vae_batch: int = bv.BATCH_SIZE  # pairs per BetaVAE point
    beta_vae_train: int = bv.NUM_TRAIN
    beta_vae_eval: int = bv.NUM_EVAL
    factor_vae_batch: int = fv.BATCH_SIZE  # points sharing a factor per vote
    factor_vae_train: int = fv.NUM_TRAIN
    factor_vae_eval: int = fv.NUM_EVAL
    factor_vae_variance: int = fv.NUM_VARIANCE_ESTIMATE
    dci_estimators: int = N_ESTIMATORS  # boosting stages of the DCI classifiers


DEFAULT = Sizes()

# For evaluation during training: a few thousand points, about 1 s of metric time on
# dSprites-shaped codes (``betastudy bench metrics``). Boosting stops at 20 stages: 100
# stages cost about 3 s at any size (113 small trees a stage on dSprites), and at 2,000
# points 20 stages also land nearest the default-size DCI (within 0.07 on synthetic codes;
# at 2,000 points with 100 stages DCI reads 0.07-0.19 lower, the trees overfit noise
# latents more). Fast figures are for watching a run, not for comparing with the defaults.
FAST = Sizes(
    num_train=2_000,
    num_test=1_000,
    beta_vae_train=1_000,
    beta_vae_eval=500,
    factor_vae_train=1_000,
    factor_vae_eval=500,
    factor_vae_variance=2_000,
    dci_estimators=20,
)


def evaluate(
    data: GroundTruthData,
    represent: Represent,
    rng: np.random.Generator,
    fast: bool = False,
    sizes: Sizes | None = None,
) -> dict[str, float]:
    """All metrics of ``represent`` on ``data``: ``METRICS`` keys plus ``mi/z{i}/{factor}``.

    ``sizes`` overrides the preset picked by ``fast`` (``FAST`` or ``DEFAULT``). MIG, the
    MI matrix, DCI and SAP share one training and one test sample (the reference draws
    one per metric; the points are i.i.d. either way). Values are floats in [0, 1]; MIG is
    NaN only if every factor is constant in the sample, which a ground-truth dataset with
    more than one value per factor makes vanishingly unlikely. Constant codes do not
    raise: they score 0 on MIG, FactorVAE, DCI disentanglement / completeness and SAP, and
    chance on BetaVAE and DCI informativeness. Codes with NaN or inf raise ValueError.
    """
    return evaluate_timed(data, represent, rng, fast, sizes)[0]


def evaluate_timed(
    data: GroundTruthData,
    represent: Represent,
    rng: np.random.Generator,
    fast: bool = False,
    sizes: Sizes | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """``evaluate``, plus the seconds each step took (sampling, each metric)."""
    s = sizes or (FAST if fast else DEFAULT)
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]):
        start = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - start
        return out

    z, f = timed("sample", lambda: sample_codes(data, represent, s.num_train, rng))
    z_test, f_test = timed("sample_test", lambda: sample_codes(data, represent, s.num_test, rng))
    out: dict[str, float] = {"mig": timed("mig", lambda: mig(z, f))}
    mi = timed("mi", lambda: mutual_info_matrix(z, f))
    out["beta_vae"] = timed(
        "beta_vae",
        lambda: bv.beta_vae_score(
            data, represent, rng, s.beta_vae_batch, s.beta_vae_train, s.beta_vae_eval
        ),
    )
    out["factor_vae"] = timed(
        "factor_vae",
        lambda: fv.factor_vae_score(
            data,
            represent,
            rng,
            s.factor_vae_batch,
            s.factor_vae_train,
            s.factor_vae_eval,
            s.factor_vae_variance,
        ),
    )
    scores = timed("dci", lambda: dci(z, f, z_test, f_test, s.dci_estimators))
    out.update({f"dci_{name}": value for name, value in scores.items()})
    out["sap"] = timed("sap", lambda: sap(z, f, z_test, f_test))
    row = {name: float(out[name]) for name in METRICS}  # contract order; KeyError if one lacks
    row.update(mi_columns(mi, list(data.factor_names)))
    return row, seconds
