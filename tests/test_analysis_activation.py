"""Activation order on hand-made KL curves and MI matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.activation import (
    activation_data,
    activation_summary_data,
    follows_paper,
    latent_factors,
    plot_activation,
    plot_activation_summary,
)
from analysis.load import Study

C = np.arange(11.0)  # C = 0, 1, ..., 10 nats at steps 0, 100, ..., 1000


def _curves(trial_id: str, kls: list[np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame({"trial_id": trial_id, "step": C * 100, "C": C})
    for i, k in enumerate(kls):
        frame[f"kl_z{i}"] = k
    frame["recon"] = 100 - C
    return frame


def _mi(trial_id: str, step: float, table: dict[int, dict[str, float]]) -> pd.DataFrame:
    rows = [(trial_id, step, z, f, v) for z, per in table.items() for f, v in per.items()]
    return pd.DataFrame(rows, columns=["trial_id", "step", "latent", "factor", "mi"])


def _study() -> Study:
    on = lambda start, rate: np.maximum(C - start, 0.0) * rate  # noqa: E731
    # trial t1: posX at C=2, posY at C=2 (less KL: after posX), scale at 5, shape at 9
    t1 = _curves("t1", [on(1, 1.0), on(4, 0.8), on(7, 0.3), np.full(11, 0.01), on(1.4, 1.0)])
    mi1 = pd.concat(
        [
            # an early evaluation that disagrees: only the last one counts
            _mi("t1", 500, {2: {"orientation": 0.9, "shape": 0.1}}),
            _mi(
                "t1",
                1000,
                {
                    0: {"posX": 0.8, "posY": 0.1},
                    1: {"scale": 0.6, "posX": 0.05},
                    2: {"shape": 0.3, "orientation": 0.25},
                    3: {"shape": 0.05, "posX": 0.04},  # below the MI threshold: no factor
                    4: {"posY": 0.7, "posX": 0.1},
                },
            ),
        ]
    )
    # trial t2: scale (C=2) before posX (C=6): against the paper
    t2 = _curves("t2", [on(5, 1.0), on(1, 1.0)])
    mi2 = _mi("t2", 1000, {0: {"posX": 0.5}, 1: {"scale": 0.5}})
    # trial t3: only posX switches on: undetermined
    t3 = _curves("t3", [on(1, 1.0), np.zeros(11)])
    mi3 = _mi("t3", 1000, {0: {"posX": 0.5}, 1: {"scale": 0.01}})
    curves = pd.concat([t1, t2, t3], ignore_index=True)
    mi = pd.concat([mi1, mi2, mi3], ignore_index=True)
    trials = pd.DataFrame({"trial_id": ["t1", "t2", "t3"], "status": "TERMINATED"})
    return Study("hand", "", {}, trials, curves, pd.DataFrame(), mi)


def test_switch_on_labels_and_order_of_one_trial():
    data = activation_data(_study(), "t1")
    lat = data.latents
    assert lat["latent"].tolist() == [0, 4, 1, 2, 3]  # by switch-on, ties by final KL
    assert lat["factor"].tolist() == ["posX", "posY", "scale", "shape", None]
    assert lat["C_on"].tolist()[:4] == [2.0, 2.0, 5.0, 9.0]
    assert lat["step_on"].tolist()[:4] == [200.0, 200.0, 500.0, 900.0]
    assert np.isnan(lat["C_on"].iloc[4])
    assert data.order == ["posX", "posY", "scale", "shape"]
    assert data.x == "C"
    assert sorted(data.curves.columns) == ["C", "kl", "latent", "step"]
    fig = plot_activation(data)
    assert len(fig.data) == 2 * 5 + 2  # each latent vs C and vs step, switch-on dots
    assert list(fig.data[-2].x) == [2.0, 2.0, 5.0, 9.0]
    assert "posX > posY > scale > shape" in fig.layout.title.text


def test_thresholds_are_parameters():
    data = activation_data(_study(), "t1", kl_threshold=2.5, mi_threshold=0.65)
    # KL > 2.5 first at C=4 (z0), C=4 (z4: 2.6), C=8 (z1: 3.2); z2 never
    assert data.latents["C_on"].tolist()[:3] == [4.0, 4.0, 8.0]
    assert data.latents["factor"].tolist()[:3] == ["posX", "posY", None]  # scale MI 0.6 < 0.65
    assert data.order == ["posX", "posY"]


def test_latent_factor_rule():
    mi = _mi("t", 1, {0: {"posX": 0.2, "scale": 0.3}, 1: {"posX": 0.1, "shape": 0.05}})
    got = latent_factors(mi, threshold=0.1)
    assert got[["latent", "factor"]].values.tolist() == [[0, "scale"], [1, None]]  # 0.1 not above


@pytest.mark.parametrize(
    "order, expected",
    [
        (["posX", "posY", "scale", "orientation", "shape"], True),
        (["posY", "scale", "shape", "orientation"], True),
        (["posX", "scale"], True),
        (["posX", "shape"], True),  # scale never opened: nothing out of order
        (["posY", "posX", "shape", "scale"], False),
        (["scale", "posX"], False),
        (["scale", "orientation"], False),  # does not start with position
        (["posX", "posY"], None),
        (["orientation", "shape"], None),
        ([], None),
    ],
)
def test_follows_paper(order, expected):
    assert follows_paper(order) is expected


def test_summary_across_trials():
    s = activation_summary_data(_study())
    assert s.orders.values.tolist() == [
        ["t1", "posX > posY > scale > shape", True],
        ["t2", "scale > posX", False],
        ["t3", "posX", None],
    ]
    assert (s.share, s.n_determined, s.n_trials) == (0.5, 2, 3)
    pos = s.switch_on[s.switch_on["factor"] == "posX"]
    assert pos[["trial_id", "C_on", "rank"]].values.tolist() == [
        ["t1", 2.0, 1],
        ["t2", 6.0, 2],
        ["t3", 2.0, 1],
    ]
    fig = plot_activation_summary(s)
    assert "50% of 2 determined" in fig.layout.title.text


def test_summary_skips_unfinished_trials():
    study = _study()
    study.trials.loc[1, "status"] = "ERROR"
    s = activation_summary_data(study)
    assert s.orders["trial_id"].tolist() == ["t1", "t3"]
    assert s.share == 1.0


def test_constant_capacity_trials_are_drawn_against_the_step():
    study = _study()
    study.curves["C"] = 25.0  # the bottleneck experiment: C held constant
    data = activation_data(study, "t1")
    assert data.x == "step"
    assert len(plot_activation(data).data) == 5 + 1  # one panel only
