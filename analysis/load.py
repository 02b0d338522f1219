"""Load a study directory (Ray Tune experiment, or one ``betastudy train --out`` trial).

Everything becomes tidy pandas frames (see :class:`Study`). Failed, running and unstarted
trials load and carry their status and failure reason; a broken file never stops the load.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from analysis import rows as _rows
from analysis.contract import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    ERROR_FILE,
    MEMBERS_KEY,
    METRICS_FILE,
    OPTUNA_DB_FILE,
    PARAMS_FILE,
    PENDING,
    RESULT_FILE,
    RUNNING,
    STOPPED_FILE,
    STUDY_SPEC_FILE,
    TRAVERSALS_DIR,
    TRAVERSALS_FILE,
    TRIALS_FILE,
    config_col,
    last_line,
    member_dirname,
    member_id,
    parse_kl_key,
)
from analysis.fs import ReportInputError, StudyFS, join

__all__ = ["ReportInputError", "Study", "load_study"]

_EXPERIMENT_STATE = re.compile(r"experiment_state-.*\.json$")
_RAY_CHECKPOINT = re.compile(r"checkpoint_(\d+)$")  # Ray: checkpoint_000003
_TRAIN_CHECKPOINT = re.compile(r"step_(\d+)$")  # betastudy train: checkpoints/step_0001000
_SNAPSHOT = re.compile(r"step_(\d+)\.npz$")  # traversals/step_0001000.npz


@dataclass
class Study:
    """A loaded study: one row per trial, and long/tidy frames of what the trials reported.

    - ``trials``: trial_id, status, error, path, n_reports, last_step, complete,
      checkpoint (final checkpoint holding traversals, or None), the final training row
      (recon, kl, C, loss, ..., kl_z*), the last evaluation (metrics, eval_step), and the
      configuration as ``config/<key>`` columns.
    - ``curves``: one row per (trial_id, step) training report: contract columns, kl_z*.
    - ``evaluations``: one row per (trial_id, step) evaluation: C and the metrics; and
      per row whose code was checked over the whole grid, ``exact/{factor}``.
    - ``mi``: trial_id, step, latent, factor, mi (normalized mutual information).
    - ``kl`` (property): trial_id, step, C, latent, kl (nats), the per-latent histories.
    """

    name: str
    location: str
    spec: dict[str, Any]
    trials: pd.DataFrame
    curves: pd.DataFrame
    evaluations: pd.DataFrame
    mi: pd.DataFrame
    optuna_db: str | None = None  # relative path of Optuna's sqlite storage, when present
    fs: StudyFS | None = field(default=None, repr=False)

    @property
    def kl(self) -> pd.DataFrame:
        cols = _rows.kl_columns(self.curves)
        long = self.curves[["trial_id", "step", "C", *cols]].melt(
            id_vars=["trial_id", "step", "C"], value_vars=cols, var_name="latent", value_name="kl"
        )
        long["latent"] = long["latent"].map(parse_kl_key).astype(int)  # "kl_z3" -> 3
        return long.sort_values(["trial_id", "latent", "step"], ignore_index=True)

    @property
    def metrics(self) -> list[str]:
        """The evaluation metrics this study reported."""
        return [c for c in self.evaluations.columns if c not in ("trial_id", "step", "C")]

    def traversals(self, trial_id: str) -> dict[str, np.ndarray] | None:
        """The arrays of a trial's final ``traversals.npz`` (contract layout), or None."""
        row = self.trials.loc[self.trials["trial_id"] == trial_id]
        if row.empty or self.fs is None or not isinstance(row["checkpoint"].iloc[0], str):
            return None
        import io

        try:
            data = self.fs.read_bytes(join(row["checkpoint"].iloc[0], TRAVERSALS_FILE))
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError):
            return None

    def traversal_steps(self, trial_id: str) -> list[tuple[int, str]]:
        """(step, path) of a trial's traversal snapshots, one per evaluation, by step."""
        row = self.trials.loc[self.trials["trial_id"] == trial_id]
        if row.empty or self.fs is None:
            return []
        folder = join(str(row["path"].iloc[0] or ""), TRAVERSALS_DIR)
        try:
            names = self.fs.listdir(folder)
        except OSError:
            return []
        found = [(int(m.group(1)), join(folder, n)) for n in names if (m := _SNAPSHOT.match(n))]
        return sorted(found)

    def traversal_snapshot(self, path: str) -> dict[str, np.ndarray] | None:
        """The arrays of one snapshot (images as float in [0, 1]), or None if unreadable."""
        import io

        try:
            with np.load(io.BytesIO(self.fs.read_bytes(path)), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, AttributeError):
            return None
        for key in ("inputs", "reconstructions", "traversals"):
            if arrays.get(key) is not None and arrays[key].dtype == np.uint8:
                arrays[key] = arrays[key].astype(np.float32) / 255.0
        return arrays

    def frames(self) -> dict[str, pd.DataFrame]:
        """The tidy frames by name, as ``betastudy export`` writes them; ``latents``,
        ``factor_switch_on`` and, where evaluations carry exact values, ``bound_check``
        are the switch-on rule's tables (``analysis.switch_on.factor_reading``). A factor
        switch-on's ``source`` says what it is read off: ``exact`` (a factor-encoder
        trial's rows), ``exact checks`` (an image trial's exact values at its checked
        rows) or ``bound`` (an image trial's held-out bound; ``read`` False where the
        exact value shows it short)."""
        from analysis import switch_on

        reading = switch_on.factor_reading(self.curves, self.evaluations)
        factors = switch_on.factor_switch_on(reading.curves, unread=reading.unread)
        encoder = self.trials.set_index("trial_id").get(config_col("encoder"))
        factors["source"] = [
            "exact checks"
            if t in reading.exact
            else "exact"
            if encoder is not None and encoder.get(t) == "factors"
            else "bound"
            for t in factors["trial_id"]
        ]
        return {
            "trials": self.trials,
            "curves": self.curves,
            "kl": self.kl,
            "evaluations": self.evaluations,
            "mi": self.mi,
            "latents": switch_on.latent_switch_on(self.curves),
            "factor_switch_on": factors,
            # image trials' exact checks
            **({"bound_check": reading.check} if len(reading.check) else {}),
        }


def load_study(location: str | os.PathLike) -> Study:
    """Load a study directory (local path or URI) into a :class:`Study`."""
    sfs = StudyFS.open(location)
    entries = sfs.listdir()
    spec = _read_spec(sfs, entries)
    if CONFIG_FILE in entries and (METRICS_FILE in entries or CHECKPOINTS_DIR in entries):
        trials = [_load_single(sfs)]
    else:
        listed = _listed_trials(sfs, entries)
        if not listed and STUDY_SPEC_FILE not in entries:
            raise ReportInputError(
                f"{sfs.uri} is not a study directory: expected {STUDY_SPEC_FILE} and trial "
                f"folders (betastudy run), or {CONFIG_FILE} and {METRICS_FILE} (betastudy train)"
            )
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            trials = list(pool.map(lambda e: _load_ray_trial(sfs, e), listed))
    name = str(spec.get("name") or os.path.basename(sfs.root.rstrip("/")) or sfs.uri)
    optuna_db = OPTUNA_DB_FILE if entries.get(OPTUNA_DB_FILE) == "file" else None
    return Study(name, sfs.uri, spec, *_rows.assemble(trials), optuna_db=optuna_db, fs=sfs)


# ---- trial discovery -----------------------------------------------------------------


def _read_spec(sfs: StudyFS, entries: dict[str, str]) -> dict[str, Any]:
    if entries.get(STUDY_SPEC_FILE) != "file":
        return {}
    try:
        spec = yaml.safe_load(sfs.read_text(STUDY_SPEC_FILE))
    except yaml.YAMLError:
        return {}
    return spec if isinstance(spec, dict) else {}


def _listed_trials(sfs: StudyFS, entries: dict[str, str]) -> list[dict[str, Any]]:
    """Trial entries {trial_id, path, status, error, config}: trials.json, else Ray's
    experiment state, else every folder holding params.json or result.json."""
    if entries.get(TRIALS_FILE) == "file":
        try:
            listed = json.loads(sfs.read_text(TRIALS_FILE))
            return [_relative(sfs, e) for e in listed if isinstance(e, dict) and e.get("path")]
        except (ValueError, TypeError):
            pass  # a half-written trials.json: fall through to Ray's own state
    states = sorted(n for n, k in entries.items() if k == "file" and _EXPERIMENT_STATE.match(n))
    if states:
        try:
            return _from_experiment_state(sfs.read_text(states[-1]))
        except (ValueError, TypeError, KeyError):
            pass
    found = []
    for name, kind in sorted(entries.items()):
        if kind == "dir" and {PARAMS_FILE, RESULT_FILE} & set(sfs.listdir(name)):
            found.append({"trial_id": _id_from_dirname(name), "path": name})
    return found


def _from_experiment_state(text: str) -> list[dict[str, Any]]:
    """Ray's experiment_state-*.json: trial_data is a list of [trial json, metadata json]."""
    out = []
    for trial_json, _metadata_json in json.loads(text)["trial_data"]:
        trial = json.loads(trial_json)
        config = trial.get("config")
        if isinstance(config, dict) and isinstance(config.get(MEMBERS_KEY), list):
            out += _members(trial["trial_id"], trial["relative_logdir"], config[MEMBERS_KEY])
            continue
        out.append(
            {
                "trial_id": trial["trial_id"],
                "path": trial["relative_logdir"],
                "status": trial.get("status"),
                "config": config if isinstance(config, dict) else None,
            }
        )
    return sorted(out, key=lambda e: str(e["trial_id"]))  # Ray keeps no order here


def _members(population_id: str, rel: str, configs: list[Any]) -> list[dict[str, Any]]:
    """A population trial's members (a packed study), each an ordinary trial entry."""
    return [
        {
            "trial_id": member_id(population_id, j),
            "path": join(rel, member_dirname(j)),
            "status": None,  # from its rows: a population's status is not its members'
            "config": config if isinstance(config, dict) else None,
        }
        for j, config in enumerate(configs)
    ]


def _relative(sfs: StudyFS, entry: dict[str, Any]) -> dict[str, Any]:
    path = str(entry["path"])
    if path.startswith(sfs.root + "/"):  # an absolute path inside the study
        path = path[len(sfs.root) + 1 :]
    elif path.startswith("/") or "://" in path:  # written elsewhere, the study moved since
        path = path.rstrip("/").rsplit("/", 1)[-1]
    return {**entry, "path": path.strip("/")}


def _id_from_dirname(name: str) -> str:
    """``train_3f5e2_00001_1_beta=2_2025-...`` -> ``3f5e2_00001`` (Ray's default naming)."""
    m = re.match(r"^.+?_([0-9a-f]{5}_\d{5})(_|$)", name)
    return m.group(1) if m else name


# ---- one trial ---------------------------------------------------------------------


def _load_ray_trial(sfs: StudyFS, entry: dict[str, Any]) -> dict[str, Any]:
    rel = entry["path"]
    files = sfs.listdir(rel)
    config = entry.get("config")
    if not isinstance(config, dict):
        config = _read_json(sfs, join(rel, PARAMS_FILE)) if PARAMS_FILE in files else {}
    data = _read_bytes(sfs, join(rel, RESULT_FILE)) if RESULT_FILE in files else None
    frame = _rows.parse_jsonl(data) if data is not None else None
    error = entry.get("error")
    if not error and ERROR_FILE in files:
        error = last_line(sfs.read_text(join(rel, ERROR_FILE)))
    if not error and data:
        error = _rows.last_error(data)  # a diverged trial's last row names its reason
    ckpts = [(int(m.group(1)), n) for n in files if (m := _RAY_CHECKPOINT.match(n))]
    failed = ERROR_FILE in files or bool(data and _rows.last_error(data))
    status = entry.get("status") or _infer_status(failed, frame, config, STOPPED_FILE in files)
    return {
        "trial_id": str(entry.get("trial_id") or _id_from_dirname(rel)),
        "path": rel,
        "status": str(status).upper(),
        "error": error or None,
        "config": config or {},
        "rows": frame,
        "checkpoint": _final_checkpoint(sfs, rel, ckpts),
    }


def _load_single(sfs: StudyFS) -> dict[str, Any]:
    """A ``betastudy train --out DIR`` folder: config.json, metrics.jsonl, checkpoints/."""
    files = sfs.listdir()
    config = _read_json(sfs, CONFIG_FILE)
    data = _read_bytes(sfs, METRICS_FILE) if METRICS_FILE in files else None
    frame = _rows.parse_jsonl(data) if data is not None else None
    ckpts = [
        (int(m.group(1)), n)
        for n in sfs.listdir(CHECKPOINTS_DIR)
        if (m := _TRAIN_CHECKPOINT.match(n))
    ]
    status = _infer_status(bool(data and _rows.last_error(data)), frame, config)
    error = _rows.last_error(data) if data else None
    return {
        "trial_id": os.path.basename(sfs.root.rstrip("/")) or "trial",
        "path": "",
        "status": status,
        "error": error,
        "config": config,
        "rows": frame,
        "checkpoint": _final_checkpoint(sfs, CHECKPOINTS_DIR, ckpts),
    }


def _infer_status(failed: bool, frame: pa.Table | None, config: dict, stopped: bool = False) -> str:
    """``rows.trial_status``: ERROR with an error file or a diverged last row; else
    TERMINATED when the last step reached ``config['steps']`` or halving ``stopped`` it;
    RUNNING when it reported something; else PENDING."""
    step = None
    if frame is not None and frame.num_rows and "step" in frame.column_names:
        step = pc.max(frame["step"]).as_py()
    unfinished = PENDING if step is None else RUNNING
    return _rows.trial_status(failed, step, config.get("steps"), unfinished, stopped)


def _final_checkpoint(sfs: StudyFS, rel: str, ckpts: list[tuple[int, str]]) -> str | None:
    """The newest checkpoint folder that holds the traversal images."""
    for _, name in sorted(ckpts, reverse=True):
        path = join(rel, name)
        if TRAVERSALS_FILE in sfs.listdir(path):
            return path
    return None


def _read_bytes(sfs: StudyFS, rel: str) -> bytes | None:
    try:
        return sfs.read_bytes(rel)
    except OSError:
        return None


def _read_json(sfs: StudyFS, rel: str) -> dict[str, Any]:
    try:
        value = json.loads(sfs.read_text(rel))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
