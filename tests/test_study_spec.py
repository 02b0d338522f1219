"""Study specs: presets, overrides and every validation error, through click's CliRunner.

Nothing here starts Ray: a bad spec must fail before that, with one line naming the
field and exit status 2, and leave no study directory behind.
"""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from study.cli import main
from study.presets import names as preset_names
from study.spec import Machine, SpecError, apply_overrides, load_spec, validate
from trainables.config import TrialConfig

PRESETS = {"quick", "burgess2018", "beta_sweep", "capacity_sweep", "bottleneck", "recon_vs_mig"}


def run(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def assert_bad(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---- presets -----------------------------------------------------------------------------


def test_presets_lists_every_preset_on_one_line_each():
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert {line.split()[0] for line in lines} == PRESETS == set(preset_names())
    assert all(len(line.split(maxsplit=1)[1]) > 20 for line in lines)


def test_presets_name_prints_its_yaml():
    result = CliRunner().invoke(main, ["presets", "beta_sweep"])
    assert yaml.safe_load(result.output)["space"]["beta"] == [1, 2, 4, 6, 8, 16]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid(name):
    spec = load_spec(name, machine=Machine(cpus=64, gpus=8))
    assert spec.name == name and spec.n_trials >= 1
    assert validate(yaml.safe_load(yaml.safe_dump(spec.to_dict()))) == spec  # study.yaml


def test_preset_contents_follow_the_papers():
    burgess = load_spec("burgess2018")
    t = burgess.trial
    assert (t["objective"], t["gamma"], t["c_start"], t["c_max"], t["c_steps"]) == (
        "capacity", 1000, 0, 25, 100_000)  # fmt: skip
    assert len(burgess.seeds) > 1
    capacity = load_spec("capacity_sweep")
    assert capacity.space["c_max"].values == (5, 10, 25, 50, 75, 100)
    assert capacity.trial["gamma"] == 1000
    assert load_spec("bottleneck").trial["encoder"] == "factors"
    mo = load_spec("recon_vs_mig")
    assert mo.search.mode == "optuna" and mo.search.objectives == {"recon": "min", "mig": "max"}
    quick = load_spec(None)  # the default
    assert quick.name == "quick" and quick.resources.gpu == 0 and quick.trial["device"] == "cpu"


def test_dry_run_prints_the_resolved_spec_and_starts_nothing(tmp_path):
    result = run("--dry-run", "--set", "trial.steps=40", "--set", f"storage={tmp_path}")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["trial"]["steps"] == 40 and resolved["checkpoint_every"] == 1000
    assert "4 trials; valid, nothing started" in result.output
    assert list(tmp_path.iterdir()) == []


# ---- overrides ---------------------------------------------------------------------------


def test_overrides_set_nested_fields_as_yaml_values():
    raw = apply_overrides(
        {"search": {"mode": "grid"}, "scheduler": {"metric": "recon"}},
        ["trial.steps=40", "search.num_samples=4", "space.beta=[1, 2]", "scheduler=null"],
    )
    assert raw["trial"] == {"steps": 40} and raw["search"]["num_samples"] == 4
    assert raw["space"] == {"beta": [1, 2]} and raw["scheduler"] is None
    assert "beta" not in apply_overrides(raw, ["space.beta=null"])["space"]


def test_seeds_are_a_count_from_the_trial_seed_or_a_list():
    assert validate({"trial": {"seed": 7}, "seeds": 3}).seeds == (7, 8, 9)
    assert validate({"seeds": [3, 1]}).seeds == (3, 1)
    spec = validate({"space": {"beta": [1, 2]}, "seeds": 2})
    assert spec.n_trials == 4


def test_optuna_space_takes_distributions_and_lists_as_choices():
    spec = validate(
        {
            "space": {"lr": {"loguniform": [1e-4, 1e-3]}, "encoder": ["image", "factors"]},
            "search": {"mode": "optuna", "num_samples": 5},
            "seeds": 2,
        }
    )
    assert spec.space["lr"].kind == "loguniform" and spec.space["encoder"].kind == "grid"
    assert spec.n_trials == 10


# ---- every validation error, through the CLI ------------------------------------------------

BAD = [
    # unknown keys
    (["--set", "colour=red"], ["unknown key 'colour'"]),
    (["--set", "trial.betta=4"], ["trial.betta", "unknown trial config key"]),
    (["--set", "search.sampler_name=tpe"], ["search.sampler_name"]),
    (["--set", "resources.tpu=1"], ["resources.tpu"]),
    (["--set", "scheduler.patience=3"], ["scheduler.patience"]),
    (["--set", "space.temperature=[1, 2]"], ["space.temperature", "unknown"]),
    # wrong types
    (["--set", "trial.steps=many"], ["steps", "not an integer"]),
    (["--set", "search.num_samples=two"], ["search.num_samples", "integer"]),
    (["--set", "seeds=[a, b]"], ["seeds"]),
    (["--set", "resources.cpu=lots"], ["resources.cpu", "number"]),
    (["--set", "max_failures=-1"], ["max_failures"]),
    (["--set", "space.beta=4"], ["space.beta", "list of values"]),
    (["--set", "trial.encoder=pixels"], ["encoder", "out of range"]),
    # out of range
    (["--set", "space.beta=[4, -1]"], ["space.beta", "beta >= 0"]),
    (["--set", "trial.beta=-2"], ["trial.beta", "beta >= 0"]),
    (["--set", "trial.c_start=10"], ["space.c_max", "c_max >= c_start"]),
    (["--set", "trial.steps=0"], ["trial.steps", "steps >= 1"]),
    (["--set", "checkpoint_every=-5"], ["checkpoint_every"]),
    (["--set", "resources.gpu=64"], ["resources.gpu=64", "above this machine"]),
    (["--set", "resources.gpu=1.5"], ["resources.gpu", "fractions"]),
    (["--set", "resources.cpu=4096"], ["resources.cpu=4096", "above this machine"]),
    (["--set", "trial.device=cuda"], ["trial.device", "resources.gpu"]),
    # unknown metric names
    (["--set", "search.objectives.accuracy=max"], ["search.objectives.accuracy", "unknown metric"]),
    (["--set", "search.objectives.kl_z9=max"], ["search.objectives.kl_z9"]),  # latent_dim 6
    (["--set", "search.objectives.mig=up"], ["search.objectives.mig", "min or max"]),
    (["--set", "scheduler.metric=mig"], ["scheduler.metric", "every report"]),
    # a grid with a distribution in it
    (["--set", "space.beta={loguniform: [1, 16]}"], ["space.beta", "grid study"]),
    (["--set", "search.num_samples=3"], ["search.num_samples", "grid study"]),
    # Optuna specifics
    (
        ["--set", "search.mode=optuna", "--set", "space.c_max={uniform: [30, 1]}"],
        ["space.c_max", "low < high"],
    ),
    (
        ["--set", "search.mode=optuna", "--set", "trial.latent_dim=null"]
        + ["--set", "space.latent_dim={uniform: [4, 8]}"],
        ["space.latent_dim", "int: [low, high]"],
    ),
    (
        ["--set", "search.mode=optuna", "--set", "space.beta={loguniform: [0, 4]}"],
        ["space.beta", "low > 0"],
    ),
    (
        ["--set", "search.mode=optuna", "--set", "trial.lr=null"]
        + ["--set", "space.lr={uniform: [1.0e-4, 2]}"],
        ["space.lr", "0 < lr < 1"],
    ),
    (["--set", "search.mode=annealing"], ["search.mode", "grid, optuna"]),
    (["--set", "search.sampler=cmaes"], ["search.sampler", "tpe, nsga2, gp"]),
    # the rest of the spec
    (["--set", "space.seed=[1, 2]"], ["space.seed", "seeds"]),
    (["--set", "trial.c_max=5"], ["trial.c_max", "also searched"]),
    (["--set", "trial.checkpoint_every=5"], ["trial.checkpoint_every", "top level"]),
    (["--set", "storage=ftp://host/x"], ["storage", "scheme 'ftp'"]),
    (["--set", "tracking=[wandb, comet]"], ["tracking='comet'", "tensorboard, mlflow, wandb"]),
    (["--set", "tracking={wandb: 1}"], ["tracking=", "expected a list of"]),
    (["--set", "name=a b"], ["name="]),
    (["--set", "trial"], ["--set 'trial'", "key=value"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_spec_is_one_line_exit_2_and_nothing_started(tmp_path, args, fragments):
    result = run("quick", "--set", f"storage={tmp_path / 'runs'}", *args)
    assert_bad(result, *fragments)
    assert not (tmp_path / "runs").exists()


def test_unknown_spec_file_or_preset(tmp_path):
    assert_bad(run("no_such_preset"), "no study file or preset named 'no_such_preset'", "quick")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert_bad(run(str(bad)), "not valid YAML")
    bad.write_text("- just\n- a list\n")
    assert_bad(run(str(bad)), "a study spec is a mapping")


def test_resume_errors(tmp_path):
    assert_bad(run("--resume", str(tmp_path)), "no study.yaml there")
    assert_bad(run("quick", "--resume", str(tmp_path)), "give no SPEC or --set")


def test_every_grid_point_is_validated_not_only_the_first():
    with pytest.raises(SpecError, match=r"space.c_max: .*c_max >= c_start.*\(at "):
        validate({"trial": {"c_start": 6}, "space": {"beta": [1, 2], "c_max": [10, 20, 5]}})


def test_resource_limits_apply_only_on_this_machine():
    raw = {"resources": {"gpu": 0.5}}
    with pytest.raises(SpecError, match="resources.gpu=0.5 is above this machine's 0 GPU"):
        validate(raw, Machine(cpus=2, gpus=0))
    assert validate(raw).trial["device"] == "cuda"  # joining a cluster: its GPUs count


def test_a_cpu_study_may_use_bf16_but_not_a_cuda_graph():
    cpu = Machine(cpus=2, gpus=0)
    assert validate({"trial": {"precision": "bf16"}}, cpu).trial["precision"] == "bf16"
    with pytest.raises(SpecError, match="trial.cuda_graph=True needs a GPU"):
        validate({"trial": {"cuda_graph": True}}, cpu)


@pytest.mark.parametrize("name", [n for n in preset_names() if n != "quick"])
def test_a_gpu_preset_runs_on_a_cpu_machine_and_says_so(name):
    spec = load_spec(name, machine=Machine(cpus=2, gpus=0))
    assert spec.resources.gpu == 0 and spec.trial["device"] == "cpu"
    assert spec.notes == ("resources.gpu: auto -> 0: no GPU here, the trials train on the CPU",)
    on_gpus = load_spec(name, machine=Machine(cpus=8, gpus=2))
    assert on_gpus.resources.gpu == 0.25 and on_gpus.trial["device"] == "cuda" and not on_gpus.notes
    joining = load_spec(name)  # a cluster: decided once joined (study.runner)
    assert joining.resources.gpu == "auto" and "device" not in joining.trial


def test_gpu_auto_gives_a_population_a_whole_gpu():
    raw = {"space": {"gamma": [1.0, 2.0]}, "resources": {"gpu": "auto", "population": 2}}
    assert validate(raw, Machine(cpus=8, gpus=1)).resources.gpu == 1.0
    with pytest.raises(SpecError, match="resources.gpu='fast': expected a number or auto"):
        validate({"resources": {"gpu": "fast"}})


def test_an_explicit_gpu_request_above_the_machine_names_the_set_that_runs_it():
    cpu = Machine(cpus=2, gpus=0)
    with pytest.raises(SpecError, match="add --set resources.gpu=0$") as e:
        validate({"resources": {"gpu": 0.25}}, cpu)
    assert "\n" not in str(e.value)


def test_asha_with_optuna_seed_replicates_is_refused():
    with pytest.raises(SpecError, match="ASHA would stop some of a configuration's 2 seed"):
        validate(
            {
                "space": {"gamma": {"uniform": [1, 2]}},
                "seeds": 2,
                "search": {"mode": "optuna"},
                "scheduler": {"type": "asha", "metric": "recon", "mode": "min"},
            }
        )


def test_local_storage_is_refused_when_trials_run_on_other_hosts(tmp_path):
    from study.runner import check_storage_reaches

    mounts = tmp_path / "mounts"  # a mount table: / on a local disk, /shared over NFS
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\nnas:/export /shared nfs4 rw 0 0\n")
    spec = validate({"storage": str(tmp_path)})
    two = {"10.0.0.1", "10.0.0.2"}
    check_storage_reaches(spec, {"10.0.0.1"}, str(mounts))  # nodes on this host alone: fine
    with pytest.raises(SpecError, match=r"runs trials on 2 hosts .* storage=s3://"):
        check_storage_reaches(spec, two, str(mounts))
    check_storage_reaches(validate({"storage": "/shared/runs"}), two, str(mounts))  # NFS
    check_storage_reaches(validate({"storage": "s3://bucket/runs"}), two, str(mounts))


def test_tracking_names_known_trackers(monkeypatch):
    assert validate({"tracking": ["tensorboard"]}).tracking == ("tensorboard",)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert validate({"tracking": "wandb"}).tracking == ("wandb",)
    with pytest.raises(SpecError, match="tracking='comet': expected one of .*wandb"):
        validate({"tracking": ["comet"]})


def test_wandb_logs_offline_without_an_api_key(monkeypatch):
    import study.spec

    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(study.spec, "_wandb_key", lambda: False)  # whatever this machine has
    assert study.spec.wandb_mode() == "offline"
    monkeypatch.undo()
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert study.spec.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's choice wins
    assert study.spec.wandb_mode() == "disabled"


def test_bad_wandb_tracking_is_one_line_exit_2(tmp_path, monkeypatch):
    import importlib.util

    import study.spec

    where = ["--set", f"storage={tmp_path / 'runs'}", "--set", "tracking=[wandb]"]
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setattr(study.spec, "_wandb_key", lambda: False)
    monkeypatch.setenv("WANDB_MODE", "online")
    assert_bad(run("quick", *where), "tracking: wandb with WANDB_MODE=online needs an API key")
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    assert_bad(run("quick", *where), "WANDB_MODE='sometimes'", "online, offline, disabled")
    real = importlib.util.find_spec
    absent = lambda name, *a: None if name == "wandb" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", absent)
    assert_bad(run("quick", *where), "tracking: wandb needs the wandb package; pip install wandb")
    assert not (tmp_path / "runs").exists()


def test_the_spec_sections_are_dataclasses_whose_fields_are_the_yaml_keys():
    from study.spec import Resources, Scheduler, Search, Spec, defaults, keys

    resolved = validate({"scheduler": {"metric": "recon"}}).to_dict()
    assert list(resolved) == list(keys(Spec)) and "notes" not in resolved
    assert list(resolved["search"]) == list(keys(Search)) == list(defaults(Search))
    assert defaults(Resources) == {"cpu": 1, "gpu": 0, "population": 1}
    assert resolved["resources"] == defaults(Resources)
    # a scheduler's open fields are resolved: the metric's direction, a tenth of the steps
    assert resolved["scheduler"] == {**defaults(Scheduler), "metric": "recon", "mode": "min",
                                     "grace_period": TrialConfig.steps // 10}  # fmt: skip
    assert resolved["checkpoint_every"] == TrialConfig.checkpoint_every
    assert "checkpoint_every" not in resolved["trial"]


SPEC_ERROR_KEYS = [
    ({"colour": "red"}, "colour"),
    ({"search": {"mode": "annealing"}}, "search.mode"),
    ({"search": {"objectives": {"accuracy": "max"}}}, "search.objectives.accuracy"),
    ({"resources": {"tpu": 1}}, "resources.tpu"),
    ({"resources": {"gpu": 1.5}}, "resources.gpu"),
    ({"trial": {"beta": -2}}, "trial.beta"),
    ({"space": {"beta": [4, -1]}}, "space.beta"),
    ({"space": {"seed": [1, 2]}}, "space.seed"),
    ({"scheduler": {"metric": "mig"}}, "scheduler.metric"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"checkpoint_every": -5}, "checkpoint_every"),
]


@pytest.mark.parametrize(("raw", "key"), SPEC_ERROR_KEYS, ids=[k for _, k in SPEC_ERROR_KEYS])
def test_a_spec_error_carries_its_key_through_pickling(raw, key):
    import pickle

    with pytest.raises(SpecError) as e:
        validate(raw)
    assert e.value.key == key and key in str(e.value)
    again = pickle.loads(pickle.dumps(e.value))  # errors cross Ray's process boundary
    assert again.key == key and str(again) == str(e.value)


def test_gpu_auto_is_decided_in_a_step_of_its_own_once_ray_is_up():
    from study.spec import AUTO, resolve_resources

    spec = load_spec("burgess2018", machine=None)  # before Ray: nothing to decide by
    assert spec.resources.gpu == AUTO and spec.trial.get("device", "auto") == "auto"
    on_gpus = resolve_resources(spec, Machine(cpus=16, gpus=2))
    assert on_gpus.resources.gpu == 0.25 and on_gpus.trial["device"] == "cuda"
    on_cpu = resolve_resources(spec, Machine(cpus=2, gpus=0))
    assert on_cpu.resources.gpu == 0 and on_cpu.trial["device"] == "cpu"
    assert any("no GPU here" in n for n in on_cpu.notes)
    assert on_cpu.space == spec.space and on_cpu.search == spec.search  # the rest as it was
    with pytest.raises(SpecError, match="resources.cpu=4 is above this machine's 2 CPU"):
        resolve_resources(apply_overrides_spec(spec, cpu=4), Machine(cpus=2, gpus=0))


def apply_overrides_spec(spec, **resources):
    import dataclasses

    return dataclasses.replace(spec, resources=dataclasses.replace(spec.resources, **resources))
