"""When latents and factors switch on, and what a latent codes: the one rule.

Every figure, label, summary and export of the activation order reads this module; it
works on the report rows' information columns (``analysis.contract``), never on KL,
which a constant mean offset or a sigma != 1 can fill without telling anything.

Latents (per trial, per latent):

- A latent is *active* while it tells at least ``ACTIVE_NATS`` about the input (the
  ``info_z{i}`` bound), with hysteresis: once active it stays so until it falls below
  half of that, so estimator noise near the threshold does not make it flicker.
- It *switches on* at the first row of its last active run (``step_on``, ``C_on``);
  ``first_step_on``/``first_C_on`` keep the first time it ever did.
- Its *factor* is read at the first row of that run at which it tells at least
  ``LABEL_NATS`` about one factor (``info/z{i}/{factor}``): the factor it tells most
  about, in nats: what it coded when it opened. A latent inactive at the end has no
  factor, whatever it coded before; an active one that never tells ``LABEL_NATS`` about
  a single factor has none either.
- Its *final factor* is the factor it tells most about at the last row, if it tells
  enough about that one there, with the same hysteresis as activity: it has told at
  least ``LABEL_NATS`` about it and not less than half of that since. That is what the
  trained model's latent codes. Latents do change what they code (one opened on scale,
  then coded posY from a few hundred steps later, measured on the quick preset), so a
  figure of the final model is labelled by the final factor, and by where it opened when
  that differs (``code_label``). The hysteresis keeps a latent that tells 0.23-0.29 nats
  about posY over its last thousand steps (measured there too) from losing its label
  on one report's estimator noise.

Factors (per trial, per factor):

- A factor *switches on* at the first row at which the whole code tells at least
  ``FACTOR_SHARE`` of its entropy about it (``info/{factor}``, H = ln(values)). A
  trial's *order* lists its factors by that row; factors that never switch on are left
  out.

Thresholds, and why:

- ``ACTIVE_NATS = 0.1``: well above the probe estimator's reading for a latent whose
  posterior ignores the input (0 exactly for a constant posterior; < 0.02 nats for
  latents with Var_x E[z|x] = 0.01 sigma^2, Burda et al.'s active-unit threshold), and
  small against what one coded factor carries (ln 2 = 0.69 for a binary split of the
  data, ln 32 = 3.47 for a position axis).
- ``LABEL_NATS = 0.25``: a quarter nat about one factor, about a third of a binary split
  (ln 2) and ten times the per-latent factor bound's reading on a code that tells nothing
  (< 0.03 nats on 1,024 probe points). A latent that has just opened often tells a few
  hundredths of a nat about scale before it settles on what it codes (measured on the
  quick preset: opened on 0.05 nats of scale, then coded posX); its label waits for that.
- ``FACTOR_SHARE = 0.25``: a quarter of the entropy, 0.27 nats for shape to 0.92 for
  orientation; reachable by every factor (orientation's symmetries cap I(orientation; x)
  at about 80% of its entropy) and above the estimator's noise for each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.contract import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    MEAN_IMAGE_RECON,
    factor_info_key,
    info_key,
    latent_factor_info_key,
)

ACTIVE_NATS = 0.1
LABEL_NATS = 0.25
FACTOR_SHARE = 0.25
NOTHING_MARGIN = 10.0  # nats: a reconstruction this close to the mean image learned nothing
ENTROPY = {f: math.log(n) for f, n in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)}
# The paper's groups: position first, then scale, then orientation and shape.
GROUPS: dict[str, tuple[str, ...]] = {
    "position": ("posX", "posY"),
    "scale": ("scale",),
    "orientation": ("orientation",),
    "shape": ("shape",),
}
PAPER_RANK = {"position": 0, "scale": 1, "orientation": 2, "shape": 2}

LATENT_COLUMNS = [
    "trial_id", "latent", "active", "factor", "step_on", "C_on", "first_step_on",
    "first_C_on", "label_step", "label_info", "final_factor", "final_factor_info",
    "final_info", "final_kl",
]  # fmt: skip
FACTOR_COLUMNS = ["trial_id", "factor", "entropy", "step_on", "C_on", "final_info"]


def latent_columns(frame: pd.DataFrame) -> list[int]:
    """Latent indices with an ``info_z{i}`` column in ``frame``."""
    out = []
    for c in frame.columns:
        c = str(c)
        if c.startswith("info_z") and c[6:].isdigit():
            out.append(int(c[6:]))
    return sorted(out)


def trial_curve(curves: pd.DataFrame, trial_id: str) -> pd.DataFrame:
    """One trial's rows, without the columns only other trials wrote (more latents)."""
    return curves[curves["trial_id"] == trial_id].dropna(axis=1, how="all")


def has_information(curves: pd.DataFrame) -> bool:
    """Whether the rows carry the information columns this module reads."""
    return bool(latent_columns(curves))


def latent_switch_on(
    curves: pd.DataFrame,
    active_nats: float = ACTIVE_NATS,
    label_nats: float = LABEL_NATS,
) -> pd.DataFrame:
    """One row per (trial_id, latent) with ``LATENT_COLUMNS`` from report rows sorted by
    trial then step (``trial_id``, ``step``, optionally ``C`` and ``kl_z{i}``, and the
    information columns). Vectorized over all trials."""
    lats = latent_columns(curves)
    if curves.empty or not lats:
        return pd.DataFrame(columns=LATENT_COLUMNS)
    n, d = len(curves), len(lats)
    info = _matrix(curves, [info_key(i) for i in lats])  # (N, d)
    ids = curves["trial_id"].to_numpy()
    starts = np.r_[True, ids[1:] != ids[:-1]]  # (N,) first row of each trial
    first_rows = np.flatnonzero(starts)
    ends = np.r_[first_rows[1:], n] - 1
    active = _hysteresis(info, starts, active_nats, active_nats / 2)  # (N, d)
    before = np.vstack([np.zeros((1, d), bool), active[:-1]]) & ~starts[:, None]
    rise = active & ~before  # (N, d) rows where a run of activity begins
    rows = np.arange(n)[:, None]
    last_rise = np.maximum.accumulate(np.where(rise, rows, -1), axis=0)  # (N, d)
    first_rise = np.minimum.reduceat(np.where(rise, rows, n), first_rows, axis=0)  # (T, d)

    # the factor each latent tells most about at each row, and whether that is enough
    names = [f for f in FACTOR_NAMES if latent_factor_info_key(lats[0], f) in curves]
    per = np.stack(
        [_matrix(curves, [latent_factor_info_key(i, f) for i in lats]) for f in names], -1
    ) if names else np.zeros((n, d, 1))  # (N, d, k)  # fmt: skip
    best = np.argmax(np.where(np.isnan(per), -np.inf, per), axis=-1)  # (N, d)
    best_info = np.take_along_axis(per, best[..., None], -1)[..., 0]  # (N, d)
    ok = active & (best_info >= label_nats)
    next_ok = np.minimum.accumulate(np.where(ok, rows, n)[::-1], axis=0)[::-1]  # (N, d)

    end_active = active[ends]  # (T, d)
    run_start = last_rise[ends]  # (T, d), -1 when never on
    safe_start = np.where(end_active, run_start, 0)
    label_row = np.where(end_active, next_ok[safe_start, np.arange(d)], n)  # (T, d)
    labelled = label_row <= ends[:, None]  # never a row of the next trial
    safe_label = np.where(labelled, label_row, 0)
    step = curves["step"].to_numpy(np.float64)
    cap = curves["C"].to_numpy(np.float64) if "C" in curves else np.full(n, np.nan)
    kl_cols = [f"kl_z{i}" for i in lats]
    kl = _matrix(curves, kl_cols) if all(c in curves for c in kl_cols) else np.full((n, d), np.nan)
    first_on = first_rise < n
    safe_first = np.where(first_on, first_rise, 0)
    col = np.arange(d)
    factor_names = np.asarray(names or [None], object)
    factor = np.where(labelled, factor_names[best[safe_label, col]], None)
    # (N, d, k): latent tells enough about the factor, with hysteresis as for activity
    k = per.shape[-1]
    told = _hysteresis(per.reshape(n, d * k), starts, label_nats, label_nats / 2).reshape(n, d, k)
    final_best = best[ends]  # (T, d)
    final_ok = end_active & np.take_along_axis(told[ends], final_best[..., None], -1)[..., 0]
    final_factor = np.where(final_ok, factor_names[final_best], None)
    out = pd.DataFrame(
        {
            "trial_id": np.repeat(ids[first_rows], d),
            "latent": np.tile(lats, len(first_rows)),
            "active": end_active.ravel(),
            "factor": pd.Series(list(factor.ravel()), dtype=object),
            "step_on": np.where(end_active, step[safe_start], np.nan).ravel(),
            "C_on": np.where(end_active, cap[safe_start], np.nan).ravel(),
            "first_step_on": np.where(first_on, step[safe_first], np.nan).ravel(),
            "first_C_on": np.where(first_on, cap[safe_first], np.nan).ravel(),
            "label_step": np.where(labelled, step[safe_label], np.nan).ravel(),
            "label_info": np.where(labelled, best_info[safe_label, col], np.nan).ravel(),
            "final_factor": pd.Series(list(final_factor.ravel()), dtype=object),
            "final_factor_info": np.where(final_ok, best_info[ends], np.nan).ravel(),
            "final_info": info[ends].ravel(),
            "final_kl": kl[ends].ravel(),
        }
    )
    # a trial with fewer latents than another has all-NaN columns for the rest: not latents
    has = np.logical_or.reduceat(~np.isnan(info), first_rows, axis=0).ravel()  # (T * d,)
    return out.loc[has, LATENT_COLUMNS].reset_index(drop=True)


def code_label(lat: pd.Series) -> str:
    """What a latent codes, in words, from its ``latent_switch_on`` row: ``posY``, ``posY
    (opened on scale)``, ``no single factor (opened on scale)``, ``no single factor`` or
    ``inactive``. The final factor leads: it is what the trained model's latent does."""
    if not lat["active"]:
        return "inactive"
    opened, final = lat["factor"], lat["final_factor"]
    now = final or "no single factor"
    return now if not opened or opened == final else f"{now} (opened on {opened})"


def factor_switch_on(curves: pd.DataFrame, share: float = FACTOR_SHARE) -> pd.DataFrame:
    """One row per (trial_id, factor) with ``FACTOR_COLUMNS``: the first row at which
    the code tells ``share`` of the factor's entropy about it (NaN: never)."""
    names = [f for f in FACTOR_NAMES if factor_info_key(f) in curves]
    if curves.empty or not names:
        return pd.DataFrame(columns=FACTOR_COLUMNS)
    n = len(curves)
    info = _matrix(curves, [factor_info_key(f) for f in names])  # (N, k)
    h = np.array([ENTROPY[f] for f in names])
    ids = curves["trial_id"].to_numpy()
    first_rows = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[first_rows[1:], n] - 1
    rows = np.arange(n)[:, None]
    cross = np.minimum.reduceat(np.where(info >= share * h, rows, n), first_rows, axis=0)
    on = cross < n
    safe = np.where(on, cross, 0)
    step = curves["step"].to_numpy(np.float64)
    cap = curves["C"].to_numpy(np.float64) if "C" in curves else np.full(n, np.nan)
    return pd.DataFrame(
        {
            "trial_id": np.repeat(ids[first_rows], len(names)),
            "factor": np.tile(names, len(first_rows)),
            "entropy": np.tile(h, len(first_rows)),
            "step_on": np.where(on, step[safe], np.nan).ravel(),
            "C_on": np.where(on, cap[safe], np.nan).ravel(),
            "final_info": info[ends].ravel(),
        }
    )[FACTOR_COLUMNS]


def trial_order(factors: pd.DataFrame) -> list[list[str]]:
    """One trial's factors by switch-on step; factors switching on at the same row share
    a place: ``[["posX", "posY"], ["scale"]]``."""
    on = factors[factors["step_on"].notna()].sort_values("step_on", kind="stable")
    return [list(g["factor"]) for _, g in on.groupby("step_on", sort=True)]


def format_order(order: list[list[str]]) -> str:
    """``[["posX", "posY"], ["scale"]]`` -> ``"posX = posY > scale"`` ("" when empty)."""
    return " > ".join(" = ".join(place) for place in order)


def group_switch_on(factors: pd.DataFrame) -> pd.DataFrame:
    """Per (trial_id, group): the step and C at which its first factor switched on (NaN:
    none of its factors did)."""
    group_of = {f: g for g, members in GROUPS.items() for f in members}
    ids = list(dict.fromkeys(factors["trial_id"]))
    on = factors[factors["step_on"].notna()].assign(group=factors["factor"].map(group_of))
    first = on.sort_values("step_on", kind="stable").drop_duplicates(["trial_id", "group"])
    grid = pd.MultiIndex.from_product([ids, list(GROUPS)], names=["trial_id", "group"])
    out = first.set_index(["trial_id", "group"])[["step_on", "C_on"]].reindex(grid)
    return out.reset_index()


@dataclass
class PairwiseOrder:
    """Across trials, for each pair of groups (a, b): in how many trials a opened first.

    ``table`` columns: a, b, a_first, b_first, ties, neither, n (= a_first + b_first),
    fraction (a_first / n), low, high (Wilson 95% interval), paper (True when the paper
    puts a before b). A trial where only a opened counts for a; one where neither did
    is counted in ``neither``; a tie (same row) in ``ties``: neither enters n.
    """

    table: pd.DataFrame
    trials: list[str]


def pairwise_order(groups: pd.DataFrame, z: float = 1.96) -> PairwiseOrder:
    """The pairwise-order summary from ``group_switch_on`` rows of the trials to count."""
    wide = groups.pivot(index="trial_id", columns="group", values="step_on")
    names = [g for g in GROUPS if g in wide.columns]
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = wide[a].to_numpy(), wide[b].to_numpy()
            ia, ib = ~np.isnan(sa), ~np.isnan(sb)
            a_first = int(np.sum(ia & (~ib | (sa < sb))))
            b_first = int(np.sum(ib & (~ia | (sb < sa))))
            ties = int(np.sum(ia & ib & (sa == sb)))
            n = a_first + b_first
            low, high = wilson(a_first, n, z)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "a_first": a_first,
                    "b_first": b_first,
                    "ties": ties,
                    "neither": int(np.sum(~ia & ~ib)),
                    "n": n,
                    "fraction": a_first / n if n else np.nan,
                    "low": low,
                    "high": high,
                    "paper": PAPER_RANK[a] < PAPER_RANK[b]
                    if PAPER_RANK[a] != PAPER_RANK[b]
                    else None,
                }
            )
    return PairwiseOrder(pd.DataFrame(rows), list(wide.index))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (NaN, NaN when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def learned_nothing(
    recon: float, baseline: float = MEAN_IMAGE_RECON, margin: float = NOTHING_MARGIN
) -> bool:
    """A trial learned nothing when its reconstruction is within ``margin`` nats of the
    mean-image baseline, or worse: its decoder draws the mean image whatever the code
    says. Active latents do not rescue it: an encoder that tells something the decoder
    ignores has not learned a representation yet. A NaN reconstruction is not judged."""
    return bool(recon >= baseline - margin)


# ---- helpers ------------------------------------------------------------------------


def _matrix(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return frame[cols].to_numpy(np.float64)


def _hysteresis(x: np.ndarray, starts: np.ndarray, on: float, off: float) -> np.ndarray:
    """Active state per row: turns on at >= ``on``, off below ``off``; every trial (a
    run of rows from a True in ``starts``) begins inactive. NaN keeps the state."""
    event = np.where(x >= on, 1, np.where(x < off, -1, 0))  # NaN compares False: 0
    event[starts] = np.where(event[starts] == 0, -1, event[starts])
    rows = np.arange(len(x))[:, None]
    last = np.maximum.accumulate(np.where(event != 0, rows, 0), axis=0)
    return np.take_along_axis(event, last, axis=0) == 1
