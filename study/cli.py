"""The ``betastudy`` command: a thin layer that builds one config and calls the library.

Each command lives beside the library it drives (``cli_train``, ``cli_run``,
``cli_report``, ``cli_metrics``) as a plain click command; this module adds them to
``main`` and ``bench``. Command modules import nothing heavy at the top (torch, ray and
plotly load inside the command that needs them), so ``betastudy --help`` starts fast.
"""

from __future__ import annotations

import sys

import click

from study import cli_metrics, cli_report, cli_run, cli_train

# Errors that mean "bad input": printed as one line, exit status 2, no traceback. Named
# by module, so none is imported for it: an error of a module not loaded was not raised.
BAD_INPUT = (
    ("trainables.config", "ConfigError"),
    ("trainables.config", "DataError"),
    ("study.spec", "SpecError"),
    ("study.runner", "JoinError"),
    ("analysis.fs", "ReportInputError"),
)


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """The BAD_INPUT classes of the modules loaded so far."""
    return tuple(getattr(sys.modules[m], name) for m, name in BAD_INPUT if m in sys.modules)


class _Main(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as e:
            if not isinstance(e, bad_input_errors()):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="betastudy")
def main() -> None:
    """Hyperparameter studies of beta-VAE and capacity-annealed VAEs on dSprites."""


@main.group()
def bench() -> None:
    """Benchmarks that print figures: trainer, layers, population, metrics, study, report."""


for command in (cli_run.run, cli_run.presets, cli_train.train, cli_report.report,
                cli_report.export):  # fmt: skip
    main.add_command(command)
for name, command in (
    ("trainer", cli_train.bench_trainer),
    ("layers", cli_train.bench_layers),
    ("population", cli_train.bench_population),
    ("activation", cli_train.bench_activation),
    ("metrics", cli_metrics.metrics),
    ("study", cli_run.bench_study),
    ("report", cli_report.bench_report),
):
    bench.add_command(command, name)
