"""slurm/study.sbatch, run as SLURM would run it, with SLURM's and Ray's commands replaced
by stand-ins that record how they were called."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "slurm" / "study.sbatch"
STANDINS = {
    "scontrol": 'echo "scontrol $*" >> "$LOG"; printf "gpu01\\ngpu02\\ngpu03\\n"',
    "srun": 'echo "srun $*" >> "$LOG"; case "$*" in *hostname*) echo "10.1.0.7";; esac',
    "ray": 'echo "ray $*" >> "$LOG"',
    "betastudy": 'echo "betastudy $* RAY_AUTH_MODE=$RAY_AUTH_MODE" >> "$LOG"',
}


def run_script(tmp_path: Path, *args: str, token: bool = True) -> tuple[int, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STANDINS.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    token_path = tmp_path / "auth_token"
    if token:
        token_path.write_text("secret\n")
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LOG": str(log),
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "SLURM_JOB_NODELIST": "gpu[01-03]",
        "SLURM_GPUS_PER_NODE": "a100:4",
        "SLURM_CPUS_PER_TASK": "16",
        "RAY_START_WAIT": "1",  # the stand-ins started in the background log meanwhile
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stderr, calls


def test_head_then_one_worker_per_node_then_the_study(tmp_path):
    rc, err, calls = run_script(tmp_path, "burgess2018", "--set", "storage=/shared/runs")
    assert rc == 0, err
    starts = [c for c in calls if c.startswith("srun") and "ray start" in c]
    head, *workers = starts
    assert "-w gpu01" in head and "--head" in head and "--node-ip-address=10.1.0.7" in head
    assert "--num-cpus=0" in head and "--dashboard-host=127.0.0.1" in head  # driver only
    assert sorted(w.split("-w ")[1].split()[0] for w in workers) == ["gpu02", "gpu03"]
    for w in workers:
        assert "--address=10.1.0.7:6379" in w and "--num-gpus=4" in w and "--num-cpus=16" in w
    (study,) = [c for c in calls if c.startswith("betastudy")]
    assert study == (
        "betastudy run burgess2018 --set storage=/shared/runs --address 10.1.0.7:6379 "
        "RAY_AUTH_MODE=token"
    )
    assert calls.index(study) > max(calls.index(w) for w in workers)  # the cluster first


@pytest.mark.parametrize(
    "args,token,message",
    [
        ((), True, "usage: sbatch slurm/study.sbatch SPEC_OR_PRESET"),
        (("quick",), False, "no Ray token at"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, token, message):
    rc, err, calls = run_script(tmp_path, *args, token=token)
    assert rc == 2 and err.count("\n") == 1 and message in err
    assert not any(c.startswith(("srun", "betastudy")) for c in calls)  # nothing started
