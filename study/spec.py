"""Study specs: a YAML file or a preset, ``--set`` overrides, one validated ``Spec``.

The whole spec is checked here, before Ray starts: unknown keys, wrong types,
out-of-range values (through TrialConfig, on every grid point or distribution end),
unknown metric names, a distribution in a grid study, resources above the machine.
Every problem is a ``SpecError`` whose one-line message names the field.
"""

from __future__ import annotations

import copy
import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analysis.contract import DIRECTIONS, METRICS, TRAIN_COLUMNS, kl_key
from study import presets
from study.space import DISTRIBUTIONS, Dim, n_points, points
from trainables.config import ConfigError, TrialConfig, parse_overrides


class SpecError(ValueError):
    """A study spec is malformed; the message names the field."""


TOP_KEYS = (
    "name",
    "trial",
    "space",
    "seeds",
    "search",
    "scheduler",
    "resources",
    "storage",
    "checkpoint_every",
    "max_failures",
    "tracking",
)
DEFAULTS: dict[str, Any] = {
    "name": "study",
    "trial": {},
    "space": {},
    "seeds": 1,
    "search": {
        "mode": "grid",
        "sampler": "tpe",
        "objectives": {"recon": "min", "mig": "max"},
        "num_samples": 1,
        "max_concurrent": 0,
    },
    "scheduler": None,
    "resources": {"cpu": 1, "gpu": 0, "population": 1},
    "storage": "runs",
    "checkpoint_every": None,
    "max_failures": 2,
    "tracking": [],
}
SCHEDULER_KEYS = ("type", "metric", "mode", "grace_period", "reduction_factor")
MODES = ("grid", "optuna")
SAMPLERS = ("tpe", "nsga2", "gp")
STORAGE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs")
UNSEARCHED = {
    "seed": "replicates are set by seeds",
    "checkpoint_every": "set checkpoint_every at the top level",
    "device": "the device follows resources.gpu",
}
AUTO = "auto"  # resources.gpu: a share of a GPU where there are GPUs, else the CPU
AUTO_GPU_SHARE = 0.25  # gpu: auto per trial (four trials a GPU); a population: one GPU
GRID_CHECK_LIMIT = 20_000  # validate the whole product of candidates up to this many points

_TYPES = typing.get_type_hints(TrialConfig)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Machine:
    """What a trial may ask for: this machine's CPUs and GPUs (None: a cluster's)."""

    cpus: int
    gpus: int

    @classmethod
    def local(cls) -> Machine:
        import torch

        return cls(os.cpu_count() or 1, torch.cuda.device_count())


@dataclass(frozen=True)
class Scheduler:
    """ASHA early stopping on a metric every report carries; time is the step."""

    metric: str
    mode: str
    grace_period: int
    reduction_factor: float


@dataclass(frozen=True)
class Spec:
    """A validated study; ``to_dict`` is the resolved YAML written to study.yaml."""

    name: str
    trial: dict[str, Any]  # fixed trial config fields (device resolved)
    space: dict[str, Dim]
    seeds: tuple[int, ...]
    mode: str
    sampler: str
    objectives: dict[str, str]  # metric -> "min" | "max"
    num_samples: int  # optuna: configurations to try (each with every seed)
    max_concurrent: int  # 0: no limit
    scheduler: Scheduler | None
    cpu: float
    gpu: float | str  # "auto" only while the machine is not known (joining a cluster)
    storage: str  # absolute local path or URI
    max_failures: int
    population: int = 1  # grid configurations trained together in one process (1: apart)
    notes: tuple[str, ...] = ()  # what validation decided for the user (gpu: auto)
    tracking: tuple[str, ...] = ()  # experiment trackers fed as trials report (TRACKERS)

    @property
    def checkpoint_every(self) -> int:
        return int(self.trial["checkpoint_every"])

    @property
    def n_trials(self) -> int:
        configs = n_points(self.space) if self.mode == "grid" else self.num_samples
        return configs * len(self.seeds)

    @property
    def max_steps(self) -> int:
        dim = self.space.get("steps")
        return int(max(dim.values)) if dim else int(self.trial.get("steps", TrialConfig.steps))

    def to_dict(self) -> dict[str, Any]:
        sched = self.scheduler
        return {
            "name": self.name,
            "trial": {k: v for k, v in self.trial.items() if k != "checkpoint_every"},
            "space": {k: d.to_yaml() for k, d in self.space.items()},
            "seeds": list(self.seeds),
            "search": {
                "mode": self.mode,
                "sampler": self.sampler,
                "objectives": dict(self.objectives),
                "num_samples": self.num_samples,
                "max_concurrent": self.max_concurrent,
            },
            "scheduler": None if sched is None else {"type": "asha", **sched.__dict__},
            "resources": {"cpu": self.cpu, "gpu": self.gpu, "population": self.population},
            "storage": self.storage,
            "checkpoint_every": self.checkpoint_every,
            "max_failures": self.max_failures,
            "tracking": list(self.tracking),
        }


# ---- loading ---------------------------------------------------------------------------


def read_spec(source: str | os.PathLike | None) -> dict[str, Any]:
    """The raw spec of a YAML file, or of a preset by name (default: quick)."""
    source = presets.DEFAULT if source is None else os.fspath(source)
    if Path(source).is_file():
        text, where = Path(source).read_text(), source
    elif source in presets.names():
        text, where = presets.text(source), f"preset {source}"
    else:
        raise SpecError(
            f"no study file or preset named {source!r}; presets: {', '.join(presets.names())}"
        )
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = str(e).replace("\n", " ")
        raise SpecError(f"{where}: not valid YAML ({problem})") from e
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: a study spec is a mapping of {', '.join(TOP_KEYS)}")
    return raw


def apply_overrides(raw: dict[str, Any], sets: typing.Iterable[str]) -> dict[str, Any]:
    """``--set trial.steps=40 --set search.num_samples=4`` (values parsed as YAML); a null
    value removes the key (``--set scheduler=null``)."""
    out = copy.deepcopy(raw)
    for dotted, value in parse_overrides(sets).items():
        *parents, last = dotted.split(".")
        node = out
        for i, part in enumerate(parents):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                where = ".".join(parents[: i + 1])
                raise SpecError(f"--set {dotted}: {where} is not a mapping")
        if value is None and last != "scheduler":
            node.pop(last, None)
        else:
            node[last] = value
    return out


def load_spec(
    source: str | os.PathLike | None,
    sets: typing.Iterable[str] = (),
    machine: Machine | None = None,
) -> Spec:
    """Read, override and validate a study spec; ``machine`` None skips resource limits."""
    return validate(apply_overrides(read_spec(source), sets), machine)


# ---- validation ------------------------------------------------------------------------


def validate(raw: dict[str, Any], machine: Machine | None = None) -> Spec:
    unknown = [k for k in raw if k not in TOP_KEYS]
    if unknown:
        known = ", ".join(TOP_KEYS)
        raise SpecError(f"unknown key {unknown[0]!r} in the study spec; known: {known}")
    spec = {**copy.deepcopy(DEFAULTS), **{k: v for k, v in raw.items() if v is not None}}
    if raw.get("scheduler") is None:
        spec["scheduler"] = None
    search = _section(spec, "search", DEFAULTS["search"])
    res = _section(spec, "resources", DEFAULTS["resources"])

    name = spec["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"name={name!r}: letters, digits, '_', '.' and '-' only")
    mode = _one_of("search.mode", search["mode"], MODES)
    sampler = _one_of("search.sampler", search["sampler"], SAMPLERS)
    num_samples = _int("search.num_samples", search["num_samples"], 1)
    if mode == "grid" and num_samples != 1:
        raise SpecError(
            f"search.num_samples={num_samples}: a grid study runs every point once per seed; "
            "use seeds for replicates, or search.mode=optuna"
        )
    max_concurrent = _int("search.max_concurrent", search["max_concurrent"], 0)
    cpu = _number("resources.cpu", res["cpu"], low=0, strict=True)
    population = _int("resources.population", res["population"], 1)
    notes: list[str] = []
    gpu: float | str
    if res["gpu"] == AUTO:
        gpu = auto_gpu(machine, population, notes)
    elif isinstance(res["gpu"], str):
        raise SpecError(f"resources.gpu={res['gpu']!r}: expected a number or auto")
    else:
        gpu = _number("resources.gpu", res["gpu"], low=0)
    if gpu != AUTO and gpu > 1 and not float(gpu).is_integer():
        raise SpecError(f"resources.gpu={gpu}: fractions are for less than one GPU")
    if machine is not None and gpu != AUTO:
        if gpu > machine.gpus:
            hint = (
                "; to train on the CPU instead, add --set resources.gpu=0"
                if machine.gpus == 0
                else f"; add --set resources.gpu={machine.gpus} or less"
            )
            raise SpecError(
                f"resources.gpu={gpu} is above this machine's {machine.gpus} GPU(s){hint}"
            )
        if cpu > machine.cpus:
            raise SpecError(f"resources.cpu={cpu} is above this machine's {machine.cpus} CPU(s)")
    max_failures = _int("max_failures", spec["max_failures"], 0)
    storage = _storage(spec["storage"])

    trial = _trial(spec, gpu)
    space = _space(spec["space"], mode, set(spec["trial"]))
    seeds = _seeds(spec["seeds"], trial)
    _check_points(trial, space)
    metrics = _metric_names(trial, space)
    objectives = _objectives(search["objectives"], metrics)
    scheduler = _scheduler(spec["scheduler"], trial, space)
    if mode == "optuna" and not space:
        raise SpecError("space: an optuna study needs at least one searched field")
    if scheduler is not None and mode == "optuna" and len(seeds) > 1:
        raise SpecError(
            f"scheduler: ASHA would stop some of a configuration's {len(seeds)} seed "
            "replicates and Optuna would be told the mean of the rest; use seeds: 1 or "
            "scheduler: null"
        )
    if population > 1 and scheduler is not None:
        raise SpecError(
            f"resources.population={population}: the ASHA scheduler stops trials one by "
            "one and cannot stop a population's members; use scheduler: null or population: 1"
        )
    return Spec(
        name=name,
        trial=trial,
        space=space,
        seeds=seeds,
        mode=mode,
        sampler=sampler,
        objectives=objectives,
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        scheduler=scheduler,
        cpu=cpu,
        gpu=gpu,
        storage=storage,
        max_failures=max_failures,
        population=population,
        tracking=_tracking(spec["tracking"]),
        notes=tuple(notes),
    )


def _section(spec: dict[str, Any], key: str, defaults: dict[str, Any]) -> dict[str, Any]:
    given = spec[key]
    if not isinstance(given, dict):
        raise SpecError(f"{key}: expected a mapping of {', '.join(defaults)}")
    unknown = [k for k in given if k not in defaults]
    if unknown:
        raise SpecError(f"unknown key {key}.{unknown[0]}; known: {', '.join(defaults)}")
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


def _one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{field}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _int(field: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{field}={value!r}: expected an integer")
    if value < low:
        raise SpecError(f"{field}={value}: expected an integer >= {low}")
    return value


def _number(field: str, value: Any, low: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{field}={value!r}: expected a number")
    if value < low or (strict and value == low):
        raise SpecError(f"{field}={value}: expected a number {'>' if strict else '>='} {low}")
    return value


def _storage(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"storage={value!r}: expected a local path or a URI such as s3://bucket")
    if value.startswith("file://"):
        value = value[len("file://") :]
    if "://" in value:
        scheme = value.split("://", 1)[0]
        if scheme not in STORAGE_SCHEMES:
            raise SpecError(f"storage={value!r}: scheme {scheme!r} is not one of {STORAGE_SCHEMES}")
        return value.rstrip("/")
    return os.path.abspath(os.path.expanduser(value))


TRACKERS = ("tensorboard", "mlflow")


def _tracking(value: Any) -> tuple[str, ...]:
    """``tracking: [tensorboard, mlflow]``: TensorBoard files are always written (Ray's
    logger, and the population members'); mlflow logs every trial as an MLflow run."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(f"tracking={value!r}: expected a list of {', '.join(TRACKERS)}")
    for name in value:
        _one_of("tracking", name, TRACKERS)
    if "mlflow" in value:
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            raise SpecError(
                "tracking: mlflow needs the mlflow package; pip install mlflow-skinny "
                "(or remove mlflow from tracking)"
            )
    return tuple(dict.fromkeys(value))


def auto_gpu(machine: Machine | None, population: int, notes: list[str]) -> float | str:
    """``resources.gpu: auto`` on ``machine``: a quarter GPU per trial (a whole one per
    population) where it has GPUs, 0 where it has none (with a note saying so); still
    ``auto`` while it is not known (a cluster: decided once joined)."""
    if machine is None:
        return AUTO
    if machine.gpus == 0:
        notes.append("resources.gpu: auto -> 0: no GPU here, the trials train on the CPU")
        return 0.0
    return 1.0 if population > 1 else AUTO_GPU_SHARE


def _trial(spec: dict[str, Any], gpu: float | str) -> dict[str, Any]:
    trial = spec["trial"]
    if not isinstance(trial, dict):
        raise SpecError("trial: expected a mapping of trial config fields")
    trial = dict(trial)
    for key in trial:
        if key not in _TYPES:
            raise SpecError(f"trial.{key}: unknown trial config key; known: {', '.join(_TYPES)}")
    if "checkpoint_every" in trial:
        raise SpecError("trial.checkpoint_every: set it at the top level (checkpoint_every)")
    if spec["checkpoint_every"] is not None:
        trial["checkpoint_every"] = _int("checkpoint_every", spec["checkpoint_every"], 0)
    else:
        trial["checkpoint_every"] = TrialConfig.checkpoint_every
    device = trial.get("device", "auto")
    if gpu == AUTO:
        pass  # decided where the cluster is known (study.runner); the trial's auto follows
    elif device == "auto":
        trial["device"] = "cuda" if gpu > 0 else "cpu"
    elif isinstance(device, str) and device.startswith("cuda") and gpu == 0:
        raise SpecError(f"trial.device={device!r} needs resources.gpu > 0")
    # precision=bf16 may run on a CPU (one with bf16 units: the trial checks where it runs)
    if trial.get("device") == "cpu" and trial.get("cuda_graph") is True:
        raise SpecError("trial.cuda_graph=True needs a GPU (resources.gpu > 0)")
    data = trial.get("data", "procedural")
    if isinstance(data, str) and data != "procedural":
        trial["data"] = os.path.abspath(os.path.expanduser(data))  # trials run in their own dir
    return trial


def _space(raw: Any, mode: str, fixed: set[str]) -> dict[str, Dim]:
    if not isinstance(raw, dict):
        raise SpecError("space: expected a mapping of trial config fields to values")
    space = {}
    for key, value in raw.items():
        field = f"space.{key}"
        if key in UNSEARCHED:
            raise SpecError(f"{field}: not searched; {UNSEARCHED[key]}")
        if key not in _TYPES:
            raise SpecError(f"{field}: unknown trial config key; known: {', '.join(_TYPES)}")
        if key in fixed:
            raise SpecError(f"trial.{key}: also searched in {field}; give it in one place")
        space[key] = _dim(field, key, value, mode)
    return space


def _dim(field: str, key: str, value: Any, mode: str) -> Dim:
    if isinstance(value, list):
        if not value:
            raise SpecError(f"{field}: an empty list of values")
        dim = Dim("grid", tuple(value))
    elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS:
        kind, args = next(iter(value.items()))
        if mode == "grid":
            raise SpecError(
                f"{field}: a {kind} distribution in a grid study; give a list of values "
                "or set search.mode=optuna"
            )
        dim = _distribution(field, key, kind, args)
    else:
        raise SpecError(
            f"{field}={value!r}: expected a list of values or one of "
            f"{', '.join(f'{{{d}: [...]}}' for d in DISTRIBUTIONS)} (fixed values go in trial)"
        )
    if mode == "optuna" and dim.kind in ("grid", "choice"):
        for v in dim.values:
            if v is not None and not isinstance(v, (bool, int, float, str)):
                raise SpecError(f"{field}: optuna choices are numbers, strings or booleans")
    return dim


def _distribution(field: str, key: str, kind: str, args: Any) -> Dim:
    if not isinstance(args, list) or not args:
        raise SpecError(f"{field}: {kind} takes a list, e.g. {{{kind}: [low, high]}}")
    if kind == "choice":
        return Dim("choice", tuple(args))
    if len(args) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args):
        raise SpecError(f"{field}: {kind} takes [low, high] numbers, got {args!r}")
    lo, hi = args
    if not lo < hi:
        raise SpecError(f"{field}: {kind} needs low < high, got [{lo}, {hi}]")
    if kind == "int":
        whole = float(lo).is_integer() and float(hi).is_integer()
        if _TYPES[key] not in (int, float) or not whole:
            raise SpecError(f"{field}: int takes integer ends of a numeric field")
        return Dim("int", (int(lo), int(hi)))
    if _TYPES[key] is not float:
        raise SpecError(f"{field}: {kind} is for real-valued fields; {key} takes int: [low, high]")
    if kind == "loguniform" and lo <= 0:
        raise SpecError(f"{field}: loguniform needs low > 0, got {lo}")
    return Dim(kind, (float(lo), float(hi)))


def _seeds(value: Any, trial: dict[str, Any]) -> tuple[int, ...]:
    if isinstance(value, list):
        if not value or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value):
            raise SpecError(f"seeds={value!r}: expected a count or a list of integers >= 0")
        if len(set(value)) != len(value):
            raise SpecError(f"seeds={value!r}: a seed is repeated")
        return tuple(value)
    n = _int("seeds", value, 1)
    base = trial.get("seed", 0)
    if isinstance(base, bool) or not isinstance(base, int):
        raise SpecError(f"trial.seed={base!r}: expected an integer")
    return tuple(range(base, base + n))


def _check_points(trial: dict[str, Any], space: dict[str, Dim]) -> None:
    """TrialConfig on every grid point (or every corner of the distributions)."""
    if n_points(space) > GRID_CHECK_LIMIT:  # too many to try all: each field on its own
        candidates = [{k: v} for k, dim in space.items() for v in dim.values]
    else:
        candidates = points(space)
    for point in candidates:
        try:
            TrialConfig.from_dict({**trial, **point})
        except ConfigError as e:
            key = e.key
            where = f"space.{key}" if key in point else f"trial.{key}" if key else "trial"
            context = f" (at {point})" if point and len(point) > 1 else ""
            raise SpecError(f"{where}: {e}{context}") from e


def _metric_names(trial: dict[str, Any], space: dict[str, Dim]) -> tuple[str, ...]:
    dims = space.get("latent_dim")
    latents = min(dims.values) if dims else trial.get("latent_dim", TrialConfig.latent_dim)
    return (*TRAIN_COLUMNS, *METRICS, *(kl_key(i) for i in range(int(latents))))


def _direction(field: str, value: Any) -> str:
    aliases = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}
    if value not in aliases:
        raise SpecError(f"{field}={value!r}: expected min or max")
    return aliases[value]


def _objectives(raw: Any, metrics: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise SpecError("search.objectives: expected a mapping of metric to min or max")
    out = {}
    for metric, direction in raw.items():
        if metric not in metrics:
            raise SpecError(
                f"search.objectives.{metric}: unknown metric; known: {', '.join(metrics)}"
            )
        out[metric] = _direction(f"search.objectives.{metric}", direction)
    return out


def _scheduler(raw: Any, trial: dict[str, Any], space: dict[str, Dim]) -> Scheduler | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(f"scheduler: expected a mapping of {', '.join(SCHEDULER_KEYS)} or null")
    unknown = [k for k in raw if k not in SCHEDULER_KEYS]
    if unknown:
        raise SpecError(f"unknown key scheduler.{unknown[0]}; known: {', '.join(SCHEDULER_KEYS)}")
    _one_of("scheduler.type", raw.get("type", "asha"), ("asha",))
    every_row = tuple(m for m in _metric_names(trial, space) if m not in METRICS)
    metric = raw.get("metric", "loss")
    if metric not in every_row:
        raise SpecError(
            f"scheduler.metric={metric!r}: ASHA needs a metric of every report: "
            + ", ".join(every_row)
        )
    default_mode = DIRECTIONS.get(metric)
    if "mode" not in raw and default_mode is None:
        raise SpecError(f"scheduler.mode: give min or max for {metric!r}")
    mode = _direction("scheduler.mode", raw.get("mode", default_mode))
    steps = space["steps"].values if "steps" in space else (trial.get("steps", TrialConfig.steps),)
    grace = _int("scheduler.grace_period", raw.get("grace_period", max(1, min(steps) // 10)), 1)
    rf = _number("scheduler.reduction_factor", raw.get("reduction_factor", 3), low=1, strict=True)
    return Scheduler(metric, mode, grace, float(rf))
