"""One trial written to a local directory, without Ray (``betastudy train``).

Layout of ``out``: ``config.json``, ``metrics.jsonl`` (one contract row per line, flushed
as it is written) and ``checkpoints/step_NNNNNNN/`` (state.pt, config.json, and
traversals.npz in the final one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from analysis.contract import CHECKPOINTS_DIR, CONFIG_FILE, METRICS_FILE, STATE_FILE, Row, jsonable
from trainables.config import ConfigError, TrialConfig
from trainables.members import write_snapshot
from trainables.trainer import Trainer


def load_config(file: str | Path | None, overrides: dict[str, Any]) -> TrialConfig:
    """Trial config from an optional YAML file, then ``overrides`` on top."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(Path(file).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"--config {file}: cannot read it as YAML ({e})") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {file}: expected a mapping of trial config keys")
        values.update(loaded)
    values.update(overrides)
    return TrialConfig.from_dict(values)


def latest_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint directory with the highest step under ``out``, if any."""
    found = [p.parent for p in Path(out, CHECKPOINTS_DIR).glob(f"step_*/{STATE_FILE}")]
    steps = {p: int(p.name[5:]) for p in found if p.name[5:].isdigit()}
    return max(steps, key=steps.get) if steps else None


def prepare(
    cfg: TrialConfig | None,
    out: str | Path,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Trainer:
    """A new trial for ``out`` from ``cfg``, or (``resume``) the one there, at its checkpoint."""
    out = Path(out)
    metrics = out / METRICS_FILE
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise ConfigError(f"--resume {out}: no checkpoint under {out / CHECKPOINTS_DIR}")
        trainer = Trainer.from_checkpoint(ckpt, **(overrides or {}))
        _truncate(metrics, trainer.step)  # rows after the checkpoint are trained again
        return trainer
    if cfg is None:
        raise ConfigError("no trial config given")
    if metrics.exists() and metrics.stat().st_size:
        raise ConfigError(f"--out {out} already holds a trial; use --resume {out}")
    return Trainer(cfg)


def train_to_directory(
    trainer: Trainer,
    out: str | Path,
    on_row: Callable[[Row], None] | None = None,
    on_evaluate: Callable[[bool], None] | None = None,
) -> Row | None:
    """Train ``trainer`` to its last step, writing rows and checkpoints under ``out``.

    The trained weights are checkpointed before the final evaluation, so stopping
    during it loses no training; the checkpoint is written again with the final row.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trainer.cfg.save(out / CONFIG_FILE)

    def checkpoint() -> None:
        trainer.save_checkpoint(out / CHECKPOINTS_DIR / f"step_{trainer.step:07d}")

    with (out / METRICS_FILE).open("a") as f:

        def report(row: Row, checkpoint_due: bool) -> None:
            f.write(json.dumps(jsonable(row)) + "\n")
            f.flush()  # a crash loses nothing already reported
            if checkpoint_due:
                checkpoint()
            if on_row is not None:
                on_row(row)

        def evaluating(final: bool) -> None:
            if final:
                checkpoint()
            if on_evaluate is not None:
                on_evaluate(final)

        def snapshot(step: int, arrays: dict[str, Any]) -> None:
            write_snapshot(str(out), step, arrays)

        return trainer.run(report, evaluating, snapshot)


def read_rows(path: str | Path) -> list[Row]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _truncate(metrics: Path, step: int) -> None:
    if metrics.exists():
        keep = [r for r in read_rows(metrics) if r["step"] <= step]
        metrics.write_text("".join(json.dumps(r) + "\n" for r in keep))
