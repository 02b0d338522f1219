"""Successive halving inside a population: early stopping for packed studies.

A population trains K slots at once, and a member stopped early frees no compute unless
its slot trains someone else: so a packed study with a scheduler gives each population
more configurations than slots, queued, and stops the worst at rungs to make room.

The rule is ASHA's (Li et al. 2020, "A System for Massively Parallel Hyperparameter
Tuning"; Ray's ``ASHAScheduler``), asynchronous, with a configuration group as its unit:
the members of a population that differ only in their seed. Rungs are at ``grace``,
``grace * eta``, ``grace * eta**2``, ... steps, below the group's last step. When every
member of a group has reported at a rung, the group's value there is the mean of its
members' ``metric``; the group goes on if that value is not worse than the
``1 - 1/eta`` quantile of all the values recorded at that rung so far (its own
included), else every member of it stops. Freed slots take the next queued members in
grid order (``Population.admit``: in place, no recapture).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from analysis.contract import Row, jsonable
from trainables.config import TrialConfig
from trainables.trainer import Trainer, TrainingDiverged, diverged_row


def group_key(cfg: TrialConfig) -> tuple:
    """What a configuration group shares: every field but the seed."""
    d = cfg.to_dict()
    d.pop("seed")
    return tuple(sorted((k, repr(v)) for k, v in d.items()))


def rungs(grace: int, eta: float, steps: int) -> list[int]:
    """The rung steps below ``steps``: grace, grace * eta, ... (rounded down)."""
    out, r = [], float(grace)
    while int(r) < steps:
        if not out or int(r) > out[-1]:
            out.append(int(r))
        r *= eta
    return out


@dataclass
class Halving:
    """The decisions of successive halving over one population's members (their
    configs, in member order): ``report(j, row)`` after each row of member j returns
    the members to stop now (all of one group, or none)."""

    configs: list[TrialConfig]
    metric: str
    mode: str  # min or max
    grace: int
    eta: float
    recorded: dict[int, list[float]] = field(default_factory=dict)  # rung -> group values
    reasons: dict[int, str] = field(default_factory=dict)  # stopped member -> why

    def __post_init__(self) -> None:
        keys = [group_key(c) for c in self.configs]
        self.groups = {k: [j for j, kj in enumerate(keys) if kj == k] for k in dict.fromkeys(keys)}
        self._group_of = {j: k for k, members in self.groups.items() for j in members}
        self._seen: dict[tuple, dict[int, dict[int, float]]] = {}  # group -> rung -> j -> value
        self._decided: set[tuple[tuple, int]] = set()

    def rungs_of(self, j: int) -> list[int]:
        return rungs(self.grace, self.eta, self.configs[j].steps)

    def report(self, j: int, row: Row) -> list[int]:
        """Member j's row; the members to stop (its group's, when it falls short)."""
        step, value = row.get("step"), row.get(self.metric)
        if step not in self.rungs_of(j) or not isinstance(value, (int, float)):
            return []
        key = self._group_of[j]
        at = self._seen.setdefault(key, {}).setdefault(step, {})
        at[j] = float(value)
        if len(at) < len(self.groups[key]) or (key, step) in self._decided:
            return []
        self._decided.add((key, step))
        mean = float(np.mean(list(at.values())))
        values = self.recorded.setdefault(step, [])
        values.append(mean)
        sign = 1.0 if self.mode == "max" else -1.0  # compare as rewards: larger is better
        rewards = [sign * v for v in values if math.isfinite(v)]
        if not rewards:
            return []
        cutoff = float(np.percentile(rewards, (1 - 1 / self.eta) * 100))
        if math.isfinite(mean) and sign * mean >= cutoff:
            return []
        why = (
            f"stopped at step {step} by successive halving: {self.metric} {mean:.4g} "
            f"(mean over {len(at)} seed{'s' * (len(at) > 1)}) worse than the rung's cutoff "
            f"{sign * cutoff:.4g} ({len(values)} configurations recorded there)"
        )
        for m in self.groups[key]:
            self.reasons[m] = why
        return list(self.groups[key])

    def replay(self, rows: Iterable[tuple[int, Row]]) -> None:
        """Record earlier rows again (a restarted population): the rung values return;
        stop decisions are not returned (the stopped members say so in their folders)."""
        for j, row in rows:
            self.report(j, row)


class Roster:
    """A population's members over its slots: who trains where, who waits, who is done.

    ``configs`` and ``folders`` (``MemberFolder``) are every member of the population,
    in order; ``pop`` has fewer slots than that when some wait (a packed study with a
    scheduler). At the start, and on a restart, members that failed, were stopped or
    finished stay out; the others take the slots in order (from their newest checkpoint
    where they have one) and the rest queue. ``on_report``, ``on_end`` and
    ``on_traversals`` are ``Population.run``'s callbacks: rows and checkpoints go to the
    member's folder, halving's decisions stop members, and a freed slot takes the next
    in the queue. ``summary`` (optional) has ``update(j, row)`` and ``end(j, error)``."""

    def __init__(self, pop, configs: list[TrialConfig], folders: list, halving: Halving | None,
                 summary=None) -> None:  # fmt: skip
        self.pop, self.configs, self.folders = pop, configs, folders
        self.halving, self.summary = halving, summary
        self.queue: list[int] = []
        self.slot_member: list[int | None] = [None] * pop.k
        for j, folder in enumerate(folders):
            if folder.failed:
                continue
            rows = folder.read_rows()
            if halving is not None:
                halving.replay((j, r) for r in rows)
            if not folder.stopped and not (rows and rows[-1].get("step", 0) >= configs[j].steps):
                self.queue.append(j)  # not finished: trains (again), from its checkpoint
            else:
                folder.rows = rows  # done: its last row is its result
                if summary is not None:
                    summary.end(j, None)
        for slot in range(pop.k):
            if not self._fill(slot):
                pop.retire(slot)

    def _fill(self, slot: int) -> bool:
        """The next queued member into ``slot``; False when none waits."""
        if not self.queue:
            self.slot_member[slot] = None
            return False
        j = self.queue.pop(0)
        member = self.folders[j].resume(self.pop.data)
        if member is None:  # no checkpoint: from the start
            member = Trainer(self.configs[j], self.pop.data)
        self.pop.admit(slot, member)
        self.slot_member[slot] = j
        return True

    def on_report(self, slot: int, row: Row, checkpoint_due: bool) -> None:
        j = self.slot_member[slot]
        self.folders[j].add_row(jsonable(row))
        if checkpoint_due:
            self.folders[j].checkpoint(self.pop.members[slot])
        if self.summary is not None:
            self.summary.update(j, row)
        if self.halving is None:
            return
        for m in self.halving.report(j, row):
            self.folders[m].stop(self.halving.reasons[m])
            if m in self.slot_member:
                s = self.slot_member.index(m)
                self.pop.retire(s)
                if self.summary is not None:
                    self.summary.end(m, None)
                self._fill(s)

    def on_end(self, slot: int, error: Exception | None) -> None:
        j = self.slot_member[slot]
        if isinstance(error, TrainingDiverged):
            self.folders[j].fail(jsonable(diverged_row(error, self.configs[j])))
        if self.summary is not None:
            self.summary.end(j, error)
        self._fill(slot)

    def on_traversals(self, slot: int, step: int, arrays: dict) -> None:
        self.folders[self.slot_member[slot]].snapshot(step, arrays)
