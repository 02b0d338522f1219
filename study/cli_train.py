"""``betastudy train`` and ``betastudy bench trainer``: one trial without Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from analysis.contract import METRICS
from trainables.config import ConfigError, parse_overrides


@click.command()
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
    from trainables.trainer import TrainingDiverged, use_threads

    use_threads()  # the machine's CPUs, or OMP_NUM_THREADS
    overrides = parse_overrides(sets)
    if resume and (out or config_file):
        raise ConfigError("--resume DIR continues DIR; give neither --out nor --config with it")
    cfg = None if resume else load_config(config_file, overrides)
    out = Path(resume or out or "runs/train")
    trainer = prepare(cfg, out, bool(resume), overrides)  # bad input stops here, before the bar
    bar = tqdm(total=trainer.cfg.steps, initial=trainer.step, disable=not progress, unit="step")

    def on_row(row):
        bar.set_description("training" if row["step"] < trainer.cfg.steps else "done")
        bar.update(row["step"] - bar.n)
        bar.set_postfix(recon=f"{row['recon']:.1f}", KL=f"{row['kl']:.2f}", C=f"{row['C']:.2f}")

    def on_evaluate(final):
        bar.update(trainer.step - bar.n)
        what = "final checkpoint written; evaluating" if final else "evaluating"
        bar.set_description(what)
        bar.refresh()

    try:
        last = train_to_directory(trainer, out, on_row, on_evaluate)
    except TrainingDiverged as e:
        bar.close()
        click.echo(f"error: {e} (rows and checkpoints so far are in {out})", err=True)
        sys.exit(1)
    bar.close()
    click.echo(f"trained {trainer.step} steps into {out}")
    if last is not None:
        click.echo(f"recon {last['recon']:.2f} nats  KL {last['kl']:.2f} nats  C {last['C']:.2f}")
        for line in _what_it_learned(out, last):
            click.echo(line)
        shown = [
            f"{m} {last[m]:.3f}" if isinstance(last.get(m), float) and last[m] == last[m] else
            f"{m} n/a"
            for m in METRICS
            if m in last
        ]  # fmt: skip
        if shown:
            click.echo("metrics: " + "  ".join(shown))


def _what_it_learned(out: Path, last: dict) -> list[str]:
    """Which latents are active and what they code (analysis.switch_on over the rows),
    what the code tells about each factor, and a warning when it learned nothing."""
    import pandas as pd

    from analysis import switch_on as so
    from analysis.contract import MEAN_IMAGE_RECON, METRICS_FILE, exact_info_key, factor_info_key
    from trainables.local import read_rows

    rows = pd.DataFrame(read_rows(out / METRICS_FILE)).assign(trial_id="")
    if not so.has_information(rows):
        return []
    table = so.latent_switch_on(rows)
    on = table[table["active"]].sort_values("step_on")
    lines = []
    if len(on):
        where = "C" if rows["C"].nunique() > 1 else "step"
        lines.append(
            "active latents: "
            + ", ".join(
                f"z{r.latent} {so.code_label(r)} (on at {where} "
                f"{r.C_on if where == 'C' else r.step_on:.3g})"
                for _, r in on.iterrows()
            )
        )
    told = [f"{f} {last[k]:.2f}" for f in so.ENTROPY if (k := factor_info_key(f)) in last]
    lines.append("the code tells (nats): " + "  ".join(told))
    exact = [f"{f} {last[k]:.2f}" for f in so.ENTROPY if (k := exact_info_key(f)) in last]
    if exact:  # an image trial's final evaluation over every grid image
        check = so.bound_check(rows, pd.DataFrame([last]).assign(trial_id=""))
        unread = list(check.loc[~check["close"], "factor"])
        lines.append(
            "exact, over every grid image (nats): "
            + "  ".join(exact)
            + (f"  (the bound above misses {', '.join(unread)})" if unread else "")
        )
    if so.learned_nothing(last["recon"]):
        lines.append(
            f"warning: this trial learned nothing: recon {last['recon']:.1f} nats against "
            f"{MEAN_IMAGE_RECON} for predicting the mean image (train longer, or see "
            "docs/activation.md, 'Starting the encoder')"
        )
    return lines


@click.command("trainer")
@click.option("--steps", default=400, show_default=True, help="Timed steps per loop.")
@click.option("--window", default=25, show_default=True, help="Steps per turn of each loop.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--threads", type=click.IntRange(min=1), help="torch threads of both loops [the CPUs]."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config field.")
def bench_trainer(steps, window, batch_size, device, threads, sets):
    """Images per second: this trainer against a conventional DataLoader loop, the two
    interleaved window by window at the same thread count; medians and their ratio."""
    import torch

    from trainables.bench import compare, format_compare
    from trainables.trainer import use_threads

    torch.set_num_threads(threads) if threads else use_threads()
    overrides = {"batch_size": batch_size, "device": device, **parse_overrides(sets)}
    for line in format_compare(compare(steps, overrides, window)):
        click.echo(line)


@click.command("layers")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Profiled training steps.",
)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="torch threads [the CPUs].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config field.")
def bench_layers(steps, batch_size, device, threads, sets):
    """Where a training step's time goes: each convolution layer's forward and backward
    inside real steps, their GFLOP/s against the device's matmul rate, and the rest."""
    import torch

    from trainables.bench import format_layers, profile_layers
    from trainables.trainer import use_threads

    torch.set_num_threads(threads) if threads else use_threads()
    overrides = {"batch_size": batch_size, "device": device, **parse_overrides(sets)}
    for line in format_layers(profile_layers(overrides, steps)):
        click.echo(line)


@click.command("population")
@click.option(
    "--sizes", default="1,4,16", show_default=True, help="Population sizes K, comma-separated."
)
@click.option("--steps", default=4, show_default=True, help="Steps per turn of each side.")
@click.option("--rounds", default=3, show_default=True, help="Turns of each side.")
@click.option("--forward", type=click.Choice(["auto", "vmap", "loop"]), default="auto",
              show_default=True, help="How the population runs its K forwards.")  # fmt: skip
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="torch threads [the CPUs].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config field.")
def bench_population(sizes, steps, rounds, forward, device, threads, sets):
    """Aggregate images per second: K trials trained as one population against the same
    K trained as solo trials one after another (same device, one process, interleaved)."""
    import torch

    from trainables.bench import compare_population, format_population
    from trainables.trainer import use_threads

    try:
        ks = [int(k) for k in sizes.split(",") if k.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise ConfigError(f"--sizes {sizes!r}: give population sizes like 1,4,16")
    torch.set_num_threads(threads) if threads else use_threads()
    overrides = {"device": device, **parse_overrides(sets)}
    for line in format_population(compare_population(ks, steps, overrides, forward, rounds)):
        click.echo(line)


@click.command("activation")
@click.option("--seeds", default=4, show_default=True, help="Seeds 0..N-1, one trial each.")
@click.option("--jobs", default=2, show_default=True, help="Seeds trained at once (one core each).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a config field.")
@click.option(
    "--protocol",
    type=click.Choice(["factors", "images"]),
    default="factors",
    show_default=True,
    help="factors: the encoder sees the factors, q(z|f); images: q(z|x), the paper's main one.",
)
@click.option("--rows", type=click.Path(dir_okay=False), help="Also write every row here (CSV).")
@click.option(
    "--from-rows",
    type=click.Path(dir_okay=False, exists=True),
    help="Train nothing: print the result of the rows an earlier --rows wrote.",
)
def bench_activation(seeds, jobs, sets, protocol, rows, from_rows):
    """The paper's activation-order measurement on a CPU: per seed, the C at which each
    factor switches on and the order; across seeds, pairwise fractions with intervals.

    --protocol factors (default): factor encoder q(z|f), capacity objective, gamma 1000,
    C 0 -> 20 nats over 5,000 steps and 1,000 more (about 2 minutes a seed on one core).
    --protocol images: image encoder q(z|x), a half-width Burgess model, C 0 -> 20 over
    20,000 steps and 1,000 more (three seeds two at a time: about 25 minutes on 2 cores).
    --set changes any field.
    """
    import time

    import pandas as pd

    from trainables.activation_protocol import (
        activation_result,
        format_activation,
        protocol_config,
        run_protocol,
    )
    from trainables.config import TrialConfig

    if from_rows:
        for line in format_activation(activation_result(pd.read_csv(from_rows))):
            click.echo(line)
        return
    overrides = parse_overrides(sets)
    base = protocol_config(protocol)
    cfg = TrialConfig.from_dict({**base, **overrides})  # bad input stops here
    click.echo(
        f"{seeds} seeds, {jobs} at a time: encoder {cfg.encoder}, gamma {cfg.gamma:g}, "
        f"C {cfg.c_start:g} -> {cfg.c_max:g} over {cfg.c_steps} steps, {cfg.steps} steps, "
        f"lr {cfg.lr:g}, batch {cfg.batch_size}, channels {cfg.channels}, hidden {cfg.hidden}, "
        f"{cfg.precision}, probe {cfg.probe_points} inputs"
    )
    t0 = time.perf_counter()
    frame = run_protocol(list(range(seeds)), overrides, jobs, base)
    click.echo(f"trained in {time.perf_counter() - t0:.0f} s")
    if rows:
        frame.to_csv(rows, index=False)
    for line in format_activation(activation_result(frame)):
        click.echo(line)
