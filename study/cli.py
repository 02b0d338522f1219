"""The ``betastudy`` command: a thin layer that builds one config and calls the library.

Each command lives beside the library it drives (``cli_train``, ``cli_run``,
``cli_report``) and registers itself on ``main`` or ``bench`` below.
"""

from __future__ import annotations

import sys

import click

# Errors that mean "bad input": printed as one line, exit status 2, no traceback.
# Command modules append their library's error classes here.
BAD_INPUT: list[type[BaseException]] = []


class _Main(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except tuple(BAD_INPUT) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="betastudy")
def main() -> None:
    """Hyperparameter studies of beta-VAE and capacity-annealed VAEs on dSprites."""


@main.group()
def bench() -> None:
    """Benchmarks that print figures: trainer, metrics, study, report."""


# Register the commands (imported for their side effect on `main` and `bench`).
from study import cli_metrics, cli_report, cli_run, cli_train  # noqa: E402, F401
