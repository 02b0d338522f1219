"""Activation order: in which order the latents switch on as the capacity C grows.

Rules (documented thresholds, both parameters):

- A latent *switches on* at the first report where its KL exceeds ``KL_THRESHOLD``
  (0.5 nats); its switch-on C is that report's C (and step).
- A latent *codes* the factor with the largest normalized MI in the trial's last
  evaluation, when that MI exceeds ``MI_THRESHOLD`` (0.1); otherwise it codes none.
- A trial's *order* lists the factors by the switch-on of their first latent (ties: the
  latent with more final KL first). Latents coding no factor are left out of it.
- It *follows the paper* (Burgess et al. 2018) when its factors, mapped to the groups
  position (posX, posY) < scale < orientation and shape, never go back to an earlier group
  and start with position; a trial with fewer than two groups switched on is undetermined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.contract import FACTOR_NAMES
from analysis.load import Study
from analysis.rows import kl_columns

KL_THRESHOLD = 0.5  # nats
MI_THRESHOLD = 0.1  # normalized mutual information
PAPER_GROUPS = {"posX": 0, "posY": 0, "scale": 1, "orientation": 2, "shape": 2}
FACTOR_COLORS = {
    "posX": "#1f77b4",
    "posY": "#17becf",
    "scale": "#2ca02c",
    "orientation": "#ff7f0e",
    "shape": "#d62728",
}


def latent_table(
    curves: pd.DataFrame,
    mi: pd.DataFrame,
    kl_threshold: float = KL_THRESHOLD,
    mi_threshold: float = MI_THRESHOLD,
) -> pd.DataFrame:
    """One row per (trial_id, latent): factor (or None), mi, final_kl, step_on, C_on
    (NaN when it never switched on), from a study's ``curves`` and ``mi`` frames (rows
    sorted by trial, then step). Vectorized over all trials at once."""
    cols = kl_columns(curves)
    if curves.empty or not cols:
        return pd.DataFrame(
            columns=["trial_id", "latent", "factor", "mi", "final_kl", "step_on", "C_on"]
        )
    kl = curves[cols].to_numpy()  # (N, d), rows sorted by trial then step
    ids = curves["trial_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])  # first row of each trial
    ends = np.r_[starts[1:], len(ids)] - 1
    n = len(ids)
    rows = np.where(kl > kl_threshold, np.arange(n)[:, None], n)  # (N, d)
    first = np.minimum.reduceat(rows, starts, axis=0)  # (trials, d) row of switch-on, n if never
    on = first < n
    safe = np.where(on, first, 0)
    steps, caps = curves["step"].to_numpy(), curves["C"].to_numpy() if "C" in curves else None
    d = len(cols)
    out = pd.DataFrame(
        {
            "trial_id": np.repeat(ids[starts], d),
            "latent": np.tile([int(c[4:]) for c in cols], len(starts)),
            "final_kl": kl[ends].ravel(),
            "step_on": np.where(on, steps[safe], np.nan).ravel(),
            "C_on": (
                np.where(on, caps[safe], np.nan) if caps is not None else np.full(on.shape, np.nan)
            ).ravel(),
        }
    )
    labels = latent_factors(mi, mi_threshold)
    out = out.merge(labels, on=["trial_id", "latent"], how="left")
    out["factor"] = out["factor"].astype(object).where(out["factor"].notna(), None)
    return out[["trial_id", "latent", "factor", "mi", "final_kl", "step_on", "C_on"]]


def latent_factors(mi: pd.DataFrame, threshold: float = MI_THRESHOLD) -> pd.DataFrame:
    """From the last evaluation of each trial: (trial_id, latent, factor, mi) where factor
    has the largest MI with the latent, or None when that MI is not above ``threshold``."""
    if mi.empty:
        return pd.DataFrame(columns=["trial_id", "latent", "factor", "mi"])
    last = mi[mi["step"] == mi.groupby("trial_id")["step"].transform("max")]
    best = last.loc[last.groupby(["trial_id", "latent"])["mi"].idxmax()]
    best = best[["trial_id", "latent", "factor", "mi"]].reset_index(drop=True)
    best["factor"] = best["factor"].astype(object).where(best["mi"] > threshold, None)
    return best


def factor_order(latents: pd.DataFrame) -> list[str]:
    """Factors of one trial's latent table by switch-on (ties: more final KL first)."""
    on = latents[latents["factor"].notna() & latents["step_on"].notna()]
    on = on.sort_values(["step_on", "final_kl"], ascending=[True, False])
    return list(dict.fromkeys(on["factor"]))


def follows_paper(order: list[str]) -> bool | None:
    """Position first, then scale, then orientation and shape (None: < 2 groups on)."""
    groups = [PAPER_GROUPS[f] for f in order if f in PAPER_GROUPS]
    if len(set(groups)) < 2:
        return None
    return groups[0] == 0 and groups == sorted(groups)


@dataclass
class ActivationData:
    trial_id: str
    x: str  # "C" or "step": what the curves are plotted against first
    curves: pd.DataFrame  # step, C, latent, kl (long, this trial only)
    latents: pd.DataFrame  # latent, factor, mi, final_kl, step_on, C_on; by switch-on
    order: list[str]
    kl_threshold: float


def activation_data(
    study: Study,
    trial_id: str,
    *,
    kl_threshold: float = KL_THRESHOLD,
    mi_threshold: float = MI_THRESHOLD,
    max_points: int | None = 400,
) -> ActivationData:
    """One trial's KL histories, latent labels, switch-on points and factor order."""
    curve = study.curves[study.curves["trial_id"] == trial_id]
    mi = study.mi[study.mi["trial_id"] == trial_id]
    latents = latent_table(curve, mi, kl_threshold, mi_threshold).drop(columns="trial_id")
    latents = latents.sort_values(
        ["step_on", "final_kl"], ascending=[True, False], ignore_index=True
    )
    if max_points and len(curve) > max_points:  # keep every k-th report and the last one
        every = -(-len(curve) // max_points)
        curve = curve.iloc[np.unique(np.r_[np.arange(0, len(curve), every), len(curve) - 1])]
    long = _long(curve)
    # against C when C moves during the trial (not for the beta objective or a constant C)
    x = "C" if "C" in long and long["C"].nunique() > 1 else "step"
    return ActivationData(
        trial_id, x, long.drop(columns="trial_id"), latents, factor_order(latents), kl_threshold
    )


def _long(curve: pd.DataFrame) -> pd.DataFrame:
    cols = kl_columns(curve)
    long = curve[["trial_id", "step", "C", *cols]].melt(
        id_vars=["trial_id", "step", "C"], value_vars=cols, var_name="latent", value_name="kl"
    )
    long["latent"] = long["latent"].str.slice(4).astype(int)
    return long.sort_values(["latent", "step"], ignore_index=True)


def plot_activation(data: ActivationData) -> go.Figure:
    axes = [data.x, "step"] if data.x == "C" else ["step"]
    fig = make_subplots(
        rows=1, cols=len(axes), subplot_titles=[f"KL per latent vs {a}" for a in axes]
    )
    for _, lat in data.latents.iterrows():
        z = int(lat["latent"])
        factor = lat["factor"]
        color = FACTOR_COLORS.get(factor, "#999999")
        on = f"on at C={lat['C_on']:.3g}" if pd.notna(lat["C_on"]) else "never on"
        name = f"z{z} · {factor or '—'} ({on})"
        cur = data.curves[data.curves["latent"] == z]
        for k, a in enumerate(axes):
            fig.add_trace(
                go.Scatter(
                    x=cur[a].to_numpy(),
                    y=cur["kl"].to_numpy(),
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=k == 0,
                    line={"color": color, "width": 2 if factor else 1},
                    hovertemplate=f"z{z}<br>{a}=%{{x:.4g}}<br>KL=%{{y:.3g}} nats<extra></extra>",
                ),
                row=1,
                col=k + 1,
            )
    on = data.latents[data.latents["step_on"].notna()]
    for k, a in enumerate(axes):  # a dot where each latent crosses the threshold
        fig.add_trace(
            go.Scatter(
                x=on["C_on" if a == "C" else "step_on"].to_numpy(),
                y=np.full(len(on), data.kl_threshold),
                mode="markers",
                marker={
                    "color": [FACTOR_COLORS.get(f, "#999999") for f in on["factor"]],
                    "size": 9,
                },
                text=[
                    f"z{z} · {f or '—'}" for z, f in zip(on["latent"], on["factor"], strict=True)
                ],
                hovertemplate="%{text} switches on at " + a + "=%{x:.4g}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=k + 1,
        )
    fig.add_hline(y=data.kl_threshold, line_dash="dot", line_color="grey")
    fig.update_yaxes(title_text="KL (nats)", col=1)
    fig.update_xaxes(title_text="C (nats)" if data.x == "C" else "step", col=1)
    order = " > ".join(data.order) or "none"
    fig.update_layout(title=f"Activation, trial {data.trial_id}: {order}", height=420)
    return fig


@dataclass
class ActivationSummary:
    switch_on: pd.DataFrame  # trial_id, factor, C_on, step_on, rank (per trial, per factor)
    orders: pd.DataFrame  # trial_id, order ("posX > posY > scale"), follows_paper
    share: float  # of determined trials that follow the paper's order (NaN if none)
    n_determined: int
    n_trials: int


def activation_summary_data(
    study: Study,
    *,
    kl_threshold: float = KL_THRESHOLD,
    mi_threshold: float = MI_THRESHOLD,
    statuses: tuple[str, ...] | None = ("TERMINATED",),
) -> ActivationSummary:
    """Across trials: each factor's switch-on C per trial and the share of trials whose
    order follows position -> scale -> orientation/shape."""
    table = latent_table(study.curves, study.mi, kl_threshold, mi_threshold)
    if statuses is not None:
        keep = study.trials.loc[study.trials["status"].isin(statuses), "trial_id"]
        table = table[table["trial_id"].isin(keep)]
    on = table[table["factor"].notna() & table["step_on"].notna()]
    on = on.sort_values(["trial_id", "step_on", "final_kl"], ascending=[True, True, False])
    first = on.drop_duplicates(["trial_id", "factor"])  # a factor's first latent to open
    first = first.assign(rank=first.groupby("trial_id").cumcount() + 1)
    switch_on = first[["trial_id", "factor", "C_on", "step_on", "rank"]].reset_index(drop=True)
    ids = list(dict.fromkeys(table["trial_id"]))
    by_trial = {t: list(g["factor"]) for t, g in first.groupby("trial_id", sort=False)}
    orders = [by_trial.get(t, []) for t in ids]
    paper = [follows_paper(o) for o in orders]
    frame = pd.DataFrame(
        {"trial_id": ids, "order": [" > ".join(o) for o in orders], "follows_paper": paper}
    )
    determined = [p for p in paper if p is not None]
    share = float(np.mean(determined)) if determined else float("nan")
    return ActivationSummary(switch_on, frame, share, len(determined), len(ids))


def plot_activation_summary(data: ActivationSummary, top: int = 8) -> go.Figure:
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        subplot_titles=["switch-on C per factor", "most common orders"],
    )
    for f in sorted(FACTOR_NAMES, key=lambda f: PAPER_GROUPS.get(f, 9)):  # the paper's order
        c = data.switch_on.loc[data.switch_on["factor"] == f, "C_on"].to_numpy()
        fig.add_trace(
            go.Box(y=c, name=f, boxpoints="all", jitter=0.4, marker_color=FACTOR_COLORS[f]), 1, 1
        )
    counts = data.orders["order"].replace("", "(none)").value_counts().head(top)[::-1]
    fig.add_trace(
        go.Bar(x=counts.to_numpy(), y=counts.index.to_numpy(), orientation="h", showlegend=False),
        1,
        2,
    )
    fig.update_yaxes(title_text="C at switch-on (nats)", col=1)
    fig.update_yaxes(automargin=True, col=2)
    pct = "n/a" if np.isnan(data.share) else f"{100 * data.share:.0f}%"
    fig.update_layout(
        title=(
            f"Activation order over {data.n_trials} trials: {pct} of {data.n_determined} "
            "determined follow position > scale > orientation, shape"
        ),
        showlegend=False,
        height=440,
    )
    return fig
