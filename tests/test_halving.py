"""Successive halving inside a population: the rule on known values, and a tiny
population whose worst configurations stop at a rung and whose slots are refilled."""

from __future__ import annotations

import math

from tests.helpers import small
from trainables.halving import Halving, rungs


def test_rungs_grow_by_eta_below_the_last_step():
    assert rungs(10, 3, 100) == [10, 30, 90]
    assert rungs(10, 3, 90) == [10, 30]
    assert rungs(4, 1.5, 12) == [4, 6, 9]


def _halving(n: int, seeds: int = 1, eta: float = 2.0, mode: str = "min") -> Halving:
    configs = [small(steps=100, lr=1e-3 * (1 + i), seed=s) for i in range(n) for s in range(seeds)]
    return Halving(configs, metric="recon", mode=mode, grace=10, eta=eta)


def test_a_group_below_the_rungs_cutoff_stops_and_the_first_ones_always_go_on():
    h = _halving(4)
    assert h.report(0, {"step": 10, "recon": 100.0}) == []  # alone at the rung: goes on
    assert h.report(1, {"step": 10, "recon": 120.0}) == [1]  # worse than the median of 2
    assert h.report(2, {"step": 10, "recon": 90.0}) == []
    assert h.report(3, {"step": 10, "recon": 110.0}) == [3]  # median of 100, 120, 90, 110: 105
    assert h.report(0, {"step": 20, "recon": 1.0}) == []  # not a rung
    assert "successive halving" in h.reasons[1] and "recon 120" in h.reasons[1]


def test_a_group_is_judged_on_its_seeds_mean_once_all_have_reached_the_rung():
    h = _halving(2, seeds=2, mode="max")  # members 0, 1: config 0; 2, 3: config 1
    assert h.report(0, {"step": 10, "recon": 5.0}) == []  # waits for member 1
    assert h.report(1, {"step": 10, "recon": 7.0}) == []  # mean 6, alone: goes on
    assert h.report(2, {"step": 10, "recon": 9.0}) == []
    assert h.report(3, {"step": 10, "recon": 1.0}) == [2, 3]  # mean 5 < median 5.5
    assert h.recorded[10] == [6.0, 5.0]


def test_a_non_finite_value_stops_its_group():
    h = _halving(2)
    h.report(0, {"step": 10, "recon": 50.0})
    assert h.report(1, {"step": 10, "recon": math.nan}) == [1]


def test_a_roster_refills_freed_slots_and_a_restart_skips_stopped_and_finished_members(
    tmp_path, monkeypatch
):
    from trainables.halving import Roster
    from trainables.members import MemberFolder
    from trainables.population import Population

    monkeypatch.setattr("trainables.evaluate.evaluate_model", lambda *args, fast: {})
    lrs = [3e-3, 1e-4, 2e-3, 3e-4]  # a good one first, then worse and better in turn
    configs = [small(steps=20, lr=lr, probe_points=0, checkpoint_every=10) for lr in lrs]
    folders = [MemberFolder.at(str(tmp_path), j, c) for j, c in enumerate(configs)]

    def halving():
        return Halving(configs, metric="recon", mode="min", grace=10, eta=2.0)

    pop = Population(configs[:2])  # two slots for four members
    roster = Roster(pop, configs, folders, halving())
    assert roster.slot_member == [0, 1] and roster.queue == [2, 3]
    pop.run(roster.on_report, on_end=roster.on_end)
    last = [f.read_rows()[-1]["step"] if f.read_rows() else None for f in folders]
    stopped = [j for j, f in enumerate(folders) if f.stopped]
    assert stopped and 0 not in stopped and all(last[j] == 10 for j in stopped)
    assert all(last[j] == 20 for j in range(4) if j not in stopped)  # the queued ones trained
    # a restart: nobody is left to train, and the rung's values come back from the rows
    again = halving()
    pop2 = Population(configs[:2])
    roster2 = Roster(pop2, configs, folders, again)
    assert roster2.queue == [] and roster2.slot_member == [None, None]
    assert len(again.recorded[10]) == 4
