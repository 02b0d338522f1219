"""The trade-off frontier: reconstruction (nats, lower is better) against a disentanglement
metric (higher is better), seeds aggregated per configuration; grid heatmaps.

A configuration is a trial's config minus its seed. The Pareto front is computed on the
configurations' means: a configuration is on it when no other has a lower-or-equal mean
reconstruction and a higher-or-equal mean metric, one of them strictly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.contract import (
    CONFIG_PREFIX,
    DIRECTIONS,
    FINISHED,
    MEAN_IMAGE_RECON,
    config_col,
    format_value,
)

SEED = config_col("seed")
COLOR_PARAMS = ("c_max", "gamma", "beta")  # colour choices, in order of preference


def varied_params(trials: pd.DataFrame) -> list[str]:
    """Config keys (without ``config/``) that differ between trials, seed excluded."""
    cols = [c for c in trials.columns if c.startswith(CONFIG_PREFIX) and c != SEED]
    return [c.removeprefix(CONFIG_PREFIX) for c in cols if trials[c].astype(str).nunique() > 1]


def pareto_mask(x: np.ndarray, y: np.ndarray, x_dir: str = "min", y_dir: str = "max") -> np.ndarray:
    """Boolean mask of the non-dominated points; NaN points are never on the front."""
    xs = (1.0 if x_dir == "min" else -1.0) * np.asarray(x, float)  # to minimise
    ys = (1.0 if y_dir == "max" else -1.0) * np.asarray(y, float)  # to maximise
    ok = np.isfinite(xs) & np.isfinite(ys)
    mask = np.zeros(len(xs), bool)
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((-ys[idx], xs[idx]))]  # by x ascending, then y descending
    best_y, best_x = -np.inf, np.nan
    for i in order:  # a sweep: on the front iff it beats every point with smaller x
        if ys[i] > best_y or (ys[i] == best_y and xs[i] == best_x):
            mask[i] = True
            best_y, best_x = ys[i], xs[i]
    return mask


def aggregate_seeds(
    trials: pd.DataFrame, columns: list[str], statuses: tuple[str, ...] | None = FINISHED
) -> pd.DataFrame:
    """One row per configuration: the varied params, ``n`` (trials), ``trial_ids``,
    ``label`` ("c_max=25, gamma=1000") and ``<col>_mean`` / ``<col>_sd`` (sample sd, ddof=1:
    NaN for a single seed) of each column over the trials with a finite value."""
    if statuses is not None:
        trials = trials[trials["status"].isin(statuses)]
    trials = trials.dropna(subset=[c for c in columns if c in trials])
    params = varied_params(trials) if len(trials) else []
    keys = [c for c in trials.columns if c.startswith(CONFIG_PREFIX) and c != SEED]
    key = trials[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", trials.index)
    grouped = trials.groupby(key, sort=False)
    out = pd.DataFrame({"n": grouped.size()})
    for p in params:
        out[config_col(p)] = grouped[config_col(p)].first()
    out["trial_ids"] = grouped["trial_id"].agg(lambda s: " ".join(s))
    for c in columns:
        out[f"{c}_mean"] = grouped[c].mean()
        out[f"{c}_sd"] = grouped[c].std(ddof=1)
    out["label"] = (
        [
            ", ".join(f"{p}={format_value(r[config_col(p)])}" for p in params)
            for _, r in out.iterrows()
        ]
        if params
        else "all trials"
    )
    return out.reset_index(drop=True)


@dataclass
class FrontierData:
    metric: str
    x: str  # "recon"
    color: str | None  # config key the configurations are coloured by
    trials: pd.DataFrame  # trial_id, label, x, metric (one row per finished trial)
    configs: pd.DataFrame  # aggregate_seeds(...) plus on_front
    front: pd.DataFrame  # the configurations on the front, by x ascending


def frontier_data(
    trials: pd.DataFrame,
    metric: str = "mig",
    *,
    x: str = "recon",
    color: str | None = "auto",
    statuses: tuple[str, ...] | None = FINISHED,
) -> FrontierData:
    """Points, seed aggregates and Pareto front of ``x`` (min) against ``metric`` (max)."""
    if metric not in trials:
        raise KeyError(f"metric {metric!r} was not reported; reported: {_numeric(trials)}")
    configs = aggregate_seeds(trials, [x, metric], statuses)
    configs["on_front"] = pareto_mask(
        configs[f"{x}_mean"].to_numpy(),
        configs[f"{metric}_mean"].to_numpy(),
        DIRECTIONS.get(x, "min"),
        DIRECTIONS.get(metric, "max"),
    )
    front = configs[configs["on_front"]].sort_values(f"{x}_mean", ignore_index=True)
    if color == "auto":
        color = pick_color(trials)
    if color is not None and config_col(color) not in configs:
        color = None  # constant across the study: nothing to colour by
    done = trials if statuses is None else trials[trials["status"].isin(statuses)]
    done = done.dropna(subset=[x, metric])
    per_trial = done[["trial_id", x, metric]].reset_index(drop=True)
    return FrontierData(metric, x, color, per_trial, configs, front)


def pick_color(trials: pd.DataFrame) -> str | None:
    """beta for beta-objective studies; else the first varied of c_max, gamma, beta."""
    varied = varied_params(trials)
    objective = trials.get(config_col("objective"))
    if objective is not None and set(objective.dropna()) == {"beta"} and "beta" in varied:
        return "beta"
    return next((p for p in COLOR_PARAMS if p in varied), None)


def plot_frontier(data: FrontierData) -> go.Figure:
    x, m, c = data.x, data.metric, data.configs
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=data.trials[x].to_numpy(),
            y=data.trials[m].to_numpy(),
            mode="markers",
            name="trials",
            marker={"size": 4, "color": "rgba(120,120,120,0.35)"},
            text=data.trials["trial_id"].to_numpy(),
            hovertemplate="%{text}<br>" + x + "=%{x:.4g}<br>" + m + "=%{y:.4g}<extra></extra>",
        )
    )
    marker: dict = {"size": 9, "line": {"width": 0.5, "color": "black"}}
    if data.color is not None:
        marker.update(color=pd.to_numeric(c[config_col(data.color)], errors="coerce").to_numpy())
        marker.update(colorscale="Viridis", colorbar={"title": {"text": data.color}})
    fig.add_trace(
        go.Scatter(
            x=c[f"{x}_mean"].to_numpy(),
            y=c[f"{m}_mean"].to_numpy(),
            # an explicit colour: error bars default to the marker's, which is an array
            # here (plotly.js: "Invalid color specifier")
            error_x={"array": c[f"{x}_sd"].fillna(0).to_numpy(), "thickness": 1, "color": "#444"},
            error_y={"array": c[f"{m}_sd"].fillna(0).to_numpy(), "thickness": 1, "color": "#444"},
            mode="markers",
            name="configurations (mean ± sd)",
            marker=marker,
            text=[
                f"{lab}<br>n={n} ({ids})"
                for lab, n, ids in zip(c["label"], c["n"], c["trial_ids"], strict=True)
            ],
            hovertemplate="%{text}<br>" + x + "=%{x:.4g}<br>" + m + "=%{y:.4g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=data.front[f"{x}_mean"].to_numpy(),
            y=data.front[f"{m}_mean"].to_numpy(),
            mode="lines",
            name="Pareto front",
            line={"color": "crimson", "width": 2},
            hoverinfo="skip",
        )
    )
    if x == "recon":  # what predicting the mean image costs: a model right of it learned nothing
        fig.add_vline(
            x=MEAN_IMAGE_RECON,
            line_dash="dash",
            line_color="grey",
            annotation_text=f"mean image {MEAN_IMAGE_RECON:.1f}",
            annotation_position="top left",
        )
    fig.update_layout(
        title=f"Frontier: reconstruction vs {m}",
        xaxis_title="reconstruction (nats, lower is better)" if x == "recon" else x,
        yaxis_title=f"{m} (higher is better)",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def grid_params(trials: pd.DataFrame, max_values: int = 20) -> list[str]:
    """Varied numeric hyperparameters with few values (a grid), preferred ones first."""
    prefer = ["beta", "gamma", "c_max", "c_steps", "lr", "latent_dim", "batch_size"]
    out = []
    for p in varied_params(trials):
        values = pd.to_numeric(trials[config_col(p)], errors="coerce")
        if values.notna().all() and values.nunique() <= max_values:
            out.append(p)
    return sorted(out, key=lambda p: (prefer.index(p) if p in prefer else len(prefer), p))


def grid_data(
    trials: pd.DataFrame,
    x: str,
    y: str,
    metrics: list[str],
    statuses: tuple[str, ...] | None = FINISHED,
) -> pd.DataFrame:
    """Long frame (x, y, metric, mean, sd, n): each metric's mean over seeds (and over any
    other varied hyperparameter) in each cell of the (x, y) grid."""
    if statuses is not None:
        trials = trials[trials["status"].isin(statuses)]
    rows = []
    for m in [m for m in metrics if m in trials]:
        g = trials.dropna(subset=[m]).groupby([config_col(x), config_col(y)])[m]
        agg = g.agg(["mean", "std", "size"]).reset_index()
        agg.columns = [x, y, "mean", "sd", "n"]
        rows.append(agg.assign(metric=m))
    if not rows:
        return pd.DataFrame(columns=[x, y, "metric", "mean", "sd", "n"])
    out = pd.concat(rows, ignore_index=True)
    return out[[x, y, "metric", "mean", "sd", "n"]]


def plot_grid_heatmaps(data: pd.DataFrame, x: str, y: str, cols: int = 3) -> go.Figure:
    metrics = list(dict.fromkeys(data["metric"]))
    rows = max(1, -(-len(metrics) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=metrics, horizontal_spacing=0.08)
    for k, m in enumerate(metrics):
        piv = data[data["metric"] == m].pivot(index=y, columns=x, values="mean")
        z = piv.to_numpy(np.float64)
        # values on small grids; a cell whose metric is undefined (NaN) reads n/a, not blank
        text = np.where(np.isnan(z), "n/a", np.vectorize(lambda v: f"{v:.3g}")(z))
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[format_value(v) for v in piv.columns],
                y=[format_value(v) for v in piv.index],
                colorscale="Viridis" if DIRECTIONS.get(m, "max") == "max" else "Viridis_r",
                showscale=False,
                text=text,
                texttemplate="%{text}" if piv.size <= 150 else None,
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{m}=%{{z:.4g}}<extra></extra>",
            ),
            row=k // cols + 1,
            col=k % cols + 1,
        )
    fig.update_xaxes(type="category", title_text=x)
    fig.update_yaxes(type="category", title_text=y)
    fig.update_layout(title=f"Grid over {x} x {y} (mean over seeds)", height=300 * rows + 80)
    return fig


def _numeric(trials: pd.DataFrame) -> list[str]:
    return [
        c for c in trials.columns if not c.startswith(CONFIG_PREFIX) and trials[c].dtype.kind == "f"
    ]
