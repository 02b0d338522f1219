"""Disentanglement metrics on pure arrays (numpy and scikit-learn; no torch).

Definitions and defaults follow google-research/disentanglement_lib; each module cites
its paper and says where the reference and the paper part ways.

Array metrics take ``codes`` (n, d) float posterior means and ``factors`` (n, k) integer
class indices. Sampling metrics take a ``GroundTruthData``, a ``represent(observations)
-> codes`` function and a ``numpy.random.Generator``. ``evaluate`` runs them all.
"""

from __future__ import annotations

from analysis.metrics.beta_vae import beta_vae_score
from analysis.metrics.dci import completeness, dci, disentanglement, gbt_importance
from analysis.metrics.evaluate import DEFAULT, FAST, Sizes, evaluate, evaluate_timed
from analysis.metrics.factor_vae import factor_vae_score
from analysis.metrics.ground_truth import GroundTruthData, Represent, sample_codes
from analysis.metrics.information import (
    factor_information,
    factor_information_bounds,
    input_information,
    latent_factor_information,
    marginal_factor_information,
    marginal_information,
    mean_variance,
)
from analysis.metrics.mig import mig
from analysis.metrics.mutual_info import (
    NUM_BINS,
    discrete_entropy,
    histogram_discretize,
    mi_columns,
    mi_from_columns,
    mutual_info_matrix,
)
from analysis.metrics.sap import sap, sap_score_matrix

__all__ = [
    "DEFAULT",
    "FAST",
    "NUM_BINS",
    "GroundTruthData",
    "Represent",
    "Sizes",
    "beta_vae_score",
    "completeness",
    "dci",
    "discrete_entropy",
    "disentanglement",
    "evaluate",
    "evaluate_timed",
    "factor_vae_score",
    "gbt_importance",
    "histogram_discretize",
    "factor_information",
    "factor_information_bounds",
    "input_information",
    "latent_factor_information",
    "marginal_factor_information",
    "marginal_information",
    "mean_variance",
    "mi_columns",
    "mi_from_columns",
    "mig",
    "mutual_info_matrix",
    "sample_codes",
    "sap",
    "sap_score_matrix",
]
