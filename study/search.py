"""Turn a Spec into Ray Tune's search: param space, Optuna searcher, ASHA scheduler.

Grid studies use Tune's grid search with ``seed`` as one more grid axis. Optuna
studies use ``OptunaSearch`` with the named sampler behind ``SeedReplicates``, which
runs each suggested configuration once per seed and tells Optuna the mean of the
objectives over the replicates that finished.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from analysis.contract import MEMBERS_KEY
from study.space import points, to_optuna, to_tune
from study.spec import Spec
from trainables.config import TrialConfig
from trainables.tune import STUDY_DIR_KEY


def param_space(spec: Spec, study_dir: str = "") -> dict[str, Any]:
    """Ray's param_space: the fixed trial fields, plus the grid axes in a grid study; a
    packed grid study (resources.population > 1) is a grid over its populations."""
    if spec.population > 1:
        return {
            MEMBERS_KEY: tune.grid_search(populations(spec)),
            STUDY_DIR_KEY: study_dir,
        }
    space: dict[str, Any] = dict(spec.trial)
    if spec.mode == "grid":
        space.update({k: to_tune(d) for k, d in spec.space.items()})
        space["seed"] = tune.grid_search(list(spec.seeds))
    return space


def populations(spec: Spec) -> list[list[dict[str, Any]]]:
    """The grid's trials (every point once per seed, in grid order) packed into
    populations of at most ``spec.population`` members that share an architecture."""
    from trainables.population import architecture

    groups: dict[tuple[Any, ...], list[list[dict[str, Any]]]] = {}
    for point in points(spec.space):
        for seed in spec.seeds:
            member = {**spec.trial, **point, "seed": seed}
            packs = groups.setdefault(architecture(TrialConfig.from_dict(member)), [[]])
            if len(packs[-1]) == spec.population:
                packs.append([])
            packs[-1].append(member)
    return [pack for packs in groups.values() for pack in packs]


def tune_config(spec: Spec) -> tune.TuneConfig:
    search = make_searcher(spec) if spec.mode == "optuna" else None
    return tune.TuneConfig(
        search_alg=search,
        scheduler=make_scheduler(spec),
        num_samples=spec.num_samples * len(spec.seeds) if search is not None else 1,
        max_concurrent_trials=spec.max_concurrent or None,
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
    s = spec.scheduler
    if s is None:
        return None
    return ASHAScheduler(
        time_attr="step",
        metric=s.metric,
        mode=s.mode,
        max_t=spec.max_steps,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


def make_sampler(spec: Spec) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = spec.seeds[0]
    if spec.sampler == "nsga2":
        population = max(2, min(50, spec.num_samples // 4))  # several generations per study
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_searcher(spec: Spec) -> SeedReplicates:
    metrics, modes = list(spec.objectives), list(spec.objectives.values())
    optuna_search = OptunaSearch(
        space={k: to_optuna(d) for k, d in spec.space.items()},
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=make_sampler(spec),
        study_name=spec.name,
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
        values = [_finite((result or {}).get(m)) for m in self.objectives]
        group["trials"][trial_id] = (values, error)
        ended = list(group["trials"].values())
        if len(ended) < len(self.seeds) or any(e is None for e in ended):
            return
        means = []
        for i, metric in enumerate(self.objectives):
            got = [v[i] for v, _ in ended if v[i] is not None]
            means.append((metric, sum(got) / len(got) if got else None))
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


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
