"""``betastudy report`` / ``export`` / ``bench report`` through click's CliRunner."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.synthetic import write_synthetic_study
from study.cli import main
from tests.helpers import returns

SECTIONS = (
    "summary",
    "frontier",
    "grid",
    "activation",
    "traversals",
    "curves",
    "parallel",
    "importance",
    "failed",
)


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    return write_synthetic_study(root, 14, steps=3000, report_every=100, eval_every=1000, seeds=2)


def test_report_on_a_synthetic_study(synthetic_study, tmp_path):
    out = tmp_path / "r" / "report.html"
    result = CliRunner().invoke(main, ["report", str(synthetic_study), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out} (")
    text = out.read_text()
    assert text.count("* plotly.js v") == 1  # the library, once, inline
    assert "<script src" not in text and "cdn.plot.ly/plotly" not in text
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text
    assert "could not draw" not in text
    assert "learned nothing" not in text  # the synthetic trials learned
    assert "<div class=warn><b>Warning.</b> KL did not track C" in text  # it runs above C
    assert "TrainingDiverged: non-finite loss at step 1600" in text  # the failed trial's reason
    assert text.count('class="plotly-graph-div"') >= 8


@pytest.mark.ray  # small_study_dir runs a real study on the session's Ray cluster
def test_report_on_a_real_small_study(small_study_dir, tmp_path):
    study_dir = small_study_dir
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(study_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("* plotly.js v") == 1
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text
    assert "could not draw" not in text
    # 40 steps of a tiny model learn nothing, and the report says so at the top
    assert "<div class=warn><b>Warning.</b> This study learned nothing" in text
    assert "learned nothing (reconstruction at the mean image" in text  # not counted


def test_report_options(synthetic_study, tmp_path):
    out = tmp_path / "r.html"
    args = [
        "report",
        str(synthetic_study),
        "-o",
        str(out),
        "--metric",
        "sap",
        "--color",
        "none",
        "--grid",
        "gamma",
        "lr",
        "--active-nats",
        "1.0",
        "--trials",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Frontier: reconstruction vs sap" in text and "Grid over gamma x lr" in text
    assert "tells at least 1.0 nats about its input" in text
    assert "fig-traversals-0" in text and "fig-traversals-1" not in text


def test_export_writes_parquet_and_csv(synthetic_study, tmp_path):
    out = tmp_path / "exp"
    result = CliRunner().invoke(main, ["export", str(synthetic_study), "-o", str(out), "--csv"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{e}"
        for n in ("curves", "evaluations", "kl", "mi", "trials", "latents", "factor_switch_on")
        for e in ("csv", "parquet")
    )
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 14 and trials["status"].tolist().count("ERROR") == 1
    assert len(pd.read_csv(out / "kl.csv")) == len(pd.read_parquet(out / "kl.parquet"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "{missing}"], "error: no such study directory"),
        (["export", "{missing}"], "error: no such study directory"),
        (["report", "{junk}"], "is not a study directory"),
        (["report", "{study}", "--metric", "nope"], "metric 'nope' was not reported"),
        (["report", "{study}", "--grid", "gamma", "beta"], "--grid beta: not a hyperparameter"),
        (["report", "{study}", "--grid", "gamma", "gamma"], "give two different"),
        (["report", "{study}", "--color", "beta"], "--color beta: not a hyperparameter"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, synthetic_study, tmp_path):
    (tmp_path / "junk").mkdir()
    paths = {"missing": tmp_path / "missing", "junk": tmp_path / "junk", "study": synthetic_study}
    args = [a.format(**paths) for a in args] + ["-o", str(tmp_path / "x.html")] * (
        args[0] == "report"
    )
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_bench_report_prints_figures(monkeypatch):
    from analysis import bench

    results = returns(monkeypatch, bench, "bench_report")
    result = CliRunner().invoke(main, ["bench", "report", "--trials", "6", "--steps", "1000"])
    assert result.exit_code == 0, result.output
    [r] = results
    assert (r.trials, r.reports) == (6, 10)
    assert r.disk_bytes > 0 and r.report_bytes > 0
    assert 0 < r.load_s < r.total_s and r.write_s > 0
    lines = result.output.splitlines()
    assert lines == bench.format_report_bench(r)
    assert lines[0].startswith("synthetic study: 6 trials x 10 reports")
    assert lines[1].startswith("load ") and " s = " in lines[1]
    assert lines[2].startswith("report.html ") and " MB" in lines[2]


@pytest.mark.parametrize("command", ["report", "export"])
def test_an_output_path_under_a_file_is_one_line_and_exit_2(command, synthetic_study, tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / ("report.html" if command == "report" else "export")
    result = CliRunner().invoke(main, [command, str(synthetic_study), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'file'} is a file, not a folder" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_folder_as_the_report_file_is_one_line_and_exit_2(synthetic_study, tmp_path):
    result = CliRunner().invoke(main, ["report", str(synthetic_study), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "a folder; give the path of the HTML file" in result.output


def test_exported_steps_and_counts_stay_integers(synthetic_study, tmp_path):
    out = tmp_path / "exp"
    result = CliRunner().invoke(main, ["export", str(synthetic_study), "-o", str(out), "--csv"])
    assert result.exit_code == 0, result.output
    trials = pd.read_parquet(out / "trials.parquet")
    for col in ("last_step", "images_seen", "n_reports"):
        assert str(trials[col].dtype) in ("Int64", "int64"), (col, trials[col].dtype)
    curves = pd.read_parquet(out / "curves.parquet")
    assert str(curves["step"].dtype) in ("Int64", "int64")
    assert str(pd.read_csv(out / "curves.csv")["step"].dtype) == "int64"  # no "1000.0"
