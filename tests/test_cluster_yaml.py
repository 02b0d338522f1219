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


def test_rays_own_image_for_the_pinned_ray_and_python_on_a_current_ami(config):
    from tests.helpers import pinned_ray

    docker = config["docker"]
    tag = f"rayproject/ray:{pinned_ray()}-py311"
    assert docker["head_image"] == f"{tag}-cpu" and docker["worker_image"] == f"{tag}-gpu"
    for node in config["available_node_types"].values():
        assert node["node_config"]["ImageId"] == "YOUR-DLAMI-ID"  # docs/cluster.md says which
    # inside the container: the image's Python, not the host's externally managed one
    assert not any("python3 -m pip" in c for c in config["setup_commands"])
    assert all("sudo" not in c for c in config["setup_commands"])


def test_least_privilege_instance_profiles(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]["node_config"]["IamInstanceProfile"]["Arn"]
    worker = types["gpu_worker"]["node_config"]["IamInstanceProfile"]["Arn"]
    assert head.endswith(":instance-profile/betastudy-head")
    assert worker.endswith(":instance-profile/betastudy-worker")
    assert "ray-autoscaler-v1" not in CLUSTER_YAML.read_text().split("cluster_name:")[1]


def test_setup_installs_the_project_with_pinned_dependencies(config):
    setup = " ".join(config["setup_commands"])
    pins = dict(re.findall(r'"([a-z_\-]+)(?:\[[a-z,]+\])?==([0-9.]+)"', setup))
    pyproject = (CLUSTER_YAML.parent / "pyproject.toml").read_text()
    floor = re.search(r'"ray\[tune\]>=([0-9.]+)"', pyproject)
    as_tuple = lambda v: tuple(map(int, v.split(".")))  # noqa: E731
    assert as_tuple(pins["ray"]) >= as_tuple(floor.group(1))  # within the project's range
    assert {"torch", "optuna", "numpy", "pandas", "pyarrow", "plotly", "pillow"} <= set(pins)
    # every runtime dependency is pinned (the project itself is installed --no-deps)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    deps = tomllib.loads((CLUSTER_YAML.parent / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[]", d)[0].lower() for d in deps["dependencies"]}
    assert names <= set(pins), names - set(pins)
    assert "python -m pip install --no-deps -e ~/betastudy" in setup
    assert config["file_mounts"]["~/betastudy"] == "."


def test_the_cluster_pages_iam_policies_give_least_privilege():
    import json

    text = (CLUSTER_YAML.parent / "docs" / "cluster.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    worker, head = (json.loads(b) for b in blocks[:2])
    worker_actions = {a for st in worker["Statement"] for a in _list(st["Action"])}
    assert worker_actions <= {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert all("YOUR-BUCKET" in st["Resource"] for st in worker["Statement"])
    (passrole,) = [st for st in head["Statement"] if "iam:PassRole" in _list(st["Action"])]
    assert passrole["Resource"].endswith(":role/betastudy-worker")  # that one role only
    assert not any(a.startswith("iam:") and a != "iam:PassRole"
                   for st in head["Statement"] for a in _list(st["Action"]))  # fmt: skip


def _list(value):
    return value if isinstance(value, list) else [value]
