"""The report: one self-contained HTML page (plotly.js embedded once, works offline).

Sections: summary, frontier (+ front table), grid heatmaps, activation order (across
trials, then per selected trial), traversals, training curves, parallel coordinates,
hyperparameter importance, and the trials that did not finish, with their reasons.
A section whose data is missing says so instead of breaking the page.

Warnings at the top of the page, each a plain sentence naming its trials: the trials
that learned nothing (``learned``), and capacity trials whose KL did not track C or met
it with little information (``capacity_tracking``). Their thresholds, and why:

- ``TRACK_NATS = 1.0``: "about a nat" off C. A gap of one nat costs gamma nats of loss
  (1,000 at the paper's gamma), far more than a nat of code buys in reconstruction, so a
  trial that sits a nat from C is not held to it. ``C`` in a row is averaged over the
  row's steps like ``kl``: a ramp's slope is no gap.
- ``TRACK_WARMUP = 0.1``: the first tenth of a trial's rows is not judged: KL starts
  where the initialized encoder puts it and needs the first updates to reach C.
- ``TRACK_SHARE = 0.25``: a trial is off when more than a quarter of its judged rows
  are; a moment off C (a loss spike, a step of a piecewise schedule) is not a trial off.
- ``EMPTY_SHARE = 0.5``, ``EMPTY_MIN_C = 1.0``: KL = I(x; z) + KL(q(z) || p(z)), so a KL
  at C with I(x; z) below half of C spends most of the budget on constant offsets or
  sigma != 1. Only rows with C above a nat are read (below it, half of C is within the
  probe bound's noise), and C is capped by what the bound can read (ln of the probe
  points: the contrastive bound is at most ln n) and by the data's entropy (ln 737,280).
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from analysis import activation as act
from analysis import frontier as fr
from analysis import switch_on as so
from analysis import traversals as tr
from analysis import views
from analysis.contract import (
    FINISHED,
    INFO_X,
    INFO_X_POINTS,
    MEAN_IMAGE_RECON,
    config_col,
    format_value,
)
from analysis.fs import ReportInputError, writable_folder
from analysis.load import Study, load_study

TRACK_NATS = 1.0  # |KL - C| above this: KL off C (see the module docstring for each)
TRACK_WARMUP = 0.1  # the first tenth of a trial's rows: not judged
TRACK_SHARE = 0.25  # more than this share of the judged rows: the trial is off
EMPTY_SHARE = 0.5  # I(x; z) below this share of C (capped by what the bound reads): little
EMPTY_MIN_C = 1.0  # nats: rows with C at or below this are not read for little information
DATA_ENTROPY = float(sum(so.ENTROPY.values()))  # ln 737,280: I(x; z) cannot exceed it
TRACKING_COLUMNS = ["trial_id", "status", "rows", "off", "little", "untracked", "empty"]

_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body{font-family:system-ui,sans-serif;margin:0 2em 4em;color:#222;max-width:1400px}
h1{margin-bottom:0} nav a{margin-right:1em} section{margin-top:2.5em}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3;text-align:left} .note{color:#666;font-size:14px}
.failures td:last-child{font-family:monospace;color:#a00}
.warn{background:#fff3cd;border:1px solid #e0b100;padding:.6em 1em;margin:1em 0;font-size:15px}
.lead{font-size:16px;max-width:60em}
"""


def build_report(
    study: str | os.PathLike | Study,
    out_path: str | os.PathLike,
    metric: str = "mig",
    *,
    color: str | None = "auto",
    grid: tuple[str, str] | None = None,
    active_nats: float = so.ACTIVE_NATS,
    factor_share: float = so.FACTOR_SHARE,
    max_detail_trials: int = 4,
    max_points: int = 100,
) -> Path:
    """Write the HTML report of a study directory (or loaded :class:`Study`); return its path.

    ``metric`` is the disentanglement metric of the frontier (any reported metric);
    ``grid`` the two hyperparameters of the heatmaps (default: the first two grid-like
    varied ones); ``max_detail_trials`` how many trials (best on the front first) get
    their own activation and traversal figures. ``active_nats`` and ``factor_share``
    are the switch-on thresholds of ``analysis.switch_on``.
    """
    out = Path(out_path)
    if out.is_dir():
        raise ReportInputError(f"-o {out}: a folder; give the path of the HTML file to write")
    writable_folder(out.parent, f"-o {out}")  # before the study loads: a typo costs nothing
    if not isinstance(study, Study):
        study = load_study(study)
    _check_params(study, color, grid)
    if study.metrics and metric not in study.metrics:  # nothing reported yet: notes instead
        raise ReportInputError(
            f"metric {metric!r} was not reported by {study.location}; reported: "
            + ", ".join(study.metrics)
        )
    parts: list[tuple[str, str, str]] = []  # (anchor, title, html)

    def section(anchor: str, title: str, make: Callable[[], str]) -> None:
        try:
            body = make()
        except Exception as e:  # one bad figure must not cost the whole report
            body = _note(f"could not draw this section: {type(e).__name__}: {e}")
        parts.append((anchor, title, body))

    # computed once, read by the summary, the activation section and the warning
    learned_ = functools.cache(lambda: learned(study, active_nats))
    summary = functools.cache(lambda: act.activation_summary_data(study, factor_share=factor_share))
    done = study.trials[study.trials["status"].isin(FINISHED)]
    has_metric = metric in study.trials and done[metric].notna().any()
    front = fr.frontier_data(study.trials, metric, color=color) if has_metric else None
    section(
        "summary",
        "Summary",
        lambda: _summary(study, metric, active_nats, factor_share, learned_(), summary()),
    )
    section("frontier", "Frontier", lambda: _frontier(front, metric))
    section("grid", "Grid", lambda: _grid(study, grid, metric))
    detail = _detail_trials(study, front, metric, max_detail_trials)
    section(
        "activation",
        "Activation order",
        lambda: _activation(study, detail, active_nats, factor_share, summary()),
    )
    section("traversals", "Traversals", lambda: _traversals(study, detail, active_nats))
    section("curves", "Training curves", lambda: _curves(study, max_points))
    section("parallel", "Parallel coordinates", lambda: _parallel(study, metric))
    section("importance", "Hyperparameter importance", lambda: _importance(study, metric))
    section("failed", "Trials that did not finish", lambda: _failed(study))
    try:
        warning = _warning(learned_(), active_nats)
    except Exception as e:  # as for a section: the page is still written
        warning = _note(f"could not check whether the trials learned: {type(e).__name__}: {e}")
    try:
        warning += _tracking_warning(capacity_tracking(study))
    except Exception as e:
        warning += _note(f"could not check whether KL tracked C: {type(e).__name__}: {e}")
    out.write_text(_page(study, parts, warning), encoding="utf-8")
    return out


def learned(study: Study, active_nats: float = so.ACTIVE_NATS) -> pd.DataFrame:
    """Per finished trial: trial_id, status, recon (last row), most_info (its most
    informative latent's ``info_z`` in the last row, NaN if not measured), active (latents
    active at the end by the switch-on rule) and nothing (``switch_on.learned_nothing``:
    reconstruction within ``switch_on.NOTHING_MARGIN`` nats of the mean image)."""
    t = study.trials[(study.trials["n_reports"] > 0) & study.trials["status"].isin(FINISHED)]
    info_cols = [f"info_z{i}" for i in so.latent_columns(t)]
    most = t[info_cols].max(axis=1) if info_cols else pd.Series(np.nan, index=t.index)
    table = so.latent_switch_on(study.curves, active_nats)
    active = table.groupby("trial_id")["active"].sum() if len(table) else pd.Series(dtype=int)
    out = pd.DataFrame(
        {
            "trial_id": t["trial_id"],
            "status": t["status"],
            "recon": t["recon"] if "recon" in t else np.nan,
            "most_info": most,
            "active": t["trial_id"].map(active).to_numpy(),
        }
    )
    nothing = [so.learned_nothing(r) for r in out["recon"].astype(float)]
    return out.assign(nothing=nothing).reset_index(drop=True)


def capacity_tracking(study: Study) -> pd.DataFrame:
    """Per capacity-objective trial with rows to judge (``TRACKING_COLUMNS``): trial_id,
    status; rows, its rows after the first ``TRACK_WARMUP`` of them (at least one);
    off, the share of those in which |KL − C| > ``TRACK_NATS``; little, the share of
    those with ``info_x`` measured in which KL is within ``TRACK_NATS`` of C while C >
    ``EMPTY_MIN_C`` and ``info_x`` < ``EMPTY_SHARE`` × min(C, ln probe_points,
    ``DATA_ENTROPY``) (NaN when none has ``info_x``); untracked (off > ``TRACK_SHARE``)
    and empty (little > ``TRACK_SHARE``). Beta-objective trials are not judged."""
    t, c = study.trials, study.curves
    need = {config_col("objective"), "trial_id"} <= set(t) and {"kl", "C"} <= set(c)
    if not need or c.empty:
        return pd.DataFrame(columns=TRACKING_COLUMNS)
    capacity = t[t[config_col("objective")] == "capacity"].set_index("trial_id")
    c = c[c["trial_id"].isin(capacity.index)]
    rank = c.groupby("trial_id", sort=False).cumcount()
    size = c.groupby("trial_id", sort=False)["step"].transform("size")
    judged = rank >= np.maximum(np.ceil(TRACK_WARMUP * size), 1)  # (N,)
    kl, cap = c["kl"].astype(float), c["C"].astype(float)
    judged &= kl.notna() & cap.notna()
    near = (kl - cap).abs() <= TRACK_NATS
    info = c[INFO_X].astype(float) if INFO_X in c else pd.Series(np.nan, index=c.index)
    # the bound's ceiling: ln of the probe inputs it reads (INFO_X_POINTS, fewer when the
    # trial's probe_points is smaller; a trial that leaves it out has the default, more)
    points = pd.Series(float(INFO_X_POINTS), index=capacity.index)
    if config_col("probe_points") in capacity:
        given = pd.to_numeric(capacity[config_col("probe_points")], errors="coerce")
        points = np.minimum(given.where(given > 0).fillna(INFO_X_POINTS), INFO_X_POINTS)
    probe = c["trial_id"].map(np.log(points))
    reads = np.minimum(np.minimum(cap, probe), DATA_ENTROPY)
    measured = judged & info.notna()
    little = measured & near & (cap > EMPTY_MIN_C) & (info < EMPTY_SHARE * reads)
    flags = pd.DataFrame(
        {
            "trial_id": c["trial_id"],
            "rows": judged,
            "off_rows": judged & ~near,
            "measured": measured,
            "little_rows": little,
        }
    )
    counts = flags.groupby("trial_id", sort=False).sum()
    counts = counts[counts["rows"] > 0]
    off = counts["off_rows"] / counts["rows"]
    few = (counts["little_rows"] / counts["measured"].where(counts["measured"] > 0)).astype(float)
    out = pd.DataFrame(
        {
            "trial_id": counts.index,
            "status": capacity["status"].reindex(counts.index).to_numpy(),
            "rows": counts["rows"].astype(int).to_numpy(),
            "off": off.to_numpy(),
            "little": few.to_numpy(),
            "untracked": (off > TRACK_SHARE).to_numpy(),
            "empty": (few > TRACK_SHARE).to_numpy(),
        }
    )
    return out[TRACKING_COLUMNS]


def _tracking_warning(table: pd.DataFrame) -> str:
    """``capacity_tracking``'s findings as warnings: one per kind, naming the trials."""
    n = len(table)
    kinds = "capacity trial" if n == 1 else "capacity trials"
    lines = []
    off = table[table["untracked"].astype(bool)]
    if len(off):
        lines.append(
            f"KL did not track C in {len(off)} of {n} {kinds} ({_ids(off)}): it was more "
            f"than {TRACK_NATS:g} nat from C in over {TRACK_SHARE:.0%} of their rows after "
            f"the first {TRACK_WARMUP:.0%}: gamma too small or lr too high for the budget "
            "(Burgess et al. advise the KL to track C)."
        )
    empty = table[table["empty"].astype(bool)]
    if len(empty):
        lines.append(
            f"{len(empty)} of {n} {kinds} met the capacity with little information "
            f"({_ids(empty)}): KL within {TRACK_NATS:g} nat of C while I(x; z) was below "
            f"{EMPTY_SHARE:.0%} of C in over {TRACK_SHARE:.0%} of their rows: KL = C from "
            "constant offsets or sigma ≠ 1, not from a code that tells about the image."
        )
    return "".join(f"<div class=warn><b>Warning.</b> {html.escape(w)}</div>" for w in lines)


def _ids(table: pd.DataFrame, most: int = 12) -> str:
    ids = table["trial_id"].astype(str).tolist()
    return ", ".join(ids[:most]) + (" …" if len(ids) > most else "")


def _warning(table: pd.DataFrame, active_nats: float) -> str:
    bad = table[table["nothing"]]
    if table.empty or bad.empty:
        return ""
    what = (
        f"reconstruction within {so.NOTHING_MARGIN:.0f} nats of predicting the mean image "
        f"({MEAN_IMAGE_RECON} nats): the decoder draws the mean image whatever the code says"
    )
    told = bad["most_info"] >= active_nats
    if told.any():
        what += (
            f" (in {int(told.sum())} of them some latent tells at least {active_nats} nats "
            "about the input, which the decoder does not use yet)"
        )
    if len(bad) == len(table):
        head = f"This study learned nothing: every finished trial ({len(table)}) ended with {what}."
    else:
        ids = ", ".join(bad["trial_id"].astype(str)[:12]) + (" …" if len(bad) > 12 else "")
        head = f"{len(bad)} of {len(table)} finished trials learned nothing ({ids}): {what}."
    return (
        f"<div class=warn><b>Warning.</b> {html.escape(head)} Their switch-on points, factor "
        "labels and traversals show no finding. Train longer, or see docs/activation.md, 'Starting "
        "the encoder' (the capacity objective's gamma).</div>"
    )


def _page(study: Study, parts: list[tuple[str, str, str]], warning: str = "") -> str:
    nav = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in parts)
    body = "\n".join(
        f'<section id="{a}"><h2>{html.escape(t)}</h2>\n{b}</section>' for a, t, b in parts
    )
    title = html.escape(f"betastudy report: {study.name}")
    # plotly.js once, inline: the file must open offline and fetch nothing.
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style>\n<script>{get_plotlyjs()}</script></head>\n"
        f"<body><h1>{title}</h1><p class=note>{html.escape(study.location)}</p>"
        f"{warning}<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )


def _fig(fig: go.Figure, div_id: str) -> str:
    return pio.to_html(
        fig, full_html=False, include_plotlyjs=False, config=_CONFIG, div_id=div_id, auto_play=False
    )


def _note(text: str) -> str:
    return f"<p class=note>{html.escape(text)}</p>"


def _table(frame: pd.DataFrame, na_cols: tuple[str, ...] = (), classes: str = "") -> str:
    """``frame`` as an HTML table (pandas' ``to_html``, escaped): numbers to 4 significant
    digits, whole numbers whole; a missing value shows as "n/a" in ``na_cols`` (undefined
    metrics), else empty."""

    def cell(column: str, v: object) -> str:
        if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
            return "n/a" if column in na_cols else ""
        return format_value(v)

    shown = pd.DataFrame({c: [cell(c, v) for v in frame[c]] for c in frame.columns})
    return shown.to_html(index=False, border=0, classes=classes or None, na_rep="")


def _summary(
    study: Study,
    metric: str,
    active_nats: float,
    factor_share: float,
    done: pd.DataFrame,
    summary: act.ActivationSummary,
) -> str:
    counts = study.trials["status"].value_counts()
    table = pd.DataFrame({"status": counts.index, "trials": counts.to_numpy()})
    varied = ", ".join(fr.varied_params(study.trials)) or "none"
    lines = [f"{len(study.trials)} trials; varied hyperparameters: {varied}."]
    done = done[done["recon"].notna()]
    if len(done):
        best = done.loc[done["recon"].idxmin()]
        lines.append(
            f"Final reconstruction of the finished trials {done['recon'].min():.1f}–"
            f"{done['recon'].max():.1f} nats "
            f"(best: trial {best['trial_id']}); predicting the mean image costs "
            f"{MEAN_IMAGE_RECON} nats."
        )
        if done["active"].notna().any():
            lo, hi = int(done["active"].min()), int(done["active"].max())
            span = f"{lo}" if lo == hi else f"{lo}–{hi}"
            lines.append(f"Latents active at the end: {span} per trial.")
    if metric in study.trials and study.trials[metric].notna().any():
        lines.append(f"Frontier metric: {metric} (best {study.trials[metric].max():.3f}).")
    if summary.counted and act.order_summary(summary):
        lines.append(act.order_summary(summary))
    rule = (
        f"A latent becomes active when it tells at least {active_nats} nats about its "
        f"input (a lower bound on I(x; z_i) on a fixed probe set: a constant mean offset "
        f"or a sigma ≠ 1 counts for nothing) and stays active until it tells less than "
        f"half of that; it switches on at the first row of its last active run, so a "
        f"latent that opened, closed and opened again switches on where it last opened. "
        f"It codes the factor it tells most about at the end, if it has told at least "
        f"{so.LABEL_NATS} nats about it and not less than half of that since, and opened "
        f"on the first factor it told that much about in that last run; labels name "
        f"both where they differ. A second factor it tells at least "
        f"{100 * so.SECOND_RATIO:.0f}% as much about (and {so.LABEL_NATS} nats itself) "
        f"joins the label: posY + scale. Inactive at the end, it codes nothing. A factor "
        f"switches on at the first row of its last run in which the code tells "
        f"{100 * factor_share:.0f}% of its entropy about it (off below half of that). "
        + _estimator(study.trials, summary.bound_check, summary.exact_read)
    )
    return f"<p class=lead>{html.escape(' '.join(lines))}</p>" + _table(table) + _note(rule)


def _estimator(
    trials: pd.DataFrame,
    check: pd.DataFrame | None = None,
    exact_read: frozenset[str] = frozenset(),
) -> str:
    """What the per-factor information of these trials is: exact or a lower bound, and
    for image trials whose evaluations carry the exact value, how the bound compared and
    which trials' orders are read off the exact values."""
    encoders = set(trials.get(config_col("encoder"), pd.Series(["image"])).fillna("image"))
    exact = (
        "For factor-encoder trials the information about a factor is exact (the whole "
        "factor grid as the reference of p(f | z), Monte Carlo over the probe's draws)."
    )
    bound = (
        "For image-encoder trials it is a held-out lower bound on the probe set, which "
        "reads shape and orientation late or not at all once the code is precise: a "
        "factor that never opened may be one the bound does not see."
    )
    checked = set() if check is None or not len(check) else set(check["trial_id"])
    if exact_read:
        n = len(exact_read)
        bound += (
            f" {n} image {'trial carries' if n == 1 else 'trials carry'} the exact value "
            f"(every grid image encoded: grid_info_images) at {so.EXACT_ROWS} or more "
            f"checked rows: {'its' if n == 1 else 'their'} factors' switch-on and order "
            f"are read off those exact values, not the bound, a switch-on dated to the "
            f"first check of the factor's last run above the threshold "
            f"({_trial_list(exact_read)})."
        )
    if checked - set(exact_read):
        n = len(checked - set(exact_read))
        bound += (
            f" {n} image {'trial carries' if n == 1 else 'trials carry'} the exact value at "
            f"fewer rows, too few to date an opening ({_trial_list(checked - set(exact_read))}"
            f"): there the bound is read only for factors it reaches "
            f"{100 * so.BOUND_SHARE:.0f}% of the exact value for, or comes within "
            f"{so.BOUND_NATS} nats of, at every checked row; the other factors are unread: "
            f"no order is claimed for them (table 'Held-out bound against the exact value')."
        )
    return " ".join(
        t for t, on in ((exact, "factors" in encoders), (bound, encoders - {"factors"})) if on
    )


def _trial_list(ids: set[str] | frozenset[str], most: int = 6) -> str:
    """``a, b and c`` / ``a, b, ... and 4 more``: the trials, sorted."""
    ids = sorted(ids)
    if len(ids) <= most:
        return ", ".join(ids[:-1]) + (" and " if len(ids) > 1 else "") + ids[-1]
    return ", ".join(ids[:most]) + f" and {len(ids) - most} more"


def _bound_table(check: pd.DataFrame, exact_read: frozenset[str] = frozenset()) -> str:
    """Per trial and factor, the bound against the exact value at the last checked step;
    ``read``: read (close throughout), unread, or exact (the order uses the exact values)."""
    last = check.groupby(["trial_id", "factor"], sort=False).tail(1)
    worst = check.groupby(["trial_id", "factor"], sort=False)["close"].all()
    exact = last["exact"].to_numpy()
    share = np.divide(
        last["bound"].to_numpy(), exact, out=np.full(len(last), np.nan), where=exact > 0
    )
    frame = pd.DataFrame(
        {
            "trial": last["trial_id"].to_numpy(),
            "factor": last["factor"].to_numpy(),
            "step": last["step"].to_numpy().astype(int),
            "bound (nats)": last["bound"].round(3).to_numpy(),
            "exact (nats)": last["exact"].round(3).to_numpy(),
            "share": np.round(share, 2),
            "read": [
                "exact" if t in exact_read else "read" if worst[(t, f)] else "unread"
                for t, f in zip(last["trial_id"], last["factor"])
            ],
        }
    )
    return (
        "<h3>Held-out bound against the exact value</h3>"
        + _note(
            "The rows' per-factor information of an image trial is a held-out lower bound "
            "on the probe set; at its checked rows the exact value over every grid image "
            "checks it. Shown at the last checked row; read: close at every checked row; "
            f"exact: the trial's order is read off its exact values ({so.EXACT_ROWS} or more "
            "checked steps), whatever its bound."
        )
        + _table(frame, na_cols=("share",))
    )


def _frontier(data: fr.FrontierData | None, metric: str) -> str:
    if data is None or data.configs.empty:
        return _note(f"No finished trial reported {metric}: no frontier yet.")
    f = data.front
    m, x = data.metric, data.x
    table = pd.DataFrame(
        {
            "configuration": f["label"],
            "seeds": f["n"],
            f"{x} mean": f[f"{x}_mean"],
            f"{x} sd": f[f"{x}_sd"],
            f"{m} mean": f[f"{m}_mean"],
            f"{m} sd": f[f"{m}_sd"],
            "trials": f["trial_ids"],
        }
    )
    return _fig(fr.plot_frontier(data), "fig-frontier") + "<h3>Pareto front</h3>" + _table(table)


def _check_params(study: Study, color: str | None, grid: tuple[str, str] | None) -> None:
    """``color`` and ``grid`` must name hyperparameters the study varied (one line if not)."""
    varied = fr.varied_params(study.trials)
    named = [("--color", color)] if color not in (None, "auto") else []
    named += [("--grid", g) for g in grid or ()]
    for flag, name in named:
        if name not in varied:
            raise ReportInputError(
                f"{flag} {name}: not a hyperparameter this study varied; varied: "
                + (", ".join(varied) or "none")
            )
    if grid and grid[0] == grid[1]:
        raise ReportInputError(f"--grid {grid[0]} {grid[1]}: give two different hyperparameters")


def _grid(study: Study, grid: tuple[str, str] | None, metric: str) -> str:
    # the study spec's own search space first, in its order; else inferred from the trials
    candidates = fr.grid_params(study.trials)
    space = study.spec.get("space")
    if isinstance(space, dict):
        candidates = [p for p in space if p in candidates] + candidates
    params = list(grid) if grid else list(dict.fromkeys(candidates))[:2]
    if len(params) < 2:
        return _note("Fewer than two grid-like hyperparameters vary: no heatmaps.")
    metrics = ["recon", *[m for m in study.metrics if m in study.trials]]
    data = fr.grid_data(study.trials, params[0], params[1], metrics)
    if data.empty:
        return _note("No finished trial to place on the grid.")
    return _fig(fr.plot_grid_heatmaps(data, params[0], params[1]), "fig-grid")


def _detail_trials(study: Study, front: fr.FrontierData | None, metric: str, n: int) -> list[str]:
    """The first ``n`` trials that get their own figures: for each configuration of the
    front (``front.front``, in its order, finished trials only), its seed with the
    highest ``metric``; then the other finished (``TERMINATED``) trials with rows, then
    the unfinished ones with rows (``ERROR``, ``RUNNING``), each by ``metric``, highest
    first, missing values last (by ``n_reports`` when no trial has the metric column)."""
    t = study.trials
    chosen: list[str] = []
    if front is not None:
        for ids in front.front["trial_ids"]:
            cand = t[t["trial_id"].isin(ids.split())]
            chosen.append(cand.sort_values(metric, ascending=False)["trial_id"].iloc[0])
    rest = t[t["n_reports"] > 0]
    key = metric if metric in rest else "n_reports"
    done = rest["status"].isin(FINISHED)
    for part in (rest[done], rest[~done]):  # finished first, whatever the others scored
        chosen += list(part.sort_values(key, ascending=False, kind="stable")["trial_id"])
    return list(dict.fromkeys(chosen))[:n]


def _activation(
    study: Study,
    detail: list[str],
    active_nats: float,
    share: float,
    summary: act.ActivationSummary,
) -> str:
    if study.curves.empty:
        return _note("No trial has reported yet.")
    if not so.has_information(study.curves):
        return _note(
            "The trials' rows carry no information measures (info_z*, info/*): they were "
            "trained before betastudy measured them, so no switch-on is drawn."
        )
    out = []
    if summary.counted:
        out.append(_fig(act.plot_activation_summary(summary), "fig-activation-summary"))
        p = summary.pairwise.table
        if len(p):
            pairs = act.pair_table(summary)
            head = "<h3>Order of factor groups across trials</h3>"
            out.append(head + _table(pairs, na_cols=("fraction", "p (one-sided)")))
        out.append("<h3>Order per trial</h3>" + _table(summary.orders))
        if len(summary.bound_check):
            out.append(_bound_table(summary.bound_check, summary.exact_read))
    if len(summary.excluded):
        out.append("<h3>Trials not counted</h3>" + _table(summary.excluded))
    for i, tid in enumerate(detail):
        data = act.activation_data(study, tid, active_nats=active_nats, factor_share=share)
        if data is not None:
            out.append(_fig(act.plot_activation(data), f"fig-activation-{i}"))
    return "\n".join(out)


def _traversals(study: Study, detail: list[str], active_nats: float) -> str:
    """Per detail trial: the final traversals, then the traversals at every evaluation
    as an animation (latents switching on as C grows)."""
    out = []
    for i, tid in enumerate(detail):
        data = tr.traversal_data(study, tid, active_nats=active_nats)
        if data is not None:
            out.append(_fig(tr.plot_traversals(data), f"fig-traversals-{i}"))
        frames = tr.traversal_animation_data(study, tid, active_nats=active_nats)
        if frames is not None:
            out.append(_fig(tr.plot_traversal_animation(frames), f"fig-traversal-frames-{i}"))
    return "\n".join(out) or _note("No final checkpoint with traversal images was found.")


def _curves(study: Study, max_points: int) -> str:
    if study.curves.empty:
        return _note("No trial has reported yet.")
    # at most ~30k points per panel however many trials: the page stays small and quick
    n = max(1, study.curves["trial_id"].nunique())
    data = views.training_curves_data(study, max_points=max(10, min(max_points, 30_000 // n)))
    return _fig(views.plot_training_curves(data), "fig-curves")


def _parallel(study: Study, metric: str) -> str:
    data = views.parallel_coords_data(study.trials, metric)
    if data.empty or data.shape[1] <= 3:
        return _note("Needs finished trials and at least one varied hyperparameter.")
    return _fig(views.plot_parallel_coords(data, metric), "fig-parallel")


def _importance(study: Study, metric: str) -> str:
    data = views.importance_data(study, targets=(metric, "recon"))
    if data.empty:
        return _note("Needs at least two finished trials and a varied hyperparameter.")
    return _fig(views.plot_importance(data), "fig-importance")


def _failed(study: Study) -> str:
    t = study.trials[~study.trials["status"].isin(FINISHED)]
    if t.empty:
        return _note("Every trial finished." if len(study.trials) else "No trials yet.")
    params = fr.varied_params(study.trials)
    label = [", ".join(f"{p}={r[config_col(p)]}" for p in params) for _, r in t.iterrows()]
    table = pd.DataFrame(
        {
            "trial": t["trial_id"],
            "status": t["status"],
            "last step": t["last_step"],
            "configuration": label,
            "reason": t["error"],
        }
    )
    return _table(table, classes="failures")  # the reason: last column, in red
