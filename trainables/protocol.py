"""The paper's activation-order measurement, compressed to fit a CPU (``betastudy bench
activation``).

Burgess et al. 2018's claim, as ``analysis.switch_on`` measures it: as the capacity C
grows, information about position enters the code first, then scale, then orientation
and shape. The protocol trains the factor-conditioned bottleneck q(z|f) with the
capacity objective at the paper's gamma = 1000, C ramped slowly enough that the decoder
keeps up, on several seeds (each its own process, one thread each), and reads every
report row's information columns. Per seed it gives each factor's switch-on C and the
order; across seeds, per pair of factor groups, the share of seeds in which one opened
first, with a Wilson interval. The ``burgess2018`` preset is the GPU version of the same
measurement (image encoder, 100,000-step ramp).
"""

from __future__ import annotations

import math
import multiprocessing
from typing import Any

import pandas as pd

from analysis import switch_on as so
from analysis.contract import FACTOR_NAMES

PROTOCOL: dict[str, Any] = {
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


def run_seed(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one seed (no evaluation, no checkpoints); its report rows with the probe."""
    import torch

    from trainables.config import TrialConfig
    from trainables.trainer import Trainer

    torch.set_num_threads(1)  # one core per seed: jobs never fight over threads
    cfg = TrialConfig.from_dict(config)
    trainer = Trainer(cfg)
    rows = []
    while trainer.step < cfg.steps:
        row = trainer.train_steps(min(cfg.report_every, cfg.steps - trainer.step))
        row.update(trainer.measure())
        rows.append({"trial_id": f"seed {cfg.seed}", **row})
    return rows


def run_protocol(
    seeds: list[int], overrides: dict[str, Any] | None = None, jobs: int = 1
) -> pd.DataFrame:
    """Every seed's rows, stacked (trial_id = "seed N"), sorted by seed then step."""
    configs = [{**PROTOCOL, **(overrides or {}), "seed": s} for s in seeds]
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = pool.map(run_seed, configs)
    else:
        results = [run_seed(c) for c in configs]
    return pd.DataFrame([r for rows in results for r in rows])


def protocol_lines(rows: pd.DataFrame, share: float = so.FACTOR_SHARE) -> list[str]:
    """The printed result: per seed each factor's switch-on C and the order; per pair of
    factor groups the fraction of seeds where the first opened first, with its interval."""
    factors = so.factor_switch_on(rows, share)
    lines = [
        f"a factor switches on when the code tells {100 * share:.0f}% of its entropy about it "
        "(C: window mean of the rows)",
        f"{'seed':<8}" + "".join(f"{f:>13}" for f in FACTOR_NAMES) + "   final recon   order",
    ]
    last = rows.groupby("trial_id", sort=False).tail(1).set_index("trial_id")
    for tid, g in factors.groupby("trial_id", sort=False):
        c_on = g.set_index("factor")["C_on"]
        cells = "".join(
            f"{'-' if math.isnan(c_on[f]) else format(c_on[f], '.2f'):>13}" for f in FACTOR_NAMES
        )
        recon = last.at[tid, "recon"]
        order = so.format_order(so.trial_order(g)) or "(none)"
        lines.append(f"{tid:<8}{cells}   {recon:11.1f}   {order}")
    lines.append("final information per factor (nats), mean over seeds: " + ", ".join(
        f"{f} {factors.loc[factors['factor'] == f, 'final_info'].mean():.2f}"
        for f in FACTOR_NAMES
    ))  # fmt: skip
    pairs = so.pairwise_order(so.group_switch_on(factors)).table
    lines.append("pairs of factor groups (paper: position < scale < orientation, shape):")
    for _, p in pairs.iterrows():
        frac = "n/a" if not p["n"] else f"{p['fraction']:.2f} [{p['low']:.2f}, {p['high']:.2f}]"
        lines.append(
            f"  {p['a']:>11} before {p['b']:<11} {p['a_first']}/{p['n']} seeds  {frac}"
            f"  (ties {p['ties']}, neither opened {p['neither']})"
        )
    return lines
