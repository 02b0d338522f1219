"""Training curves, parallel coordinates and hyperparameter importance."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from analysis.load import Study
from analysis.views import (
    importance_data,
    parallel_coords_data,
    plot_importance,
    plot_parallel_coords,
    plot_training_curves,
    training_curves_data,
)


def _study(tmp_path=None, optuna_db=None) -> Study:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        c_max, gamma = [5.0, 15.0, 25.0, 35.0][i % 4], [100.0, 1000.0][(i // 4) % 2]
        mig = 0.1 + 0.01 * c_max + rng.normal(0, 0.005)  # c_max alone drives mig
        recon = 100.0 - c_max + rng.normal(0, 0.5)
        rows.append((f"t{i:02d}", "TERMINATED", c_max, gamma, "image", i % 3, recon, mig))
    cols = ["trial_id", "status", "config/c_max", "config/gamma", "config/encoder"]
    trials = pd.DataFrame(rows, columns=[*cols, "config/seed", "recon", "mig"])
    trials.loc[23, "status"] = "ERROR"
    steps = np.arange(1, 11) * 100.0
    curves = pd.concat(
        [
            pd.DataFrame(
                {
                    "trial_id": t,
                    "step": steps,
                    "recon": 200 - steps / 10,
                    "kl": steps / 100,
                    "loss": 1.0,
                }
            )
            for t in trials["trial_id"]
        ],
        ignore_index=True,
    )
    fs = None
    if optuna_db is not None:
        from analysis.fs import StudyFS

        fs = StudyFS.open(tmp_path)
    return Study("v", "", {}, trials, curves, pd.DataFrame(), pd.DataFrame(), optuna_db, fs)


def test_training_curves_are_downsampled_keeping_the_last_report():
    data = training_curves_data(_study(), columns=("recon", "kl"), max_points=4)
    one = data[(data["trial_id"] == "t00") & (data["column"] == "recon")]
    assert one["step"].tolist() == [100.0, 400.0, 700.0, 1000.0]  # every 3rd, and the last
    assert one["value"].tolist() == [190.0, 160.0, 130.0, 100.0]
    assert list(data.columns) == ["trial_id", "status", "step", "column", "value"]
    assert set(data.loc[data["trial_id"] == "t23", "status"]) == {"ERROR"}
    fig = plot_training_curves(data)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 4  # 2 columns x 2 statuses
    assert np.isnan(np.asarray(lines[1].x, float)).sum() == 22  # 23 trials, NaN-separated


def test_parallel_coordinates_data():
    data = parallel_coords_data(_study().trials, "mig")
    assert list(data.columns) == ["trial_id", "c_max", "gamma", "recon", "mig"]
    assert len(data) == 23  # finished trials only
    fig = plot_parallel_coords(data, "mig")
    assert [d.label for d in fig.data[0].dimensions] == ["c_max", "gamma", "recon", "mig"]


def test_importance_from_the_trials():
    data = importance_data(_study(), targets=("mig", "recon"))
    assert set(data["source"]) == {"trials"}
    for target in ("mig", "recon"):
        imp = data[data["target"] == target].set_index("param")["importance"]
        assert set(imp.index) == {"c_max", "gamma"}
        assert imp["c_max"] > 0.8 > imp["gamma"]
    assert len(plot_importance(data).data) == 2


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_importance_from_optuna_db(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ost = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    ost.set_metric_names(["mig", "recon"])
    rng = np.random.default_rng(1)
    for _ in range(20):
        t = ost.ask()
        beta = t.suggest_float("beta", 1.0, 16.0, log=True)
        lr = t.suggest_float("lr", 1e-4, 1e-3)
        ost.tell(t, [0.05 * beta + rng.normal(0, 0.01), 50.0 + 1e3 * lr])
    del ost
    study = _study(tmp_path, "optuna.db")
    data = importance_data(study)
    assert set(data["source"]) == {"optuna.db"}
    mig = data[data["target"] == "mig"].set_index("param")["importance"]
    recon = data[data["target"] == "recon"].set_index("param")["importance"]
    assert mig["beta"] > mig["lr"] and recon["lr"] > recon["beta"]


def test_optuna_objectives_named_from_the_spec(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ost = optuna.create_study(storage=storage, study_name="s", directions=["minimize", "maximize"])
    for i in range(6):
        t = ost.ask()
        ost.tell(t, [t.suggest_float("beta", 1.0, 16.0) * 2, float(i)])
    study = _study(tmp_path, "optuna.db")
    study.spec = {"search": {"mode": "optuna", "objectives": {"recon": "min", "mig": "max"}}}
    data = importance_data(study)
    assert list(dict.fromkeys(data["target"])) == ["recon", "mig"]
