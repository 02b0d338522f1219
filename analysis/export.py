"""Write a loaded study's tidy frames to parquet (and CSV on request)."""

from __future__ import annotations

import os
from pathlib import Path

from analysis.load import Study


def export_study(study: Study, out_dir: str | os.PathLike, csv: bool = False) -> list[Path]:
    """Write every frame of ``Study.frames`` (trials, curves, kl, evaluations, mi, latents,
    factor_switch_on) as ``<name>.parquet`` (and ``<name>.csv`` when ``csv``) under
    ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in study.frames().items():
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
        if csv:
            path = out / f"{name}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
    return written
