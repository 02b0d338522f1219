"""The Python API as a notebook calls it: run a study, load it, draw its figures, resume."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import tiny_spec

pytestmark = pytest.mark.ray


def test_importing_the_packages_starts_nothing():
    code = "import study, analysis, sys; print('ray' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_run_load_plot_and_resume_from_python(ray_cluster, tmp_path):
    from analysis import (
        activation_data,
        build_report,
        frontier_data,
        load_study,
        plot_activation,
        plot_frontier,
    )
    from study import resume, run

    lines: list[str] = []
    spec = tiny_spec(tmp_path / "runs", name="api", space={"c_max": [2, 5]})
    result = run(spec, ["trial.steps=30"], echo=lines.append, report=False)
    assert result.study_dir.endswith("api") and result.report is None
    assert [r.status for r in result.records] == ["TERMINATED", "TERMINATED"]
    assert any(line.startswith("study api: 2 trials") for line in lines)

    study = load_study(result.study_dir)
    assert len(study.trials) == 2 and set(study.trials["config/c_max"]) == {2, 5}
    assert int(study.trials["last_step"].max()) == 30  # the override took
    fig = plot_frontier(frontier_data(study.trials, "mig"))
    assert {t.name for t in fig.data} >= {"trials", "configurations (mean ± sd)"}
    trial_id = study.trials["trial_id"].iloc[0]
    assert plot_activation(activation_data(study, trial_id)).data
    page = build_report(study, tmp_path / "report.html")
    assert "betastudy report: api" in page.read_text()

    again = resume(result.study_dir, echo=lines.append, report=False)  # nothing left to do
    assert [r.status for r in again.records] == ["TERMINATED", "TERMINATED"]


def test_bad_specs_from_python_name_their_field(tmp_path):
    from study import run
    from study.spec import SpecError

    with pytest.raises(SpecError, match="trial.bogus"):
        run(tiny_spec(tmp_path, trial={"bogus": 1}))
