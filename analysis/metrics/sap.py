"""SAP, the Separated Attribute Predictability score (Kumar et al. 2018, "Variational
Inference of Disentangled Latent Concepts from Unlabeled Observations",
https://openreview.net/forum?id=H1kG7GZAW, Section 3).

Follows disentanglement_lib's ``compute_sap`` (``evaluation/metrics/sap_score.py``) with
discrete factors, its reference config: each latent alone predicts each factor with a
linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``), scored by test accuracy;
SAP is the mean over factors of the gap between the two best latents. The reference ran
liblinear's dual solver (then scikit-learn's default); we solve the same strictly convex
problem in the primal, which is 3x faster for one feature and gives the same optimum.

With one-dimensional linear classifiers a factor with v values is never predicted
perfectly by one latent unless v = 2, and a useless latent still scores about the
frequency of one class, so SAP stays well below 1 even for ideal codes (about 0.5 for
binary factors coded exactly).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from analysis.metrics.ground_truth import check_pair


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> float:
    """Mean over factors of (best - second-best latent's test accuracy).

    Codes (n, d) float, factors (n, k) int. In [0, 1]; 0 for constant codes (every latent
    scores the same). With a single latent the second-best accuracy is taken as 0.
    """
    scores = sap_score_matrix(codes_train, factors_train, codes_test, factors_test)
    top = np.sort(scores, axis=0)[::-1]  # each column descending
    second = top[1] if len(top) > 1 else np.zeros(scores.shape[1])
    return float(np.mean(top[0] - second))


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> np.ndarray:
    """Test accuracy of predicting factor j from latent i alone -> (d, k)."""
    x, y = check_pair(codes_train, factors_train)
    x_test, y_test = check_pair(codes_test, factors_test)
    scores = np.zeros((x.shape[1], y.shape[1]))
    for j in range(y.shape[1]):
        if len(np.unique(y[:, j])) < 2:  # constant factor: every latent predicts it
            scores[:, j] = np.mean(y_test[:, j] == y[0, j])
            continue
        for i in range(x.shape[1]):
            with warnings.catch_warnings():
                # C = 0.01 is strong regularization; liblinear may stop at max_iter on
                # awkward codes, which the reference also ignores.
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm = LinearSVC(C=0.01, class_weight="balanced", dual=False)
                svm.fit(x[:, i : i + 1], y[:, j])
            scores[i, j] = np.mean(svm.predict(x_test[:, i : i + 1]) == y_test[:, j])
    return scores
