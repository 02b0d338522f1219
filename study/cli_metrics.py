"""``betastudy bench metrics``: seconds per disentanglement metric."""

from __future__ import annotations

import click


@click.command("metrics")
@click.option(
    "--preset",
    type=click.Choice(["both", "default", "fast"]),
    default="both",
    show_default=True,
    help="Which sample sizes to time.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
def metrics(preset, seed):
    """Time every metric on dSprites-shaped synthetic codes, at the default (reference)
    sizes and at the fast sizes used during training; print seconds per metric and the
    totals. The budget on a 2-core CPU: 10 s for the default suite, 2 s for the fast one.
    """
    from analysis.metrics.bench import bench_metrics, format_table

    presets = ("default", "fast") if preset == "both" else (preset,)
    click.echo(format_table(bench_metrics(presets, seed)))
