"""More views: training curves, parallel coordinates, hyperparameter importance."""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.contract import (
    DIRECTIONS,
    ERROR,
    FINISHED,
    MEAN_IMAGE_RECON,
    RUNNING,
    TERMINATED,
    config_col,
)
from analysis.frontier import varied_params
from analysis.load import Study

STATUS_COLORS = {
    TERMINATED: "rgba(31,119,180,0.35)",
    ERROR: "rgba(214,39,40,0.8)",
    RUNNING: "rgba(255,127,14,0.8)",
}


def training_curves_data(
    study: Study,
    columns: tuple[str, ...] = ("recon", "kl", "loss"),
    max_points: int = 100,
    trial_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Long frame (trial_id, status, step, column, value), at most ``max_points`` reports
    per trial: every k-th report and the last (enough to see a curve; keeps the report small)."""
    c = study.curves
    if trial_ids is not None:
        c = c[c["trial_id"].isin(trial_ids)]
    columns = tuple(col for col in columns if col in c)
    pos = c.groupby("trial_id", sort=False).cumcount().to_numpy()
    count = c.groupby("trial_id", sort=False)["step"].transform("size").to_numpy()
    every = np.ceil(count / max_points).astype(int)
    c = c[(pos % every == 0) | (pos == count - 1)]
    long = c.melt(id_vars=["trial_id", "step"], value_vars=list(columns), var_name="column")
    status = study.trials.set_index("trial_id")["status"]
    long.insert(1, "status", long["trial_id"].map(status).to_numpy())
    return long.reset_index(drop=True)  # melt keeps column blocks, trial and step order


def plot_training_curves(data: pd.DataFrame) -> go.Figure:
    """One panel per column; one line trace per status (trials separated by gaps) and a
    marker at each trial's last report that names the trial on hover."""
    columns = list(dict.fromkeys(data["column"]))
    fig = make_subplots(rows=1, cols=max(1, len(columns)), subplot_titles=columns)
    for k, col in enumerate(columns):
        d = data[data["column"] == col]
        for status, g in d.groupby("status", sort=True):
            color = STATUS_COLORS.get(status, "rgba(127,127,127,0.6)")
            new = np.r_[True, g["trial_id"].to_numpy()[1:] != g["trial_id"].to_numpy()[:-1]]
            cut = np.flatnonzero(new)[1:]  # a NaN before each new trial breaks the line
            # float32: half the bytes in the page, and plenty for a curve drawn in pixels
            x = np.insert(g["step"].to_numpy(np.float32), cut, np.nan)
            y = np.insert(g["value"].to_numpy(np.float32), cut, np.nan)
            show = k == 0
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    line={"color": color, "width": 1},
                    name=status,
                    legendgroup=status,
                    showlegend=show,
                    hoverinfo="skip",
                ),
                row=1,
                col=k + 1,
            )
            last = g.drop_duplicates("trial_id", keep="last")
            fig.add_trace(
                go.Scatter(
                    x=last["step"].to_numpy(),
                    y=last["value"].to_numpy(),
                    mode="markers",
                    marker={"color": color, "size": 4},
                    legendgroup=status,
                    showlegend=False,
                    text=last["trial_id"].to_numpy(),
                    name=status,
                    hovertemplate="%{text}<br>step=%{x}<br>" + col + "=%{y:.4g}<extra></extra>",
                ),
                row=1,
                col=k + 1,
            )
    if "recon" in columns:  # predicting the mean image: the level of a model that learned nothing
        fig.add_hline(
            y=MEAN_IMAGE_RECON,
            line_dash="dash",
            line_color="grey",
            annotation_text="mean image",
            row=1,
            col=columns.index("recon") + 1,
        )
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="Training curves", height=380)
    return fig


def parallel_coords_data(
    trials: pd.DataFrame, metric: str = "mig", statuses: tuple[str, ...] | None = FINISHED
) -> pd.DataFrame:
    """trial_id, the varied hyperparameters (``config/`` dropped) and recon, metric."""
    if statuses is not None:
        trials = trials[trials["status"].isin(statuses)]
    params = varied_params(trials)
    cols = [c for c in ("recon", metric) if c in trials]
    out = trials[["trial_id", *[config_col(p) for p in params], *cols]].dropna(subset=cols)
    return out.rename(columns={config_col(p): p for p in params}).reset_index(drop=True)


def plot_parallel_coords(data: pd.DataFrame, metric: str = "mig") -> go.Figure:
    dims = []
    for col in [c for c in data.columns if c != "trial_id"]:
        values = pd.to_numeric(data[col], errors="coerce")
        if values.notna().all():
            dims.append({"label": col, "values": values.to_numpy(float)})
        else:  # categorical: integer codes with the category names as ticks
            cats = sorted(data[col].astype(str).unique())
            codes = data[col].astype(str).map({c: i for i, c in enumerate(cats)}).to_numpy()
            dims.append(
                {
                    "label": col,
                    "values": codes,
                    "tickvals": list(range(len(cats))),
                    "ticktext": cats,
                }
            )
    line = {}
    if metric in data:
        line = {
            "color": data[metric].to_numpy(float),
            "colorscale": "Viridis",
            "showscale": True,
            "colorbar": {"title": {"text": metric}},
        }
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(title=f"Hyperparameters against reconstruction and {metric}", height=420)
    return fig


def importance_data(
    study: Study, targets: tuple[str, ...] = ("mig", "recon"), n_trees: int = 16
) -> pd.DataFrame:
    """Hyperparameter importance (target, param, importance, source) from Optuna's own
    ``get_param_importances`` with its fANOVA evaluator (seed 0; ``n_trees`` forests, 16 by
    default: a ranking of a few hyperparameters is stable with that, at a tenth of the
    time of 64): on the study's ``optuna.db`` when there is one, else on a temporary
    in-memory Optuna study built from the finished trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study.optuna_db is not None and study.fs is not None:
        rows = _importance_from_db(study, n_trees)
        if rows:
            return pd.DataFrame(rows, columns=["target", "param", "importance", "source"])
    rows = []
    for target in [t for t in targets if t in study.trials]:
        tmp = _optuna_study_from_trials(study.trials, target)
        if tmp is None:
            continue
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=0)
        for p, v in optuna.importance.get_param_importances(tmp, evaluator=evaluator).items():
            rows.append((target, p, float(v), "trials"))
    return pd.DataFrame(rows, columns=["target", "param", "importance", "source"])


def _importance_from_db(study: Study, n_trees: int) -> list[tuple]:
    import optuna

    with tempfile.TemporaryDirectory() as tmp:  # a copy: never lock or migrate the original
        path = os.path.join(tmp, "optuna.db")
        src = study.fs.local_path(study.optuna_db)
        if src is not None:
            shutil.copyfile(src, path)
        else:
            with open(path, "wb") as f:
                f.write(study.fs.read_bytes(study.optuna_db))
        storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
        rows = []
        for summary in optuna.get_all_study_summaries(storage):
            ost = optuna.load_study(study_name=summary.study_name, storage=storage)
            done = [t for t in ost.trials if t.state == optuna.trial.TrialState.COMPLETE]
            if len(done) < 2:
                continue
            names = ost.metric_names or _spec_objectives(study, len(ost.directions))
            for i, name in enumerate(names):
                evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=0)
                imp = optuna.importance.get_param_importances(
                    ost, evaluator=evaluator, target=lambda t, i=i: t.values[i]
                )
                rows += [(name, p, float(v), "optuna.db") for p, v in imp.items()]
        storage.remove_session()
        return rows


def _spec_objectives(study: Study, n: int) -> list[str]:
    """Objective names from study.yaml's ``search.objectives`` ({recon: min, mig: max}),
    in order, when the runner did not name them in Optuna's storage."""
    search = study.spec.get("search")
    objectives = search.get("objectives") if isinstance(search, dict) else None
    names = list(objectives) if isinstance(objectives, dict) else []
    return names if len(names) == n else [f"objective {i}" for i in range(n)]


def _optuna_study_from_trials(trials: pd.DataFrame, target: str):
    """An in-memory Optuna study holding the finished trials' varied params and target."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    done = trials[trials["status"].isin(FINISHED)].dropna(subset=[target])
    params = varied_params(done)
    if len(done) < 2 or not params:
        return None
    dists = {}
    for p in params:
        values = done[config_col(p)]
        num = pd.to_numeric(values, errors="coerce")
        if num.notna().all() and values.map(type).isin([int, float, np.int64, np.float64]).all():
            lo, hi = float(num.min()), float(num.max())
            log = lo > 0 and hi / lo >= 100  # spans two decades: log scale
            ints = (num == num.round()).all() and values.map(type).isin([int, np.int64]).all()
            dists[p] = (
                IntDistribution(int(lo), int(hi), log=log)
                if ints
                else FloatDistribution(lo, hi, log=log)
            )
        else:
            dists[p] = CategoricalDistribution(sorted(values.astype(str).unique()))
    direction = "minimize" if DIRECTIONS.get(target, "max") == "min" else "maximize"
    study = optuna.create_study(direction=direction)
    made = []
    for _, row in done.iterrows():
        value = float(row[target])
        if not math.isfinite(value):
            continue
        params_row = {
            p: (
                str(row[config_col(p)])
                if isinstance(d, CategoricalDistribution)
                else int(row[config_col(p)])
                if isinstance(d, IntDistribution)
                else float(row[config_col(p)])
            )
            for p, d in dists.items()
        }
        made.append(optuna.trial.create_trial(params=params_row, distributions=dists, value=value))
    study.add_trials(made)
    return study if len(made) >= 2 else None


def plot_importance(data: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for target, g in data.groupby("target", sort=False):
        g = g.sort_values("importance")
        fig.add_trace(
            go.Bar(
                x=g["importance"].to_numpy(),
                y=g["param"].to_numpy(),
                orientation="h",
                name=str(target),
            )
        )
    source = ", ".join(sorted(set(data["source"]))) if len(data) else "none"
    fig.update_layout(
        title=f"Hyperparameter importance (Optuna fANOVA; from {source})",
        barmode="group",
        height=160 + 40 * max(1, data["param"].nunique()),
        xaxis_title="importance",
    )
    return fig
