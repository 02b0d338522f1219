"""``betastudy train`` through click's CliRunner: a run, a resume, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from study.cli import main
from tests.helpers import SMALL

SETS = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]


def train(*args: str):
    return CliRunner().invoke(main, ["train", "--no-progress", *SETS, *args])


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_rows_and_checkpoints_then_resumes(tmp_path):
    out = tmp_path / "trial"
    r = train("--set", "steps=20", "--set", "checkpoint_every=10", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "trained 20 steps" in r.output and "metrics: mig" in r.output
    assert [row["step"] for row in rows(out / "metrics.jsonl")] == [10, 20]
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step_0000010", "step_0000020"]
    assert (out / "checkpoints" / "step_0000020" / "traversals.npz").is_file()

    # continue to 30 steps from the last checkpoint
    r = CliRunner().invoke(
        main, ["train", "--no-progress", "--resume", str(out), "--set", "steps=30"]
    )
    assert r.exit_code == 0, r.output
    assert [row["step"] for row in rows(out / "metrics.jsonl")] == [10, 20, 30]
    assert "trained 30 steps" in r.output


def test_config_file_and_set_merge(tmp_path):
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("objective: beta\nbeta: 2\nsteps: 10\n")
    r = train("--config", str(cfg), "--set", "beta=3", "--out", str(tmp_path / "t"))
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "t" / "config.json").read_text())
    assert (saved["objective"], saved["beta"], saved["steps"]) == ("beta", 3.0, 10)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--set", "bta=4"], "unknown trial config key 'bta'"),
        (["--set", "beta=-1"], "beta=-1"),
        (["--set", "steps=0"], "steps=0"),
        (["--set", "beta"], "key=value"),
        (["--set", "data=missing.npz"], "no such file"),
        (["--set", "cuda_graph=true"], "needs a CUDA device"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, match):
    r = train(*args, "--out", str(tmp_path / "t"))
    assert r.exit_code == 2, r.output
    assert match in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output


def test_resume_of_a_directory_without_checkpoints_is_bad_input(tmp_path):
    r = CliRunner().invoke(main, ["train", "--resume", str(tmp_path)])
    assert r.exit_code == 2 and "no checkpoint" in r.output


def test_diverged_trial_keeps_its_rows(tmp_path):
    out = tmp_path / "t"
    r = train("--set", "steps=20", "--set", "gamma=1e39", "--out", str(out))
    assert r.exit_code == 1
    assert "non-finite loss at step 1" in r.output
    assert (out / "config.json").is_file()


def test_resumed_cli_run_equals_a_straight_one(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train("--set", "steps=30", "--out", str(a)).exit_code == 0
    assert (
        train("--set", "steps=20", "--set", "checkpoint_every=10", "--out", str(b)).exit_code == 0
    )
    r = CliRunner().invoke(
        main, ["train", "--no-progress", "--resume", str(b), "--set", "steps=30"]
    )
    assert r.exit_code == 0, r.output

    def training_rows(path):  # evaluation rows differ: only the final one is at step 20/30
        keep = ("step", "recon", "kl", "loss", "C")
        return [{k: row[k] for k in keep} for row in rows(path / "metrics.jsonl")]

    assert training_rows(a) == training_rows(b)
    sa = torch.load(a / "checkpoints" / "step_0000030" / "state.pt", weights_only=True)
    sb = torch.load(b / "checkpoints" / "step_0000030" / "state.pt", weights_only=True)
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])


def test_bad_input_with_the_progress_bar_is_still_one_line(tmp_path):
    r = CliRunner().invoke(main, ["train", "--set", "bta=1", "--out", str(tmp_path / "t")])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output


def test_an_unwritable_grid_cache_is_bad_input(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BETASTUDY_CACHE", str(tmp_path / "file" / "cache"))
    r = train("--set", "prerender=on", "--out", str(tmp_path / "t"))
    assert r.exit_code == 2, r.output
    assert "set BETASTUDY_CACHE to a writable directory" in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output


def test_an_image_trials_summary_prints_its_exact_values_and_what_the_bound_misses(tmp_path):
    from study.cli_train import _what_it_learned

    names = ("shape", "scale", "orientation", "posX", "posY")
    bound = dict(zip(names, (0.1, 0.7, 0.0, 1.8, 1.9)))
    exact = dict(zip(names, (0.15, 1.1, 0.6, 2.5, 2.6)))
    last = {"step": 200, "C": 2.0, "recon": 150.0, "kl": 2.0, "info_z0": 1.0, "kl_z0": 2.0}
    last |= {f"info/z0/{f}": 0.0 for f in names} | {f"info/{f}": v for f, v in bound.items()}
    first = {**last, "step": 100, "C": 1.0}
    last |= {f"exact/{f}": v for f, v in exact.items()}
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in (first, last)))
    lines = _what_it_learned(tmp_path, last)
    assert lines[-1] == (
        "exact, over every grid image (nats): shape 0.15  scale 1.10  orientation 0.60  "
        "posX 2.50  posY 2.60  (the bound above misses orientation)"
    )
