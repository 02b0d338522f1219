"""Packed studies (resources.population) on the session's real local Ray cluster: the
members load as ordinary trials, with the numbers their unpacked trials give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.contract import STATE_FILE, TRAVERSALS_FILE, kl_key
from analysis.load import load_study
from study.spec import SpecError, validate
from tests.conftest import tiny_spec
from tests.helpers import rows, run_cli, trials_json, write_spec

pytestmark = pytest.mark.ray


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a folder's TensorBoard event files (TFRecords of Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4  # length, its CRC, the record, its CRC
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


SMALL_GRID = dict(trial={"eval_every": 20}, space={"gamma": [10.0, 100.0], "c_max": [2.0, 5.0]})


def test_a_packed_grid_study_loads_like_the_unpacked_one(small_study_dir, tmp_path):
    from study.runner import run_study

    spec = validate(
        tiny_spec(tmp_path, name="packed", resources={"cpu": 1, "population": 4}, **SMALL_GRID)
    )
    result = run_study(spec, progress=False, report=False)
    study_dir = Path(result.study_dir)
    trials = trials_json(study_dir)
    assert [t["status"] for t in trials] == ["TERMINATED"] * 4
    assert len({t["path"].split("/")[0] for t in trials}) == 1  # one population, one Ray trial
    for t in trials:
        member = study_dir / t["path"]
        assert [r["step"] for r in rows(member)] == [10, 20, 30, 40]
        scalars = tensorboard_scalars(member)  # read back from the event files
        assert [step for step, _ in scalars["ray/tune/recon"]] == [10, 20, 30, 40]
        assert scalars["ray/tune/recon"][-1][1] == pytest.approx(rows(member)[-1]["recon"])
        snapshots = sorted(p.name for p in (member / "traversals").glob("*.npz"))
        assert snapshots == ["step_0000020.npz", "step_0000040.npz"]  # every evaluation
        final = sorted(member.glob("checkpoint_*"))[-1]
        assert (final / STATE_FILE).is_file() and (final / TRAVERSALS_FILE).is_file()

    packed, apart = load_study(study_dir), load_study(small_study_dir)
    some_trial = small_study_dir / trials_json(small_study_dir)[0]["path"]
    assert len(tensorboard_scalars(some_trial)["ray/tune/recon"]) == 4  # Ray's own logger
    assert len(list((some_trial / "traversals").glob("step_*.npz"))) == 2  # unpacked: too
    assert list(packed.trials.columns) == list(apart.trials.columns)
    assert list(packed.curves.columns) == list(apart.curves.columns)
    assert packed.metrics == apart.metrics
    key = ["config/gamma", "config/c_max"]

    def by_config(study, frame):
        configs = study.trials.set_index("trial_id")[key]
        return frame.join(configs, on="trial_id").sort_values([*key, "step"], ignore_index=True)

    a, b = by_config(packed, packed.curves), by_config(apart, apart.curves)
    assert a[[*key, "step"]].equals(b[[*key, "step"]])
    # Each member is its solo trial: the same C at every step, the same first row to
    # rounding. Later rows drift apart by more than rounding, and not from a fault: the
    # capacity objective's gradient gamma * sign(KL - C) flips where KL sums to C in
    # another order, and the solo trial's fused Adam rounds otherwise than the
    # population's; by step 40 that is 0.25% of KL at gamma 100 (measured). The
    # configurations differ from each other by far more (8% or over, at step 40).
    assert a["C"].to_numpy() == pytest.approx(b["C"].to_numpy(), rel=1e-6)
    first, last = a["step"] == a["step"].min(), a["step"] == a["step"].max()
    for col in ("recon", "kl", kl_key(0)):
        assert a[col][first].to_numpy() == pytest.approx(b[col][first].to_numpy(), rel=1e-4)
        assert a[col].to_numpy() == pytest.approx(b[col].to_numpy(), rel=1e-2, abs=1e-3)
    finals = b["kl"][last].to_numpy()
    assert min(abs(x - y) / y for j, x in enumerate(finals) for y in finals[j + 1 :]) > 0.05
    assert packed.traversals(packed.trials["trial_id"].iloc[0]) is not None


def test_a_diverging_member_fails_with_its_reason_while_the_others_finish(ray_cluster, tmp_path):
    spec = tiny_spec(
        tmp_path / "runs",
        name="packed-diverge",
        trial={"objective": "beta", "beta": 1.0},
        space={"lr": [2e-3, 0.9]},  # Adam at lr 0.9 blows up within a few steps
        resources={"cpu": 1, "population": 2},
    )
    out = run_cli(write_spec(tmp_path, spec), "--no-report")
    study_dir = tmp_path / "runs" / "packed-diverge"
    trials = {t["config"]["lr"]: t for t in trials_json(study_dir)}
    healthy, bad = trials[2e-3], trials[0.9]
    assert healthy["status"] == "TERMINATED" and healthy["error"] is None
    assert bad["status"] == "ERROR"
    assert bad["error"].startswith("TrainingDiverged: non-finite loss at step ")
    assert (study_dir / bad["path"] / "error.txt").read_text().startswith("TrainingDiverged")
    last = rows(study_dir / bad["path"])[-1]
    assert last["diverged"] is True and last["step"] == bad["last_step"] < 40
    assert f"failed (1):\n  {bad['trial_id']} (lr=0.9 seed=0): TrainingDiverged" in out
    loaded = load_study(study_dir).trials.set_index("config/lr")
    assert loaded.at[0.9, "status"] == "ERROR" and loaded.at[2e-3, "status"] == "TERMINATED"


def test_a_packed_optuna_study_asks_in_batches_and_tells_the_seed_means(ray_cluster, tmp_path):
    import optuna

    from analysis.contract import OPTUNA_DB_FILE

    spec = tiny_spec(
        tmp_path / "runs",
        name="packed-mo",
        trial={"steps": 30},
        space={"c_max": {"uniform": [1, 10]}, "gamma": {"loguniform": [10, 1000]}},
        seeds=2,
        search={"mode": "optuna", "objectives": {"recon": "min", "mig": "max"}, "num_samples": 3},
        resources={"cpu": 1, "population": 4},  # two configurations x two seeds a population
    )
    run_cli(write_spec(tmp_path, spec), "--no-report")
    study_dir = tmp_path / "runs" / "packed-mo"
    trials = trials_json(study_dir)
    assert [t["status"] for t in trials] == ["TERMINATED"] * 6
    assert len({t["path"].split("/")[0] for t in trials}) == 2  # populations of 4 and 2
    by_config: dict[tuple, list[dict]] = {}
    for t in trials:
        by_config.setdefault((t["config"]["c_max"], t["config"]["gamma"]), []).append(t)
    assert len(by_config) == 3
    assert all(sorted(t["config"]["seed"] for t in g) == [0, 1] for g in by_config.values())
    study = optuna.load_study(
        study_name="packed-mo", storage=f"sqlite:///{study_dir / OPTUNA_DB_FILE}"
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for ot in study.trials:
        finals = [rows(study_dir / t["path"])[-1] for t in by_config[tuple(ot.params.values())]]
        assert ot.values[0] == pytest.approx(sum(r["recon"] for r in finals) / 2)
        assert ot.values[1] == pytest.approx(sum(r["mig"] for r in finals) / 2)


def test_an_optuna_population_cannot_take_a_scheduler(tmp_path):
    with pytest.raises(SpecError, match="successive halving inside populations runs in grid"):
        validate(
            tiny_spec(
                tmp_path,
                space={"gamma": {"uniform": [1.0, 2.0]}},
                search={"mode": "optuna", "num_samples": 4, "objectives": {"recon": "min"}},
                scheduler={"type": "asha", "metric": "recon", "mode": "min"},
                resources={"population": 4},
            )
        )
    spec = validate(tiny_spec(tmp_path, space={"gamma": [1.0, 2.0]}, resources={"population": 4}))
    assert spec.to_dict()["resources"]["population"] == 4
    assert json.loads(json.dumps(spec.to_dict()))  # study.yaml stays plain data


def test_a_killed_population_resumes_each_member_from_its_checkpoint(ray_cluster, tmp_path):
    from study.runner import run_study
    from tests.helpers import KillAtStep, assert_rows_close, population_rows, rows_of
    from trainables.config import TrialConfig
    from trainables.population import Population
    from trainables.trainer import Trainer

    spec = validate(
        tiny_spec(
            tmp_path,
            name="packed-kill",
            trial={"objective": "beta"},
            space={"beta": [1.0, 4.0]},
            resources={"cpu": 1, "population": 2},
        )
    )
    kill = KillAtStep(20, at_least=True)  # once a member has checkpointed at step 20
    result = run_study(spec, callbacks=[kill.callback], progress=False, report=False)
    assert len(kill.killed) == 1
    assert [r.status for r in result.records] == ["TERMINATED"] * 2
    # The reference is the same population never killed: its members share the killed
    # one's kernels (Population's Adam, not torch's fused one), so a resume that restores
    # every weight, moment, step and random stream gives the same numbers. A solo Trainer
    # is no reference after step 20: its fused Adam rounds otherwise, and by step 30 the
    # difference has grown past 1e-3 in a latent's KL (measured), killed or not.
    configs = [TrialConfig.from_dict(r.config) for r in result.records]
    reference = population_rows(Population(configs))
    for i, record in enumerate(result.records):
        member = Path(result.study_dir) / record.path
        reported = rows(member)
        assert [r["step"] for r in reported] == [10, 20, 30, 40]  # no step twice
        assert_rows_close(reported, reference[i], rel=1e-5)  # resumed, as if never killed
        solo = rows_of(Trainer(configs[i]))
        assert_rows_close(reported[:1], solo[:1], rel=1e-5)  # and each member is its trial


def test_a_packed_grid_study_halves_inside_its_populations(tmp_path):
    """Eight configurations, four slots: at the first rung (step 10) successive halving
    stops the configurations worse than the rung's median so far; the queued ones take
    the freed slots; the report and the summary count the stopped ones as stopped."""
    from study.runner import run_study

    lrs = [3e-3, 1e-4, 1e-2, 3e-4, 2e-3, 7e-3, 1e-3, 5e-3]  # better and worse in turn
    spec = validate(
        tiny_spec(
            tmp_path,
            name="halved",
            trial={"steps": 30, "c_steps": 30},
            space={"lr": lrs},
            scheduler={"type": "asha", "metric": "recon", "mode": "min", "grace_period": 10,
                       "reduction_factor": 2},
            resources={"cpu": 1, "population": 4},
        )
    )  # fmt: skip
    result = run_study(spec, progress=False, report=False)
    study_dir = Path(result.study_dir)
    trials = trials_json(study_dir)
    assert len(trials) == 8 and len({t["path"].split("/")[0] for t in trials}) == 1
    assert {t["status"] for t in trials} == {"TERMINATED"}
    last = {t["config"]["lr"]: rows(study_dir / t["path"])[-1]["step"] for t in trials}
    stopped = [lr for lr, step in last.items() if step < 30]
    assert last[lrs[0]] == 30  # the first at its rung goes on: nothing to compare with yet
    assert 1 <= len(stopped) <= 7 and all(last[lr] in (10, 20) for lr in stopped)
    assert all(last[lr] >= 10 for lr in lrs[4:])  # the queued ones trained in freed slots
    recon_at = {
        t["config"]["lr"]: {r["step"]: r["recon"] for r in rows(study_dir / t["path"])}
        for t in trials
    }
    for lr in stopped:  # worse at its rung than one that went on past it
        rung = last[lr]
        assert any(recon_at[o].get(rung, -1) < recon_at[lr][rung] for o in lrs if last[o] > rung)
    for t in trials:
        member = study_dir / t["path"]
        reason = member / "stopped.txt"
        assert reason.is_file() == (t["config"]["lr"] in stopped)
        if reason.is_file():
            assert "successive halving" in reason.read_text()
    study = load_study(study_dir)
    by_lr = study.trials.set_index("config/lr")
    assert (by_lr.loc[stopped, "status"] == "TERMINATED").all()
    assert not by_lr.loc[stopped, "complete"].any()  # listed as stopped early
    from study.records import collect, summary

    lines = summary(spec, str(study_dir), collect(str(study_dir)))
    assert f"stopped early by the scheduler: {len(stopped)} trials" in lines
