"""``betastudy train`` and ``betastudy bench trainer``: one trial without Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from analysis.contract import METRICS
from study.cli import BAD_INPUT, bench, main
from trainables.config import ConfigError, parse_overrides
from trainables.data import DataError

BAD_INPUT.extend([ConfigError, DataError])


@main.command()
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config field.")
@click.option("--config", "config_file", type=click.Path(), help="YAML file of config fields.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Directory for metrics and checkpoints."
)
@click.option(
    "--resume", type=click.Path(file_okay=False), help="Continue the trial in this directory."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train(sets, config_file, out, resume, progress):
    """Train one trial (no Ray): --set objective=capacity --set steps=500 --out DIR.

    Writes metrics.jsonl and checkpoints under --out; --resume DIR continues from the
    last checkpoint there (--set may extend steps).
    """
    from tqdm import tqdm

    from trainables.local import load_config, prepare, train_to_directory
    from trainables.trainer import TrainingDiverged

    overrides = parse_overrides(sets)
    if resume and (out or config_file):
        raise ConfigError("--resume DIR continues DIR; give neither --out nor --config with it")
    cfg = None if resume else load_config(config_file, overrides)
    out = Path(resume or out or "runs/train")
    trainer = prepare(cfg, out, bool(resume), overrides)  # bad input stops here, before the bar
    bar = tqdm(total=trainer.cfg.steps, initial=trainer.step, disable=not progress, unit="step")

    def on_row(row):
        bar.update(row["step"] - bar.n)
        bar.set_postfix(recon=f"{row['recon']:.1f}", KL=f"{row['kl']:.2f}", C=f"{row['C']:.2f}")

    try:
        last = train_to_directory(trainer, out, on_row)
    except TrainingDiverged as e:
        bar.close()
        click.echo(f"error: {e} (rows and checkpoints so far are in {out})", err=True)
        sys.exit(1)
    bar.close()
    click.echo(f"trained {trainer.step} steps into {out}")
    if last is not None:
        click.echo(f"recon {last['recon']:.2f} nats  KL {last['kl']:.2f} nats  C {last['C']:.2f}")
        shown = [f"{m} {last[m]:.3f}" for m in METRICS if isinstance(last.get(m), float)]
        if shown:
            click.echo("metrics: " + "  ".join(shown))


@bench.command("trainer")
@click.option("--steps", default=200, show_default=True, help="Timed steps per loop.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config field.")
def bench_trainer(steps, batch_size, device, sets):
    """Images per second: this trainer against a conventional DataLoader loop."""
    from trainables.bench import compare

    overrides = {"batch_size": batch_size, "device": device, **parse_overrides(sets)}
    for line in compare(steps, overrides):
        click.echo(line)
