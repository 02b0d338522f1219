"""cluster.yaml against Ray's own autoscaler schema, and its security posture."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_validates_against_rays_schema(config):
    pytest.importorskip("jsonschema", reason="Ray's schema check needs jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(config)
    validate_config(prepare_config(copy.deepcopy(config)))  # with Ray's AWS defaults


def test_the_schema_check_rejects_a_broken_file(config):
    jsonschema = pytest.importorskip("jsonschema", reason="Ray's schema check needs jsonschema")
    from ray.autoscaler._private.util import validate_config

    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["max_wokers"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_cpu_head_and_autoscaling_gpu_workers(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # the driver only
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))
    (worker,) = [v for k, v in types.items() if k != config["head_node_type"]]
    assert worker["node_config"]["InstanceType"].startswith("g5.")  # one A10G
    assert worker["min_workers"] == 0 < worker["max_workers"] <= config["max_workers"]


def test_only_ssh_is_open_to_the_internet(config):
    group = config["provider"]["security_group"]
    for rule in group["IpPermissions"]:  # Ray adds SSH and intra-cluster traffic itself
        assert rule["FromPort"] == rule["ToPort"] == 22
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start
    assert "ray-client-server-port" not in start


def test_token_authentication_on_every_node(config):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("export RAY_AUTH_MODE=token" in c for c in config["setup_commands"])


def test_setup_installs_the_project_with_pinned_dependencies(config):
    import ray

    setup = " ".join(config["setup_commands"])
    pins = dict(re.findall(r'"([a-z_\-]+)(?:\[[a-z,]+\])?==([0-9.]+)"', setup))
    assert pins["ray"] == ray.__version__
    assert {"torch", "optuna", "numpy", "pandas", "pyarrow", "plotly"} <= set(pins)
    assert "pip install --no-deps -e ~/betastudy" in setup
    assert config["file_mounts"]["~/betastudy"] == "."
