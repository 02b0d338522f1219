"""Loading study directories: Ray's layout, inferred statuses, single trials, export."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from analysis.contract import config_col
from analysis.export import export_study
from analysis.load import ReportInputError, load_study
from analysis.synthetic import write_synthetic_study


def _row(step: int, d: int = 2, **extra) -> dict:
    row = {
        "step": step,
        "images_seen": step * 64,
        "recon": 100.0 - step / 100,
        "kl": 0.1 * step / 100 * d,
        "C": step / 100,
        "loss": 1.0,
        "images_per_s": 10.0,
        **{f"kl_z{i}": 0.1 * step / 100 for i in range(d)},
    }
    row.update(extra)
    # what Ray adds to every row of result.json
    row.update(trial_id="x", training_iteration=1, time_total_s=1.0, done=False, config={"a": 1})
    return row


def _write_trial(root, name, config, rows, error=None, lines=None):
    t = root / name
    t.mkdir(parents=True)
    (t / "params.json").write_text(json.dumps(config))
    if rows is not None:
        text = "\n".join(json.dumps(r) for r in rows) + "\n"
        (t / "result.json").write_text(text + (lines or ""))
    if error:
        (t / "error.txt").write_text(f"Failure # 1\nTraceback ...\n  File x\n{error}\n\n")
    return t


def _evaluation(step: int, mig: float) -> dict:
    mi = {"mi/z0/posX": 0.7, "mi/z0/scale": 0.05, "mi/z1/posX": 0.02, "mi/z1/scale": 0.4}
    return {"mig": mig, "beta_vae": 0.5, **mi}


@pytest.fixture
def inferred_study(tmp_path):
    """No trials.json and no experiment state: everything is inferred from the folders."""
    root = tmp_path / "exp"
    root.mkdir()
    (root / "study.yaml").write_text("name: inferred\n")
    cfg = {"steps": 300, "beta": 4.0, "seed": 0}
    done = [_row(100), _row(200), _row(300, **_evaluation(300, 0.3))]
    _write_trial(root, "train_aaaaa_00000_0_beta=4", cfg, done)
    # failed after two reports
    _write_trial(
        root,
        "train_aaaaa_00001_1_beta=8",
        {**cfg, "beta": 8.0},
        done[:2],
        error="trainables.trainer.TrainingDiverged: non-finite loss at step 123",
    )
    # still running; its last line is half written and one value is NaN
    _write_trial(
        root,
        "train_aaaaa_00002_2_beta=16",
        {**cfg, "beta": 16.0},
        [_row(100, recon=float("nan"))],
        lines='{"step": 200, "rec',
    )
    _write_trial(root, "train_aaaaa_00003_3_beta=32", {**cfg, "beta": 32.0}, None)  # pending
    return root


def test_infers_status_error_reason_and_config(inferred_study):
    study = load_study(inferred_study)
    t = study.trials.set_index("trial_id")
    assert list(t.index) == ["aaaaa_00000", "aaaaa_00001", "aaaaa_00002", "aaaaa_00003"]
    assert list(t["status"]) == ["TERMINATED", "ERROR", "RUNNING", "PENDING"]
    assert t.loc["aaaaa_00001", "error"] == (
        "trainables.trainer.TrainingDiverged: non-finite loss at step 123"
    )
    assert list(t["n_reports"]) == [3, 2, 1, 0]
    assert list(t["complete"]) == [True, False, False, False]
    assert list(t["config/beta"]) == [4.0, 8.0, 16.0, 32.0]
    assert t.loc["aaaaa_00000", "mig"] == 0.3 and t.loc["aaaaa_00000", "eval_step"] == 300
    assert np.isnan(t.loc["aaaaa_00002", "recon"])  # the NaN row kept, the broken line skipped
    assert study.name == "inferred"


def test_tidy_frames(inferred_study):
    study = load_study(inferred_study)
    c = study.curves
    assert list(c.columns[:2]) == ["trial_id", "step"]
    assert len(c) == 3 + 2 + 1
    assert "done" not in c and "training_iteration" not in c and "config" not in c
    assert study.evaluations[["trial_id", "step", "mig"]].values.tolist() == [
        ["aaaaa_00000", 300.0, 0.3]
    ]
    mi = study.mi
    assert list(mi.columns) == ["trial_id", "step", "latent", "factor", "mi"]
    assert mi[["latent", "factor", "mi"]].values.tolist() == [
        [0, "posX", 0.7],
        [0, "scale", 0.05],
        [1, "posX", 0.02],
        [1, "scale", 0.4],
    ]
    kl = study.kl
    assert list(kl.columns) == ["trial_id", "step", "C", "latent", "kl"]
    assert len(kl) == 2 * len(c)
    one = kl[(kl["trial_id"] == "aaaaa_00000") & (kl["latent"] == 1)]
    assert one["kl"].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_trials_json_wins_and_restored_steps_are_deduplicated(tmp_path):
    root = tmp_path / "exp"
    root.mkdir()
    rows = [_row(100), _row(200, recon=5.0), _row(200, recon=7.0), _row(300)]  # restored at 200
    _write_trial(root, "t0", {"steps": 300}, rows)
    entries = [
        {"trial_id": "abc", "path": "t0", "status": "ERROR", "error": "OOM", "config": {"x": 1}}
    ]
    (root / "trials.json").write_text(json.dumps(entries))
    study = load_study(root)
    row = study.trials.iloc[0]
    assert (row["trial_id"], row["status"], row["error"], row["config/x"]) == (
        "abc",
        "ERROR",
        "OOM",
        1,
    )
    assert study.curves["step"].tolist() == [100, 200, 300]
    assert study.curves.loc[1, "recon"] == 7.0


def test_a_row_that_only_checks_the_exact_information_is_no_evaluation(tmp_path):
    # evaluated at 100, its code checked over every grid image at 100 and 200; still running
    exact = {f"exact/{f}": 0.5 for f in ("shape", "scale", "orientation", "posX", "posY")}
    rows = [_row(100, **_evaluation(100, 0.3), **exact), _row(200, **exact), _row(300)]
    _write_trial(tmp_path / "exp", "t0", {"steps": 1000}, rows)
    study = load_study(tmp_path / "exp")
    row = study.trials.iloc[0]
    assert (row["eval_step"], row["mig"], row["exact/posX"]) == (100, 0.3, 0.5)
    assert study.evaluations["step"].tolist() == [100, 200]  # the check's row is there too
    exact["exact/posX"] = 0.9
    rows[1].update(exact)
    _write_trial(tmp_path / "exp2", "t0", {"steps": 1000}, rows)
    assert load_study(tmp_path / "exp2").trials.iloc[0]["exact/posX"] == 0.9  # the last check


def test_ray_experiment_state_is_read_when_there_is_no_trials_json(tmp_path):
    root = tmp_path / "exp"
    root.mkdir()
    _write_trial(root, "train_x_dir", {"beta": 1}, [_row(100)])
    trial = {
        "trial_id": "f00d1_00000",
        "relative_logdir": "train_x_dir",
        "status": "TERMINATED",
        "config": {"beta": 2},
    }
    meta = {"error_filename": None, "last_result": {}}
    state = {"trial_data": [[json.dumps(trial), json.dumps(meta)]], "runner_data": {}}
    (root / "experiment_state-2025-01-01_00-00-00.json").write_text(json.dumps(state))
    study = load_study(root)
    assert study.trials[["trial_id", "status", "config/beta"]].values.tolist() == [
        ["f00d1_00000", "TERMINATED", 2]
    ]


def _traversal_npz(d: int = 2) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        inputs=np.zeros((3, 64, 64), np.float32),
        reconstructions=np.ones((3, 64, 64), np.float32),
        traversals=np.zeros((d, 5, 64, 64), np.float32),
        values=np.linspace(-2, 2, 5),
        latent_index=np.arange(d),
        kl=np.arange(d, dtype=float),
        factor=np.array(["posX"] + [""] * (d - 1)),
    )
    return buf.getvalue()


def test_single_trial_directory(tmp_path):
    out = tmp_path / "run1"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"steps": 200, "beta": 4.0}))
    (out / "metrics.jsonl").write_text("\n".join(json.dumps(_row(s)) for s in (100, 200)))
    for step in (100, 200):
        ck = out / "checkpoints" / f"step_{step:07d}"
        ck.mkdir(parents=True)
        (ck / "traversals.npz").write_bytes(_traversal_npz())
    study = load_study(out)
    t = study.trials.iloc[0]
    assert (t["trial_id"], t["status"], t["n_reports"]) == ("run1", "TERMINATED", 2)
    assert t["checkpoint"] == "checkpoints/step_0000200"
    arrays = study.traversals("run1")
    assert arrays["traversals"].shape == (2, 5, 64, 64)


def test_bad_input(tmp_path):
    with pytest.raises(ReportInputError, match="no such study directory"):
        load_study(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(ReportInputError, match="not a study directory"):
        load_study(tmp_path / "junk")


def test_synthetic_study_loads_and_exports(tmp_path):
    root = write_synthetic_study(tmp_path, 8, steps=2000, report_every=100, eval_every=1000)
    study = load_study(root)
    assert study.trials["status"].value_counts().to_dict() == {
        "TERMINATED": 5,
        "ERROR": 1,
        "RUNNING": 1,
        "PENDING": 1,
    }
    assert study.trials["checkpoint"].notna().sum() == 5
    paths = export_study(study, tmp_path / "export", csv=True)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{n}.{ext}"
        for n in ("trials", "curves", "kl", "evaluations", "mi", "latents", "factor_switch_on")
        for ext in ("parquet", "csv")
    )
    back = pd.read_parquet(tmp_path / "export" / "curves.parquet")
    pd.testing.assert_frame_equal(back, study.curves, check_dtype=False)
    trials = pd.read_parquet(tmp_path / "export" / "trials.parquet")
    assert trials["error"].dropna().tolist() == study.trials["error"].dropna().tolist()
    # image trials without exact checks: every switch-on is read off the held-out bound;
    # the same trials as factor-encoder trials are read off their exact rows
    factors = pd.read_parquet(tmp_path / "export" / "factor_switch_on.parquet")
    assert len(factors) and set(factors["source"]) == {"bound"}
    study.trials[config_col("encoder")] = "factors"
    assert set(study.frames()["factor_switch_on"]["source"]) == {"exact"}


def test_uri_and_moved_absolute_paths(tmp_path):
    root = write_synthetic_study(tmp_path, 4, steps=1000, report_every=100, eval_every=500)
    entries = json.loads((root / "trials.json").read_text())
    for e in entries:  # as if written on another machine, before the study was copied here
        e["path"] = f"/elsewhere/results/{e['path']}"
    (root / "trials.json").write_text(json.dumps(entries))
    local, uri = load_study(root), load_study(root.as_uri())
    assert uri.location.startswith("file://")
    pd.testing.assert_frame_equal(uri.trials, local.trials)
    pd.testing.assert_frame_equal(uri.curves, local.curves)
    assert local.trials["n_reports"].tolist() == [10, 5, 5, 0]
    assert uri.traversals(uri.trials["trial_id"][0])["kl"].shape == (10,)


def test_analysis_imports_neither_torch_ray_study_nor_trainables():
    import subprocess
    import sys

    code = (
        "import sys, analysis.report, analysis.export, analysis.synthetic, analysis.views\n"
        "bad = [m for m in ('torch', 'ray', 'study', 'trainables') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_diverged_last_row_gives_status_and_reason(tmp_path):
    """trainables.tune reports one last row with NaN losses, diverged and error, then raises."""
    root = tmp_path / "exp"
    root.mkdir()
    last = {
        "step": 300,
        "images_seen": 300 * 64,
        "recon": float("nan"),
        "kl": float("nan"),
        "loss": float("nan"),
        "diverged": True,
        "error": "TrainingDiverged: non-finite loss at step 300",
    }
    _write_trial(root, "train_bbbbb_00000_0", {"steps": 1000}, [_row(100), _row(200), last])
    study = load_study(root)
    t = study.trials.iloc[0]
    assert (t["status"], t["error"]) == ("ERROR", "TrainingDiverged: non-finite loss at step 300")
    assert study.curves["step"].tolist() == [100, 200]  # the reason row is not a training row
    assert "diverged" not in study.curves and "error" not in study.evaluations
