"""Joining a cluster from cold: resource requests checked against what the cluster has
or can start (its live nodes, its autoscaler's node types), ``gpu: auto`` decided there,
the wait for a node said in one betastudy line (Ray's autoscaler events and Tune's
insufficient-resources warning folded into it), and a cluster started by hand (``ray
start --head --num-cpus=0``, as cluster.yaml and slurm/study.sbatch start their heads)
that a worker joins later."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from study.spec import AUTO, Cluster, Node, SpecError, validate
from tests.conftest import tiny_spec
from tests.helpers import trials_json, write_spec

HEAD = Node("head", 0, 0)
GPU_WORKER = Node("gpu_worker", 4, 1)


# ---- what a cluster can give a trial ------------------------------------------------------


def test_a_cold_cluster_whose_workers_join_by_hand_waits_rather_than_refusing(tmp_path):
    spec = validate(tiny_spec(tmp_path), Cluster(nodes=(HEAD,), node_types=None))
    assert spec.resources.cpu == 1
    assert spec.notes == ("no node of the cluster has 1 CPU yet: the trials wait for one to join",)


def test_gpu_auto_on_a_cold_cluster_follows_its_node_types(tmp_path):
    cold = Cluster(nodes=(HEAD,), node_types=(HEAD, GPU_WORKER))  # `ray up`, no worker yet
    spec = validate(tiny_spec(tmp_path, resources={"gpu": "auto"}), cold)
    assert spec.resources.gpu == 0.25 and spec.trial["device"] == "cuda" and not spec.notes
    packed = tiny_spec(
        tmp_path, space={"gamma": [1.0, 2.0]}, resources={"gpu": "auto", "population": 2}
    )
    assert validate(packed, cold).resources.gpu == 1.0
    cpu_only = Cluster(nodes=(HEAD,), node_types=(HEAD, Node("cpu_worker", 8, 0)))
    on_cpus = validate(tiny_spec(tmp_path, resources={"gpu": "auto"}), cpu_only)
    assert on_cpus.resources.gpu == 0 and on_cpus.trial["device"] == "cpu"
    assert on_cpus.notes[0].startswith("resources.gpu: auto -> 0: no GPU on the cluster's")


def test_gpu_auto_is_decided_once_a_worker_joins_a_cluster_started_by_hand(tmp_path):
    raw = tiny_spec(tmp_path, resources={"gpu": "auto"})
    assert validate(raw, Cluster(nodes=(HEAD,))).resources.gpu == AUTO  # the runner waits
    joined = Cluster(nodes=(HEAD, Node("10.0.0.2", 16, 4)))
    assert validate(raw, joined).resources.gpu == 0.25
    assert validate(raw, Cluster(nodes=(HEAD, Node("10.0.0.2", 16, 0)))).resources.gpu == 0


@pytest.mark.parametrize(
    "resources, key, hint",
    [
        ({"gpu": 2}, "resources.gpu", "add --set resources.gpu=1 or less"),
        ({"cpu": 8, "gpu": 1}, "resources.cpu", "add --set resources.cpu=4 or less"),
    ],
)
def test_a_request_no_node_type_can_take_is_refused_in_one_line(tmp_path, resources, key, hint):
    cold = Cluster(nodes=(HEAD,), node_types=(HEAD, GPU_WORKER))
    with pytest.raises(SpecError, match="fits no node the cluster has or can start") as e:
        validate(tiny_spec(tmp_path, resources=resources), cold)
    assert e.value.key == key and str(e.value).endswith(hint) and "\n" not in str(e.value)
    assert "gpu_worker: 4 CPU, 1 GPU" in str(e.value)


def test_node_types_come_from_the_autoscalers_config():
    from study.runner import node_types_of_config

    launched = {  # what `ray up` leaves on the head, resources filled in from the instance
        "max_workers": 4,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "gpu_worker": {"min_workers": 0, "max_workers": 4, "resources": {"CPU": 4, "GPU": 1}},
            "spare": {"max_workers": 0, "resources": {"CPU": 64}},
        },
    }
    assert node_types_of_config(launched) == (HEAD, GPU_WORKER)
    launched["available_node_types"]["gpu_worker"]["resources"] = {}  # not detected
    assert node_types_of_config(launched) is None
    assert node_types_of_config({"cluster_name": "x"}) is None


def test_node_types_come_from_the_gcs_cluster_config(monkeypatch):
    from ray._private.state import state
    from ray.core.generated import autoscaler_pb2

    from study.runner import node_types

    config = autoscaler_pb2.ClusterConfig()
    for name, resources, most in (("gpu", {"CPU": 4, "GPU": 1}, 4), ("off", {"CPU": 2}, 0)):
        group = config.node_group_configs.add(name=name, max_count=most)
        group.resources.update(resources)
    monkeypatch.setattr(state, "get_cluster_config", lambda: config)
    assert node_types("no such file") == (Node("gpu", 4, 1),)
    monkeypatch.setattr(state, "get_cluster_config", lambda: None)
    assert node_types("no such file") is None


# ---- the wait line --------------------------------------------------------------------------


def _trial(status: str, cpu: float = 1.0, gpu: float = 0.0):
    asked = {"CPU": cpu, "GPU": gpu} if gpu else {"CPU": cpu}
    return SimpleNamespace(
        status=status, placement_group_factory=SimpleNamespace(required_resources=asked)
    )


def test_the_wait_line_says_what_trials_wait_for_and_folds_the_autoscalers_events():
    from study.progress import AUTOSCALER, Progress

    lines: list[str] = []
    progress = Progress(
        lines.append, [], fits=lambda cpu, gpu: False, wait_first_s=0, wait_every_s=0
    )
    pending = [_trial("PENDING", 1, 0.25) for _ in range(3)]
    progress.on_step_end(0, pending)
    assert lines[-1].endswith("waiting for a node with 1 CPU, 0.25 GPU for 3 pending trials: 0 s")
    AUTOSCALER.add("Tip: use `ray status` to view detailed cluster status.")
    AUTOSCALER.add(
        "Error: No available node types can fulfill resource request {'CPU': 1.0, 'GPU': 0.25}. "
        "Add suitable node types to this cluster to resolve this issue."
    )
    progress.on_step_end(1, pending)
    assert "3 pending trials" in lines[-1]
    assert lines[-1].endswith(
        "; Ray's autoscaler can start no such node: join a worker (ray start --address)"
    )
    AUTOSCALER.add("Adding 1 node(s) of type gpu_worker.")
    progress.on_step_end(2, pending)
    assert lines[-1].endswith("; autoscaler: Adding 1 node(s) of type gpu_worker.")
    said = len(lines)
    progress.on_step_end(3, [_trial("RUNNING"), *pending])  # a trial runs: no wait line
    roomy = Progress(lines.append, [], fits=lambda cpu, gpu: True, wait_first_s=0, wait_every_s=0)
    roomy.on_step_end(0, pending)  # a node has room: the trial is starting
    assert len(lines) == said


def test_tunes_insufficient_resources_warning_is_left_to_the_wait_line():
    from ray.tune.execution.insufficient_resources_manager import (
        _get_insufficient_resources_warning_msg,
    )

    from study.runner import _not_the_wait_warning

    warning = logging.LogRecord(
        "x", logging.WARNING, "", 0, _get_insufficient_resources_warning_msg(), None, None
    )
    assert not _not_the_wait_warning(warning)
    other = logging.LogRecord("x", logging.WARNING, "", 0, "something else", None, None)
    assert _not_the_wait_warning(other)


# ---- a real cluster started by hand ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_ports() -> list[str]:
    """Ports of a node's agents, free ones (not Ray's defaults: other clusters run here)."""
    names = (
        "dashboard-agent-listen",
        "dashboard-agent-grpc",
        "runtime-env-agent",
        "metrics-export",
    )
    return [f"--{name}-port={_free_port()}" for name in names]


def _env(**extra: str) -> dict[str, str]:
    drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AIR_NEW_OUTPUT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def _processes_of(tag: str) -> list[int]:
    """The processes whose command line names ``tag``, and their descendants (a raylet's
    agents retitle themselves "ray::DashboardAgent": their command lines name nothing)."""
    found, parent = set(), {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (proc / "stat").read_text()
                parent[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                if tag.encode() in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
    grew = True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return sorted(found)


def _stop_cluster(temp_dir: str) -> None:
    """Every process of the cluster in ``temp_dir``, by its id (`ray stop` would stop every
    Ray on the machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes_of(temp_dir):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while _processes_of(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)


@contextlib.contextmanager
def hand_started_head(**env: str):
    """``ray start --head --num-cpus=0`` on free ports in a temp dir of its own; yields
    (its address, a function that joins a worker of one CPU, the env to join it with)."""
    temp_dir = tempfile.mkdtemp(prefix="bs-ray-")  # short: Ray's socket paths live in it
    env = _env(**env)
    address = f"127.0.0.1:{_free_port()}"
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "start", "--disable-usage-stats"]
    try:
        subprocess.run(
            [*ray_cli, "--head", "--num-cpus=0", "--num-gpus=0", f"--port={address.split(':')[1]}",
             "--node-ip-address=127.0.0.1", "--include-dashboard=false",
             f"--dashboard-port={_free_port()}", f"--temp-dir={temp_dir}", *_agent_ports()],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip

        def join_worker() -> None:
            subprocess.run(
                [*ray_cli, f"--address={address}", "--num-cpus=1", "--num-gpus=0", *_agent_ports()],
                env=env, check=True, capture_output=True, timeout=120,
            )  # fmt: skip

        yield address, join_worker, env
    finally:
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _betastudy_run(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from study.cli import main; main()", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


class _Lines:
    """A process's output lines, read as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((line for line in self.lines if text in line), None)
            if hit is not None:
                return hit
            time.sleep(0.5)
        raise AssertionError(f"no line with {text!r} in {timeout} s:\n" + "\n".join(self.lines))

    @property
    def text(self) -> str:
        self._reader.join(timeout=10)
        return "\n".join(self.lines)


@pytest.mark.ray
def test_a_study_on_a_cold_cluster_waits_for_a_worker_and_finishes(tmp_path):
    spec = write_spec(tmp_path, tiny_spec(tmp_path / "runs", name="cold", trial={"steps": 20}))
    with hand_started_head(RAY_AUTH_MODE="disabled") as (address, join_worker, env):
        proc = _betastudy_run(spec, "--address", address, "--no-report", env=env)
        try:
            out = _Lines(proc)
            out.wait_for("no node of the cluster has 1 CPU yet", timeout=120)
            # the autoscaler's "No available node types" event, folded into the wait line
            out.wait_for("pending trial: ", timeout=120)
            out.wait_for("Ray's autoscaler can start no such node", timeout=90)
            join_worker()
            assert proc.wait(timeout=300) == 0, out.text
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out.text
    assert "waiting for a node with 1 CPU for 1 pending trial: " in text
    for theirs in ("(autoscaler", "No available node types", "insufficient_resources_manager"):
        assert theirs not in text, text
    assert [t["status"] for t in trials_json(tmp_path / "runs" / "cold")] == ["TERMINATED"]


@pytest.mark.ray
def test_joining_a_token_auth_cluster_without_the_token_is_one_line(tmp_path):
    spec = write_spec(tmp_path, tiny_spec(tmp_path / "runs"))
    token = secrets.token_hex(16)
    with hand_started_head(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token) as (address, _, env):
        without = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        proc = _betastudy_run(spec, "--address", address, env=without)
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 2, out
    assert out.strip().splitlines() == [out.strip()], out  # one line, no gcs_client.cc lines
    assert out.startswith(f"error: cannot join the Ray cluster at {address}: ")
    assert out.strip().endswith("a cluster with token auth needs RAY_AUTH_MODE=token")
    assert not (tmp_path / "runs").exists()
