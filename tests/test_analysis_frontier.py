"""Frontier, seed aggregation and grid data on hand-placed points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.frontier import (
    aggregate_seeds,
    frontier_data,
    grid_data,
    grid_params,
    pareto_mask,
    pick_color,
    plot_frontier,
    plot_grid_heatmaps,
    varied_params,
)


def test_pareto_front_of_hand_placed_points():
    #            E    A     C     B    D    F    G       H (= B)
    recon = [5.0, 10.0, 15.0, 20.0, 30.0, 40.0, np.nan, 20.0]
    mig = [0.0, 0.1, 0.05, 0.5, 0.5, 0.9, 1.0, 0.5]
    mask = pareto_mask(np.array(recon), np.array(mig))
    # C is beaten by A, D by B (same mig, more recon), G has no recon; B and H tie
    assert mask.tolist() == [True, True, False, True, False, True, False, True]


def test_pareto_directions():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    assert pareto_mask(x, y, "min", "max").tolist() == [True, False, False]
    assert pareto_mask(x, y, "max", "min").tolist() == [False, False, True]
    assert pareto_mask(x, y, "min", "min").tolist() == [True, True, True]


def _trials() -> pd.DataFrame:
    rows = []
    # beta=1: 3 seeds; beta=4: 3 seeds and a failed one; beta=16: one seed
    for seed, (r, m) in enumerate([(10, 0.1), (12, 0.2), (14, 0.3)]):
        rows.append((f"a{seed}", "TERMINATED", 1.0, 100.0, seed, r, m))
    for seed, (r, m) in enumerate([(20, 0.5), (20, 0.6), (20, 0.7)]):
        rows.append((f"b{seed}", "TERMINATED", 4.0, 100.0, seed, r, m))
    rows.append(("b9", "ERROR", 4.0, 100.0, 9, 1.0, 0.99))
    rows.append(("c0", "TERMINATED", 16.0, 1000.0, 0, 30.0, 0.4))
    cols = ["trial_id", "status", "config/beta", "config/gamma", "config/seed", "recon", "mig"]
    t = pd.DataFrame(rows, columns=cols)
    t["config/objective"] = "beta"
    return t


def test_seed_aggregation_mean_and_sd():
    agg = aggregate_seeds(_trials(), ["recon", "mig"])
    assert agg["label"].tolist() == [
        "beta=1, gamma=100",
        "beta=4, gamma=100",
        "beta=16, gamma=1000",
    ]
    assert agg["n"].tolist() == [3, 3, 1]  # the failed trial does not count
    assert agg["trial_ids"].tolist() == ["a0 a1 a2", "b0 b1 b2", "c0"]
    assert agg["recon_mean"].tolist() == [12.0, 20.0, 30.0]
    assert agg["recon_sd"].tolist()[:2] == [2.0, 0.0]
    assert np.isnan(agg["recon_sd"].iloc[2])  # one seed: no spread
    assert agg["mig_mean"].tolist() == pytest.approx([0.2, 0.6, 0.4])
    assert agg["mig_sd"].tolist()[:2] == pytest.approx([0.1, 0.1])


def test_frontier_lists_the_front_configurations():
    data = frontier_data(_trials(), "mig")
    assert data.color == "beta"  # a beta-objective study is coloured by beta
    assert data.configs["on_front"].tolist() == [True, True, False]
    assert data.front["label"].tolist() == ["beta=1, gamma=100", "beta=4, gamma=100"]
    assert data.trials["trial_id"].tolist() == ["a0", "a1", "a2", "b0", "b1", "b2", "c0"]
    fig = plot_frontier(data)
    assert [t.name for t in fig.data] == ["trials", "configurations (mean ± sd)", "Pareto front"]
    assert list(fig.data[2].x) == [12.0, 20.0]


def test_frontier_rejects_an_unknown_metric():
    with pytest.raises(KeyError, match="'nope' was not reported"):
        frontier_data(_trials(), "nope")


def test_varied_params_and_colour():
    t = _trials()
    assert varied_params(t) == ["beta", "gamma"]
    assert grid_params(t) == ["beta", "gamma"]
    t["config/objective"] = "capacity"
    t["config/c_max"] = [5.0] * 4 + [25.0] * 4
    assert pick_color(t) == "c_max"


def test_grid_data_means_over_seeds():
    g = grid_data(_trials(), "beta", "gamma", ["recon", "mig"])
    recon = g[g["metric"] == "recon"]
    assert recon[["beta", "gamma", "mean", "n"]].values.tolist() == [
        [1.0, 100.0, 12.0, 3],
        [4.0, 100.0, 20.0, 3],
        [16.0, 1000.0, 30.0, 1],
    ]
    fig = plot_grid_heatmaps(g, "beta", "gamma")
    assert len(fig.data) == 2 and fig.data[0].z.shape == (2, 3)


def test_undefined_metric_cells_read_n_a():
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d"],
            "status": "TERMINATED",
            "config/gamma": [10.0, 10.0, 100.0, 100.0],
            "config/c_max": [5.0, 10.0, 5.0, 10.0],
            "factor_vae": [0.5, np.nan, 0.7, 0.8],  # every latent pruned in b: undefined
        }
    )
    fig = plot_grid_heatmaps(grid_data(trials, "gamma", "c_max", ["factor_vae"]), "gamma", "c_max")
    assert fig.data[0].text.tolist() == [["0.5", "0.7"], ["n/a", "0.8"]]
