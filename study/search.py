"""Turn a Spec into Ray Tune's search: param space, Optuna searcher, ASHA scheduler.

Grid studies use Tune's grid search with ``seed`` as one more grid axis. Optuna
studies use ``OptunaSearch`` with the named sampler behind ``SeedReplicates``, which
runs each suggested configuration once per seed and tells Optuna the mean of the
objectives over the replicates that finished.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from analysis.contract import (
    HALVING_KEY,
    MEMBERS_KEY,
    OPTUNA_JOURNAL_FILE,
    SLOTS_KEY,
    mean_defined,
    metric_value,
)
from study.space import points, to_optuna, to_tune
from study.spec import Spec
from trainables.config import TrialConfig
from trainables.tune import MEMBER_RESULTS_KEY, STUDY_DIR_KEY


def param_space(spec: Spec, study_dir: str = "") -> dict[str, Any]:
    """Ray's param_space: the fixed trial fields, plus the grid axes in a grid study; a
    packed grid study (resources.population > 1) is a grid over its populations, and a
    packed Optuna study's populations come from its searcher (``PopulationSearch``)."""
    if spec.resources.population > 1 and spec.search.mode == "optuna":
        return {}
    if spec.resources.population > 1:
        space = {MEMBERS_KEY: tune.grid_search(populations(spec)), STUDY_DIR_KEY: study_dir}
        if spec.scheduler is not None:  # more members than slots, halved at rungs
            s = spec.scheduler
            space[SLOTS_KEY] = spec.resources.population
            space[HALVING_KEY] = {
                "metric": s.metric,
                "mode": s.mode,
                "grace": s.grace_period,
                "eta": s.reduction_factor,
            }
        return space
    space: dict[str, Any] = {**spec.base_config, STUDY_DIR_KEY: study_dir}
    if spec.search.mode == "grid":
        space.update({k: to_tune(d) for k, d in spec.space.items()})
        space["seed"] = tune.grid_search(list(spec.seeds))
    return space


def populations(spec: Spec) -> list[list[dict[str, Any]]]:
    """The grid's trials (every point once per seed, in grid order) packed into
    populations of at most ``spec.resources.population`` members that share an
    architecture; with a scheduler, of at most ``population * ceil(reduction_factor)``,
    trained ``population`` at a time: successive halving stops about that share of a
    population's configurations at its first rung, and the queued ones take the freed
    slots (``trainables.halving``)."""
    from trainables.population import architecture

    size = spec.resources.population
    if spec.scheduler is not None:
        size *= math.ceil(spec.scheduler.reduction_factor)

    groups: dict[tuple[Any, ...], list[list[dict[str, Any]]]] = {}
    for point in points(spec.space):
        for seed in spec.seeds:
            member = {**spec.base_config, **point, "seed": seed}
            packs = groups.setdefault(architecture(TrialConfig.from_dict(member)), [[]])
            if len(packs[-1]) == size:
                packs.append([])
            packs[-1].append(member)
    return [pack for packs in groups.values() for pack in packs]


def tune_config(spec: Spec, study_dir: str = "") -> tune.TuneConfig:
    search: Searcher | None = None
    samples = 1
    if spec.search.mode == "optuna" and spec.resources.population > 1:
        search = PopulationSearch(spec, study_dir)
        samples = search.n_populations
    elif spec.search.mode == "optuna":
        search = make_searcher(spec, study_dir)
        samples = spec.search.num_samples * len(spec.seeds)
    return tune.TuneConfig(
        search_alg=search,
        scheduler=make_scheduler(spec),
        num_samples=samples,
        max_concurrent_trials=spec.search.max_concurrent or None,
        trial_dirname_creator=TrialDirname([*spec.space, "seed"]),
        reuse_actors=True,
    )


class TrialDirname:
    """``train_<trial id>_<searched values>``: Ray's default name lists every field an
    Optuna suggestion carries and runs long; this keeps the searched ones."""

    def __init__(self, varied: list[str]) -> None:
        self.varied = varied

    def __call__(self, trial: Any) -> str:
        parts = []
        for key in self.varied:
            value = trial.config.get(key)
            if isinstance(value, float):
                value = f"{value:.4g}"
            if isinstance(value, (int, str)):
                parts.append(f"{key}={value}".replace("/", "_"))
        name = f"{trial.trainable_name}_{trial.trial_id}"
        return f"{name}_{','.join(parts)}"[:150] if parts else name


def make_scheduler(spec: Spec) -> TrialScheduler | None:
    """Tune's ASHA for unpacked trials; a packed study halves inside its populations."""
    s = spec.scheduler
    if s is None or spec.resources.population > 1:
        return None
    return ASHAScheduler(
        time_attr="step",
        metric=s.metric,
        mode=s.mode,
        max_t=spec.max_steps,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


def make_sampler(spec: Spec) -> optuna.samplers.BaseSampler:
    """The named sampler, every setting that matters explicit (Optuna's defaults change
    between versions). TPE is multivariate (the capacity schedule's fields interact) and,
    when more than one configuration trains at once (``max_concurrent`` other than 1, or
    a population's batch), uses ``constant_liar``: the ones still training count as bad
    guesses, so concurrent asks do not pile onto one region."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = spec.seeds[0]
    if spec.search.sampler == "nsga2":
        population = max(2, min(50, spec.search.num_samples // 4))  # several generations per study
        return NSGAIISampler(population_size=population, seed=seed)
    if spec.search.sampler == "gp":
        return GPSampler(seed=seed)
    concurrent = spec.resources.population > 1 or spec.search.max_concurrent != 1
    return TPESampler(seed=seed, multivariate=True, constant_liar=concurrent)


_LOCKS = (type(threading.Lock()), type(threading.RLock()))


class _Picklable:
    """A sampler that pickles with its thread locks left out and made new on loading.

    Tune pickles the searcher, sampler included, when the Tuner is built and at every
    experiment checkpoint, and loads it back on ``--resume``. A lock guards a cache within
    one process (Optuna 5.1's genetic samplers hold one for their generation cache) and
    cannot be pickled; the cache itself is plain data and travels, and the sampler
    re-syncs it from the study's trials on its next call."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = {k: isinstance(v, _LOCKS[1]) for k, v in state.items() if isinstance(v, _LOCKS)}
        for key in locks:
            del state[key]
        state["_betastudy_locks"] = locks  # name -> reentrant
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        locks = state.pop("_betastudy_locks", {})
        self.__dict__.update(state)
        for key, reentrant in locks.items():
            setattr(self, key, threading.RLock() if reentrant else threading.Lock())


class NSGAIISampler(_Picklable, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable (``_Picklable``)."""


class GPSampler(_Picklable, optuna.samplers.GPSampler):
    """Optuna's GP sampler, picklable (``_Picklable``)."""


class TPESampler(_Picklable, optuna.samplers.TPESampler):
    """Optuna's TPE, picklable (``_Picklable``)."""


def live_storage(spec: Spec, study_dir: str) -> Any:
    """The Optuna study the sampler works in, in a journal file written as trials are
    told (``optuna.journal`` in a local study directory, where ``optuna.load_study`` and
    optuna-dashboard can read it while the study runs; beside the driver for a cloud
    one, copied there at the end), with the objectives' names."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = journal_path(spec, study_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    storage = JournalStorage(JournalFileBackend(path))
    directions = spec.search.optuna_directions
    study = optuna.create_study(
        storage=storage, study_name=spec.name, directions=directions, load_if_exists=True
    )
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.search.objectives))
    return storage


def journal_path(spec: Spec, study_dir: str) -> str:
    if "://" not in study_dir:
        return os.path.join(study_dir, OPTUNA_JOURNAL_FILE)
    cache = os.environ.get("BETASTUDY_CACHE") or os.path.expanduser("~/.cache/betastudy")
    return os.path.join(cache, "journals", spec.name, OPTUNA_JOURNAL_FILE)


def make_searcher(spec: Spec, study_dir: str) -> SeedReplicates:
    metrics, modes = list(spec.search.objectives), list(spec.search.objectives.values())
    optuna_search = OptunaSearch(
        space={k: to_optuna(d) for k, d in spec.space.items()},
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=make_sampler(spec),
        study_name=spec.name,
        storage=live_storage(spec, study_dir),  # OptunaSearch loads the study made there
    )
    return SeedReplicates(optuna_search, spec.seeds, metrics)


class SeedReplicates(Searcher):
    """Run every configuration the inner searcher suggests once per seed.

    The inner searcher sees one trial per configuration (the first replicate's id) and,
    when all replicates have ended, the mean of each objective over those that reported
    it; a configuration none of whose replicates finished is told as an error. Tune's
    metric checks see no searcher metric: objectives such as MIG arrive only with
    evaluation rows, and intermediate results are not passed on (no pruning).
    """

    def __init__(self, searcher: Searcher, seeds: tuple[int, ...], objectives: list[str]):
        super().__init__(metric=None, mode=None)
        self.searcher = searcher
        self.seeds = tuple(seeds)
        self.objectives = list(objectives)
        self.groups: list[dict[str, Any]] = []  # {primary, config, trials: {id: values|None}}
        self.group_of: dict[str, int] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the space, metrics and modes were given to the inner searcher

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        group = self.groups[-1] if self.groups else None
        if group is None or len(group["trials"]) == len(self.seeds):
            config = self.searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            group = {"primary": trial_id, "config": dict(config), "trials": {}}
            self.groups.append(group)
        index = len(group["trials"])
        group["trials"][trial_id] = None
        self.group_of[trial_id] = len(self.groups) - 1
        return {**group["config"], "seed": self.seeds[index]}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass  # the objectives are told once, at the end of a configuration

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self.group_of:
            return
        group = self.groups[self.group_of[trial_id]]
        values = [metric_value((result or {}).get(m)) for m in self.objectives]
        group["trials"][trial_id] = (values, error)
        ended = list(group["trials"].values())
        if len(ended) < len(self.seeds) or any(e is None for e in ended):
            return
        means = [(m, mean_defined(v[i] for v, _ in ended)) for i, m in enumerate(self.objectives)]
        if any(v is None for _, v in means):
            failed = any(err for _, err in ended)
            self.searcher.on_trial_complete(group["primary"], result=None, error=failed)
        else:
            self.searcher.on_trial_complete(group["primary"], result=dict(means))

    # Tune saves a wrapper's own state with get_state and the inner searcher on its own
    # (SearchGenerator.save_to_dir follows ``.searcher``), and restores both on resume.
    def get_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "searcher"}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class PopulationSearch(Searcher):
    """A packed Optuna study: each Ray trial is a population of the configurations that
    one batch of ``study.ask`` returns, each once per seed (``resources.population``
    members at most). When a population ends, each of its configurations is told the
    mean of each objective over its seeds' last rows (the population's last report
    carries them, ``MEMBER_RESULTS_KEY``), or told failed when no seed reported one.
    """

    def __init__(self, spec: Spec, study_dir: str) -> None:

        super().__init__(metric=None, mode=None)
        self.spec, self.study_dir = spec, study_dir
        self.per_population = max(1, spec.resources.population // len(spec.seeds))
        self.study = optuna.load_study(
            study_name=spec.name, storage=live_storage(spec, study_dir), sampler=make_sampler(spec)
        )
        self.asked = 0
        self.numbers: dict[str, list[int]] = {}  # Ray trial id -> its Optuna trial numbers

    @property
    def n_populations(self) -> int:
        return -(-self.spec.search.num_samples // self.per_population)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        spec = self.spec
        n = min(self.per_population, spec.search.num_samples - self.asked)
        if n <= 0:
            return Searcher.FINISHED
        dists = {k: to_optuna(d) for k, d in spec.space.items()}
        asked = [self.study.ask(dists) for _ in range(n)]
        self.asked += n
        self.numbers[trial_id] = [t.number for t in asked]
        members = [{**spec.base_config, **t.params, "seed": s} for t in asked for s in spec.seeds]
        return {MEMBERS_KEY: members, STUDY_DIR_KEY: self.study_dir}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        from optuna.trial import TrialState

        numbers = self.numbers.pop(trial_id, [])
        finals = (result or {}).get(MEMBER_RESULTS_KEY) or []
        seeds = len(self.spec.seeds)
        for i, number in enumerate(numbers):
            rows = [r for r in finals[i * seeds : (i + 1) * seeds] if isinstance(r, dict)]
            means = [
                mean_defined(metric_value(r.get(m)) for r in rows)
                for m in self.spec.search.objectives
            ]
            if rows and all(v is not None for v in means):
                self.study.tell(number, means)
            else:
                self.study.tell(number, state=TrialState.FAIL)

    def get_state(self) -> dict[str, Any]:
        return {"study": self.study, "asked": self.asked, "numbers": self.numbers}

    def set_state(self, state: dict[str, Any]) -> None:
        self.study, self.asked, self.numbers = state["study"], state["asked"], state["numbers"]

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
