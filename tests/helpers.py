"""Helpers shared by the test modules: small trial configs, row comparisons, and the
files and commands of a study run."""

from __future__ import annotations

import json
import math
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from analysis.contract import kl_key
from trainables.config import TrialConfig
from trainables.trainer import Trainer

# A small model keeps CPU runs short; the architecture is the default one, narrower.
SMALL = dict(
    device="cpu", batch_size=16, latent_dim=4, channels=8, hidden=32, lr=2e-3,
    report_every=10, eval_every=0, checkpoint_every=0, eval_fast=True, eval_points=100,
    probe_points=128, grid_info_samples=32,  # the grid's exact estimate: tested on its own
)  # fmt: skip


def small(**kw) -> TrialConfig:
    return TrialConfig.from_dict({**SMALL, "steps": 30, **kw})


def rows_of(trainer: Trainer) -> list[dict]:
    rows: list[dict] = []
    trainer.run(lambda row, due: rows.append(row))
    return rows


def population_rows(pop, **callbacks) -> dict[int, list[dict]]:
    """Each member's rows of a Population run to its end (``rows_of`` for a population)."""
    rows: dict[int, list[dict]] = {i: [] for i in range(pop.k)}
    pop.run(lambda i, row, due: rows[i].append(row), **callbacks)
    return rows


# One member per objective and C-schedule kind, each with its own seed and lr.
KINDS = {
    "beta": dict(objective="beta", beta=4.0, seed=1, lr=1e-3),
    "linear": dict(objective="capacity", gamma=100.0, c_max=5.0, c_steps=20, seed=2),
    "constant": dict(objective="capacity", gamma=30.0, c_schedule="constant", c_max=3.0, seed=3),
    "piecewise": dict(
        objective="capacity", gamma=50.0, c_schedule="piecewise",
        c_points=[[0, 0.0], [10, 2.0], [25, 6.0]], seed=4, lr=3e-3,
    ),
}  # fmt: skip
COMPARED = ("recon", "kl", "loss", "C", *(kl_key(i) for i in range(4)))


def assert_rows_close(ours: list[dict], solo: list[dict], rel: float = 1e-4) -> None:
    assert [r["step"] for r in ours] == [r["step"] for r in solo]
    nan = lambda v: math.nan if v is None else v  # noqa: E731  (JSON's null)
    for a, b in zip(ours, solo):
        for key in COMPARED:
            if math.isnan(nan(b[key])):
                assert math.isnan(nan(a[key])), key
            else:
                assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-5), (a["step"], key)


def assert_weights_close(a: Trainer, b: Trainer, atol: float = 1e-5) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=1e-4, msg=k)


# ---- a study's files and commands ---------------------------------------------------------


def returns(monkeypatch: pytest.MonkeyPatch, module, name: str) -> list:
    """Wrap ``module.name`` so that each call's return value is kept in the list this
    returns: what a command measured, beside what it printed from it."""
    kept: list = []
    real = getattr(module, name)

    def kept_call(*args, **kwargs):
        kept.append(real(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(module, name, kept_call)
    return kept


def rows(trial_dir: Path) -> list[dict]:
    with (trial_dir / "result.json").open() as f:
        return [json.loads(line) for line in f if line.strip()]


def trials_json(study_dir: Path) -> list[dict]:
    return json.loads((study_dir / "trials.json").read_text())


def checkpoints(trial_dir: Path) -> list[Path]:
    return sorted(trial_dir.glob("checkpoint_*"))


def run_cli(*args: str) -> str:
    from study.cli import main

    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def write_spec(tmp_path: Path, spec: dict) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


class KillAtStep:
    """Tune callback: SIGKILL a trial's process once, when it reports ``step`` (or, with
    ``at_least``, the first report at or past it)."""

    def __init__(self, step: int, at_least: bool = False) -> None:
        from ray import tune

        self.killed: dict[str, int] = {}
        killed, at = self.killed, step

        class Kill(tune.Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                hit = result["step"] >= at if at_least else result["step"] == at
                if hit and trial.trial_id not in killed:
                    killed[trial.trial_id] = result["pid"]
                    os.kill(result["pid"], signal.SIGKILL)

        self.callback = Kill()


# ---- a report's HTML ------------------------------------------------------------------


def report_figures(text: str) -> dict[str, list[str]]:
    """The figures of a report by section: {section id: [figure div ids]}, parsed."""
    from html.parser import HTMLParser

    found: dict[str, list[str]] = {}

    class Parser(HTMLParser):
        section: str | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section":
                Parser.section = a.get("id")
                found.setdefault(Parser.section or "", [])
            elif tag == "div" and "plotly-graph-div" in (a.get("class") or "").split():
                found.setdefault(Parser.section or "", []).append(a.get("id") or "")

    Parser().feed(text)
    return found


class FactorData:
    """Ground-truth data whose observations are the factor indices themselves."""

    def __init__(self, sizes=(3, 4, 5), names=("a", "b", "c")):
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(names)

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def observations(self, factors):
        return factors


def pinned_ray() -> str:
    """The Ray version the cluster files pin (cluster.yaml's setup pins): the cluster's
    Ray, which a driver joining it must run too. A pin, not the Ray installed here: the
    floors of the version ranges run the same tests."""
    text = (Path(__file__).resolve().parents[1] / "cluster.yaml").read_text()
    (pin,) = set(re.findall(r'"ray(?:\[[a-z,]+\])?==([0-9.]+)"', text))
    return pin
