"""Report rows -> frames: parse JSON-lines reports and assemble the study's tidy frames."""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson

from analysis.contract import (
    CONFIG_PREFIX,
    ERROR,
    ERROR_KEY,
    FACTOR_NAMES,
    METRICS,
    TERMINATED,
    TRAIN_COLUMNS,
    config_col,
    is_probe_key,
    mi_key,
    parse_exact_info_key,
    parse_kl_key,
    parse_mi_key,
)

# Ray's own numeric keys in result.json that are not measurements of the model.
_RAY_KEYS = {
    "timestamp",
    "time_this_iter_s",
    "time_since_restore",
    "iterations_since_restore",
    "training_iteration",
    "pid",
}
_KL = re.compile(r"kl_z(\d+)$")
CURVE_EXTRA = ("time_total_s",)


def kl_columns(frame: pd.DataFrame) -> list[str]:
    """``kl_z*`` columns of a frame, by latent index."""
    cols = [c for c in frame.columns if _KL.match(str(c))]
    return sorted(cols, key=parse_kl_key)


def probe_columns(frame: pd.DataFrame) -> list[str]:
    """The per-row information columns (``analysis.contract.is_probe_key``) of a frame."""
    return [c for c in frame.columns if is_probe_key(str(c))]


def parse_jsonl(data: bytes) -> pa.Table:
    """Numeric columns of a JSON-lines report file, one row per line, as float64.

    Fast path: pyarrow's JSON reader with a float64 schema built from the keys of the
    first and last lines (plus every contract key); Ray's per-row ``config`` and other
    non-numeric keys are skipped. Slow path (NaN, a truncated last line of a running
    trial, odd types): Python's json, line by line, skipping lines that do not parse.
    """
    lines = data.strip().splitlines()
    if not lines:
        return pa.table({})
    try:
        first, last = json.loads(lines[0]), json.loads(lines[-1])
        keys = _numeric_keys(first) | _numeric_keys(last)
        n_latents = sum(1 for k in keys if _KL.match(k))
        keys |= set(METRICS) | {mi_key(i, f) for i in range(n_latents) for f in FACTOR_NAMES}
        schema = pa.schema([(k, pa.float64()) for k in sorted(keys)])
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data))),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
        return table.select(
            [
                n
                for n, c in zip(table.column_names, table.columns, strict=True)
                if c.null_count < table.num_rows
            ]
        )
    except (ValueError, pa.ArrowException):
        pass
    records = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # e.g. the half-written last line of a trial that is still running
        if isinstance(row, dict):
            records.append({k: float(v) for k, v in row.items() if _is_number(k, v)})
    frame = pd.DataFrame.from_records(records).astype("float64")
    return pa.Table.from_pandas(frame, preserve_index=False)


def last_error(data: bytes) -> str | None:
    """The ``error`` string of the last report row, if it has one (a diverged trial's
    last row: ``{"step": ..., "diverged": true, "error": "TrainingDiverged: ..."}``)."""
    tail = data.rstrip().rsplit(b"\n", 1)[-1]
    try:
        row = json.loads(tail)
    except ValueError:
        return None
    error = row.get(ERROR_KEY) if isinstance(row, dict) else None
    return error if isinstance(error, str) and error else None


def trial_status(
    failed: bool, last_step: Any, steps: Any, unfinished: str, stopped: bool = False
) -> str:
    """A trial's status from what it left behind: ERROR when it failed (an error file, or
    a last row naming its error); TERMINATED when its last reported step reached
    ``steps``, the step its config trains to (not a number: never), or when successive
    halving ``stopped`` it (a population member's stopped.txt: stopped early, as Ray's
    ASHA leaves a trial); else ``unfinished``."""
    if failed:
        return ERROR
    if stopped:
        return TERMINATED
    numbers = all(isinstance(v, (int, float)) for v in (last_step, steps))
    return TERMINATED if numbers and last_step >= steps else unfinished


def _is_number(key: str, value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and key not in _RAY_KEYS


def _numeric_keys(row: dict[str, Any]) -> set[str]:
    return {k for k, v in row.items() if _is_number(k, v)}


def assemble(trials: list[dict[str, Any]]) -> tuple[pd.DataFrame, ...]:
    """Per-trial dicts (see load.py) -> (trials, curves, evaluations, mi) frames.

    All trials' rows are stacked once and split with vectorized pandas (a per-trial loop
    costs seconds on a 500-trial study). Within a trial a restored run re-reports steps:
    the last report of a step wins.
    """
    ids = np.array([t["trial_id"] for t in trials], dtype=object)
    tables = [
        t["rows"].append_column("_trial", pa.array(np.full(t["rows"].num_rows, i, np.int32)))
        for i, t in enumerate(trials)
        if t["rows"] is not None and t["rows"].num_rows and "step" in t["rows"].column_names
    ]
    rows = (
        pa.concat_tables(tables, promote_options="permissive").to_pandas()
        if tables
        else pd.DataFrame({"_trial": pd.Series(dtype=np.int32), "step": pd.Series(dtype=float)})
    )
    rows = rows[np.isfinite(rows["step"].to_numpy())]
    train_cols = [c for c in (*TRAIN_COLUMNS, *CURVE_EXTRA) if c in rows] + kl_columns(rows)
    train_cols += probe_columns(rows)  # measured every row: curves, not evaluations
    metric_cols = [c for c in rows.columns if c not in (*train_cols, "_trial")]
    # a training row carries a loss term (even a NaN one of a diverging trial may carry kl_z*)
    loss_cols = [c for c in ("recon", "kl", "loss", *kl_columns(rows)) if c in rows]
    is_train = rows[loss_cols].notna().any(axis=1) if loss_cols else np.zeros(len(rows), bool)
    curve = rows.loc[is_train, ["_trial", *train_cols]]
    has = rows[metric_cols].notna().any(axis=1) if metric_cols else np.zeros(len(rows), bool)
    evals = rows.loc[has, ["_trial", "step", *(["C"] if "C" in rows else []), *metric_cols]]
    curve, evals = (_by_step(f) for f in (curve, evals))
    mi_cols = [c for c in metric_cols if parse_mi_key(c) is not None]
    table = _trial_table(trials, curve, evals.drop(columns=mi_cols))
    out = []
    for f in (curve, evals):
        f = f.assign(trial_id=ids[f["_trial"].to_numpy()]).drop(columns="_trial")
        out.append(f[["trial_id", *[c for c in f.columns if c != "trial_id"]]])
    curve, evals = out
    return table, curve, evals.drop(columns=mi_cols), _mi_long(evals, mi_cols)


def _by_step(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop_duplicates(["_trial", "step"], keep="last")
    return frame.sort_values(["_trial", "step"], ignore_index=True)


def _trial_table(
    trials: list[dict[str, Any]], curve: pd.DataFrame, evals: pd.DataFrame
) -> pd.DataFrame:
    """One row per trial: identity and status, the last training row, the last evaluation
    (the last row with a metric: a row that only checks the code's exact information does
    not count) with the last exact values, and the config as ``config/<key>`` columns."""
    base = pd.DataFrame(
        {
            "trial_id": [t["trial_id"] for t in trials],
            "status": [t["status"] for t in trials],
            "error": [t["error"] for t in trials],
            "path": [t["path"] for t in trials],
            "n_reports": curve.groupby("_trial").size().reindex(range(len(trials)), fill_value=0),
        }
    )
    last = curve.drop_duplicates("_trial", keep="last").set_index("_trial")
    base["last_step"] = last["step"].reindex(base.index)
    base["checkpoint"] = [t["checkpoint"] for t in trials]
    steps = pd.to_numeric(
        pd.Series([t["config"].get("steps") for t in trials], dtype=object), errors="coerce"
    )
    base["complete"] = (base["status"] == TERMINATED) & ~(base["last_step"] < steps)
    base = base.join(last.drop(columns="step"))
    exact = [c for c in evals.columns if parse_exact_info_key(str(c))]
    measured = [c for c in evals.columns if c not in ("_trial", "step", "C", *exact)]
    is_eval = evals[measured].notna().any(axis=1) if measured else pd.Series(False, evals.index)
    last_eval = evals[is_eval].drop_duplicates("_trial", keep="last").set_index("_trial")
    last_eval = last_eval[["step", *measured]].rename(columns={"step": "eval_step"})
    base = base.join(last_eval)
    if exact:
        checked = evals.dropna(how="all", subset=exact)
        base = base.join(checked.drop_duplicates("_trial", keep="last").set_index("_trial")[exact])
    configs = [
        {config_col(k): v if _is_scalar(v) else json.dumps(v) for k, v in t["config"].items()}
        for t in trials
    ]
    config = pd.DataFrame(configs, index=base.index)
    config = config[sorted(config.columns)]
    return _config_types(pd.concat([base, config], axis=1)).reset_index(drop=True)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _config_types(table: pd.DataFrame) -> pd.DataFrame:
    """Make each config column one type (parquet needs it): mixed kinds become strings."""
    for col in [c for c in table.columns if c.startswith(CONFIG_PREFIX)]:
        kinds = {type(v) for v in table[col] if v is not None and not _nan(v)}
        if len(kinds) > 1 and not kinds <= {int, float}:
            table[col] = [None if v is None or _nan(v) else str(v) for v in table[col]]
    return table


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _mi_long(evals: pd.DataFrame, mi_cols: list[str]) -> pd.DataFrame:
    """Wide ``mi/z{i}/{factor}`` columns -> rows (trial_id, step, latent, factor, mi)."""
    if not mi_cols:
        return pd.DataFrame(
            {
                "trial_id": pd.Series(dtype=str),
                "step": pd.Series(dtype=float),
                "latent": pd.Series(dtype=int),
                "factor": pd.Series(dtype=str),
                "mi": pd.Series(dtype=float),
            }
        )
    long = evals.melt(
        id_vars=["trial_id", "step"], value_vars=mi_cols, var_name="key", value_name="mi"
    )
    long = long[long["mi"].notna()]
    parsed = [parse_mi_key(k) for k in mi_cols]
    latent = dict(zip(mi_cols, [p[0] for p in parsed], strict=True))
    factor = dict(zip(mi_cols, [p[1] for p in parsed], strict=True))
    long = long.assign(latent=long["key"].map(latent).astype(int), factor=long["key"].map(factor))
    long = long[["trial_id", "step", "latent", "factor", "mi"]]
    return long.sort_values(["trial_id", "step", "latent", "factor"], ignore_index=True)
