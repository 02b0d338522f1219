"""``betastudy report``, ``betastudy export`` and ``betastudy bench report``."""

from __future__ import annotations

import os

import click

from analysis.contract import REPORT_FILE


@click.command()
@click.argument("study_dir")
@click.option("-o", "--out", default=REPORT_FILE, show_default=True, help="HTML file to write.")
@click.option("--metric", default="mig", show_default=True, help="Frontier metric (any reported).")
@click.option(
    "--color", default="auto", show_default=True, help="beta, gamma, c_max, auto or none."
)
@click.option("--grid", nargs=2, default=None, help="Two hyperparameters for the heatmaps.")
@click.option(
    "--active-nats",
    default=0.1,
    show_default=True,
    help="A latent is active while it tells this much about its input (nats).",
)
@click.option(
    "--factor-share",
    default=0.25,
    show_default=True,
    help="A factor switches on when the code tells this share of its entropy.",
)
@click.option("--trials", default=4, show_default=True, help="Trials with their own figures.")
def report(
    study_dir: str,
    out: str,
    metric: str,
    color: str,
    grid: tuple[str, str] | None,
    active_nats: float,
    factor_share: float,
    trials: int,
) -> None:
    """Build the self-contained HTML report of STUDY_DIR (a folder or a URI)."""
    from analysis.report import build_report

    path = build_report(
        study_dir,
        out,
        metric,
        color=None if color == "none" else color,
        grid=grid or None,
        active_nats=active_nats,
        factor_share=factor_share,
        max_detail_trials=trials,
    )
    click.echo(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


@click.command()
@click.argument("study_dir")
@click.option(
    "-o",
    "--out",
    default=None,
    help="Folder [default: STUDY_DIR/export, or ./NAME-export for a URI].",
)
@click.option("--csv", is_flag=True, help="Also write CSV files.")
def export(study_dir: str, out: str | None, csv: bool) -> None:
    """Write STUDY_DIR's trials, curves, KL histories, evaluations and MI as parquet."""
    from analysis.export import export_study
    from analysis.load import load_study

    study = load_study(study_dir)
    if out is None:
        local = study.fs.local_path("") if study.fs is not None else None
        out = os.path.join(local, "export") if local else f"{study.name}-export"
    for path in export_study(study, out, csv=csv):
        click.echo(str(path))


@click.command("report")
@click.option("--trials", default=500, show_default=True, help="Trials in the synthetic study.")
@click.option("--steps", default=100_000, show_default=True, help="Steps per trial.")
@click.option("--report-every", default=100, show_default=True, help="Steps between reports.")
@click.option("--out", default=None, help="Keep the report here (default: a temporary folder).")
def bench_report(trials: int, steps: int, report_every: int, out: str | None) -> None:
    """Build the report of a synthetic study; print load and build time and file size."""
    from analysis.bench import bench_report as measure
    from analysis.bench import format_report_bench

    for line in format_report_bench(measure(trials, steps, report_every, out)):
        click.echo(line)
