"""Activation order figures: which latents and factors switch on as the capacity C grows.

The rule (when a latent is active, what it codes, when a factor switches on, how trials
are counted) lives in ``analysis.switch_on``; this module only gathers its tables for
one trial or a whole study and draws them. Trials are pooled per configuration (the
config without its seed, ``configurations``): seeds are replicates, configurations not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis import switch_on as so
from analysis.contract import (
    CONFIG_PREFIX,
    FACTOR_NAMES,
    FINISHED,
    TERMINATED,
    config_col,
    exact_info_key,
    factor_info_key,
    format_value,
    info_key,
    parse_kl_key,
)
from analysis.frontier import SEED, varied_params
from analysis.load import Study
from analysis.rows import kl_columns

# one colour per latent, from palettes that do not reuse the factors' colours below
LATENT_COLORS = qualitative.Dark2 + qualitative.Set1 + qualitative.Pastel1
FACTOR_COLORS = {
    "posX": "#1f77b4",
    "posY": "#17becf",
    "scale": "#2ca02c",
    "orientation": "#ff7f0e",
    "shape": "#d62728",
}


def trial_title(study: Study, trial_id: str) -> str:
    """``trial 3f5e2_00001 · gamma=10, c_max=20, seed=1``: the varied hyperparameters."""
    row = study.trials.loc[study.trials["trial_id"] == trial_id]
    params = [*varied_params(study.trials), "seed"]
    parts = []
    for p in dict.fromkeys(params):
        col = config_col(p)
        if not row.empty and col in row:
            parts.append(f"{p}={format_value(row[col].iloc[0])}")
    return f"trial {trial_id}" + (f" · {', '.join(parts)}" if parts else "")


@dataclass
class ActivationData:
    trial_id: str
    title: str
    x: str  # "C" when C moves during the trial (so it can be drawn against C), else "step"
    latent_curves: pd.DataFrame  # step, C, latent, info, kl (long)
    factor_curves: pd.DataFrame  # step, C, factor, info, threshold (long)
    latents: pd.DataFrame  # switch_on.latent_switch_on rows of this trial
    factors: pd.DataFrame  # switch_on.factor_switch_on rows of this trial
    order: list[list[str]]
    active_nats: float
    factor_share: float
    # step, C, factor, exact: the evaluations' exact I(f; z) (image trials; else empty)
    exact: pd.DataFrame = field(default_factory=pd.DataFrame)


def activation_data(
    study: Study,
    trial_id: str,
    *,
    active_nats: float = so.ACTIVE_NATS,
    factor_share: float = so.FACTOR_SHARE,
    max_points: int | None = 400,
) -> ActivationData | None:
    """One trial's information histories, switch-on tables and factor order (None when
    its rows carry no information columns, as in studies from before they existed)."""
    curve = so.trial_curve(study.curves, trial_id)
    if not so.has_information(curve):
        return None
    latents = so.latent_switch_on(curve, active_nats)
    latents = latents.sort_values(
        ["step_on", "final_info"], ascending=[True, False], na_position="last", ignore_index=True
    )
    evals = study.evaluations
    mine = evals[evals["trial_id"] == trial_id] if len(evals) else evals
    reading = so.factor_reading(curve, mine)
    factors = so.factor_switch_on(reading.curves, factor_share, unread=reading.unread)
    exact = pd.DataFrame(columns=["step", "C", "factor", "exact"])
    exact_cols = [f for f in FACTOR_NAMES if exact_info_key(f) in mine]
    if exact_cols:
        at = mine[mine[exact_info_key(exact_cols[0])].notna()]
        c = at["C"] if "C" in at else pd.Series(np.nan, at.index)
        exact = pd.concat(
            [
                pd.DataFrame(
                    {"step": at["step"], "C": c, "factor": f, "exact": at[exact_info_key(f)]}
                )
                for f in exact_cols
            ],
            ignore_index=True,
        )
    if max_points and len(curve) > max_points:  # keep every k-th report and the last one
        every = -(-len(curve) // max_points)
        curve = curve.iloc[np.unique(np.r_[np.arange(0, len(curve), every), len(curve) - 1])]
    lats = so.latent_columns(curve)
    base = curve[["step", "C"]] if "C" in curve else curve[["step"]].assign(C=np.nan)
    kl = {parse_kl_key(c): c for c in kl_columns(curve)}
    latent_curves = pd.concat(
        [
            base.assign(
                latent=i,
                info=curve[info_key(i)].to_numpy(),
                kl=curve[kl[i]].to_numpy() if i in kl else np.nan,
            )
            for i in lats
        ],
        ignore_index=True,
    )
    names = [f for f in FACTOR_NAMES if factor_info_key(f) in curve]
    factor_curves = pd.concat(
        [
            base.assign(
                factor=f,
                info=curve[factor_info_key(f)].to_numpy(),
                threshold=factor_share * so.ENTROPY[f],
            )
            for f in names
        ],
        ignore_index=True,
    )
    # C moves during the trial (not for the beta objective or a constant C)
    x = "C" if "C" in curve and curve["C"].nunique() > 1 else "step"
    return ActivationData(
        trial_id,
        trial_title(study, trial_id),
        x,
        latent_curves,
        factor_curves,
        latents,
        factors,
        so.trial_order(factors),
        active_nats,
        factor_share,
        exact,
    )


def latent_label(lat: pd.Series) -> str:
    """``z3 · posX · on at C=4.5`` / ``z3 · posY (opened on scale) · on at C=4`` /
    ``z3 · no single factor · on at step 700`` / ``z3 · inactive``
    (``switch_on.code_label``)."""
    z = f"z{int(lat['latent'])}"
    if not lat["active"]:
        return f"{z} · inactive"
    what = so.code_label(lat)
    on = lat["C_on"] if pd.notna(lat["C_on"]) else None
    when = f" · on at C={on:.3g}" if on is not None else f" · on at step {lat['step_on']:.0f}"
    return f"{z} · {what}{when}"


def plot_activation(data: ActivationData, against: str = "step") -> go.Figure:
    """Three panels: information per latent, KL per latent (the offsets that are not
    information show here), information per factor. Against the step by default, with a
    C axis on top when C moves (C is held after its ramp: against C that whole phase is
    one vertical line); ``against="C"`` draws against C itself (ValueError when C does
    not move in the trial)."""
    if against not in ("step", "C"):
        raise ValueError(f"against={against!r}: draw against 'step' or 'C'")
    if against == "C" and data.x != "C":
        raise ValueError(f"trial {data.trial_id}: C does not move, draw it against the step")
    x = against
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.06,
        subplot_titles=[
            "what each latent tells about x (nats)",
            "KL per latent (nats)",
            "what the code tells about each factor (nats)",
        ],
    )
    for _, lat in data.latents.iterrows():
        z = int(lat["latent"])
        color = LATENT_COLORS[z % len(LATENT_COLORS)]
        name = latent_label(lat)
        cur = data.latent_curves[data.latent_curves["latent"] == z]
        width = 2.5 if lat["active"] else 1
        dash = None if lat["active"] else "dot"
        for col, value in ((1, "info"), (2, "kl")):
            fig.add_trace(
                go.Scatter(
                    x=cur[x].to_numpy(),
                    y=cur[value].to_numpy(),
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line={"color": color, "width": width, "dash": dash},
                    hovertemplate=f"{name}<br>{x}=%{{x:.4g}}<br>{value}=%{{y:.3g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        if lat["active"]:
            at = lat["C_on"] if x == "C" else lat["step_on"]
            fig.add_trace(
                go.Scatter(
                    x=[at],
                    y=[data.active_nats],
                    mode="markers",
                    marker={"color": color, "size": 10, "line": {"width": 1, "color": "black"}},
                    showlegend=False,
                    legendgroup=name,
                    hovertemplate=f"{name}: switches on at {x}=%{{x:.4g}}<extra></extra>",
                ),
                row=1,
                col=1,
            )
    for f, cur in data.factor_curves.groupby("factor", sort=False):
        color = FACTOR_COLORS.get(str(f), "#777")
        fig.add_trace(
            go.Scatter(
                x=cur[x].to_numpy(),
                y=cur["info"].to_numpy(),
                mode="lines",
                name=f"I({f}; z)",
                legend="legend2",
                line={"color": color, "width": 2},
                hovertemplate=f"{f}<br>{x}=%{{x:.4g}}<br>%{{y:.3g}} nats<extra></extra>",
            ),
            row=1,
            col=3,
        )
        fig.add_trace(
            go.Scatter(
                x=[cur[x].min(), cur[x].max()],
                y=[cur["threshold"].iloc[0]] * 2,
                mode="lines",
                line={"color": color, "width": 1, "dash": "dot"},
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=3,
        )
    for f, cur in data.exact.groupby("factor", sort=False):
        fig.add_trace(
            go.Scatter(
                x=cur[x].to_numpy(),
                y=cur["exact"].to_numpy(),
                mode="markers",
                name=f"I({f}; z) exact",
                legend="legend2",
                marker={
                    "color": "rgba(0,0,0,0)",
                    "size": 9,
                    "line": {"width": 2, "color": FACTOR_COLORS.get(str(f), "#777")},
                },
                hovertemplate=(
                    f"{f}, exact over every grid image<br>{x}=%{{x:.4g}}<br>%{{y:.3g}} nats"
                    "<extra></extra>"
                ),
            ),
            row=1,
            col=3,
        )
    on = data.factors[data.factors["step_on"].notna() & data.factors["read"]]
    if len(on):
        fig.add_trace(
            go.Scatter(
                x=(on["C_on"] if x == "C" else on["step_on"]).to_numpy(),
                y=(on["entropy"] * data.factor_share).to_numpy(),
                mode="markers",
                marker={
                    "color": [FACTOR_COLORS.get(f, "#777") for f in on["factor"]],
                    "size": 10,
                    "symbol": "diamond",
                    "line": {"width": 1, "color": "black"},
                },
                text=list(on["factor"]),
                showlegend=False,
                hovertemplate="%{text} switches on at " + x + "=%{x:.4g}<extra></extra>",
            ),
            row=1,
            col=3,
        )
    fig.add_hline(y=data.active_nats, line_dash="dot", line_color="grey", row=1, col=1)
    fig.update_xaxes(title_text="C (nats)" if x == "C" else "step")
    if x == "step" and data.x == "C":
        _capacity_axes(fig, data.latent_curves)
    order = (so.format_order(data.order) or "no factor reached its threshold") + so.unread_note(
        data.factors
    )
    fig.update_layout(
        title={"text": f"{data.title} · factor order: {order}", "y": 0.98, "yanchor": "top"},
        height=560,
        legend={"font": {"size": 11}, "title": {"text": "latents"}, "x": 1.02, "y": 1},
        legend2={
            "font": {"size": 11},
            "orientation": "h",
            "x": 0.7,
            "xanchor": "center",
            "y": -0.22,
            "title": {"text": "factors"},
        },
        margin={"t": 140, "b": 110, "r": 230},
    )
    return fig


def _capacity_axes(fig: go.Figure, curves: pd.DataFrame, n: int = 6) -> None:
    """Over each panel's step axis, a top axis that reads C (window mean) at a few steps;
    the subplot titles move up above it."""
    for note in fig.layout.annotations:
        note.update(yshift=38)
    rows = curves.drop_duplicates("step").sort_values("step")
    lo, hi = float(rows["step"].min()), float(rows["step"].max())
    ticks = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, n).round().astype(int))]
    labels = [f"{c:.3g}" for c in ticks["C"]]
    keep = [i for i, lab in enumerate(labels) if i == 0 or lab != labels[i - 1]]  # C held
    ticks, labels = ticks.iloc[keep], [labels[i] for i in keep]
    for k in (1, 2, 3):
        suffix = "" if k == 1 else str(k)
        fig.update_layout(
            {
                f"xaxis{3 + k}": {
                    "overlaying": f"x{suffix}",
                    "anchor": f"y{suffix}",
                    "side": "top",
                    "range": [lo, hi],
                    "tickvals": ticks["step"].tolist(),
                    "ticktext": labels,
                    "title": {"text": "C (nats)", "font": {"size": 11}, "standoff": 2},
                    "showgrid": False,
                    "tickfont": {"size": 10, "color": "#555"},
                },
                f"xaxis{suffix}": {"range": [lo, hi]},
            }
        )
        fig.add_trace(  # an axis without a trace is not drawn: one invisible point
            go.Scatter(
                x=[lo],
                y=[0],
                xaxis=f"x{3 + k}",
                yaxis=f"y{suffix}",
                mode="markers",
                marker={"opacity": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )


@dataclass
class ActivationSummary:
    factors: pd.DataFrame  # switch_on.factor_switch_on rows of the counted trials
    orders: pd.DataFrame  # trial_id, configuration, order (default), "at <threshold>" ...
    pairwise: so.PairwiseOrder  # at the default threshold; table has a configuration column
    excluded: pd.DataFrame  # trial_id, status, reason: trials not counted
    factor_share: float = so.FACTOR_SHARE
    counted: list[str] = field(default_factory=list)
    # configuration, trials (count), trial_ids: the replicate groups of the counted trials
    configurations: pd.DataFrame = field(default_factory=pd.DataFrame)
    # switch_on.order_across_thresholds: configuration, threshold, PAIR_COLUMNS
    thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)
    # switch_on.order_verdicts: configuration, a, b, verdict, first, text
    verdicts: pd.DataFrame = field(default_factory=pd.DataFrame)
    # switch_on.bound_check of the counted trials: the held-out bound against the exact
    # value where evaluations carry it (image trials); empty otherwise
    bound_check: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the trials whose factor order is read off their exact values (switch_on.factor_reading)
    exact_read: frozenset[str] = frozenset()

    @property
    def default(self) -> str:
        """The default threshold's label (``25%``)."""
        return so.Threshold("share", self.factor_share).label


def configurations(trials: pd.DataFrame) -> pd.Series:
    """Each trial's configuration, by trial_id: its ``config/...`` values without the
    seed, described by the hyperparameters the study varied (``gamma=10, c_max=6``;
    ``all trials`` when none varies). Trials of one configuration are replicates."""
    keys = [c for c in trials.columns if c.startswith(CONFIG_PREFIX) and c != SEED]
    params = varied_params(trials)
    label = [
        ", ".join(f"{p}={format_value(r[config_col(p)])}" for p in params) or "all trials"
        for _, r in trials.iterrows()
    ]
    if not keys:
        label = ["all trials"] * len(trials)
    return pd.Series(label, index=trials["trial_id"].to_numpy(), dtype=object)


def activation_summary_data(
    study: Study, *, factor_share: float = so.FACTOR_SHARE
) -> ActivationSummary:
    """Across the finished trials: each factor's switch-on C, each trial's order (at the
    default threshold and at each of ``switch_on.THRESHOLDS``), and per configuration and
    pair of factor groups how many of the trials where both opened had one open first
    (exact interval, the null, the censored trials beside), at each threshold, and
    whether that order holds at all of them. Failed, stopped-early and unfinished
    trials are listed in ``excluded`` with the reason, never silently dropped."""
    t = study.trials
    complete = t["complete"].fillna(False).astype(bool) if "complete" in t else True
    ok = t["status"].isin(FINISHED) & complete
    reasons = np.where(
        t["status"].isin(FINISHED),
        "stopped early (did not reach its last step)",
        "status " + t["status"].astype(str),
    )
    excluded = pd.DataFrame({"trial_id": t["trial_id"], "status": t["status"], "reason": reasons})[
        ~ok.to_numpy()
    ]
    ids = list(t.loc[ok, "trial_id"])
    curves = study.curves[study.curves["trial_id"].isin(ids)]
    info_cols = [info_key(i) for i in so.latent_columns(curves)]
    told = curves[info_cols].notna().any(axis=1) if info_cols else pd.Series(False, curves.index)
    measured = set(curves.loc[told, "trial_id"])  # its own rows carry the information columns
    unmeasured = [i for i in ids if i not in measured]
    if unmeasured:
        extra = pd.DataFrame(
            {
                "trial_id": unmeasured,
                "status": TERMINATED,
                "reason": "no information columns in its rows",
            }
        )
        excluded = pd.concat([excluded, extra], ignore_index=True)
    ids = [i for i in ids if i in measured]
    recon = t.set_index("trial_id")["recon"] if "recon" in t else pd.Series(dtype=float)
    nothing = [i for i in ids if so.learned_nothing(float(recon.get(i, np.nan)))]
    if nothing:  # no order to read from a model that encodes nothing
        extra = pd.DataFrame(
            {
                "trial_id": nothing,
                "status": TERMINATED,
                "reason": "learned nothing (reconstruction at the mean image)",
            }
        )
        excluded = pd.concat([excluded, extra], ignore_index=True)
        ids = [i for i in ids if i not in nothing]
    counted = curves[curves["trial_id"].isin(ids)]
    config = configurations(t)
    groups = pd.DataFrame({"trial_id": ids, "configuration": [config[i] for i in ids]})
    sizes = groups.groupby("configuration", sort=False)["trial_id"]
    table = pd.DataFrame({"trials": sizes.size(), "trial_ids": sizes.agg(" ".join)}).reset_index()
    evals = study.evaluations
    reading = so.factor_reading(
        counted, evals[evals["trial_id"].isin(ids)] if len(evals) else evals
    )
    read, check, unread = reading.curves, reading.check, reading.unread
    factors = so.factor_switch_on(read, factor_share, unread=unread)
    default = so.Threshold("share", factor_share)
    orders = groups.assign(order=_orders(factors, ids))
    for th in so.thresholds_with(factor_share):
        if th != default:
            orders[f"at {th.label}"] = _orders(so.threshold_switch_on(read, th, unread), ids)
    across = so.order_across_thresholds(
        read, dict(zip(groups["trial_id"], groups["configuration"])),
        so.thresholds_with(factor_share), unread=unread,
    )  # fmt: skip
    verdicts = so.order_verdicts(across, default.label)
    at_default = across[across["threshold"] == default.label].drop(columns="threshold")
    pairwise = so.PairwiseOrder(at_default.reset_index(drop=True))
    excluded = excluded.reset_index(drop=True)
    return ActivationSummary(
        factors, orders, pairwise, excluded, factor_share, ids, table, across, verdicts, check,
        reading.exact,
    )  # fmt: skip


def _orders(factors: pd.DataFrame, ids: list[str]) -> list[str]:
    by_trial = {
        t: so.format_order(so.trial_order(g)) + so.unread_note(g)
        for t, g in factors.groupby("trial_id")
    }
    return [by_trial.get(i, "") for i in ids]


def pair_label(row: pd.Series) -> str:
    """``position before scale: 3 of 4 trials (0.19–0.99)``, with the censored trials
    beside (``; only position opened in 1``) and ``not seen (...)`` when no trial had
    both open."""
    if not row["n"]:
        return (
            f"{row['a']} before {row['b']}: not seen ({so.unseen_reason(row, row['a'], row['b'])})"
        )
    trials = "trial" if row["n"] == 1 else "trials"
    return (
        f"{row['a']} before {row['b']}: {row['a_first']} of {row['n']} {trials} "
        f"({row['low']:.2f}–{row['high']:.2f}){so.censored_note(row, row['a'], row['b'])}"
    )


def order_summary(
    data: ActivationSummary, a: str = "position", b: str = "scale", listed: int = 3
) -> str:
    """The summary's sentence on the order of ``a`` and ``b``, from ``data.verdicts``,
    per configuration (seeds of one configuration pooled, configurations not):

    - one configuration: ``Over 4 trials of one configuration: position before scale at
      every threshold ...; at 25%: 4 of 4 trials (...).``
    - up to ``listed``: ``Per configuration (seeds pooled, configurations not): c_max=6
      (4 trials): position before scale ...; c_max=16 (4 trials): ....``
    - more: configurations counted by verdict, ``Position before scale: per configuration
      (seeds pooled, configurations not), position first at every threshold in 2 (c_max=6;
      c_max=8), depends on the threshold in 1 (c_max=16), ...; the table below has the
      counts.``
    """
    v = data.verdicts
    v = v[(v["a"] == a) & (v["b"] == b)] if len(v) else v
    if not len(v):
        return ""
    size = dict(zip(data.configurations["configuration"], data.configurations["trials"]))

    def trials(c: str) -> str:
        n = size.get(c, 0)
        return f"{n} trial{'s' * (n != 1)}"

    if len(v) == 1:
        c, text = v["configuration"].iloc[0], v["text"].iloc[0]
        return f"Over {trials(c)} of one configuration: {text}."
    if len(v) <= listed:
        parts = [f"{c} ({trials(c)}): {t}" for c, t in zip(v["configuration"], v["text"])]
        return "Per configuration (seeds pooled, configurations not): " + "; ".join(parts) + "."
    kind = [
        f"{f} first at every threshold"
        if verdict == "holds"
        else f"{f} first wherever both opened"
        if verdict == "holds where seen"
        else VERDICT_WORDS[verdict]
        for verdict, f in zip(v["verdict"], v["first"])
    ]
    groups = pd.Series(list(v["configuration"])).groupby(kind, sort=False).agg(list)
    parts = [f"{k} in {len(cs)} ({'; '.join(cs)})" for k, cs in groups.items()]
    return (
        f"{a[0].upper()}{a[1:]} before {b}: per configuration (seeds pooled, configurations "
        f"not), {', '.join(parts)}; the table below has the counts."
    )


VERDICT_WORDS = {
    "depends": "depends on the threshold",
    "split": "no majority at any threshold",
    "not seen": "not seen (never both opened)",
}


def pair_table(data: ActivationSummary) -> pd.DataFrame:
    """The pairwise table as the report shows it: per configuration and pair of groups at
    the default threshold, the counts (censored trials apart), the fraction of the trials
    where both opened, its exact interval, the chance level and p-value, and whether the
    order holds across the thresholds (``switch_on.order_verdicts``)."""
    p = data.pairwise.table
    keys = ["configuration", "a", "b"]
    v = data.verdicts.set_index(keys)["text"] if len(data.verdicts) else pd.Series(dtype=object)
    across = [v.get(tuple(k), "") for k in p[keys].values]
    return pd.DataFrame(
        {
            "configuration": p["configuration"],
            "first": p["a"],
            "second": p["b"],
            "first opened first": p["a_first"],
            "second opened first": p["b_first"],
            "same report": p["ties"],
            "only first opened": p["a_only"],
            "only second opened": p["b_only"],
            "neither opened": p["neither"],
            **({"unread (bound short of exact)": p["unread"]} if p["unread"].any() else {}),
            "fraction": p["fraction"],
            "95% interval (exact)": [
                "n/a" if np.isnan(lo) else f"{lo:.2f}–{hi:.2f}"
                for lo, hi in zip(p["low"], p["high"], strict=True)
            ],
            "chance": p["null"],
            "p (one-sided)": p["p_value"],
            "paper": p["paper"].map({True: "first before second", False: "second first"}),
            "across thresholds": across,
        }
    )


def plot_activation_summary(data: ActivationSummary) -> go.Figure:
    """The C at which each factor switches on; per configuration and pair of groups the
    fraction where the first opened first (trials where both opened, exact 95% interval)
    at the default threshold, the other thresholds' fractions as open circles, and each
    row's chance level (2/3 for position against one factor, 1/2 otherwise)."""
    p = data.pairwise.table
    # one above the other: the pairs' long labels take the width they need, never
    # reaching into the switch-on panel
    box_px, pair_px = 340, 60 + 28 * len(p)
    fig = make_subplots(
        rows=2,
        cols=1,
        row_heights=[box_px, pair_px],
        vertical_spacing=90 / (box_px + pair_px + 90),
        subplot_titles=[
            "C at which each factor switches on, per trial",
            "pairs of factor groups: share of trials where the first opened first",
        ],
    )
    for f in FACTOR_NAMES:
        c = data.factors.loc[(data.factors["factor"] == f), "C_on"].dropna().to_numpy()
        fig.add_trace(
            go.Box(
                y=c,
                name=f,
                boxpoints="all",
                jitter=0.4,
                marker_color=FACTOR_COLORS[f],
                hovertemplate=f"{f}: on at C=%{{y:.3g}}<extra></extra>",
            ),
            1,
            1,
        )
    if len(p):
        many = p["configuration"].nunique() > 1
        labels = {
            (r["configuration"], r["a"], r["b"]): (f"{r['configuration']} · " if many else "")
            + pair_label(r)
            for _, r in p.iterrows()
        }
        y = list(labels.values())
        fig.add_trace(  # first: it has every row, so it sets the rows' order
            go.Scatter(
                x=p["null"].to_numpy(float),
                y=y,
                mode="markers",
                marker={
                    "symbol": "line-ns-open",
                    "size": 18,
                    "color": "#c33",
                    "line": {"width": 2, "color": "#c33"},
                },
                hovertemplate="chance: %{x:.2f}<extra></extra>",
                showlegend=False,
            ),
            2,
            1,
        )
        others = data.thresholds[data.thresholds["threshold"] != data.default]
        others = others[others["n"] > 0]
        if len(others):
            fig.add_trace(
                go.Scatter(
                    x=others["fraction"].to_numpy(float),
                    y=[labels[(c, a, b)] for c, a, b in others[["configuration", "a", "b"]].values],
                    mode="markers",
                    marker={
                        "size": 7,
                        "color": "rgba(0,0,0,0)",
                        "line": {"width": 1, "color": "#888"},
                    },
                    text=[
                        f"{t}: {k} of {n}"
                        for t, k, n in others[["threshold", "a_first", "n"]].values
                    ],
                    hovertemplate="%{text}<extra></extra>",
                    showlegend=False,
                ),
                2,
                1,
            )
        frac = p["fraction"].to_numpy(float)
        fig.add_trace(
            go.Scatter(
                x=frac,
                y=y,
                mode="markers",
                marker={"size": 11, "color": "#444"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": np.nan_to_num(p["high"].to_numpy(float) - frac),
                    "arrayminus": np.nan_to_num(frac - p["low"].to_numpy(float)),
                },
                showlegend=False,
                hovertemplate="%{y}<extra></extra>",
            ),
            2,
            1,
        )
        fig.update_xaxes(
            range=[-0.02, 1.02],
            title_text=(
                f"fraction at {data.default} (95% Clopper–Pearson); red: chance; "
                "circles: other thresholds"
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="C at switch-on (nats)", row=1, col=1)
    fig.update_yaxes(automargin=True, autorange="reversed", row=2, col=1)
    n, k = len(data.counted), len(data.configurations)
    fig.update_layout(
        title=(
            f"Activation order over {n} finished trial{'s' * (n != 1)} in {k} "
            f"configuration{'s' * (k != 1)}, seeds of one configuration pooled "
            f"(a factor switches on at {data.default} of its entropy)"
        ),
        showlegend=False,
        height=box_px + pair_px + 90 + 160,
    )
    return fig
