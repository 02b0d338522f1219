"""benchmarks/gpu.sh, the one-shot device check, where no CUDA device is: it says so in
one line (exit 2) before it starts anything, and every script it runs is in the project."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def test_the_script_is_valid_bash_and_runs_only_project_files():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    scripts = set(re.findall(r"python3 (benchmarks/\S+\.py)", text))
    assert scripts == {
        "benchmarks/gpu_checks.py",
        "benchmarks/trainer.py",
        "benchmarks/population.py",
    }
    assert all((ROOT / s).is_file() for s in scripts)
    assert "tests/test_cuda.py" in text and (ROOT / "tests" / "test_cuda.py").is_file()
    assert re.search(r"timeout -k 10 \"\$cap\"", text)  # every step under its own timeout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
@pytest.mark.parametrize(
    "command",
    [["bash", str(SCRIPT)], [sys.executable, str(ROOT / "benchmarks" / "gpu_checks.py"), "paths"]],
)
def test_without_cuda_it_stops_in_one_line(command, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert re.fullmatch(
        r"error: benchmarks/gpu(_checks\.py|\.sh) needs .*CUDA device.*\n", done.stderr
    )
    assert not (tmp_path / "out").exists()  # nothing started


def test_the_checks_it_runs_exist_in_the_project():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_checks

    names = [name for name, _ in gpu_checks.PATHS + gpu_checks.COMPILE]
    assert len(names) == len(set(names)) and "population graph K=64" in names
    # the configs each check builds are valid TrialConfigs for this project
    assert gpu_checks.config(cuda_graph=True, precision="bf16").batch_size == 64
