"""The population trainer on CPU: each member computes what its solo trial computes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import KINDS, assert_rows_close, assert_weights_close, rows_of, small
from trainables.config import ConfigError
from trainables.population import Population
from trainables.trainer import Trainer, TrainingDiverged


@pytest.fixture
def no_metrics(monkeypatch):
    """Evaluations without the metric suite (an empty row update): these tests compare
    training, and each final evaluation would cost seconds; the member-equals-solo test
    keeps the real one."""
    monkeypatch.setattr("trainables.evaluate.evaluate_model", lambda *args, fast: {})


def population_rows(pop: Population, **callbacks) -> dict[int, list[dict]]:
    rows: dict[int, list[dict]] = {i: [] for i in range(pop.k)}
    pop.run(lambda i, row, due: rows[i].append(row), **callbacks)
    return rows


@pytest.mark.parametrize("forward,kinds", [("loop", list(KINDS)), ("vmap", ["beta", "piecewise"])])
def test_each_member_equals_its_solo_trial(forward, kinds):
    cfgs = [small(steps=30, **KINDS[kind]) for kind in kinds]
    pop = Population(cfgs, forward=forward)
    rows = population_rows(pop)
    for i, cfg in enumerate(cfgs):
        solo = Trainer(cfg)
        solo_rows = rows_of(solo)
        assert_rows_close(rows[i], solo_rows)
        assert_weights_close(pop.members[i], solo)
        # the probe columns come from the member's own probe set and weights
        for a, b in zip(rows[i], solo_rows):
            assert a["info_x"] == pytest.approx(b["info_x"], abs=0.02)
        # a member's final row carries its evaluation, like a solo trial's
        assert "mig" in rows[i][-1] and np.isfinite(rows[i][-1]["recon"])


def test_members_with_different_lengths_and_report_intervals(no_metrics):
    cfgs = [small(steps=20, report_every=10, seed=1), small(steps=35, report_every=7, seed=2)]
    rows = population_rows(Population(cfgs))
    assert [r["step"] for r in rows[0]] == [10, 20]
    assert [r["step"] for r in rows[1]] == [7, 14, 21, 28, 35]
    assert_rows_close(rows[1], rows_of(Trainer(cfgs[1])))


def test_a_diverging_member_is_frozen_and_the_others_finish(no_metrics):
    cfgs = [small(steps=30, seed=1), small(steps=30, seed=2), small(steps=30, seed=3)]
    pop = Population(cfgs)
    with torch.no_grad():
        pop.params["decoder.fc.0.weight"][1].fill_(math.inf)  # member 1's loss is not finite
    ended: dict[int, Exception | None] = {}
    rows = population_rows(pop, on_end=lambda i, e: ended.setdefault(i, e))
    assert isinstance(ended[1], TrainingDiverged) and ended[1].step == 1
    assert rows[1] == []  # failed before its first row, at the step that diverged
    assert ended[0] is None and ended[2] is None
    for i in (0, 2):  # the others are untouched by it
        assert_rows_close(rows[i], rows_of(Trainer(cfgs[i])))
    # the frozen member took no update: its other weights are where they started
    start = Trainer(cfgs[1]).model.state_dict()
    torch.testing.assert_close(
        pop.params["encoder.conv.0.weight"][1], start["encoder.conv.0.weight"]
    )


def test_a_freed_slot_is_refilled_in_place(no_metrics):
    first, later = small(steps=10, seed=1), small(**{**KINDS["piecewise"], "steps": 30, "seed": 5})
    other = small(steps=30, seed=2)
    pop = Population([first, other])
    storage = {n: p.data_ptr() for n, p in pop.params.items()}
    rows: dict[int, list] = {0: [], 1: []}
    refilled = []

    def on_end(i, error):
        if i == 0 and not refilled:
            refilled.append(Trainer(later, pop.data))
            rows[0] = []
            pop.admit(0, refilled[0])

    pop.run(lambda i, row, due: rows[i].append(row), on_end=on_end)
    assert {n: p.data_ptr() for n, p in pop.params.items()} == storage  # nothing reallocated
    # the refilled member starts from its own initial weights, moments and step 0
    solo = Trainer(later)
    assert_rows_close(rows[0], rows_of(solo))
    assert_weights_close(pop.members[0], solo)
    assert_rows_close(rows[1], rows_of(Trainer(other)))


def test_a_member_checkpoint_resumes_alone_or_in_a_population(tmp_path, no_metrics):
    cfgs = [small(steps=30, checkpoint_every=10, **KINDS["linear"]), small(steps=30, seed=9)]
    saved = tmp_path / "member0"

    pop = Population(cfgs)

    def on_report(i, row, due):
        if i == 0 and due and row["step"] == 10:
            pop.members[0].save_checkpoint(saved)
        rows[i].append(row)

    rows: dict[int, list] = {0: [], 1: []}
    pop.run(on_report)
    continued = [r for r in rows[0] if r["step"] > 10]

    alone = Trainer.from_checkpoint(saved)
    assert alone.step == 10
    assert_rows_close(rows_of(alone), continued)
    assert_weights_close(alone, pop.members[0])

    again = Population([Trainer.from_checkpoint(saved).cfg])
    again.admit(0, Trainer.from_checkpoint(saved, again.data))
    assert_rows_close(population_rows(again)[0], continued)


def test_shared_batches_give_every_member_the_same_data(no_metrics):
    same = [small(steps=10, seed=1), small(steps=10, seed=1, lr=1e-3)]
    rows = population_rows(Population(same, data_mode="shared"))
    # same seed, same data: the first row differs only through lr's effect on steps 2..10
    assert rows[0][0]["recon"] != rows[1][0]["recon"]
    twins = population_rows(Population([same[0], same[0]], data_mode="shared"))
    assert twins[0][0]["recon"] == pytest.approx(twins[1][0]["recon"], rel=1e-6)


def test_members_must_share_the_architecture():
    with pytest.raises(ConfigError, match="must share latent_dim"):
        Population([small(latent_dim=4), small(latent_dim=5)])
    with pytest.raises(ConfigError, match="data_mode"):
        Population([small()], data_mode="mine")
