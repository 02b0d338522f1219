"""slurm/study.sbatch, run as SLURM would run it, with SLURM's and Ray's commands replaced
by stand-ins that record how they were called.

The stand-ins: `scontrol` (the nodes; a job's fields from $SCONTROL_JOB), `srun` (logs,
answers `hostname`, and keeps a `ray start --block` running as Ray does), `ray` (logs;
`ray status` reports the next count of $NODES_SEQ as alive nodes, in Ray's format, and
fails as Ray does before the head is up), `nvidia-smi` ($SMI_GPUS lines) and `betastudy`
(logs, prints the line that names its study folder; with $SIGNAL_DURING_RUN it sends the
batch shell SLURM's USR1 and stops as Tune does when the shell forwards it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "slurm" / "study.sbatch"
STANDINS = {
    "scontrol": """echo "scontrol $*" >> "$LOG"
case "$1 $2" in
  "show hostnames") printf "gpu01\\ngpu02\\ngpu03\\n";;
  "show job") echo "${SCONTROL_JOB:-JobId=7 JobName=betastudy}";;
esac""",
    "srun": """echo "srun $*" >> "$LOG"
case "$*" in *hostname*) echo "10.1.0.7";; *--block*) exec sleep 30;; esac""",
    "ray": """echo "ray $*" >> "$LOG"
[ "$1" = status ] || exit 0
read -ra seq <<< "${NODES_SEQ:-3}"
i=$(cat "$LOG.polls" 2>/dev/null || echo 0); echo $((i + 1)) > "$LOG.polls"
n=${seq[$i]:-${seq[-1]}}
if [ "$n" = 0 ]; then echo "ConnectionError: no running Ray instance" >&2; exit 1; fi
echo "======== Autoscaler status: 2026-01-01 00:00:00 ========"
echo "Node status"; echo "-----"; echo "Active:"; echo " 1 node_aaaa"
echo "Idle:"; [ "$n" -gt 1 ] && echo " $((n - 1)) worker" || echo " (no idle nodes)"
echo "Pending:"; echo " 10.1.0.9: worker, setting-up"
echo "Recent failures:"; echo " (no failures)"; echo; echo "Resources"; echo " 0.0/48.0 CPU"
""",
    "nvidia-smi": """echo "nvidia-smi $*" >> "$LOG"
for i in $(seq 1 "${SMI_GPUS:-0}"); do echo "GPU $((i - 1)): NVIDIA A100 (UUID: GPU-$i)"; done""",
    "betastudy": """echo "betastudy $* RAY_AUTH_MODE=$RAY_AUTH_MODE" >> "$LOG"
case "$*" in
  *--resume*) echo "resuming study burgess2018 in ${*#*--resume }" | cut -d' ' -f1-5;;
  *) echo "study burgess2018: 3 trials -> $STUDY_DIR";;
esac
if [ -n "${SIGNAL_DURING_RUN:-}" ]; then
  trap 'echo "betastudy got USR1" >> "$LOG"; echo "unfinished: 2"; kill $!; exit 0' USR1
  kill -USR1 "$PPID"  # SLURM's warning to the batch shell (--signal=B:USR1@300)
  sleep 20 & wait
  exit 9  # never stopped
fi""",
}
# No GPU variable of SLURM's: each test sets the forms it means.
SLURM_GPU_VARS = (
    "SLURM_GPUS_ON_NODE",
    "SLURM_GPUS_PER_NODE",
    "SLURM_JOB_GRES",
    "SLURM_GRES",
    "SLURM_JOB_GPUS",
    "CUDA_VISIBLE_DEVICES",
    "SLURM_RESTART_COUNT",
)


def run_script(
    tmp_path: Path, *args: str, token: bool = True, **env_vars: str
) -> tuple[int, str, str, list[str]]:
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
    log.unlink(missing_ok=True)
    (tmp_path / "calls.log.polls").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in SLURM_GPU_VARS}
    env.update(
        {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "LOG": str(log),
            "RAY_AUTH_TOKEN_PATH": str(token_path),
            "SLURM_JOB_ID": "7",
            "SLURM_JOB_NODELIST": "gpu[01-03]",
            "SLURM_SUBMIT_DIR": str(tmp_path),
            "SLURM_CPUS_PER_TASK": "16",
            "STUDY_DIR": str(tmp_path / "runs" / "burgess2018"),
            "BETASTUDY_POLL_S": "0.05",
            "BETASTUDY_JOIN_TIMEOUT": "30",
            **env_vars,
        }
    )
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stdout, done.stderr, calls


def ray_starts(calls: list[str]) -> tuple[str, list[str]]:
    head, *workers = [c for c in calls if c.startswith("srun") and "ray start" in c]
    return head, workers


def test_head_with_its_gpus_then_one_worker_per_node_then_the_study(tmp_path):
    rc, out, err, calls = run_script(
        tmp_path, "burgess2018", "--set", "storage=/shared/runs", SLURM_GPUS_PER_NODE="a100:4"
    )
    assert rc == 0, err
    head, workers = ray_starts(calls)
    assert "-w gpu01" in head and "--head" in head and "--node-ip-address=10.1.0.7" in head
    assert "--num-cpus=16" in head and "--num-gpus=4" in head  # trials on the head too
    assert "--dashboard-host=127.0.0.1" in head
    assert sorted(w.split("-w ")[1].split()[0] for w in workers) == ["gpu02", "gpu03"]
    for w in workers:
        assert "--address=10.1.0.7:6379" in w and "--num-gpus=4" in w and "--num-cpus=16" in w
    (study,) = [c for c in calls if c.startswith("betastudy")]
    assert study == (
        "betastudy run burgess2018 --set storage=/shared/runs --address 10.1.0.7:6379 "
        "RAY_AUTH_MODE=token"
    )
    assert calls.index(study) > max(calls.index(w) for w in workers)  # the cluster first
    assert "GPUs per node: 4 (from SLURM_GPUS_PER_NODE)" in out
    assert not any(c.startswith("scontrol requeue") for c in calls)  # it ended: no requeue
    # the study's folder is noted for a requeue
    assert (tmp_path / "betastudy-7.study").read_text() == f"{tmp_path}/runs/burgess2018\n"


def test_head_driver_only_on_request(tmp_path):
    rc, _, err, calls = run_script(
        tmp_path, "quick", SLURM_GPUS_ON_NODE="4", BETASTUDY_HEAD_TRIALS="0"
    )
    assert rc == 0, err
    head, workers = ray_starts(calls)
    assert "--num-cpus=0" in head and "--num-gpus=0" in head
    assert all("--num-gpus=4" in w for w in workers)


@pytest.mark.parametrize(
    "env,gpus,source",
    [
        ({"SLURM_GPUS_ON_NODE": "4"}, 4, "SLURM_GPUS_ON_NODE"),
        ({"SLURM_GPUS_PER_NODE": "8"}, 8, "SLURM_GPUS_PER_NODE"),
        ({"SLURM_GPUS_PER_NODE": "a100:4"}, 4, "SLURM_GPUS_PER_NODE"),
        ({"SLURM_GPUS_PER_NODE": "a100:2,v100:1"}, 3, "SLURM_GPUS_PER_NODE"),
        ({"SLURM_JOB_GRES": "gpu:2"}, 2, "SLURM_JOB_GRES"),
        ({"SLURM_JOB_GRES": "gpu:a100:4(IDX:0-1,3-4)"}, 4, "SLURM_JOB_GRES"),
        ({"SLURM_JOB_GRES": "shard:8,gpu:a100:2"}, 2, "SLURM_JOB_GRES"),
        ({"SLURM_JOB_GPUS": "0,1,2"}, 3, "SLURM_JOB_GPUS"),
        ({"CUDA_VISIBLE_DEVICES": "GPU-3f2a,GPU-77c1"}, 2, "CUDA_VISIBLE_DEVICES"),
        ({"SCONTROL_JOB": "JobId=7 TresPerNode=gres/gpu:a100:4 Gres=(null)"}, 4, "scontrol"),
        ({"SCONTROL_JOB": "JobId=7 TresPerNode=gres:gpu:6"}, 6, "scontrol"),
        ({"SCONTROL_JOB": "JobId=7 Gres=gpu:h100:8(S:0-1)"}, 8, "scontrol"),
        ({"SMI_GPUS": "2"}, 2, "nvidia-smi"),
        ({}, 0, "none found"),
        ({"SLURM_GPUS_PER_NODE": "a100:4", "BETASTUDY_GPUS": "1"}, 1, "BETASTUDY_GPUS"),
    ],
)
def test_gpus_per_node_from_each_form(tmp_path, env, gpus, source):
    rc, out, err, calls = run_script(tmp_path, "quick", **env)
    assert rc == 0, err
    assert f"GPUs per node: {gpus} (from {source}" in out
    head, workers = ray_starts(calls)
    assert all(f"--num-gpus={gpus}" in c for c in (head, *workers))


def test_waits_by_polling_until_every_node_is_alive(tmp_path):
    # Ray not up twice, the head alone twice, then the head and two workers
    rc, out, err, calls = run_script(tmp_path, "quick", NODES_SEQ="0 0 1 1 2 3")
    assert rc == 0, err
    polls = [i for i, c in enumerate(calls) if c.startswith("ray status")]
    assert len(polls) == 6 and all("--address=10.1.0.7:6379" in calls[i] for i in polls)
    _, workers = ray_starts(calls)
    first_worker = min(calls.index(w) for w in workers)
    assert polls[2] < first_worker < polls[3]  # workers once the head answers
    assert calls.index(next(c for c in calls if c.startswith("betastudy"))) > polls[-1]
    assert "ray: 3 of 3 nodes alive" in out


def test_gives_up_with_a_message_when_workers_never_join(tmp_path):
    rc, _, err, calls = run_script(tmp_path, "quick", NODES_SEQ="1 2", BETASTUDY_JOIN_TIMEOUT="1")
    assert rc == 1
    assert "only 2 of 3 Ray nodes joined within 1 s" in err
    assert not any(c.startswith("betastudy") for c in calls)


def test_signal_stops_the_study_cleanly_and_requeues_then_the_requeue_resumes(tmp_path):
    study_dir = tmp_path / "runs" / "burgess2018"
    study_dir.mkdir(parents=True)
    (study_dir / "study.yaml").write_text("name: burgess2018\n")
    rc, out, err, calls = run_script(
        tmp_path, "burgess2018", "--set", "storage=runs", SIGNAL_DURING_RUN="1"
    )
    assert rc == 0, err
    assert "betastudy got USR1" in calls  # forwarded to the driver: Tune's stop
    assert "got SIGUSR1: stopping the study cleanly" in out
    assert calls[-1] == "scontrol requeue 7"  # after the study stopped
    assert calls.index("betastudy got USR1") < calls.index("scontrol requeue 7")

    # the requeued job: same id, SLURM_RESTART_COUNT=1, the same arguments
    rc, out, err, calls = run_script(
        tmp_path, "burgess2018", "--set", "storage=runs", SLURM_RESTART_COUNT="1"
    )
    assert rc == 0, err
    (study,) = [c for c in calls if c.startswith("betastudy")]
    assert study.startswith(f"betastudy run --resume {study_dir} --address 10.1.0.7:6379")
    assert "continuing the study in" in out
    assert not any(c.startswith("scontrol requeue") for c in calls)


def test_requeued_without_a_noted_study_starts_anew(tmp_path):
    rc, out, err, calls = run_script(tmp_path, "quick", SLURM_RESTART_COUNT="1")
    assert rc == 0, err
    assert "no study was noted" in out
    (study,) = [c for c in calls if c.startswith("betastudy")]
    assert study.startswith("betastudy run quick --address")


def test_no_requeue_past_the_limit(tmp_path):
    rc, out, err, calls = run_script(
        tmp_path,
        "quick",
        SIGNAL_DURING_RUN="1",
        SLURM_RESTART_COUNT="3",
        BETASTUDY_MAX_REQUEUES="3",
    )
    assert rc == 0, err
    assert "not requeued" in out
    assert not any(c.startswith("scontrol requeue") for c in calls)


@pytest.mark.parametrize(
    "args,token,message",
    [
        ((), True, "usage: sbatch slurm/study.sbatch SPEC_OR_PRESET"),
        (("quick",), False, "no Ray token at"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, token, message):
    rc, _, err, calls = run_script(tmp_path, *args, token=token)
    assert rc == 2 and err.count("\n") == 1 and message in err
    assert not any(c.startswith(("srun", "betastudy")) for c in calls)  # nothing started
