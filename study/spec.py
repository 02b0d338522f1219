"""Study specs: a YAML file or a preset, ``--set`` overrides, one validated ``Spec``.

The spec is nested frozen dataclasses that mirror the YAML: ``Spec`` holds the
``Search``, ``Resources`` and ``Scheduler`` sections, the fixed trial fields (checked
by TrialConfig) and the searched space. A section's fields are its known keys, their
defaults the YAML's defaults, and ``to_dict`` walks them back into YAML.

The whole spec is checked here, before Ray starts: unknown keys, wrong types,
out-of-range values (through TrialConfig, on every grid point or distribution end),
unknown metric names, a distribution in a grid study, resources above the machine (or,
once joined, beyond any node the cluster has or can start: ``Cluster``).
Every problem is a ``SpecError`` whose one-line message names the field (its ``key``).
"""

from __future__ import annotations

import copy
import os
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from analysis.contract import DIRECTIONS, METRICS, TRAIN_COLUMNS, kl_key
from study import presets
from study.space import DISTRIBUTIONS, Dim, n_points, points
from trainables.config import FIELD_TYPES, ConfigError, TrialConfig, parse_overrides


class SpecError(ValueError):
    """A study spec is malformed; the one-line message names the field, and ``key`` is
    that field's dotted path ("" when the problem is the spec as a whole)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


MODES = ("grid", "optuna")
SAMPLERS = ("tpe", "nsga2", "gp")
STORAGE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs")
TRACKERS = ("tensorboard", "mlflow", "wandb")
WANDB_MODES = ("online", "offline", "disabled")  # WANDB_MODE values tracking: wandb takes
UNSEARCHED = {
    "seed": "replicates are set by seeds",
    "checkpoint_every": "set checkpoint_every at the top level",
    "device": "the device follows resources.gpu",
}
AUTO = "auto"  # resources.gpu: a share of a GPU where there are GPUs, else the CPU
AUTO_GPU_SHARE = 0.25  # gpu: auto per trial (four trials a GPU); a population: one GPU
GRID_CHECK_LIMIT = 20_000  # validate the whole product of candidates up to this many points

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Machine:
    """What a trial may ask for when Ray runs here: this machine's CPUs and GPUs."""

    cpus: int
    gpus: int

    @classmethod
    def local(cls) -> Machine:
        import torch

        return cls(os.cpu_count() or 1, torch.cuda.device_count())


class Node(typing.NamedTuple):
    """One node of a cluster, or one node type its autoscaler may start."""

    name: str
    cpus: float
    gpus: float

    def fits(self, cpu: float, gpu: float) -> bool:
        return self.cpus >= cpu and self.gpus >= gpu

    def __str__(self) -> str:
        return f"{self.name}: {_amount(self.cpus, 'CPU')}, {_amount(self.gpus, 'GPU')}"


@dataclass(frozen=True)
class Cluster:
    """What a joined Ray cluster can give a trial (one trial runs on one node): its live
    nodes and the node types its autoscaler may start; ``node_types`` None when Ray
    knows none (a cluster whose workers join by hand)."""

    nodes: tuple[Node, ...] = ()
    node_types: tuple[Node, ...] | None = None

    @property
    def has_gpus(self) -> bool:
        return any(n.gpus > 0 for n in (*self.nodes, *(self.node_types or ())))

    @property
    def has_workers(self) -> bool:
        """A node that runs trials is there or may be started (CPUs or GPUs)."""
        return any(n.cpus > 0 or n.gpus > 0 for n in (*self.nodes, *(self.node_types or ())))

    def fits(self, cpu: float, gpu: float) -> bool:
        """A live node, or a node type, has room for one trial asking ``cpu``, ``gpu``."""
        return any(n.fits(cpu, gpu) for n in (*self.nodes, *(self.node_types or ())))


def request_text(cpu: float, gpu: float) -> str:
    """What a trial asks for, as the wait lines say it: "1 CPU, 0.25 GPU"."""
    return ", ".join(_amount(n, unit) for n, unit in ((cpu, "CPU"), (gpu, "GPU")) if n) or "nothing"


def _amount(n: float, unit: str) -> str:
    return f"{float(n):g} {unit}"


# ---- the spec: one dataclass per YAML section; its fields are the keys and defaults ----


@dataclass(frozen=True)
class Search:
    """``search:`` how configurations are chosen."""

    mode: str = "grid"
    """`grid`: every point of the space once per seed; `optuna`: num_samples suggested."""
    sampler: str = "tpe"
    """Optuna's sampler: tpe, nsga2 or gp."""
    objectives: dict[str, str] = field(default_factory=lambda: {"recon": "min", "mig": "max"})
    """Metric -> min or max: what Optuna is told and the summary ranks by."""
    num_samples: int = 1
    """Optuna: configurations to try, each once per seed (a grid: 1)."""
    max_concurrent: int = 0
    """Trials training at once; 0: as many as the resources allow."""

    @property
    def optuna_directions(self) -> list[str]:
        """Optuna's direction of each objective, in order."""
        return ["minimize" if d == "min" else "maximize" for d in self.objectives.values()]

    @classmethod
    def check(cls, given: dict[str, Any]) -> Search:
        """The section's raw values (defaults filled in) checked; objectives are checked
        against the metrics later, once the space is known (``validate``)."""
        mode = _one_of("search.mode", given["mode"], MODES)
        num_samples = _int("search.num_samples", given["num_samples"], 1)
        if mode == "grid" and num_samples != 1:
            raise SpecError(
                f"search.num_samples={num_samples}: a grid study runs every point once per seed; "
                "use seeds for replicates, or search.mode=optuna",
                "search.num_samples",
            )
        return cls(
            mode=mode,
            sampler=_one_of("search.sampler", given["sampler"], SAMPLERS),
            objectives=given["objectives"],  # checked against the metrics once the space is known
            num_samples=num_samples,
            max_concurrent=_int("search.max_concurrent", given["max_concurrent"], 0),
        )


@dataclass(frozen=True)
class Resources:
    """``resources:`` what each trial asks of the cluster."""

    cpu: float = 1
    """CPUs per trial (torch's threads follow it)."""
    gpu: float | str = 0
    """GPUs per trial (a fraction shares one); `auto`: a quarter where there are GPUs."""
    population: int = 1
    """Trials trained together in one process, one step for all (1: apart)."""

    @classmethod
    def check(
        cls, given: dict[str, Any], machine: Machine | Cluster | None, notes: list[str]
    ) -> Resources:
        """The section's raw values checked against ``machine`` (None: before Ray, where
        ``gpu: auto`` stays auto), notes appended to ``notes``."""
        cpu = _number("resources.cpu", given["cpu"], low=0, strict=True)
        population = _int("resources.population", given["population"], 1)
        gpu: float | str
        if given["gpu"] == AUTO:
            gpu = auto_gpu(machine, population, notes)
        elif isinstance(given["gpu"], str):
            raise SpecError(
                f"resources.gpu={given['gpu']!r}: expected a number or auto", "resources.gpu"
            )
        else:
            gpu = _number("resources.gpu", given["gpu"], low=0)
        if gpu != AUTO and gpu > 1 and not float(gpu).is_integer():
            raise SpecError(
                f"resources.gpu={gpu}: fractions are for less than one GPU", "resources.gpu"
            )
        if isinstance(machine, Cluster) and gpu != AUTO:
            _fits_the_cluster(cpu, gpu, machine, notes)
        elif machine is not None and gpu != AUTO:
            if gpu > machine.gpus:
                hint = (
                    "; to train on the CPU instead, add --set resources.gpu=0"
                    if machine.gpus == 0
                    else f"; add --set resources.gpu={machine.gpus} or less"
                )
                raise SpecError(
                    f"resources.gpu={gpu} is above this machine's {machine.gpus} GPU(s){hint}",
                    "resources.gpu",
                )
            if cpu > machine.cpus:
                raise SpecError(
                    f"resources.cpu={cpu} is above this machine's {machine.cpus} CPU(s)",
                    "resources.cpu",
                )
        return cls(cpu=cpu, gpu=gpu, population=population)


@dataclass(frozen=True)
class Scheduler:
    """``scheduler:`` ASHA early stopping on a metric every report carries; time is the
    step. Validated, every field is set."""

    type: str = "asha"
    """The only scheduler: asha."""
    metric: str = "loss"
    """A metric of every report row."""
    mode: str | None = None
    """min or max; None: the metric's own direction."""
    grace_period: int | None = None
    """Steps before a trial may be stopped; None: a tenth of the shortest trial."""
    reduction_factor: float = 3.0
    """Keep 1 in reduction_factor trials at each rung."""

    @classmethod
    def check(cls, given: Any, trial: dict[str, Any], space: dict[str, Dim]) -> Scheduler | None:
        """The section (None: no scheduler) checked against the trials' metrics and
        lengths; every field set."""
        if given is None:
            return None
        raw = _section(Scheduler, given, "scheduler")
        _one_of("scheduler.type", raw["type"], ("asha",))
        every_row = tuple(m for m in _metric_names(trial, space) if m not in METRICS)
        metric = raw["metric"]
        if metric not in every_row:
            raise SpecError(
                f"scheduler.metric={metric!r}: ASHA needs a metric of every report: "
                + ", ".join(every_row),
                "scheduler.metric",
            )
        mode = raw["mode"] if raw["mode"] is not None else DIRECTIONS.get(metric)
        if mode is None:
            raise SpecError(f"scheduler.mode: give min or max for {metric!r}", "scheduler.mode")
        steps = (
            space["steps"].values if "steps" in space else (trial.get("steps", TrialConfig.steps),)
        )
        grace = raw["grace_period"]
        rf = raw["reduction_factor"]
        return cls(
            type="asha",
            metric=metric,
            mode=_direction("scheduler.mode", mode),
            grace_period=_int("scheduler.grace_period", grace or max(1, min(steps) // 10), 1),
            reduction_factor=float(_number("scheduler.reduction_factor", rf, low=1, strict=True)),
        )


@dataclass(frozen=True)
class Spec:
    """A study: the YAML's sections as fields. Validated (``validate``), every value is
    resolved, and ``to_dict`` is the resolved YAML written to study.yaml."""

    name: str = "study"
    """The study's folder under storage (letters, digits, '_', '.', '-')."""
    trial: dict[str, Any] = field(default_factory=dict)
    """Trial config fields fixed for every trial (TrialConfig's defaults for the rest)."""
    space: dict[str, Dim] = field(default_factory=dict)
    """Searched trial config fields: grid values, or distributions for Optuna."""
    seeds: int | tuple[int, ...] = 1
    """A count (trial.seed, trial.seed + 1, ...) or a list; validated: the seeds."""
    search: Search = field(default_factory=Search)
    scheduler: Scheduler | None = None
    resources: Resources = field(default_factory=Resources)
    storage: str = "runs"
    """A local folder or a URI (s3://bucket/path); validated: absolute."""
    checkpoint_every: int = TrialConfig.checkpoint_every
    """Steps between trial checkpoints (0: only at the end)."""
    max_failures: int = 2
    """Times Ray restarts a failed trial from its last checkpoint."""
    tracking: tuple[str, ...] = ()
    """Experiment trackers fed as trials report: tensorboard, mlflow, wandb."""
    notes: tuple[str, ...] = field(default=(), metadata={"yaml": False})
    """What validation decided for the user (gpu: auto), printed at the start."""

    @property
    def base_config(self) -> dict[str, Any]:
        """The trial config fields every trial of the study gets."""
        return {**self.trial, "checkpoint_every": self.checkpoint_every}

    @property
    def n_trials(self) -> int:
        configs = n_points(self.space) if self.search.mode == "grid" else self.search.num_samples
        return configs * (len(self.seeds) if isinstance(self.seeds, tuple) else self.seeds)

    @property
    def max_steps(self) -> int:
        dim = self.space.get("steps")
        return int(max(dim.values)) if dim else int(self.trial.get("steps", TrialConfig.steps))

    def to_dict(self) -> dict[str, Any]:
        return _to_yaml(self)


def keys(section: type) -> tuple[str, ...]:
    """The YAML keys of a section: its dataclass's fields."""
    return tuple(f.name for f in fields(section) if f.metadata.get("yaml", True))


def defaults(section: type) -> dict[str, Any]:
    """The YAML defaults of a section, from its dataclass's field defaults."""
    return _to_yaml(section())


def _to_yaml(value: Any) -> Any:
    if isinstance(value, Dim):
        return value.to_yaml()
    if is_dataclass(value):
        return {k: _to_yaml(getattr(value, k)) for k in keys(type(value))}
    if isinstance(value, dict):
        return {k: _to_yaml(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_to_yaml(v) for v in value]
    return value


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
        raise SpecError(f"{where}: a study spec is a mapping of {', '.join(keys(Spec))}")
    return raw


def apply_overrides(raw: dict[str, Any], sets: typing.Iterable[str]) -> dict[str, Any]:
    """``--set trial.steps=40 --set search.num_samples=4`` (values parsed as YAML). A null
    value removes the key, so its default applies (``--set trial.lr=null``: TrialConfig's
    lr; ``--set space.beta=null``: beta is not searched). ``scheduler`` alone is kept as
    null, which validation reads as its default all the same: ``--set scheduler=null``
    runs without a scheduler either way."""
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
        if value is None and last != "scheduler":  # the raw spec keeps scheduler: null
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


def validate(raw: dict[str, Any], machine: Machine | Cluster | None = None) -> Spec:
    """The checked ``Spec`` of a raw spec; resources are checked against ``machine``
    (this machine, a joined cluster, or None: not yet known)."""
    top = _section(Spec, raw, "")
    name = top["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"name={name!r}: letters, digits, '_', '.' and '-' only", "name")
    search = Search.check(_section(Search, top["search"], "search"))
    notes: list[str] = []
    resources = Resources.check(_section(Resources, top["resources"], "resources"), machine, notes)
    max_failures = _int("max_failures", top["max_failures"], 0)
    storage = _storage(top["storage"])
    checkpoint_every = _int("checkpoint_every", top["checkpoint_every"], 0)

    trial = _trial(top["trial"], resources.gpu)
    space = _space(top["space"], search.mode, set(trial))
    seeds = _seeds(top["seeds"], trial)
    _check_points({**trial, "checkpoint_every": checkpoint_every}, space)
    metrics = _metric_names(trial, space)
    search = replace(search, objectives=_objectives(search.objectives, metrics))
    scheduler = Scheduler.check(top["scheduler"], trial, space)
    if search.mode == "optuna" and not space:
        raise SpecError("space: an optuna study needs at least one searched field", "space")
    if scheduler is not None and search.mode == "optuna" and len(seeds) > 1:
        raise SpecError(
            f"scheduler: ASHA would stop some of a configuration's {len(seeds)} seed "
            "replicates and Optuna would be told the mean of the rest; use seeds: 1 or "
            "scheduler: null",
            "scheduler",
        )
    if resources.population > 1 and scheduler is not None and search.mode == "optuna":
        raise SpecError(
            f"resources.population={resources.population}: successive halving inside "
            "populations runs in grid studies; an Optuna study's populations are its "
            "batches; use scheduler: null, population: 1 or search.mode: grid",
            "resources.population",
        )
    return Spec(
        name=name,
        trial=trial,
        space=space,
        seeds=seeds,
        search=search,
        scheduler=scheduler,
        resources=resources,
        storage=storage,
        checkpoint_every=checkpoint_every,
        max_failures=max_failures,
        tracking=_tracking(top["tracking"]),
        notes=tuple(notes),
    )


def _section(section: type, given: Any, where: str) -> dict[str, Any]:
    """``given`` (a mapping of ``section``'s keys; None: all defaults) over the defaults."""
    known = keys(section)
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise SpecError(f"{where}: expected a mapping of {', '.join(known)}", where)
    unknown = [k for k in given if k not in known]
    if unknown and not where:
        raise SpecError(
            f"unknown key {unknown[0]!r} in the study spec; known: {', '.join(known)}", unknown[0]
        )
    if unknown:
        key = f"{where}.{unknown[0]}"
        raise SpecError(f"unknown key {key}; known: {', '.join(known)}", key)
    return {**defaults(section), **{k: v for k, v in given.items() if v is not None}}


def resolve_resources(spec: Spec, machine: Machine | Cluster) -> Spec:
    """``spec`` with its resources checked against ``machine`` (what Ray can give a
    trial: this machine's Ray or a joined cluster's nodes and node types) and ``gpu:
    auto`` decided there, the trial's ``device: auto`` following. The one step a study
    takes once Ray is up: ``validate`` checked everything else before Ray started.
    ``gpu`` stays auto on a cluster that cannot decide it yet (no worker, no node
    types)."""
    notes = list(spec.notes)
    r = spec.resources
    resources = Resources.check(
        {"cpu": r.cpu, "gpu": r.gpu, "population": r.population}, machine, notes
    )
    trial = _trial(spec.trial, resources.gpu)
    return replace(spec, resources=resources, trial=trial, notes=tuple(dict.fromkeys(notes)))


def _fits_the_cluster(cpu: float, gpu: float, cluster: Cluster, notes: list[str]) -> None:
    """A request no live node and no node type can take is refused; one that no node
    takes yet waits: for the autoscaler to start a node, or (node types unknown) for a
    worker to join."""
    if any(n.fits(cpu, gpu) for n in cluster.nodes):
        return
    need = request_text(cpu, gpu)
    if cluster.node_types is None:
        notes.append(f"no node of the cluster has {need} yet: the trials wait for one to join")
        return
    if cluster.fits(cpu, gpu):
        return  # the autoscaler starts one; the progress lines say so while they wait
    kinds = [*cluster.nodes, *cluster.node_types]
    if gpu and not any(n.gpus >= gpu for n in kinds):
        key, most = "resources.gpu", max((n.gpus for n in kinds), default=0)
        hint = f"add --set {key}={most:g} or less" if most else f"add --set {key}=0 (the CPU)"
    else:
        key, most = "resources.cpu", max((n.cpus for n in kinds if n.gpus >= gpu), default=0)
        hint = f"add --set {key}={most:g} or less" if most else "give the cluster CPU workers"
    listed = "; ".join(str(n) for n in cluster.node_types) or "none"
    raise SpecError(
        f"resources: {need} per trial fits no node the cluster has or can start "
        f"(node types {listed}); {hint}",
        key,
    )


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{key}={value!r}: expected one of {', '.join(allowed)}", key)
    return value


def _int(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{key}={value!r}: expected an integer", key)
    if value < low:
        raise SpecError(f"{key}={value}: expected an integer >= {low}", key)
    return value


def _number(key: str, value: Any, low: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{key}={value!r}: expected a number", key)
    if value < low or (strict and value == low):
        raise SpecError(f"{key}={value}: expected a number {'>' if strict else '>='} {low}", key)
    return value


def _storage(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(
            f"storage={value!r}: expected a local path or a URI such as s3://bucket", "storage"
        )
    if value.startswith("file://"):
        value = value[len("file://") :]
    if "://" in value:
        scheme = value.split("://", 1)[0]
        if scheme not in STORAGE_SCHEMES:
            raise SpecError(
                f"storage={value!r}: scheme {scheme!r} is not one of {STORAGE_SCHEMES}", "storage"
            )
        return value.rstrip("/")
    return os.path.abspath(os.path.expanduser(value))


def _tracking(value: Any) -> tuple[str, ...]:
    """``tracking: [tensorboard, mlflow, wandb]``: TensorBoard files are always written
    (Ray's logger, and the population members'); mlflow logs every trial as an MLflow
    run, wandb as a W&B run (``wandb_mode`` says whether online)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"tracking={value!r}: expected a list of {', '.join(TRACKERS)}", "tracking")
    for name in value:
        _one_of("tracking", name, TRACKERS)
    import importlib.util

    for name, package in (("mlflow", "mlflow-skinny"), ("wandb", "wandb")):
        if name in value and importlib.util.find_spec(name) is None:
            raise SpecError(
                f"tracking: {name} needs the {name} package; pip install {package} "
                f"(or remove {name} from tracking)",
                "tracking",
            )
    if "wandb" in value:
        wandb_mode()
    return tuple(dict.fromkeys(value))


def wandb_mode() -> str:
    """How ``tracking: wandb`` logs, from this process's environment: WANDB_MODE when set
    (one of ``WANDB_MODES``), else online when W&B has an API key here (WANDB_API_KEY,
    ``wandb login``), else offline: run files on disk, no key, no network."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode and mode not in WANDB_MODES:
        raise SpecError(
            f"tracking: wandb: WANDB_MODE={mode!r}: expected one of {', '.join(WANDB_MODES)}",
            "tracking",
        )
    if mode in ("offline", "disabled"):
        return mode
    if _wandb_key():
        return "online"
    if mode == "online":
        raise SpecError(
            "tracking: wandb with WANDB_MODE=online needs an API key: set WANDB_API_KEY or "
            "run wandb login (or unset WANDB_MODE to log offline)",
            "tracking",
        )
    return "offline"


def _wandb_key() -> bool:
    """Whether W&B has an API key here (WANDB_API_KEY, ``wandb login``), without network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import wandb

    try:
        return bool(wandb.login(prompt=False, verify=False))
    except TypeError:  # a wandb without login(prompt=): the netrc `wandb login` writes
        import netrc
        from urllib.parse import urlparse

        host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
        try:
            return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
        except (OSError, netrc.NetrcParseError):
            return False
    except Exception:  # W&B's own settings unreadable: no key it could use
        return False


def auto_gpu(machine: Machine | Cluster | None, population: int, notes: list[str]) -> float | str:
    """``resources.gpu: auto`` on ``machine``: a quarter GPU per trial (a whole one per
    population) where it has GPUs, 0 where it has none (with a note saying so); still
    ``auto`` while it is not known (not joined yet, or a cluster with no worker and no
    node types yet). A cluster has GPUs when a live node or a node type its autoscaler
    may start has them."""
    if machine is None:
        return AUTO
    if isinstance(machine, Cluster):
        if not machine.has_gpus and not machine.has_workers:
            return AUTO  # nothing to decide by: the runner waits for a worker to join
        if not machine.has_gpus:
            notes.append(
                "resources.gpu: auto -> 0: no GPU on the cluster's nodes or node types, "
                "the trials train on the CPU"
            )
            return 0.0
    elif machine.gpus == 0:
        notes.append("resources.gpu: auto -> 0: no GPU here, the trials train on the CPU")
        return 0.0
    return 1.0 if population > 1 else AUTO_GPU_SHARE


def _trial(given: Any, gpu: float | str) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise SpecError("trial: expected a mapping of trial config fields", "trial")
    trial = dict(given)
    for key in trial:
        if key not in FIELD_TYPES:
            raise SpecError(
                f"trial.{key}: unknown trial config key; known: {', '.join(FIELD_TYPES)}",
                f"trial.{key}",
            )
    if "checkpoint_every" in trial:
        raise SpecError(
            "trial.checkpoint_every: set it at the top level (checkpoint_every)",
            "trial.checkpoint_every",
        )
    device = trial.get("device", "auto")
    if gpu == AUTO:
        pass  # decided where the cluster is known (study.runner); the trial's auto follows
    elif device == "auto":
        trial["device"] = "cuda" if gpu > 0 else "cpu"
    elif isinstance(device, str) and device.startswith("cuda") and gpu == 0:
        raise SpecError(f"trial.device={device!r} needs resources.gpu > 0", "trial.device")
    # precision=bf16 may run on a CPU (one with bf16 units: the trial checks where it runs)
    if trial.get("device") == "cpu" and trial.get("cuda_graph") is True:
        raise SpecError("trial.cuda_graph=True needs a GPU (resources.gpu > 0)", "trial.cuda_graph")
    data = trial.get("data", "procedural")
    if isinstance(data, str) and data != "procedural":
        trial["data"] = os.path.abspath(os.path.expanduser(data))  # trials run in their own dir
    return trial


def _space(given: Any, mode: str, fixed: set[str]) -> dict[str, Dim]:
    if not isinstance(given, dict):
        raise SpecError("space: expected a mapping of trial config fields to values", "space")
    space = {}
    for name, value in given.items():
        key = f"space.{name}"
        if name in UNSEARCHED:
            raise SpecError(f"{key}: not searched; {UNSEARCHED[name]}", key)
        if name not in FIELD_TYPES:
            raise SpecError(
                f"{key}: unknown trial config key; known: {', '.join(FIELD_TYPES)}", key
            )
        if name in fixed:
            raise SpecError(f"trial.{name}: also searched in {key}; give it in one place", key)
        space[name] = _dim(key, name, value, mode)
    return space


def _dim(key: str, name: str, value: Any, mode: str) -> Dim:
    if isinstance(value, list):
        if not value:
            raise SpecError(f"{key}: an empty list of values", key)
        dim = Dim("grid", tuple(value))
    elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS:
        kind, args = next(iter(value.items()))
        if mode == "grid":
            raise SpecError(
                f"{key}: a {kind} distribution in a grid study; give a list of values "
                "or set search.mode=optuna",
                key,
            )
        dim = _distribution(key, name, kind, args)
    else:
        raise SpecError(
            f"{key}={value!r}: expected a list of values or one of "
            f"{', '.join(f'{{{d}: [...]}}' for d in DISTRIBUTIONS)} (fixed values go in trial)",
            key,
        )
    if mode == "optuna" and dim.kind in ("grid", "choice"):
        for v in dim.values:
            if v is not None and not isinstance(v, (bool, int, float, str)):
                raise SpecError(f"{key}: optuna choices are numbers, strings or booleans", key)
    return dim


def _distribution(key: str, name: str, kind: str, args: Any) -> Dim:
    if not isinstance(args, list) or not args:
        raise SpecError(f"{key}: {kind} takes a list, e.g. {{{kind}: [low, high]}}", key)
    if kind == "choice":
        return Dim("choice", tuple(args))
    if len(args) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args):
        raise SpecError(f"{key}: {kind} takes [low, high] numbers, got {args!r}", key)
    lo, hi = args
    if not lo < hi:
        raise SpecError(f"{key}: {kind} needs low < high, got [{lo}, {hi}]", key)
    if kind == "int":
        whole = float(lo).is_integer() and float(hi).is_integer()
        if FIELD_TYPES[name] not in (int, float) or not whole:
            raise SpecError(f"{key}: int takes integer ends of a numeric field", key)
        return Dim("int", (int(lo), int(hi)))
    if FIELD_TYPES[name] is not float:
        raise SpecError(
            f"{key}: {kind} is for real-valued fields; {name} takes int: [low, high]", key
        )
    if kind == "loguniform" and lo <= 0:
        raise SpecError(f"{key}: loguniform needs low > 0, got {lo}", key)
    return Dim(kind, (float(lo), float(hi)))


def _seeds(value: Any, trial: dict[str, Any]) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        if not value or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value):
            raise SpecError(
                f"seeds={value!r}: expected a count or a list of integers >= 0", "seeds"
            )
        if len(set(value)) != len(value):
            raise SpecError(f"seeds={value!r}: a seed is repeated", "seeds")
        return tuple(value)
    n = _int("seeds", value, 1)
    base = trial.get("seed", 0)
    if isinstance(base, bool) or not isinstance(base, int):
        raise SpecError(f"trial.seed={base!r}: expected an integer", "trial.seed")
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
            name = e.key
            key = f"space.{name}" if name in point else f"trial.{name}" if name else "trial"
            context = f" (at {point})" if point and len(point) > 1 else ""
            raise SpecError(f"{key}: {e}{context}", key) from e


def _metric_names(trial: dict[str, Any], space: dict[str, Dim]) -> tuple[str, ...]:
    dims = space.get("latent_dim")
    latents = min(dims.values) if dims else trial.get("latent_dim", TrialConfig.latent_dim)
    return (*TRAIN_COLUMNS, *METRICS, *(kl_key(i) for i in range(int(latents))))


def _direction(key: str, value: Any) -> str:
    aliases = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}
    if value not in aliases:
        raise SpecError(f"{key}={value!r}: expected min or max", key)
    return aliases[value]


def _objectives(given: Any, metrics: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(given, dict) or not given:
        raise SpecError(
            "search.objectives: expected a mapping of metric to min or max", "search.objectives"
        )
    out = {}
    for metric, direction in given.items():
        key = f"search.objectives.{metric}"
        if metric not in metrics:
            raise SpecError(f"{key}: unknown metric; known: {', '.join(metrics)}", key)
        out[metric] = _direction(key, direction)
    return out
