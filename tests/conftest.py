"""Fixtures of the study tests: one small Ray cluster for the session, tiny study specs,
and ``small_study_dir``, a real grid study that the report tests read.

The session's Ray is a two-node cluster on this machine (``ray.cluster_utils.Cluster``),
a head and a worker of one CPU each, so every study test also runs across nodes. Each
node's processes carry ``NODE_ENV`` in their environment, which tells them apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

NODE_ENV = "BETASTUDY_TEST_NODE"
CACHE_ENV = "BETASTUDY_CACHE"


def pytest_configure(config):
    # The session's own data cache (inherited by its Ray workers): tests never read or
    # write the user's, and `prerender: auto` never finds a grid it did not build.
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="betastudy-test-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.pop(CACHE_ENV, ""), ignore_errors=True)


@pytest.fixture(scope="session")
def packed_grid():
    """The real packed grid, built once for the session (about half a minute)."""
    from trainables import grid

    return grid.load(progress=False)


# Tiny trials: a narrow model, a few dozen steps, metrics on 100 points.
TINY_TRIAL: dict[str, Any] = {
    "objective": "capacity",
    "gamma": 100.0,
    "c_max": 5.0,
    "c_steps": 40,
    "steps": 40,
    "batch_size": 16,
    "latent_dim": 4,
    "channels": 8,
    "hidden": 32,
    "lr": 2e-3,
    "report_every": 10,
    "eval_every": 0,
    "eval_points": 100,
    "probe_points": 128,
}


def tiny_spec(storage: Path | str, name: str = "tiny", **sections: Any) -> dict[str, Any]:
    """A study spec of tiny trials; ``trial=`` entries update TINY_TRIAL."""
    trial = {**TINY_TRIAL, **sections.pop("trial", {})}
    for key in sections.get("space", {}):
        trial.pop(key, None)
    return {
        "name": name,
        "trial": trial,
        "storage": str(storage),
        "checkpoint_every": 20,
        "max_failures": 1,
        **sections,
    }


def node_of(pid: int) -> str | None:
    """Which test node a process belongs to (Linux: read from its environment)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    tag = f"{NODE_ENV}=".encode()
    return next((e[len(tag) :].decode() for e in env if e.startswith(tag)), None)


@pytest.fixture(scope="session")
def ray_cluster():
    """A head and a worker node of one CPU each; connected for the whole session."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "env_vars": {NODE_ENV: "head"}},
    )
    cluster.add_node(num_cpus=1, env_vars={NODE_ENV: "worker"})
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


class _NodeProbe:
    """Tune callback: the node of each trial, read while its process reports."""

    def __init__(self) -> None:
        from ray import tune

        class Probe(tune.Callback):
            def on_trial_result(inner, iteration, trials, trial, result, **info):
                self.nodes.setdefault(trial.trial_id, node_of(result["pid"]))

        self.nodes: dict[str, str | None] = {}
        self.callback = Probe()


@pytest.fixture(scope="session")
def small_study(ray_cluster, tmp_path_factory):
    """A real 2x2 grid study (gamma x c_max) of tiny capacity VAEs on the session's two
    nodes, with an evaluation mid-way and at the end and final checkpoints; returns
    (study directory, {trial_id: node})."""
    from study.runner import run_study
    from study.spec import validate

    root = tmp_path_factory.mktemp("small_study")
    spec = validate(
        tiny_spec(
            root,
            name="small",
            trial={"eval_every": 20},
            space={"gamma": [10.0, 100.0], "c_max": [2.0, 5.0]},
        )
    )
    probe = _NodeProbe()
    result = run_study(spec, callbacks=[probe.callback], progress=False, report=False)
    return Path(result.study_dir), probe.nodes


@pytest.fixture(scope="session")
def small_study_dir(small_study) -> Path:
    """The directory of a real small grid study: 4 tiny trials, final checkpoints."""
    return small_study[0]


@pytest.fixture(autouse=True)
def _few_boosting_stages(monkeypatch):
    """Fast evaluations in this process fit DCI's classifiers with 5 boosting stages, not
    20: a tiny trial's final evaluation spends most of its second in those trees, and the
    tests that train compare rows with rows, never a DCI value with a fixed one. DCI
    itself is tested at its own sizes (tests/test_metrics_dci.py); FAST's own fields are
    checked in tests/test_metrics.py, which this leaves alone."""
    import dataclasses
    import importlib

    evaluate = importlib.import_module(
        "analysis.metrics.evaluate"
    )  # the package exports a function of that name
    monkeypatch.setattr(evaluate, "FAST", dataclasses.replace(evaluate.FAST, dci_estimators=5))
