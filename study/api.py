"""The Python API: what `betastudy run` and `betastudy run --resume` do, as functions.

    from study import run, resume
    result = run("quick", sets=["trial.steps=500"])   # a preset, a YAML path or a dict
    result.study_dir, result.report                    # where it went

    from analysis import frontier_data, load_study, plot_frontier
    s = load_study(result.study_dir)
    plot_frontier(frontier_data(s.trials, "mig")).show()

Specs are validated before Ray starts, exactly as on the command line; on this machine
(no ``address`` and no RAY_ADDRESS) resource requests are checked against its CPUs and
GPUs. Errors are the CLI's: ``SpecError`` and ``ConfigError`` name the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from study.runner import Echo, StudyResult, resume_study, run_study
from study.spec import Machine, Spec, apply_overrides, load_spec, validate


def resolve_spec(
    spec: str | os.PathLike | dict[str, Any] | None = None,
    sets: Iterable[str] = (),
    address: str | None = None,
) -> Spec:
    """A validated study spec from a preset name, a YAML path or a dict, with ``sets``
    (``"trial.steps=40"``) applied; checked against this machine unless joining a cluster."""
    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    machine = None if joining else Machine.local()
    if isinstance(spec, dict):
        return validate(apply_overrides(spec, sets), machine)
    return load_spec(spec, sets, machine=machine)


def run(
    spec: str | os.PathLike | dict[str, Any] | None = None,
    sets: Iterable[str] = (),
    *,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
    echo: Echo = print,
) -> StudyResult:
    """Run a study (default: the ``quick`` preset) to its end and write its report."""
    spec = resolve_spec(spec, sets, address)
    return run_study(spec, address, progress=progress, echo=echo, report=report)


def resume(
    study_dir: str | os.PathLike,
    *,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
    echo: Echo = print,
) -> StudyResult:
    """Continue an interrupted study without rerunning its finished trials."""
    return resume_study(os.fspath(study_dir), address, progress=progress, echo=echo, report=report)
