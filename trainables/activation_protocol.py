"""The paper's activation-order measurement, compressed to fit a CPU (``betastudy bench
activation``).

Burgess et al. 2018's claim, as ``analysis.switch_on`` measures it: as the capacity C
grows, information about position enters the code first, then scale, then orientation
and shape. A protocol trains with the capacity objective at the paper's gamma = 1000,
C ramped slowly enough that the KL tracks it, on several seeds (each its own process,
one thread each), and reads every report row's information columns. Per seed it gives
each factor's switch-on C and the order; across seeds, per pair of factor groups, the
share of seeds in which one opened first, with its interval. Two protocols:

- ``factors``: the factor-conditioned bottleneck q(z|f) (the paper's first
  experiment): C 0 -> 20 over 5,000 steps, about two minutes a seed.
- ``images``: the image encoder q(z|x), the paper's main experiment, sized for a
  2-core CPU (three seeds, two at a time: measured 1,504 s of training, exact checks
  included, 25 minutes in all): the Burgess model at
  half width (16 channels, 256 -> 128 hidden units), bf16 where the CPU has bf16 units,
  batch 64 and lr 5e-4 as in the paper, C 0 -> 20 over 20,000 steps (the paper: 0 -> 25
  over 100,000; disentanglement_lib's AnnealedVAE: gamma 1000, 100,000 steps). Chosen
  by measurement (one seed each, C rising 0.001 nats a step as here): the KL tracks C
  within 0.02 nats and the code starts telling about the image by step 750; the same
  model at lr 1e-3 and batch 32 met C = KL with no information about the image at all
  (recon 562-570 nats through C = 7); the full-width model starts the same way at about
  two thirds of the speed (11.5 against 17.5 steps a second, side by side). The held-out
  bound reads orientation at 0 and shape at a few percent of their exact values on this
  code (measured at C = 20: 0.00 of 3.64 nats, 0.06 of 1.08), so each seed encodes every
  one of the 737,280 grid images where C reaches each of ``EXACT_AT_C`` and at its end
  (about a minute each on one thread) and its order is read off those exact values
  (``switch_on.factor_reading``).

The ``burgess2018`` preset is the GPU version of the same measurement (full model,
100,000-step ramp).
"""

from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import switch_on as so
from analysis.contract import FACTOR_NAMES, factor_info_key

PROTOCOL: dict[str, Any] = {  # the factor encoder's
    "objective": "capacity",
    "encoder": "factors",
    "gamma": 1000.0,
    "c_start": 0.0,
    "c_max": 20.0,
    "c_steps": 5000,
    "steps": 6000,
    "batch_size": 32,
    "lr": 1e-3,
    "latent_dim": 10,
    "channels": 16,
    "hidden": 256,
    "report_every": 100,
    "probe_points": 2048,
    "eval_every": 0,
    "checkpoint_every": 0,
    "device": "cpu",
}
IMAGES: dict[str, Any] = {
    **PROTOCOL,
    "encoder": "image",
    "c_steps": 20_000,
    "steps": 21_000,
    "batch_size": 64,
    "lr": 5e-4,
    "channels": 16,
    "hidden": 128,
    "report_every": 200,
    "probe_points": 1024,
    "grid_info_images": "end",  # and run_seed checks every grid image at EXACT_AT_C
}
# the capacities (nats) at which an image seed's code is checked over every grid image,
# and its last row: dense where position and scale open (C 2-9 on the bound), about 61 s
# each with the half-width model on one thread (benchmarks/exact_information.py)
EXACT_AT_C = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 11.0, 15.0)
PROTOCOLS = {"factors": PROTOCOL, "images": IMAGES}


def protocol_config(name: str) -> dict[str, Any]:
    """The named protocol's trial config; ``images`` in bf16 where this CPU has bf16 units."""
    import torch

    config = dict(PROTOCOLS[name])
    if name == "images" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        config["precision"] = "bf16"
    return config


def run_seed(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one seed (no evaluation, no checkpoints); its report rows with the probe."""
    import torch
    from threadpoolctl import threadpool_limits

    from trainables.config import TrialConfig
    from trainables.trainer import Trainer

    torch.set_num_threads(1)  # one core per seed: jobs never fight over threads
    cfg = TrialConfig.from_dict(config)
    trainer = Trainer(cfg)
    check = cfg.grid_info_images != "off"  # --set grid_info_images=off: the bound alone
    checks = exact_steps(cfg) if check else frozenset()
    rows = []
    with threadpool_limits(1):  # the probe's numpy too
        while trainer.step < cfg.steps:
            row = trainer.train_steps(min(cfg.report_every, cfg.steps - trainer.step))
            row.update(trainer.measure())
            final = trainer.step >= cfg.steps
            if check and (final or trainer.step in checks):
                row.update(trainer.exact_information())
            rows.append({"trial_id": f"seed {cfg.seed}", **row})
    return rows


def exact_steps(cfg: Any) -> frozenset[int]:
    """The report steps at which the schedule's C first reaches each of ``EXACT_AT_C``
    (``objectives.capacity_check_steps``), where an image seed checks its code over
    every grid image; the last row is checked besides. Fewer than the trainer's own
    ``grid_info_images = capacity`` checks: each costs a minute on one CPU thread."""
    from trainables.objectives import capacity_check_steps

    return frozenset(capacity_check_steps(cfg, EXACT_AT_C))


def run_protocol(
    seeds: list[int],
    overrides: dict[str, Any] | None = None,
    jobs: int = 1,
    base: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every seed's rows, stacked (trial_id = "seed N"), sorted by seed then step;
    ``base`` is the protocol's config (default: the factor encoder's)."""
    configs = [{**(base or PROTOCOL), **(overrides or {}), "seed": s} for s in seeds]
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = pool.map(run_seed, configs)
    else:
        results = [run_seed(c) for c in configs]
    return pd.DataFrame([r for rows in results for r in rows])


@dataclass(frozen=True)
class SeedOrder:
    """One seed's last report row and when each of its factors switched on."""

    trial_id: str  # "seed N"
    recon: float  # the last row's, nats
    kl: float
    C: float
    order: tuple[tuple[str, ...], ...]  # factors by switch-on; a tuple: same row
    switch_on_c: dict[str, float]  # per factor (FACTOR_NAMES), its switch-on C; NaN: never
    # per factor checked at the last row: (held-out bound, exact value, read); {}: unchecked
    checked: dict[str, tuple[float, float, bool]] = field(default_factory=dict)
    # the exact values its order is read from (switch_on.factor_reading): per checked row
    # (C, {factor: nats}); (): the order is read off the held-out bound
    exact: tuple[tuple[float, dict[str, float]], ...] = ()


@dataclass(frozen=True, eq=False)  # holds tables: compared by identity
class ActivationResult:
    """The activation-order measurement over the seeds of one configuration:
    ``threshold`` is the default one (a share of each factor's entropy), ``pairs`` the
    pairwise order of factor groups at it (``switch_on.PAIR_COLUMNS``, one row per pair
    a, b), ``verdicts`` whether each pair's order holds at every one of ``thresholds``
    (``switch_on.VERDICT_COLUMNS``)."""

    threshold: so.Threshold
    seeds: tuple[SeedOrder, ...]
    # per factor, nats the code tells at the end, mean over seeds: the exact value where
    # the seed's last row was checked over every grid image, else its row's value
    final_info: dict[str, float]
    never_opened: tuple[str, ...]  # factors no seed switched on (read in every seed)
    unread: tuple[str, ...]  # factors whose bound fell short of the exact value in a seed
    pairs: pd.DataFrame
    thresholds: tuple[so.Threshold, ...]
    verdicts: pd.DataFrame

    def pair(self, a: str, b: str) -> pd.Series:
        """The ``pairs`` row of groups ``a`` before ``b``."""
        return self.pairs.set_index(["a", "b"]).loc[(a, b)]

    def verdict(self, a: str, b: str) -> pd.Series:
        """The ``verdicts`` row of groups ``a`` before ``b``."""
        return self.verdicts.set_index(["a", "b"]).loc[(a, b)]


def activation_result(rows: pd.DataFrame, share: float = so.FACTOR_SHARE) -> ActivationResult:
    """The measurement from the seeds' report rows (``run_protocol``): per seed its last
    row and each factor's switch-on C and the order, at ``share`` of each factor's
    entropy; the factors no seed opened; per pair of factor groups, over the seeds where
    both opened, how often the first opened first, with its exact interval, the chance
    level and the censored seeds; and whether each pair's order holds at every threshold
    of ``switch_on.THRESHOLDS``. The seeds are replicates of one configuration. A seed
    with the exact value at ``switch_on.EXACT_ROWS`` or more rows is read off those
    (``switch_on.factor_reading``); the others off the held-out bound, checked where
    they can be."""
    reading = so.factor_reading(rows, rows)
    check, unread, read = reading.check, reading.unread, reading.curves
    factors = so.factor_switch_on(read, share, unread=unread)
    last = rows.groupby("trial_id", sort=False).tail(1).set_index("trial_id")
    seeds = []
    for tid, g in factors.groupby("trial_id", sort=False):
        c_on = g.set_index("factor")["C_on"]
        r = last.loc[tid]
        mine = check[check["trial_id"] == tid].groupby("factor", sort=False).tail(1)
        seeds.append(
            SeedOrder(
                trial_id=tid,
                recon=float(r["recon"]),
                kl=float(r["kl"]),
                C=float(r["C"]),
                order=tuple(tuple(place) for place in so.trial_order(g)),
                switch_on_c={f: float(c_on[f]) for f in FACTOR_NAMES},
                checked={
                    f: (float(b), float(e), (tid, f) not in unread)
                    for f, b, e in zip(mine["factor"], mine["bound"], mine["exact"])
                },
                exact=_exact_rows(read[read["trial_id"] == tid]) if tid in reading.exact else (),
            )
        )
    default = so.Threshold("share", share)
    thresholds = so.thresholds_with(share)
    final = factors.set_index(["trial_id", "factor"])["final_info"].astype(float)
    return ActivationResult(
        threshold=default,
        seeds=tuple(seeds),
        final_info={
            f: float(
                np.mean(
                    [
                        s.checked[f][1] if f in s.checked else final.get((s.trial_id, f), np.nan)
                        for s in seeds
                    ]
                )
            )
            for f in FACTOR_NAMES
        },
        never_opened=tuple(
            f
            for f, g in factors.groupby("factor", sort=False)
            if g["step_on"].isna().all() and g["read"].all()
        ),
        unread=tuple(f for f in FACTOR_NAMES if any((s, f) in unread for s, _ in unread)),
        pairs=so.pairwise_order(so.group_switch_on(factors)).table,
        thresholds=thresholds,
        verdicts=so.order_verdicts(
            so.order_across_thresholds(read, thresholds=thresholds, unread=unread), default.label
        ),
    )


def _exact_rows(rows: pd.DataFrame) -> tuple[tuple[float, dict[str, float]], ...]:
    names = [f for f in FACTOR_NAMES if factor_info_key(f) in rows]
    return tuple(
        (float(r["C"]), {f: float(r[factor_info_key(f)]) for f in names})
        for _, r in rows.iterrows()
    )


def format_activation(result: ActivationResult) -> list[str]:
    """The lines ``betastudy bench activation`` prints for ``result``."""
    default = result.threshold
    lines = [
        f"a factor switches on at the first row of its last run at or above {default.label} "
        "of its entropy (off below half of that); C: the window mean of the rows"
    ]
    for seed in result.seeds:
        opened = ", ".join(
            f"{f} {'-' if math.isnan(c) else format(c, '.2f')}" for f, c in seed.switch_on_c.items()
        )
        order = so.format_order([list(place) for place in seed.order]) or "(none)"
        unread = [f for f, (_, _, ok) in seed.checked.items() if not ok]
        order += f" (unread: {', '.join(unread)})" if unread else ""
        lines.append(
            f"{seed.trial_id}: recon {seed.recon:.1f}, KL {seed.kl:.2f}, C {seed.C:.2f}, "
            f"order {order}; switch-on C: {opened}"
        )
        if seed.exact:
            cs = "/".join(f"{c:.1f}" for c, _ in seed.exact)
            lines.append(
                f"  order read off the exact values over every grid image, at C {cs} (nats): "
                + "; ".join(
                    f"{f} " + "/".join(f"{info[f]:.2f}" for _, info in seed.exact)
                    for f in seed.exact[0][1]
                )
            )
        if seed.checked:
            whose = "; the order does not use the bound" if seed.exact else ""
            lines.append(
                f"  held-out bound / exact over every grid image at the end (nats{whose}): "
                + ", ".join(
                    f"{f} {b:.2f}/{e:.2f}{'' if ok else ' unread'}"
                    for f, (b, e, ok) in seed.checked.items()
                )
            )
    n = len(result.seeds)
    n_checked = sum(bool(seed.checked) for seed in result.seeds)
    n_exact = sum(bool(seed.exact) for seed in result.seeds)
    which = (
        ""
        if not n_checked
        else ", exact over every grid image"
        if n_checked == n
        else f", exact over every grid image in {n_checked} of {n} seeds, the rows' in the others"
    )
    lines.append(f"final information per factor (nats), mean over seeds{which}: " + ", ".join(
        f"{f} {info:.2f}" for f, info in result.final_info.items()
    ))  # fmt: skip
    if result.never_opened:
        bound = (
            "the bound checked against the exact value at the end"
            if n_checked == n
            else "as the probe reads them, and it undershoots shape and orientation: "
            "docs/activation.md, 'The held-out bound undershoots'"
        )
        how = (
            "read off the exact values over every grid image"
            if n_exact == n
            else f"read off the exact values over every grid image in {n_exact} of {n} "
            f"seeds, in the others {bound}"
            if n_exact
            else bound
        )
        lines.append(
            f"never opened within the budget, in any seed: {', '.join(result.never_opened)} "
            f"(no order is claimed for them; {how})"
        )
    if result.unread:
        missing = " (or, in a seed read off exact values, a check lacked its value)"
        lines.append(
            f"unread (the held-out bound fell short of the exact value: below "
            f"{100 * so.BOUND_SHARE:.0f}% of it and by more than {so.BOUND_NATS} nats"
            f"{missing if any(seed.exact for seed in result.seeds) else ''}) in at least one "
            f"seed: {', '.join(result.unread)}; no order is claimed for them there"
        )
    lines.append(
        f"pairs of factor groups at {default.label}, over the seeds where both opened "
        "(paper: position < scale < orientation, shape):"
    )
    for _, p in result.pairs.iterrows():
        head = f"  {p['a']} before {p['b']}: "
        if not p["n"]:
            lines.append(head + f"not seen ({so.unseen_reason(p, p['a'], p['b'])})")
            continue
        lines.append(
            head + f"{p['a_first']} of {p['n']} ({p['low']:.2f}–{p['high']:.2f}; chance "
            f"{p['null']:.2f}, p = {p['p_value']:.2g}; ties {p['ties']})"
            + so.censored_note(p, p["a"], p["b"])
        )
    labels = ", ".join(t.label for t in result.thresholds)
    lines.append(f"across thresholds ({labels}):")
    lines += [f"  {t}" for t in result.verdicts["text"]]
    return lines
