"""Every Optuna searcher through what Tune does to it: pickled when the Tuner is built,
asked and told, saved at an experiment checkpoint, and restored on ``--resume`` into
the copy the restored Tuner unpickles. The matrix: every sampler, one seed or two,
unpacked or packed into populations. No trial trains here (the tell is made by hand);
``tests/test_study_run.py`` and ``tests/test_study_population.py`` run them on Ray."""

from __future__ import annotations

import threading

import pytest
from ray import cloudpickle
from ray.tune.search import Searcher
from ray.tune.search.search_generator import SearchGenerator

from analysis.contract import OPTUNA_JOURNAL_FILE
from study.search import NSGAIISampler, journal_path, tune_config
from study.spec import validate
from tests.conftest import tiny_spec
from trainables.tune import MEMBER_RESULTS_KEY, MEMBERS_KEY

SAMPLERS = ["tpe", "gp", "nsga2"]
SAMPLES = 4


def matrix_spec(tmp_path, sampler: str, seeds: int, packed: bool):
    return validate(
        tiny_spec(
            tmp_path / "runs",
            name=f"m-{sampler}",
            space={"c_max": {"uniform": [1, 10]}, "gamma": {"loguniform": [10, 1000]}},
            seeds=seeds,
            search={
                "mode": "optuna",
                "sampler": sampler,
                "objectives": {"recon": "min", "mig": "max"},
                "num_samples": SAMPLES,
            },
            resources={"cpu": 1, "population": 2 * seeds if packed else 1},
        )
    )


def result_for(config: dict) -> dict:
    """A made-up final row whose objectives depend on the configuration and the seed."""
    return {"recon": 100 + config["c_max"] + config["seed"], "mig": 1 / config["gamma"]}


def ask_and_tell(searcher: Searcher, start: int, count: int) -> list[dict]:
    """Ask for ``count`` Ray trials and tell each its result; returns their configs."""
    told = []
    for n in range(start, start + count):
        config = searcher.suggest(f"t{n}")
        if config is None or config == Searcher.FINISHED:
            break
        if MEMBERS_KEY in config:  # a population: one row per member
            members = config[MEMBERS_KEY]
            searcher.on_trial_complete(
                f"t{n}", {MEMBER_RESULTS_KEY: [result_for(m) for m in members]}
            )
            told += members
        else:
            searcher.on_trial_complete(f"t{n}", result_for(config))
            told.append(config)
    return told


@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
@pytest.mark.parametrize("seeds", [1, 2], ids=["1-seed", "2-seeds"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_searcher_pickles_and_resumes_where_it_stopped(tmp_path, sampler, seeds, packed):
    import optuna

    spec = matrix_spec(tmp_path, sampler, seeds, packed)
    study_dir = str(tmp_path / "runs" / spec.name)
    config = tune_config(spec, study_dir)
    built = cloudpickle.dumps(config)  # as tune.Tuner(...) does
    first = SearchGenerator(cloudpickle.loads(built).search_alg)
    half = config.num_samples // 2  # Tune asks for num_samples Ray trials in all
    told = ask_and_tell(first.searcher, 0, half)
    first.save_to_dir(str(tmp_path), session_str="s")  # the experiment checkpoint

    resumed = SearchGenerator(cloudpickle.loads(built).search_alg)  # Tuner.restore's copy
    resumed.restore_from_dir(str(tmp_path))
    told += ask_and_tell(resumed.searcher, half, config.num_samples - half)

    configs = {(c["c_max"], c["gamma"]) for c in told}
    assert len(configs) == SAMPLES  # nothing asked twice, nothing lost across the resume
    assert sorted(c["seed"] for c in told) == sorted(list(spec.seeds) * SAMPLES)
    path = journal_path(spec, study_dir)
    assert path.endswith(OPTUNA_JOURNAL_FILE)
    backend = optuna.storages.journal.JournalFileBackend(path)
    study = optuna.load_study(study_name=spec.name, storage=optuna.storages.JournalStorage(backend))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * SAMPLES
    for t in study.trials:
        point = (t.params["c_max"], t.params["gamma"])
        replicates = [c for c in told if (c["c_max"], c["gamma"]) == point]
        assert t.values == pytest.approx(
            [
                sum(result_for(c)["recon"] for c in replicates) / seeds,
                sum(result_for(c)["mig"] for c in replicates) / seeds,
            ]
        )


def test_a_sampler_pickles_with_fresh_locks_and_its_plain_state():
    sampler = NSGAIISampler(population_size=4, seed=0)
    sampler._cached_generation = 3  # plain state travels
    sampler._thread_lock = threading.Lock()  # as Optuna 5.1's genetic samplers hold
    sampler._other_lock = threading.RLock()
    copy = cloudpickle.loads(cloudpickle.dumps(sampler))
    assert copy._cached_generation == 3 and copy.population_size == 4
    for name, kind in (("_thread_lock", threading.Lock), ("_other_lock", threading.RLock)):
        lock = getattr(copy, name)
        assert isinstance(lock, type(kind())) and lock is not getattr(sampler, name)
        assert lock.acquire(blocking=False)  # a new lock, not a held copy
        lock.release()
    assert "_betastudy_locks" not in copy.__dict__
