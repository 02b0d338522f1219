"""``betastudy run``, ``betastudy presets`` and ``betastudy bench study``."""

from __future__ import annotations

import click

from study.spec import SpecError

ADDRESS_HELP = "Join this Ray cluster ('auto': the one on this machine) [default: RAY_ADDRESS]."


@click.command()
@click.argument("spec", required=False)
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a field: trial.steps=40."
)
@click.option("--resume", metavar="DIR", help="Continue the interrupted study in DIR (or URI).")
@click.option("--address", default=None, help=ADDRESS_HELP + " Without: start Ray here.")
@click.option("--dry-run", is_flag=True, help="Validate and print the resolved spec only.")
@click.option("--report/--no-report", default=True, show_default=True, help="Build report.html.")
def run(spec, sets, resume, address, dry_run, report):
    """Run a study: SPEC is a YAML file or a preset name (default: quick).

    The whole spec is validated before Ray starts. Results go to STORAGE/NAME (study.yaml,
    one folder per trial, trials.json, report.html); --resume DIR continues an
    interrupted study without rerunning its finished trials.
    """
    import yaml

    from study.api import resolve_spec
    from study.runner import resume_study, run_study

    if resume:
        if spec or sets:
            raise SpecError("--resume DIR continues the study saved in DIR; give no SPEC or --set")
        resume_study(resume, address, echo=click.echo, report=report)
        return
    study = resolve_spec(spec, sets, address)
    if dry_run:
        for note in study.notes:
            click.echo(f"# {note}")
        click.echo(yaml.safe_dump(study.to_dict(), sort_keys=False).rstrip())
        click.echo(f"# {study.n_trials} trials; valid, nothing started")
        return
    run_study(study, address, echo=click.echo, report=report)


@click.command()
@click.argument("name", required=False)
def presets(name):
    """List the study presets, one line each; with NAME, print that preset's YAML."""
    from study import presets as shipped

    names = shipped.names()
    if name:
        if name not in names:
            raise SpecError(f"no preset named {name!r}; presets: {', '.join(names)}")
        click.echo(shipped.text(name).rstrip())
        return
    width = max(len(n) for n in names)
    for n in names:
        click.echo(f"{n:<{width}}  {shipped.summary(n)}")


@click.command("study")
@click.option("--trials", default=20, show_default=True, help="Trials in the study.")
@click.option("--steps", default=20, show_default=True, help="Optimizer steps per trial.")
@click.option("--concurrent", default=1, show_default=True, help="Trials at a time (0: all).")
@click.option("--address", default=None, help=ADDRESS_HELP)
def bench_study(trials, steps, concurrent, address):
    """Driver overhead per trial and trial start-up time on local Ray (tiny trials)."""
    from study.bench import bench_study as measure
    from study.bench import format_study

    for line in format_study(measure(trials, steps, concurrent, address)):
        click.echo(line)
