"""After a study: one record per trial, trials.json, Optuna's storage and the summary.

Records come from Ray's experiment state (``tune.ExperimentAnalysis``), so a resumed
study lists the trials of every session. ``trials.json`` is what analysis prefers:
per trial its id, folder (relative to the study directory), status, error and config.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any

from analysis import fs as storage
from analysis.contract import (
    ENDED,
    ERROR,
    ERROR_FILE,
    ERROR_KEY,
    MEMBERS_KEY,
    OPTUNA_DB_FILE,
    RESULT_FILE,
    STOPPED_FILE,
    TERMINATED,
    TRIALS_FILE,
    format_value,
    last_line,
    mean_defined,
    member_dirname,
    member_id,
    metric_value,
)
from analysis.rows import trial_status
from study.space import to_optuna
from study.spec import Spec

_GRID_ID = re.compile(r"[0-9a-f]{5}_\d{5}")  # Ray's ids of generated variants


@dataclass(frozen=True)
class TrialRecord:
    trial_id: str
    path: str  # relative to the study directory
    status: str  # Ray's: TERMINATED, ERROR, RUNNING, PENDING, PAUSED
    error: str | None
    config: dict[str, Any]
    last: dict[str, Any]  # the last reported row

    def to_json(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "config": self.config,
            "last_step": self.last.get("step"),
        }

    def value(self, metric: str) -> float | None:
        return metric_value(self.last.get(metric))


def collect(study_dir: str) -> list[TrialRecord]:
    """The trials of the study in ``study_dir`` (local or URI): a grid's in id order,
    an Optuna study's in Ray's (creation) order."""
    from ray import tune

    records = []
    for t in tune.ExperimentAnalysis(study_dir).trials:
        rel = os.path.basename(str(t.path).rstrip("/"))
        last = dict(t.last_result or {})
        error = None
        if t.status == ERROR:
            error = last.get(ERROR_KEY) or _error_line(
                storage.join_location(study_dir, rel, ERROR_FILE)
            )
        if MEMBERS_KEY in t.config:  # a population: its members are the trials
            records += _members(study_dir, rel, t.trial_id, t.status, t.config[MEMBERS_KEY])
            continue
        config = {k: v for k, v in t.config.items() if not k.startswith("__")}
        records.append(TrialRecord(t.trial_id, rel, t.status, error, config, last))
    if all(_GRID_ID.match(r.trial_id) for r in records):  # grid ids count up
        records.sort(key=lambda r: r.trial_id)
    return records


def _members(
    study_dir: str, rel: str, trial_id: str, status: str, configs: list[dict[str, Any]]
) -> list[TrialRecord]:
    """The records of a population trial's members, read from their folders: ended
    (TERMINATED at its last step, ERROR with its reason, or with its population's when
    that ended first) or, while the population runs, the population's status."""
    out = []
    for j, config in enumerate(configs):
        path = f"{rel}/{member_dirname(j)}"
        last = _last_row(storage.join_location(study_dir, path, RESULT_FILE))
        error = last.get(ERROR_KEY) or _error_line(
            storage.join_location(study_dir, path, ERROR_FILE)
        )
        # not finished by its own rows: as its population, failed once that has ended
        unfinished = ERROR if status in ENDED else status
        stopped = _error_line(storage.join_location(study_dir, path, STOPPED_FILE)) is not None
        state = trial_status(
            bool(error), last.get("step"), config.get("steps", 0), unfinished, stopped
        )
        if state == ERROR and not error:  # its population stopped before it finished
            error = _error_line(storage.join_location(study_dir, rel, ERROR_FILE)) or (
                "its population stopped before it finished"
            )
        out.append(TrialRecord(member_id(trial_id, j), path, state, error, dict(config), last))
    return out


def _last_row(location: str) -> dict[str, Any]:
    try:
        lines = [ln for ln in storage.read_text(location).splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}


def _error_line(location: str) -> str | None:
    """The reason of a failure recorded in an error.txt, or None."""
    try:
        return last_line(storage.read_text(location))
    except OSError:
        return None


def write_trials_json(study_dir: str, records: list[TrialRecord]) -> None:
    text = json.dumps([r.to_json() for r in records], indent=1, default=str)
    storage.write_text(storage.join_location(study_dir, TRIALS_FILE), text + "\n")


# ---- Optuna's storage ----------------------------------------------------------------


def write_optuna_db(study_dir: str, spec: Spec, records: list[TrialRecord]) -> None:
    """Write the finished configurations into an Optuna sqlite storage, as the sampler
    saw them: one Optuna trial per configuration, the mean objectives over its seeds."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {k: to_optuna(d) for k, d in spec.space.items()}
    directions = spec.search.optuna_directions
    groups: dict[str, list[TrialRecord]] = {}
    for r in records:
        key = json.dumps({k: r.config.get(k) for k in spec.space}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(r)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, OPTUNA_DB_FILE)
        rdb = optuna.storages.RDBStorage(f"sqlite:///{db}")
        study = optuna.create_study(storage=rdb, study_name=spec.name, directions=directions)
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(spec.search.objectives))
        for group in groups.values():
            trial = _optuna_trial(group, spec, dists)
            if trial is not None:
                study.add_trial(trial)
        rdb.engine.dispose()
        with open(db, "rb") as f:
            storage.write_bytes(storage.join_location(study_dir, OPTUNA_DB_FILE), f.read())


def _optuna_trial(group: list[TrialRecord], spec: Spec, dists: dict[str, Any]) -> Any:
    import optuna
    from optuna.trial import TrialState

    if any(r.status not in ENDED for r in group):
        return None  # still to run (an interrupted study): not told yet
    finished = [r for r in group if r.status == TERMINATED]
    values = [mean_defined(r.value(m) for r in finished) for m in spec.search.objectives]
    if all(v is not None for v in values):
        state, told = TrialState.COMPLETE, values
    else:
        failed = any(r.status == ERROR for r in group)
        state, told = (TrialState.FAIL if failed else TrialState.PRUNED), None
    return optuna.trial.create_trial(
        params={k: group[0].config[k] for k in spec.space},
        distributions=dists,
        values=told,
        state=state,
        user_attrs={
            "ray_trial_ids": [r.trial_id for r in group],
            "seeds": [r.config.get("seed") for r in group],
            "paths": [r.path for r in group],
            "errors": [r.error for r in group if r.error],
        },
    )


# ---- the terminal summary ------------------------------------------------------------


def summary(spec: Spec, study_dir: str, records: list[TrialRecord]) -> list[str]:
    """Lines: counts by status, best trial per objective, failures with their reasons."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [f"study {spec.name}: {len(records)} trials ({shown or 'none'}) in {study_dir}"]
    varied = [*spec.space, "seed"]

    def describe(r: TrialRecord) -> str:
        return " ".join(f"{k}={format_value(r.config.get(k))}" for k in varied)

    rows = []
    for metric, direction in spec.search.objectives.items():
        finished = [r for r in records if r.status == TERMINATED]
        done = [(v, r) for r in finished if (v := r.value(metric)) is not None]
        if not done:
            rows.append((f"{metric} ({direction})", "-", "-", "no finished trial reported it"))
            continue
        v, best = (min if direction == "min" else max)(done, key=lambda p: p[0])
        rows.append((f"{metric} ({direction})", format_value(v), best.trial_id, describe(best)))
    lines += _table(("best", "value", "trial", "config"), rows)
    early = [r for r in records if r.status == TERMINATED and _stopped_early(r)]
    if early:
        lines.append(f"stopped early by the scheduler: {len(early)} trials")
    failed = [r for r in records if r.status == ERROR]
    if failed:
        lines.append(f"failed ({len(failed)}):")
        for r in failed:
            lines.append(f"  {r.trial_id} ({describe(r)}): {r.error or 'no reason recorded'}")
    # trials not ended, and those an interrupted study never created
    unfinished = sum(r.status not in ENDED for r in records) + max(0, spec.n_trials - len(records))
    if unfinished:
        lines.append(
            f"unfinished: {unfinished} of {spec.n_trials} trials; "
            f"continue with: betastudy run --resume {study_dir}"
        )
    return lines


def _stopped_early(r: TrialRecord) -> bool:
    step, steps = r.last.get("step"), r.config.get("steps")
    return isinstance(step, int) and isinstance(steps, int) and step < steps


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header).rstrip(), *(line.format(*row).rstrip() for row in rows)]
