"""kuberay/rayjob.yaml against the RayJob CRD's own schema, and what it runs.

The schema is the v1 openAPIV3Schema of KubeRay's RayJob CRD, vendored in
tests/data/kuberay/ (its README.txt says from which release). Kubernetes prunes unknown
fields of a structural schema instead of refusing them, so the test makes every object
schema with properties closed (additionalProperties false) unless it keeps unknown
fields: a misspelled field fails here instead of vanishing on the API server."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import pinned_ray

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "kuberay" / "rayjob.yaml"
SCHEMA = Path(__file__).resolve().parent / "data" / "kuberay" / "rayjob-v1.schema.json"
IMAGE = "YOUR-REGISTRY/betastudy:latest"


def strict(schema: dict) -> dict:
    """``schema`` with Kubernetes' extensions as JSON Schema: objects closed unless
    x-kubernetes-preserve-unknown-fields, int-or-string as anyOf, nullable as null."""
    out = copy.deepcopy(schema)
    stack = [out]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
            node["additionalProperties"] = False
        if node.get("x-kubernetes-int-or-string") is True:
            node.pop("type", None)
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for key in ("properties", "patternProperties"):
            stack.extend(node.get(key, {}).values())
        for key in ("items", "additionalProperties", "not"):
            stack.append(node.get(key))
        for key in ("anyOf", "allOf", "oneOf"):
            stack.extend(node.get(key, []))
    return out


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = strict(json.loads(SCHEMA.read_text()))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def problems(validator, document) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def containers(manifest: dict) -> dict[str, list[dict]]:
    spec = manifest["spec"]
    cluster = spec["rayClusterSpec"]
    return {
        "head": cluster["headGroupSpec"]["template"]["spec"]["containers"],
        "worker": [
            c for g in cluster["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]
        ],
        "submitter": spec["submitterPodTemplate"]["spec"]["containers"],
    }


def env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_the_manifest_validates_against_the_rayjob_crd(validator, manifest):
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    assert problems(validator, manifest) == []


def _misspelled_top(m):
    m["spec"]["shutdownAfterJobFinish"] = m["spec"].pop("shutdownAfterJobFinishes")


def _misspelled_container(m):
    (head,) = containers(m)["head"]
    head["resource"] = head.pop("resources")


def _misspelled_worker_group(m):
    m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 4


def _wrong_type_replicas(m):
    m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"] = "4"


def _wrong_type_flag(m):
    m["spec"]["shutdownAfterJobFinishes"] = "true"


def _wrong_quantity(m):
    (head,) = containers(m)["head"]
    head["resources"]["limits"]["cpu"] = [2]


def _wrong_auth_mode(m):
    m["spec"]["rayClusterSpec"]["authOptions"]["mode"] = "password"


def _start_param_not_a_string(m):
    m["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0


@pytest.mark.parametrize(
    "breaks,where",
    [
        (_misspelled_top, "spec"),
        (_misspelled_container, "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0"),
        (_misspelled_worker_group, "spec.rayClusterSpec.workerGroupSpecs.0"),
        (_wrong_type_replicas, "spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas"),
        (_wrong_type_flag, "spec.shutdownAfterJobFinishes"),
        (
            _wrong_quantity,
            "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.resources.limits.cpu",
        ),
        (_wrong_auth_mode, "spec.rayClusterSpec.authOptions.mode"),
        (_start_param_not_a_string, "spec.rayClusterSpec.headGroupSpec.rayStartParams.num-cpus"),
    ],
)
def test_the_schema_rejects_a_broken_manifest(validator, manifest, breaks, where):
    broken = copy.deepcopy(manifest)
    breaks(broken)
    found = problems(validator, broken)
    assert found and all(p.startswith(f"{where}: ") for p in found), found


def test_quantities_are_int_or_string(validator, manifest):
    ok = copy.deepcopy(manifest)
    (worker,) = containers(ok)["worker"]
    worker["resources"]["limits"].update({"cpu": 4, "memory": "16Gi"})  # int and string
    assert problems(validator, ok) == []


def test_the_entrypoint_is_a_valid_betastudy_run_on_the_cluster(manifest):
    from study import presets
    from study.cli import main
    from study.spec import load_spec

    program, command, *args = shlex.split(manifest["spec"]["entrypoint"])
    assert (program, command) == ("betastudy", "run")
    params = main.commands["run"].make_context("run", args).params  # the CLI's own parsing
    assert params["address"] == "auto" and not params["resume"] and not params["dry_run"]
    assert params["spec"] in presets.names()
    # what `betastudy run --address auto` validates before it joins (resolve_spec)
    spec = load_spec(params["spec"], params["sets"], machine=None)
    assert spec.name == "burgess2018"
    assert spec.storage == "s3://YOUR-BUCKET/betastudy"
    # one worker of the group takes a trial (four, at a quarter GPU and one CPU each)
    from study.spec import Node

    (group,) = manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    limits = worker["resources"]["limits"]
    node = Node(group["groupName"], float(limits["cpu"]), float(limits["nvidia.com/gpu"]))
    assert spec.resources.gpu == 0.25 and node.fits(spec.resources.cpu, spec.resources.gpu)
    assert node.cpus >= 4 * spec.resources.cpu and node.gpus >= 4 * spec.resources.gpu


def test_a_cpu_less_head_and_gpu_workers_scaling_from_zero(manifest):
    spec = manifest["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["rayVersion"] == pinned_ray()  # cluster.yaml's: one Ray for every cluster
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the driver only
    (head,) = containers(manifest)["head"]
    assert not any("gpu" in k for k in head["resources"]["limits"])
    (group,) = cluster["workerGroupSpecs"]
    assert group["minReplicas"] == group.get("replicas", 0) == 0 < group["maxReplicas"]
    (worker,) = group["template"]["spec"]["containers"]
    gpus = worker["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus >= 1 and group["rayStartParams"]["num-gpus"] == str(gpus)


def test_the_token_comes_from_a_secret_on_head_workers_and_submitter(manifest):
    auth = manifest["spec"]["rayClusterSpec"]["authOptions"]
    assert auth["mode"] == "token" and auth["secretName"]
    # KubeRay's token mode needs Ray 2.52 or later
    ray_version = manifest["spec"]["rayClusterSpec"]["rayVersion"]
    assert tuple(map(int, ray_version.split("."))) >= (2, 52, 0)
    for role, listed in containers(manifest).items():
        assert listed, role
        for container in listed:
            found = env(container)
            assert found["RAY_AUTH_MODE"]["value"] == "token", role
            token = found["RAY_AUTH_TOKEN"]
            assert "value" not in token, role  # never in the manifest itself
            ref = token["valueFrom"]["secretKeyRef"]
            assert ref == {"name": auth["secretName"], "key": "auth_token"}, role


def test_storage_credentials_come_from_a_secret_on_head_and_workers(manifest):
    for role in ("head", "worker"):
        for container in containers(manifest)[role]:
            found = env(container)
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert "value" not in found[key], role
                assert found[key]["valueFrom"]["secretKeyRef"]["key"] == key, role


def test_one_image_built_on_rays_image_for_the_pinned_ray_with_cluster_yamls_pins(manifest):
    images = {c["image"] for listed in containers(manifest).values() for c in listed}
    assert images == {IMAGE}
    dockerfile = (ROOT / "kuberay" / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)$", dockerfile, re.M)
    assert base == f"rayproject/ray:{pinned_ray()}-py311-gpu"
    assert f"-t {IMAGE} ." in dockerfile
    assert "pip install --no-cache-dir --no-deps /home/ray/betastudy" in dockerfile

    def pins(text: str) -> dict[str, str]:
        return dict(re.findall(r'"([a-z_\-]+)(?:\[[a-z,]+\])?==([0-9.]+)"', text))

    assert pins(dockerfile) == pins((ROOT / "cluster.yaml").read_text())


def test_the_cluster_page_creates_the_secrets_the_manifest_reads(manifest):
    page = (ROOT / "docs" / "cluster.md").read_text().replace("\\\n", " ")
    created: dict[str, set[str]] = {}
    for line in page.splitlines():
        if "kubectl create secret generic" in line:
            words = shlex.split(line.split("#")[0])
            name = words[words.index("generic") + 1]
            created[name] = {w.split("=", 2)[1] for w in words if w.startswith("--from-literal=")}
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for listed in containers(manifest).values()
        for c in listed
        for e in c.get("env", [])
        if "valueFrom" in e
    ]
    assert refs
    for ref in refs:
        assert ref["key"] in created.get(ref["name"], set()), ref
    assert "kubectl apply -f kuberay/rayjob.yaml" in page
