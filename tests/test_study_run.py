"""Studies on a real (two-node, local) Ray: grid, Optuna, a killed trial, an interrupted
driver, a diverging trial. Tiny CPU trials; the session's cluster is shared."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from analysis.contract import (
    CONFIG_FILE,
    OPTUNA_DB_FILE,
    OPTUNA_JOURNAL_FILE,
    STATE_FILE,
    STUDY_SPEC_FILE,
    TRAIN_COLUMNS,
    TRAVERSALS_FILE,
    kl_key,
)
from study.cli import main
from tests.conftest import tiny_spec
from tests.helpers import (
    KillAtStep,
    checkpoints,
    report_figures,
    returns,
    rows,
    run_cli,
    trials_json,
    write_spec,
)

pytestmark = pytest.mark.ray


# ---- a 2x2 grid on two nodes -------------------------------------------------------------


def test_grid_study_runs_every_point_on_both_nodes_into_storage(small_study):
    study_dir, nodes = small_study
    trials = trials_json(study_dir)
    assert [t["status"] for t in trials] == ["TERMINATED"] * 4
    grid = {(t["config"]["gamma"], t["config"]["c_max"]) for t in trials}
    assert grid == {(10.0, 2.0), (10.0, 5.0), (100.0, 2.0), (100.0, 5.0)}
    assert set(nodes.values()) == {"head", "worker"}  # trials ran on both nodes
    for t in trials:
        trial_dir = study_dir / t["path"]
        reported = rows(trial_dir)
        assert [r["step"] for r in reported] == [10, 20, 30, 40]
        for r in reported:
            assert set(TRAIN_COLUMNS) <= set(r) and kl_key(3) in r
        assert "mig" in reported[1] and "mig" in reported[3]  # eval_every=20 and the end
        final = checkpoints(trial_dir)[-1]
        for name in (STATE_FILE, CONFIG_FILE, TRAVERSALS_FILE):
            assert (final / name).is_file()
        assert json.loads((final / CONFIG_FILE).read_text())["gamma"] == t["config"]["gamma"]
    spec = yaml.safe_load((study_dir / STUDY_SPEC_FILE).read_text())
    assert spec["name"] == "small" and spec["space"]["gamma"] == [10.0, 100.0]


# ---- Optuna, multi-objective, through the CLI ---------------------------------------------


def test_optuna_multi_objective_study_with_seed_replicates(ray_cluster, tmp_path):
    import optuna

    spec = tiny_spec(
        tmp_path / "runs",
        name="mo",
        trial={"steps": 30},
        space={"c_max": {"uniform": [1, 10]}, "gamma": {"loguniform": [10, 1000]}},
        seeds=2,
        search={
            "mode": "optuna",
            "sampler": "nsga2",
            "objectives": {"recon": "min", "mig": "max"},
            "num_samples": 2,
        },
    )
    from study.runner import run_study
    from study.spec import validate

    watcher = JournalWatcher(tmp_path / "runs" / "mo" / OPTUNA_JOURNAL_FILE, "mo")
    lines: list[str] = []
    run_study(validate(spec), callbacks=[watcher.callback], echo=lines.append, report=False)
    out = "\n".join(lines)
    study_dir = tmp_path / "runs" / "mo"
    trials = trials_json(study_dir)
    assert [t["status"] for t in trials] == ["TERMINATED"] * 4
    # the live journal: readable while the study ran, every configuration told at the end
    assert watcher.seen and watcher.seen[0] >= 1
    live = optuna.load_study(study_name="mo", storage=journal(study_dir / OPTUNA_JOURNAL_FILE))
    assert live.metric_names == ["recon", "mig"]
    assert [t.state.name for t in live.trials] == ["COMPLETE", "COMPLETE"]
    by_config: dict[tuple, list[dict]] = {}
    for t in trials:
        assert 1 <= t["config"]["c_max"] <= 10 and 10 <= t["config"]["gamma"] <= 1000
        by_config.setdefault((t["config"]["c_max"], t["config"]["gamma"]), []).append(t)
    assert len(by_config) == 2  # two suggestions, each run with seeds 0 and 1
    assert all(sorted(t["config"]["seed"] for t in g) == [0, 1] for g in by_config.values())

    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{study_dir / OPTUNA_DB_FILE}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    assert study.metric_names == ["recon", "mig"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for ot in study.trials:
        group = by_config[(ot.params["c_max"], ot.params["gamma"])]
        finals = [rows(study_dir / t["path"])[-1] for t in group]
        assert ot.values[0] == pytest.approx(sum(r["recon"] for r in finals) / 2)
        assert ot.values[1] == pytest.approx(sum(r["mig"] for r in finals) / 2)
    assert "best" in out and "recon (min)" in out and "mig (max)" in out


def journal(path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


class JournalWatcher:
    """Tune callback: at each trial start, how many trials the live journal holds."""

    def __init__(self, path: Path, name: str) -> None:
        import optuna
        from ray import tune

        self.seen: list[int] = []
        seen = self.seen

        class Watch(tune.Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                seen.append(len(optuna.load_study(study_name=name, storage=journal(path)).trials))

        self.callback = Watch()


# ---- failures ---------------------------------------------------------------------------


def test_killed_trial_finishes_from_its_checkpoint(ray_cluster, tmp_path):
    from study.runner import run_study
    from study.spec import validate

    spec = validate(tiny_spec(tmp_path, name="kill", trial={"objective": "beta"}))
    kill = KillAtStep(30)  # after the checkpoint at step 20
    result = run_study(spec, callbacks=[kill.callback], progress=False, report=False)
    (record,) = result.records
    assert record.status == "TERMINATED" and len(kill.killed) == 1
    reported = rows(Path(result.study_dir) / record.path)
    first_pid = kill.killed[record.trial_id]
    before = [r["step"] for r in reported if r["pid"] == first_pid]
    after = [r["step"] for r in reported if r["pid"] != first_pid]
    assert before == [10, 20, 30]
    assert after == [30, 40]  # restarted from the step-20 checkpoint, not from 0
    assert (checkpoints(Path(result.study_dir) / record.path)[-1] / TRAVERSALS_FILE).is_file()


class InterruptAfterFirstTrial:
    """Tune callback: stop the driver (as Ctrl-C does) when the first trial ends."""

    def __init__(self) -> None:
        from ray import tune

        class Interrupt(tune.Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own stop signal, like SIGINT

        self.callback = Interrupt()


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_interrupted_study_resumes_without_rerunning_finished_trials(ray_cluster, tmp_path):
    from study.runner import run_study
    from study.spec import validate

    spec = validate(
        tiny_spec(
            tmp_path,
            name="stopped",
            trial={"objective": "beta"},
            space={"beta": [1.0, 2.0, 4.0]},
            search={"max_concurrent": 1},
        )
    )
    lines: list[str] = []
    first = run_study(
        spec, callbacks=[InterruptAfterFirstTrial().callback], echo=lines.append, report=False
    )
    study_dir = Path(first.study_dir)
    done = [r for r in first.records if r.status == "TERMINATED"]
    assert 1 <= len(done) < 3
    assert any(line.startswith("unfinished: ") for line in lines)
    kept = {r.trial_id: (study_dir / r.path / "result.json").read_bytes() for r in done}

    out = run_cli("--resume", str(study_dir), "--no-report")
    trials = trials_json(study_dir)
    assert [t["status"] for t in trials] == ["TERMINATED"] * 3
    assert sorted(t["config"]["beta"] for t in trials) == [1.0, 2.0, 4.0]
    for t in trials:
        assert rows(study_dir / t["path"])[-1]["step"] == 40
        if t["trial_id"] in kept:  # finished before the stop: not run again
            assert (study_dir / t["path"] / "result.json").read_bytes() == kept[t["trial_id"]]
    assert "unfinished" not in out


def test_diverging_trial_fails_with_its_reason_while_others_finish(ray_cluster, tmp_path):
    spec = tiny_spec(
        tmp_path / "runs",
        name="diverge",
        trial={"objective": "beta", "beta": 1.0},
        space={"lr": [2e-3, 0.9]},  # Adam at lr 0.9 blows up within a few steps
        max_failures=3,  # a retry would diverge again: none must be made
    )
    out = run_cli(write_spec(tmp_path, spec), "--no-report")
    study_dir = tmp_path / "runs" / "diverge"
    trials = {t["config"]["lr"]: t for t in trials_json(study_dir)}
    healthy, bad = trials[2e-3], trials[0.9]
    assert healthy["status"] == "TERMINATED" and healthy["error"] is None
    assert bad["status"] == "ERROR"
    assert bad["error"].startswith("TrainingDiverged: non-finite loss at step ")
    error_txt = (study_dir / bad["path"] / "error.txt").read_text()
    assert error_txt.count("Failure # ") == 1  # not retried
    last = rows(study_dir / bad["path"])[-1]
    assert last["diverged"] is True and last["step"] == bad["last_step"] < 40
    assert f"failed (1):\n  {bad['trial_id']} (lr=0.9 seed=0): TrainingDiverged" in out


def test_asha_stops_the_worse_trials_early(ray_cluster, tmp_path):
    spec = tiny_spec(
        tmp_path / "runs",
        name="asha",
        trial={"objective": "beta", "beta": 1.0},
        space={"lr": [2e-3, 1e-6]},  # at lr 1e-6 the loss hardly moves
        seeds=2,
        search={"max_concurrent": 1},
        # the first rung at step 20: at step 10 the fast trials have not yet pulled ahead
        # of a slow one whose seed starts lower (2843 against 3006 nats, measured)
        scheduler={"type": "asha", "metric": "loss", "grace_period": 20, "reduction_factor": 2},
    )
    out = run_cli(write_spec(tmp_path, spec), "--no-report")
    trials = trials_json(tmp_path / "runs" / "asha")
    assert [t["status"] for t in trials] == ["TERMINATED"] * 4
    assert trials[0]["config"]["lr"] == 2e-3 and trials[0]["last_step"] == 40  # first: full
    slow = [t for t in trials if t["config"]["lr"] == 1e-6]
    assert [t["last_step"] for t in slow] == [20, 20]  # cut at the first rung
    assert "stopped early by the scheduler: " in out


# ---- the report at the end, and the benchmark ---------------------------------------------


def test_run_builds_the_report_at_the_end(ray_cluster, tmp_path):
    spec = tiny_spec(tmp_path / "runs", name="rep", trial={"steps": 20}, space={"c_max": [2, 5]})
    out = run_cli(write_spec(tmp_path, spec))
    report = tmp_path / "runs" / "rep" / "report.html"
    assert f"report: {report}" in out
    figures = report_figures(report.read_text())
    assert figures["frontier"] == ["fig-frontier"]
    assert {"fig-activation-0", "fig-activation-1"} <= set(figures["activation"])
    assert {"fig-traversals-0", "fig-traversals-1"} <= set(figures["traversals"])
    assert figures["curves"] == ["fig-curves"] and figures["parallel"] == ["fig-parallel"]


def test_bench_study_prints_its_figures(ray_cluster, monkeypatch):
    from study import bench

    results = returns(monkeypatch, bench, "bench_study")
    result = CliRunner().invoke(main, ["bench", "study", "--trials", "2", "--steps", "8"])
    assert result.exit_code == 0, result.output
    [r] = results
    assert (r.trials, r.steps, r.slots, r.finished, r.ray_was_running) == (2, 8, 1, 2, True)
    assert len(r.own_s) == 2 and 0 < sum(r.own_s) < r.wall_s
    assert len(r.startups) == 2  # one at a time: each trial's start measured
    lines = result.output.splitlines()
    assert lines == bench.format_study(r)
    assert f"2/2 trials of 8 steps, 1 at a time: {r.wall_s:.1f} s" in lines
    assert "driver overhead per trial" in result.output
    assert "trial start-up" in result.output


def test_mlflow_tracking_logs_every_trial_to_a_file_store(ray_cluster, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from study.runner import run_study
    from study.spec import validate

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = validate(
        tiny_spec(tmp_path / "runs", name="tracked", space={"c_max": [2, 5]}, tracking=["mlflow"])
    )
    result = run_study(spec, progress=False, report=False)
    mlflow.set_tracking_uri(f"file:{Path(result.study_dir) / 'mlruns'}")
    runs = mlflow.search_runs(experiment_names=["tracked"])
    assert len(runs) == 2
    assert sorted(runs["params.c_max"].astype(float)) == [2.0, 5.0]
    finals = {r.config["c_max"]: r.last["recon"] for r in result.records}
    for _, run in runs.iterrows():
        assert run["metrics.recon"] == pytest.approx(finals[float(run["params.c_max"])])


def test_a_run_starts_without_rays_banners(tmp_path):
    """A fresh `betastudy run` (its own local Ray, as a user starts it): Ray's start-up
    note on token auth, Tune's configuration table, its results path and its TensorBoard
    hint into Ray's session folder stay out; betastudy's own lines are there."""
    import subprocess
    import sys

    spec = write_spec(tmp_path, tiny_spec(tmp_path / "runs", space={"c_max": [2, 5]}))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AIR_NEW_OUTPUT")}
    done = subprocess.run(
        [sys.executable, "-c", "from study.cli import main; main()", "run", spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for banner in (
        "Token authentication is enabled",
        "Configuration for experiment",
        "View detailed results here",
        "To visualize your results with TensorBoard",
    ):
        assert banner not in out, out
    lines = out.splitlines()
    assert any(line.startswith("study tiny: 2 trials -> ") for line in lines)
    assert any(line.startswith("report: ") for line in lines)
    theirs = [line for line in lines if not any(re.match(p, line) for p in OUR_LINES)]
    assert theirs == [], out  # every line is betastudy's own


# What `betastudy run` itself prints (study.runner, study.progress, study.records).
OUR_LINES = (
    r"study \S+: \d+ trials (-> |\()",
    r"\[ *\d+s\] (start|done|failed|restart) +\S+",
    r"\[ *\d+s\] \d+ running, \d+ done, \d+ failed of \d+",
    r"best +value +trial +config$",
    r"\S+ \((min|max)\) +\S+",
    r"report: ",
)


def test_a_workers_exit_at_teardown_is_not_printed_but_other_unraisables_are(capsys):
    import sys
    import weakref

    from trainables.tune import quiet_teardown

    before = sys.unraisablehook
    try:
        quiet_teardown()

        class Thing:
            pass

        def exits(_):
            raise SystemExit(1)  # what Ray's SIGTERM handler raises inside a callback

        def breaks(_):
            raise ValueError("a real bug")

        for callback in (exits, breaks):
            thing = Thing()
            ref = weakref.ref(thing, callback)  # noqa: F841  (kept alive until thing dies)
            del thing
        err = capsys.readouterr().err
        assert "SystemExit" not in err
        assert "ValueError: a real bug" in err
    finally:
        sys.unraisablehook = before
