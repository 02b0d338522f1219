"""Write a loaded study's tidy frames to parquet (and CSV on request)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fs import writable_folder
from analysis.load import Study

# Counts of steps and images: integers, kept integers (nullable where a trial has none)
INTEGER_COLUMNS = ("step", "images_seen", "last_step", "eval_step", "label_step", "n_reports")


def integer_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its step and image counts as nullable integers (pandas reads JSON
    rows with a missing value as float: 1000.0 in a CSV is not a step)."""
    out = frame.copy()
    for col in INTEGER_COLUMNS:
        if col in out and out[col].dtype.kind == "f":
            values = out[col].dropna()
            if np.array_equal(values, values.round()):
                out[col] = out[col].astype("Int64")
    return out


def export_study(study: Study, out_dir: str | os.PathLike, csv: bool = False) -> list[Path]:
    """Write every frame of ``Study.frames`` (trials, curves, kl, evaluations, mi, latents,
    factor_switch_on) as ``<name>.parquet`` (and ``<name>.csv`` when ``csv``) under
    ``out_dir``; return the paths. ``latents`` carries the switch-on rule's words in
    ``label`` (``posY + scale``, as the figures read) beside ``final_factor`` and
    ``final_second``."""
    out = writable_folder(out_dir, f"-o {out_dir}")
    written = []
    for name, frame in study.frames().items():
        frame = integer_columns(frame)
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
        if csv:
            path = out / f"{name}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
    return written
