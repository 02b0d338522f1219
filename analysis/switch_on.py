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
- A latent that tells a comparable amount about a second factor at the last row (at
  least ``SECOND_RATIO`` of what it tells about its final factor, and itself told with
  the final factor's hysteresis at ``LABEL_NATS``) codes both: ``final_second`` names it
  and the label reads ``posY + scale``, largest first. At most two factors are named.

Factors (per trial, per factor):

- A factor is *on* while the whole code tells at least its threshold about it
  (``info/{factor}``), with the latents' hysteresis: on at the threshold, off below half
  of it. The default threshold is ``FACTOR_SHARE`` of the factor's entropy (H =
  ln(values)); ``Threshold`` names the others (a share of H, or absolute nats).
- It *switches on* at the first row of its last on-run (``step_on``, ``C_on``), as a
  latent does; a factor that is off at the last row has not switched on. A trial's
  *order* lists its factors by that row; factors that never switch on are left out.

- Where a trial's evaluations carry the exact value (``exact/{factor}``: an image trial's
  whole-grid calculation, ``grid_info_images``) the rows' held-out bound is checked
  against it (``bound_check``): it is *read* when it reaches ``BOUND_SHARE`` (half) of the
  exact value or falls short by at most ``BOUND_NATS`` at every checked step. A bound only ever
  delays a switch-on (it is below the exact value), so a factor it misses by more than
  that is *unread* in that trial: no order is claimed for a pair with an unread group
  (``unread`` in the pairwise table), and its "never opened" is not a finding. Measured on
  the factor encoder after 2,000 steps, where both are known
  (``benchmarks/exact_information.py``): the bound read 0.00 nats of orientation's 0.80
  and 0.18 of shape's 0.46 (unread), 0.69 of scale's 1.17 and 1.74 and 1.87 of posX's
  and posY's 2.56 and 2.66 (59-70%: read). Half is the line because a bound's lag grows
  with the code's precision, so the last evaluation's share is the lowest of the run's:
  up to C = 3 the same bound was within 0.1 nats of the exact value for every factor
  but orientation. A check at the end alone is therefore strict; with exact values as
  C ramps (``grid_info_images=capacity``, the CUDA default) it is checked as the
  factors open.
- Where the exact value is there at ``EXACT_ROWS`` (three) or more steps of a trial, the
  bound is not needed: that trial's factors are read off the exact values, at the
  resolution of the checks (``grid_info_images=capacity`` places them where C reaches
  1, 2, 3, 4, 5, 6, 8, 11, 15 ... nats and each tenth of the ramp, and over the hold);
  a factor already on at the first check is dated to it
  (``factor_reading``), a switch-on dated to the first checked step of the last run
  above the threshold. One check at the end cannot date an opening, so such a trial
  keeps the bound, checked as above.

Orders across trials (``pairwise_order``, ``order_across_thresholds``, ``order_verdicts``):

- A group (``GROUPS``) opens when its first factor switches on. For a pair of groups
  (a, b) a trial orders them only when both opened: ``a_first``, ``b_first`` or ``ties``
  (the same row). A trial in which a opened and b never did is censored (``a_only``;
  ``b_only`` the other way), not an ordering: the fraction, its exact (Clopper-Pearson)
  interval and the p-value count only the trials where both opened, and the censored
  counts stand beside them.
- The null is what exchangeable factors give: a group of k factors opens before one of m
  with probability k / (k + m), so 2/3 for position (the earlier of posX and posY)
  against scale and 1/2 for two single factors (``pair_null``). ``p_value`` is the
  one-sided exact binomial P(X >= a_first) under it.
- Only replicates are pooled: the trials of one configuration (its config without the
  seed); every configuration has rows of its own.
- An order is a conclusion only when it holds at every threshold of ``THRESHOLDS``
  (10%, 15%, 25% and 40% of the entropy; 0.25 and 0.5 nats): the same group opened
  first in most of the trials where both opened, at each. It *holds where seen* when
  that is so at every threshold where both opened and one of them never opened at the
  others (the order is then claimed only where both were seen). Otherwise the order
  *depends on the threshold* (or is *split*: no majority at any), and the counts are
  given per threshold; a pair that no trial saw both of is *not seen*. Measured: the order of
  position and scale found at a 25% share has been seen to reverse at 10% or 15%.

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
- ``SECOND_RATIO = 0.5``: measured on a trained model, rows labelled ``posY`` and
  ``posX`` also changed the sprite's size in the traversal, which a one-factor label hid.
  Half of the first factor's information is a comparable amount: the traversal shows the
  second factor changing too. A smaller share is a leak beside the factor the latent
  codes, not a second code, and naming it would make labels lists. The second factor
  must also be told at ``LABEL_NATS`` itself, like any label.
- ``FACTOR_SHARE = 0.25``: a quarter of the entropy, 0.27 nats for shape to 0.92 for
  orientation; reachable by every factor (orientation's symmetries cap I(orientation; x)
  at about 80% of its entropy) and above the estimator's noise for each. The other
  ``THRESHOLDS`` are there to test the order against this choice, not to replace it.
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
    exact_info_key,
    factor_info_key,
    info_key,
    latent_factor_info_key,
)

ACTIVE_NATS = 0.1
LABEL_NATS = 0.25
SECOND_RATIO = 0.5  # a second factor this share of the first's information is named too
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
    "final_second", "final_second_info", "label", "final_info", "final_kl",
]  # fmt: skip
FACTOR_COLUMNS = [
    "trial_id", "factor", "entropy", "threshold", "step_on", "C_on", "final_info", "read",
]  # fmt: skip
PAIR_COLUMNS = [
    "a", "b", "a_first", "b_first", "ties", "a_only", "b_only", "neither", "unread", "n",
    "fraction", "low", "high", "null", "p_value", "paper",
]  # fmt: skip
BOUND_COLUMNS = ["trial_id", "factor", "step", "bound", "exact", "close"]
BOUND_SHARE = 0.5  # a held-out bound reads at least this share of the exact value ...
BOUND_NATS = 0.1  # ... or falls short of it by at most this many nats: it is read
EXACT_ROWS = 3  # a trial with exact values at this many steps has its factor order read off them


@dataclass(frozen=True)
class Threshold:
    """When a factor is on: the code tells ``value`` of its entropy (``kind="share"``) or
    ``value`` nats (``kind="nats"``) about it."""

    kind: str  # "share" or "nats"
    value: float

    @property
    def label(self) -> str:
        """``25%`` / ``0.5 nats``."""
        return f"{100 * self.value:.0f}%" if self.kind == "share" else f"{self.value:g} nats"


DEFAULT_THRESHOLD = Threshold("share", FACTOR_SHARE)
THRESHOLDS = (
    Threshold("share", 0.10),
    Threshold("share", 0.15),
    DEFAULT_THRESHOLD,
    Threshold("share", 0.40),
    Threshold("nats", 0.25),
    Threshold("nats", 0.5),
)


def thresholds_with(share: float) -> tuple[Threshold, ...]:
    """``THRESHOLDS`` with ``share`` among its shares (a report run at another share)."""
    shares = sorted({t.value for t in THRESHOLDS if t.kind == "share"} | {share})
    return (
        *(Threshold("share", v) for v in shares),
        *(t for t in THRESHOLDS if t.kind == "nats"),
    )


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
    second_ratio: float = SECOND_RATIO,
) -> pd.DataFrame:
    """One row per (trial_id, latent) with ``LATENT_COLUMNS`` from report rows sorted by
    trial then step (``trial_id``, ``step``, optionally ``C`` and ``kl_z{i}``, and the
    information columns). Vectorized over all trials; ``label`` is ``code_label``'s words."""
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
    # the runner-up at the last row: named too when comparable and told enough itself
    last = np.where(np.isnan(per[ends]), -np.inf, per[ends])  # (T, d, k)
    runner = np.argsort(-last, axis=-1, kind="stable")[..., 1] if k > 1 else final_best
    runner_info = np.take_along_axis(last, runner[..., None], -1)[..., 0]  # (T, d)
    second_ok = (
        final_ok
        & (runner != final_best)
        & np.take_along_axis(told[ends], runner[..., None], -1)[..., 0]
        & (runner_info >= second_ratio * best_info[ends])
    )
    final_second = np.where(second_ok, factor_names[runner], None)
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
            "final_second": pd.Series(list(final_second.ravel()), dtype=object),
            "final_second_info": np.where(second_ok, runner_info, np.nan).ravel(),
            "final_info": info[ends].ravel(),
            "final_kl": kl[ends].ravel(),
        }
    )
    # a trial with fewer latents than another has all-NaN columns for the rest: not latents
    has = np.logical_or.reduceat(~np.isnan(info), first_rows, axis=0).ravel()  # (T * d,)
    out = out.loc[has].reset_index(drop=True)
    cols = (out[c].tolist() for c in ("active", "factor", "final_factor", "final_second"))
    out["label"] = [_words(*r) for r in zip(*cols, strict=True)]
    return out[LATENT_COLUMNS]


def code_label(lat: pd.Series) -> str:
    """What a latent codes, in words, from its ``latent_switch_on`` row: ``posY``, ``posY +
    scale`` (a comparable second factor, ``final_second``), ``posY (opened on scale)``,
    ``no single factor (opened on scale)``, ``no single factor`` or ``inactive``. The final
    factor leads: it is what the trained model's latent does."""
    return _words(lat["active"], lat["factor"], lat["final_factor"], lat.get("final_second"))


def _words(active: bool, opened: str | None, final: str | None, second: str | None) -> str:
    if not active:
        return "inactive"
    now = final or "no single factor"
    now = f"{now} + {second}" if final and isinstance(second, str) else now
    return now if not opened or opened == final else f"{now} (opened on {opened})"


def factor_switch_on(
    curves: pd.DataFrame,
    share: float = FACTOR_SHARE,
    *,
    nats: float | None = None,
    unread: frozenset[tuple[str, str]] = frozenset(),
) -> pd.DataFrame:
    """One row per (trial_id, factor) with ``FACTOR_COLUMNS``: the first row of the last
    run in which the code tells at least ``share`` of the factor's entropy about it (or
    ``nats``, when given), a run ending below half of that; NaN when off at the end.
    ``read`` is False for the (trial_id, factor) pairs in ``unread`` (``unread_factors``:
    the rows' bound falls well short of the exact value), whose switch-on is no measurement."""
    names = [f for f in FACTOR_NAMES if factor_info_key(f) in curves]
    if curves.empty or not names:
        return pd.DataFrame(columns=FACTOR_COLUMNS)
    n, k = len(curves), len(names)
    info = _matrix(curves, [factor_info_key(f) for f in names])  # (N, k)
    h = np.array([ENTROPY[f] for f in names])
    level = np.full(k, float(nats)) if nats is not None else share * h  # (k,) nats
    ids = curves["trial_id"].to_numpy()
    starts = np.r_[True, ids[1:] != ids[:-1]]
    first_rows = np.flatnonzero(starts)
    ends = np.r_[first_rows[1:], n] - 1
    on = _hysteresis(info, starts, level, level / 2)  # (N, k)
    before = np.vstack([np.zeros((1, k), bool), on[:-1]]) & ~starts[:, None]
    rows = np.arange(n)[:, None]
    last_rise = np.maximum.accumulate(np.where(on & ~before, rows, -1), axis=0)  # (N, k)
    end_on = on[ends]  # (T, k)
    safe = np.where(end_on, last_rise[ends], 0)
    step = curves["step"].to_numpy(np.float64)
    cap = curves["C"].to_numpy(np.float64) if "C" in curves else np.full(n, np.nan)
    t = len(first_rows)
    trial_ids, factor_names = np.repeat(ids[first_rows], k), np.tile(names, t)
    return pd.DataFrame(
        {
            "trial_id": trial_ids,
            "factor": factor_names,
            "entropy": np.tile(h, t),
            "threshold": np.tile(level, t),
            "step_on": np.where(end_on, step[safe], np.nan).ravel(),
            "C_on": np.where(end_on, cap[safe], np.nan).ravel(),
            "final_info": info[ends].ravel(),
            "read": [(i, f) not in unread for i, f in zip(trial_ids, factor_names)],
        }
    )[FACTOR_COLUMNS]


def threshold_switch_on(
    curves: pd.DataFrame,
    threshold: Threshold,
    unread: frozenset[tuple[str, str]] = frozenset(),
) -> pd.DataFrame:
    """``factor_switch_on`` under ``threshold``."""
    if threshold.kind == "share":
        return factor_switch_on(curves, threshold.value, unread=unread)
    return factor_switch_on(curves, nats=threshold.value, unread=unread)


def bound_check(curves: pd.DataFrame, evaluations: pd.DataFrame) -> pd.DataFrame:
    """The held-out bound ``info/{factor}`` of the report rows against the exact value
    ``exact/{factor}`` of the evaluations at the same step (an image trial's whole-grid
    calculation): one row per (trial_id, factor, step) with ``BOUND_COLUMNS``; ``close``
    when the bound reads at least ``BOUND_SHARE`` of the exact value or falls short of it
    by at most ``BOUND_NATS``. Empty where no evaluation carries the exact value."""
    names = [f for f in FACTOR_NAMES if exact_info_key(f) in evaluations]
    names = [f for f in names if factor_info_key(f) in curves]
    if not names or curves.empty or evaluations.empty:
        return pd.DataFrame(columns=BOUND_COLUMNS)
    left = curves[["trial_id", "step", *[factor_info_key(f) for f in names]]]
    right = evaluations[["trial_id", "step", *[exact_info_key(f) for f in names]]]
    both = left.merge(right, on=["trial_id", "step"])
    frames = []
    for f in names:
        bound = both[factor_info_key(f)].to_numpy(np.float64)
        exact = both[exact_info_key(f)].to_numpy(np.float64)
        ok = ~(np.isnan(bound) | np.isnan(exact))
        bound, exact = bound[ok], exact[ok]
        frames.append(
            pd.DataFrame(
                {
                    "trial_id": both["trial_id"].to_numpy()[ok],
                    "factor": f,
                    "step": both["step"].to_numpy()[ok],
                    "bound": bound,
                    "exact": exact,
                    "close": (bound >= BOUND_SHARE * exact) | (exact - bound <= BOUND_NATS),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["trial_id", "step"], kind="stable", ignore_index=True)[BOUND_COLUMNS]


@dataclass(frozen=True, eq=False)  # holds tables: compared by identity
class FactorReading:
    """What a factor's switch-on is read from, trial by trial (``factor_reading``):
    ``curves`` has the rows to pass to ``factor_switch_on`` and the order functions,
    ``check`` the ``bound_check``, ``unread`` its unread (trial_id, factor) pairs among
    the trials read off the bound, ``exact`` the trials read off their exact values."""

    curves: pd.DataFrame
    check: pd.DataFrame
    unread: frozenset[tuple[str, str]]
    exact: frozenset[str]


def factor_reading(curves: pd.DataFrame, evaluations: pd.DataFrame) -> FactorReading:
    """Per trial, the best estimate of its factors' information to date their switch-on
    by. A trial whose evaluations carry the exact value (``exact/{factor}``) at
    ``EXACT_ROWS`` or more steps is read off those: its rows in ``curves`` are replaced by
    one row per such step, with the exact values as ``info/{factor}`` (and the report
    row's C), so a switch-on is dated to the first checked step of the factor's last run
    above the threshold (the crossing lies after the check before it). Fewer checks cannot
    date an opening (one at the end only tells what the code reached), so the other
    trials are read off the rows' held-out bound, with the factors it misses unread
    (``bound_check``, ``unread_factors``). In an exact-read trial a factor without an
    exact value at each of its checked rows is unread."""
    check = bound_check(curves, evaluations)
    names = [f for f in FACTOR_NAMES if exact_info_key(f) in evaluations]
    if not len(check) or not names:
        return FactorReading(curves, check, unread_factors(check), frozenset())
    keys = [exact_info_key(f) for f in names]
    keep = ["trial_id", "step", *(["C"] if "C" in curves else [])]
    evals = evaluations[["trial_id", "step", *keys]].dropna(how="all", subset=keys)
    rows = curves[keep].merge(evals, on=["trial_id", "step"])
    checked = rows.groupby("trial_id")["step"].nunique()
    exact = frozenset(checked.index[checked >= EXACT_ROWS])
    if not exact:
        return FactorReading(curves, check, unread_factors(check), frozenset())
    rows = rows[rows["trial_id"].isin(exact)].rename(
        columns={k: factor_info_key(f) for f, k in zip(names, keys)}
    )
    read = [f for f in FACTOR_NAMES if factor_info_key(f) in curves]
    missing = frozenset(
        (tid, f)
        for tid, mine in rows.groupby("trial_id")
        for f in read
        if factor_info_key(f) not in mine or mine[factor_info_key(f)].isna().any()
    )
    order = {t: i for i, t in enumerate(dict.fromkeys(curves["trial_id"]))}
    out = pd.concat([curves[~curves["trial_id"].isin(exact)], rows], ignore_index=True)
    out = out.sort_values(
        ["trial_id", "step"],
        key=lambda s: s.map(order) if s.name == "trial_id" else s,
        kind="stable",
        ignore_index=True,
    )
    bound_only = check[~check["trial_id"].isin(exact)]
    return FactorReading(out, check, unread_factors(bound_only) | missing, exact)


def unread_factors(check: pd.DataFrame) -> frozenset[tuple[str, str]]:
    """The (trial_id, factor) pairs of a ``bound_check`` whose bound is not close to the
    exact value at one of its checked steps: their switch-on from the bound is no
    measurement (the bound only ever delays it), so no order is read from them."""
    bad = check[~check["close"].astype(bool)]
    return frozenset(zip(bad["trial_id"], bad["factor"]))


def trial_order(factors: pd.DataFrame) -> list[list[str]]:
    """One trial's factors by switch-on step; factors switching on at the same row share
    a place: ``[["posX", "posY"], ["scale"]]``. Unread factors are left out."""
    read = factors["read"].astype(bool) if "read" in factors else True
    on = factors[factors["step_on"].notna() & read].sort_values("step_on", kind="stable")
    return [list(g["factor"]) for _, g in on.groupby("step_on", sort=True)]


def unread_note(factors: pd.DataFrame) -> str:
    """`` (unread: orientation, shape)`` for a trial's unread factors, else ""."""
    if "read" not in factors:
        return ""
    names = list(factors.loc[~factors["read"].astype(bool), "factor"])
    return f" (unread: {', '.join(names)})" if names else ""


def format_order(order: list[list[str]]) -> str:
    """``[["posX", "posY"], ["scale"]]`` -> ``"posX = posY > scale"`` ("" when empty)."""
    return " > ".join(" = ".join(place) for place in order)


def group_switch_on(factors: pd.DataFrame) -> pd.DataFrame:
    """Per (trial_id, group): the step and C at which its first factor switched on (NaN:
    none of its factors did), and ``read``: each of its factors is read (a group opens
    with its first factor, so one unread factor leaves the group's opening unread)."""
    group_of = {f: g for g, members in GROUPS.items() for f in members}
    ids = list(dict.fromkeys(factors["trial_id"]))
    tagged = factors.assign(group=factors["factor"].map(group_of))
    on = tagged[tagged["step_on"].notna()]
    first = on.sort_values("step_on", kind="stable").drop_duplicates(["trial_id", "group"])
    grid = pd.MultiIndex.from_product([ids, list(GROUPS)], names=["trial_id", "group"])
    out = first.set_index(["trial_id", "group"])[["step_on", "C_on"]].reindex(grid)
    read = tagged["read"] if "read" in tagged else pd.Series(True, tagged.index)
    out["read"] = (
        tagged.assign(read=read.astype(bool)).groupby(["trial_id", "group"])["read"].all()
    ).reindex(grid, fill_value=True)
    return out.reset_index()


@dataclass
class PairwiseOrder:
    """Across the trials of one configuration, for each pair of groups (a, b): in how
    many of the trials where both opened a opened first.

    ``table`` columns (``PAIR_COLUMNS``): a, b, a_first, b_first, ties (both at the same
    row), a_only (a opened, b never did), b_only, neither, n (= a_first + b_first),
    fraction (a_first / n), low, high (exact Clopper-Pearson interval), null (the
    fraction under exchangeable factors, ``pair_null``), p_value (one-sided exact
    binomial P(X >= a_first) under the null), paper (True when the paper puts a before
    b, None when it ranks them alike). Censored trials (a_only, b_only) and ties do not
    enter n.
    """

    table: pd.DataFrame


def pairwise_order(groups: pd.DataFrame, confidence: float = 0.95) -> PairwiseOrder:
    """The pairwise-order summary from ``group_switch_on`` rows of the trials to count."""
    wide = groups.pivot(index="trial_id", columns="group", values="step_on")
    names = [g for g in GROUPS if g in wide.columns]
    read = (
        groups.pivot(index="trial_id", columns="group", values="read").reindex(wide.index)
        if "read" in groups
        else pd.DataFrame(True, index=wide.index, columns=names)
    )
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = wide[a].to_numpy(), wide[b].to_numpy()
            ok = (
                read[a].fillna(True).astype(bool).to_numpy()
                & read[b].fillna(True).astype(bool).to_numpy()
            )
            ia, ib = ~np.isnan(sa) & ok, ~np.isnan(sb) & ok
            both = ia & ib
            a_first, b_first = int(np.sum(both & (sa < sb))), int(np.sum(both & (sb < sa)))
            n = a_first + b_first
            null = pair_null(a, b)
            low, high = clopper_pearson(a_first, n, confidence)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "a_first": a_first,
                    "b_first": b_first,
                    "ties": int(np.sum(both & (sa == sb))),
                    "a_only": int(np.sum(ia & ~ib)),
                    "b_only": int(np.sum(ib & ~ia)),
                    "neither": int(np.sum(~ia & ~ib & ok)),
                    "unread": int(np.sum(~ok)),
                    "n": n,
                    "fraction": a_first / n if n else np.nan,
                    "low": low,
                    "high": high,
                    "null": null,
                    "p_value": binomial_tail(a_first, n, null) if n else np.nan,
                    "paper": PAPER_RANK[a] < PAPER_RANK[b]
                    if PAPER_RANK[a] != PAPER_RANK[b]
                    else None,
                }
            )
    return PairwiseOrder(pd.DataFrame(rows, columns=PAIR_COLUMNS))


def pair_null(a: str, b: str) -> float:
    """P(group a opens before group b) when all factors are exchangeable: a group opens
    with its first factor, so k factors against m give k / (k + m); 2/3 for position
    (two axes) against one factor, 1/2 for one factor against another."""
    k, m = len(GROUPS[a]), len(GROUPS[b])
    return k / (k + m)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (a sum of terms in log space)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0 or p >= 1.0:
        return float(p >= 1.0)
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * lp + (n - j) * lq
        for j in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k/n (NaN, NaN when
    n = 0): the p at which P(X >= k) and P(X <= k) are each (1 - confidence) / 2, found
    by bisection on the binomial tail (the regularized incomplete beta function)."""
    if n == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    low = 0.0 if k == 0 else _bisect(lambda p: binomial_tail(k, n, p) - alpha)
    high = 1.0 if k == n else _bisect(lambda p: alpha - (1 - binomial_tail(k + 1, n, p)))
    return low, high


def order_across_thresholds(
    curves: pd.DataFrame,
    configurations: dict[str, str] | None = None,
    thresholds: tuple[Threshold, ...] = THRESHOLDS,
    confidence: float = 0.95,
    unread: frozenset[tuple[str, str]] = frozenset(),
) -> pd.DataFrame:
    """``pairwise_order`` per configuration (``configurations``: trial_id -> its
    configuration's description; one "all trials" when None) and per threshold: columns
    configuration, threshold (its label), then ``PAIR_COLUMNS``. Only the trials of one
    configuration are pooled; ``unread`` as for ``factor_switch_on``."""
    ids = list(dict.fromkeys(curves["trial_id"]))
    config = {i: (configurations or {}).get(i, "all trials") for i in ids}
    frames = []
    for t in thresholds:
        groups = group_switch_on(threshold_switch_on(curves, t, unread))
        for c in dict.fromkeys(config.values()):
            mine = groups[groups["trial_id"].map(config) == c]
            table = pairwise_order(mine, confidence).table
            frames.append(table.assign(configuration=c, threshold=t.label))
    cols = ["configuration", "threshold", *PAIR_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)[cols]
    order = {c: i for i, c in enumerate(dict.fromkeys(config.values()))}
    return out.sort_values(
        ["configuration", "a", "b"],
        key=lambda s: s.map(order) if s.name == "configuration" else s.map(_group_rank),
        kind="stable",
        ignore_index=True,
    )


VERDICT_COLUMNS = ["configuration", "a", "b", "verdict", "first", "text"]


def order_verdicts(table: pd.DataFrame, default: str = DEFAULT_THRESHOLD.label) -> pd.DataFrame:
    """Per (configuration, a, b) of an ``order_across_thresholds`` table, whether its
    order holds at every threshold: columns configuration, a, b, verdict ("holds",
    "holds where seen", "depends", "split" or "not seen"), first (the group that opened
    first when it holds, else None) and text, the summary line, with the counts at the
    ``default`` threshold's label:

    - holds: the same group opened first in most trials where both opened ("every
      trial" when in all of them), at every threshold: ``position before scale in every
      trial where both opened, at every threshold from 10% to 40% and 0.25 to 0.5 nats;
      at 25%: 4 of 4 trials (0.40–1.00; chance 0.67, p = 0.2)``
    - holds where seen: as holds, at every threshold where both opened, with one of
      them never opening at the others (no order is claimed there): ``position before
      scale in every trial where both opened, at every threshold where both did (10%,
      15%, 25%, 0.25 nats and 0.5 nats; not seen at 40%); at 25%: ...``
    - depends: one group at some thresholds, the other (or neither) at others:
      ``position before scale depends on the threshold: 10%: 0 of 4, 15%: 1 of 4, ...``
    - split: no majority either way at any threshold where both opened
    - not seen: no trial had both open at any threshold: ``scale before orientation: not
      seen at any threshold (orientation never opened in 4 trials at 25%)``
    """
    rows = []
    for (c, a, b), g in table.groupby(["configuration", "a", "b"], sort=False):
        g = g.set_index("threshold")
        seen = g["n"] > 0
        sign = np.sign(g["a_first"] - g["b_first"])
        at = g.loc[default] if default in g.index else g.iloc[0]
        if not seen.any():
            verdict, first = "not seen", None
            where = ("", "") if len(g) == 1 else (" at any threshold", f" at {at.name}")
            text = f"{a} before {b}: not seen{where[0]} ({unseen_reason(at, a, b)}{where[1]})"
        elif (sign[seen] == sign[seen].iloc[0]).all() and sign[seen].iloc[0] != 0:
            first = a if sign[seen].iloc[0] > 0 else b
            leads = (g["a_first"] if first == a else g["b_first"])[seen]
            share = "every trial" if (leads == g["n"][seen]).all() else "most trials"
            share += " where both opened" + (" (ties apart)" if (g["ties"][seen] > 0).any() else "")
            if seen.all():
                verdict, where = "holds", f"at {_threshold_span(list(g.index))}"
            else:  # one of them never reached some thresholds: no order claimed there
                verdict = "holds where seen"
                shown = list(g.index[seen])
                tied = list(g.index[~seen & (g["ties"] > 0)])
                unseen = list(g.index[~seen & (g["ties"] == 0)])
                rest = "; ".join(
                    [*([f"tied at {_and(tied)}"] if tied else []),
                     *([f"not seen at {_and(unseen)}"] if unseen else [])]
                )  # fmt: skip
                where = f"at every threshold where both did ({_and(shown)}; {rest})"
            at_text = (
                _counts(at, first == a) + censored_note(at, a, b)
                if at["n"]
                else f"not seen ({unseen_reason(at, a, b)})"
            )
            text = (
                f"{first} before {b if first == a else a} in {share}, {where}; at {at.name}: "
                f"{at_text}"
            )
        else:
            per = ", ".join(f"{t}: {_per_threshold(r)}" for t, r in g.iterrows())
            if (sign[seen] == 0).all():
                verdict, first, what = "split", None, ": no majority at any threshold"
            else:
                verdict, first, what = "depends", None, " depends on the threshold"
            ties = "; tied: both at the same row" if (g["ties"] > 0).any() else ""
            text = f"{a} before {b}{what}: {per} (trials where both opened{ties})"
        rows.append(
            {"configuration": c, "a": a, "b": b, "verdict": verdict, "first": first, "text": text}
        )
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _per_threshold(row: pd.Series) -> str:
    """``2 of 3`` / ``0 of 2 (1 tied)`` / ``tied in 3`` / ``not seen``: one threshold's
    count in an order that depends on the threshold."""
    ties = int(row["ties"])
    if row["n"]:
        return f"{row['a_first']} of {row['n']}" + (f" ({ties} tied)" if ties else "")
    return f"tied in {ties}" if ties else "not seen"


def _counts(row: pd.Series, a_leads: bool) -> str:
    """``4 of 4 trials (0.40–1.00; chance 0.67, p = 0.20)`` for the group that leads."""
    n = int(row["n"])
    if a_leads:
        k, low, high, null, p = row["a_first"], row["low"], row["high"], row["null"], row["p_value"]
    else:
        k, low, high = row["b_first"], 1 - row["high"], 1 - row["low"]
        null, p = 1 - row["null"], binomial_tail(int(row["b_first"]), n, 1 - row["null"])
    trials = "trial" if n == 1 else "trials"
    return f"{k} of {n} {trials} ({low:.2f}–{high:.2f}; chance {null:.2f}, p = {p:.2g})"


def censored_note(row: pd.Series, a: str, b: str) -> str:
    parts = [
        f"only {g} opened in {int(row[c])}" for g, c in ((a, "a_only"), (b, "b_only")) if row[c]
    ]
    if row.get("unread", 0):
        parts.append(f"unread in {int(row['unread'])} (the bound falls short of the exact value)")
    return f"; {', '.join(parts)}" if parts else ""


def unseen_reason(row: pd.Series, a: str, b: str) -> str:
    unread = int(row.get("unread", 0))
    total = int(row[["a_first", "b_first", "ties", "a_only", "b_only", "neither"]].sum())
    if unread and not total:
        trials = "trial" if unread == 1 else "trials"
        return (
            f"unread in {unread} {trials}: the held-out bound falls short of the exact value "
            f"of {a} or {b}, so its switch-on is no measurement"
        )
    if unread:
        return f"{_unseen(row, a, b, total)}; unread in {unread}"
    return _unseen(row, a, b, total)


def _unseen(row: pd.Series, a: str, b: str, total: int) -> str:
    a_open = row["a_first"] + row["b_first"] + row["ties"] + row["a_only"]
    b_open = row["a_first"] + row["b_first"] + row["ties"] + row["b_only"]
    trials = "trial" if total == 1 else "trials"
    if not a_open and not b_open:
        return f"neither opened in {total} {trials}"
    if not b_open:
        return f"{b} never opened in {total} {trials}"
    if not a_open:
        return f"{a} never opened in {total} {trials}"
    if row["ties"] and not (row["a_only"] or row["b_only"]):
        return f"they opened at the same report in {int(row['ties'])}"
    a_only, b_only = int(row["a_only"]), int(row["b_only"])
    return f"never both in one trial; only {a} opened in {a_only}, only {b} in {b_only}"


def _and(labels: list[str]) -> str:
    """``10%, 15% and 0.5 nats``."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _threshold_span(labels: list[str]) -> str:
    """``every threshold from 10% to 40% and 0.25 to 0.5 nats`` (``the 25% threshold``)."""
    if len(labels) == 1:
        return f"the {labels[0]} threshold"
    shares = [lab for lab in labels if lab.endswith("%")]
    nats = [lab.removesuffix(" nats") for lab in labels if lab.endswith(" nats")]
    spans = []
    if shares:
        spans.append(shares[0] if len(shares) == 1 else f"from {shares[0]} to {shares[-1]}")
    if nats:
        spans.append(f"{nats[0]} nats" if len(nats) == 1 else f"{nats[0]} to {nats[-1]} nats")
    return "every threshold " + " and ".join(spans)


def _group_rank(name: str) -> int:
    return list(GROUPS).index(name)


def _bisect(f, lo: float = 0.0, hi: float = 1.0, iterations: int = 60) -> float:
    """The root of an increasing ``f`` on [lo, hi]."""
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


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
