"""Experiment trackers on real tiny studies (the session's local Ray cluster): W&B runs
written offline into the study folder, optuna-dashboard reading a study's live journal,
and a packed member's TensorBoard files reaching cloud storage."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

from analysis.contract import OPTUNA_JOURNAL_FILE, STATE_FILE, member_id
from tests.conftest import tiny_spec
from tests.helpers import rows, run_cli, small, trials_json, write_spec
from tests.test_study_population import tensorboard_scalars

TINY = {"steps": 20, "report_every": 10, "c_steps": 20}  # two rows a trial


@pytest.fixture()
def no_wandb_key(monkeypatch):
    """W&B as on a machine without an API key, whatever this one has: logs offline."""
    import study.spec

    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(study.spec, "_wandb_key", lambda: False)


def wandb_records(path: Path) -> list:
    """The records of an offline run's ``.wandb`` file (a LevelDB-style log of
    ``wandb.proto`` Records: a 7-byte file header, then in 32 KiB blocks records of a
    7-byte header -- CRC, length, type: full, first, middle, last -- and their data)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    out, chunk, i = [], b"", 7
    while i + 7 <= len(data):
        if block - i % block < 7:  # a block's tail too short for a header: padding
            i += block - i % block
            continue
        _, n, kind = struct.unpack("<IHB", data[i : i + 7])
        if n == 0 and kind == 0:  # zero padding up to the next block
            i += block - i % block
            continue
        chunk += data[i + 7 : i + 7 + n]
        i += 7 + n
        if kind in (1, 4):  # a full record, or the last piece of one
            out.append(pb.Record.FromString(chunk))
            chunk = b""
    return out


def wandb_runs(study_dir: Path) -> dict[str, dict]:
    """The offline W&B runs in a study folder: run id -> project, group, job_type, config
    and history (one dict a logged row)."""
    runs: dict[str, dict] = {}
    for path in sorted(study_dir.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"history": []}
        for r in wandb_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run.update(id=r.run.run_id, project=r.run.project, group=r.run.run_group)
                run.update(job_type=r.run.job_type)
                run["config"] = {i.key: json.loads(i.value_json) for i in r.run.config.update}
            elif kind == "history":  # an item's key, or its path of keys
                items = r.history.item
                run["history"].append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                )
        runs[run["id"]] = run
    return runs


@pytest.fixture(scope="module")
def optuna_study(ray_cluster, tmp_path_factory):
    """A tiny Optuna study of two trials with ``tracking: [wandb]``, with no W&B key."""
    import study.spec

    tmp = tmp_path_factory.mktemp("tracked")
    spec = tiny_spec(
        tmp / "runs",
        name="tracked",
        trial=TINY,
        space={"c_max": {"uniform": [1, 10]}},
        search={"mode": "optuna", "objectives": {"recon": "min"}, "num_samples": 2},
        tracking=["wandb"],
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
            mp.delenv(name, raising=False)
        mp.setattr(study.spec, "_wandb_key", lambda: False)
        assert study.spec.wandb_mode() == "offline"
        run_cli(write_spec(tmp, spec), "--no-report")
    return tmp / "runs" / "tracked"


@pytest.mark.ray
def test_wandb_logs_every_trial_offline_into_the_study_folder(optuna_study):
    trials = trials_json(optuna_study)
    assert [t["status"] for t in trials] == ["TERMINATED"] * 2
    runs = wandb_runs(optuna_study)
    assert sorted(runs) == sorted(t["trial_id"] for t in trials)  # one run per trial
    for t in trials:
        run, rows_ = runs[t["trial_id"]], rows(optuna_study / t["path"])
        assert run["project"] == "tracked" and run["group"] == "tracked"
        assert run["config"]["c_max"] == pytest.approx(t["config"]["c_max"])
        assert "__study_dir" not in run["config"]
        assert [h["step"] for h in run["history"]] == [r["step"] for r in rows_] == [10, 20]
        assert [h["_step"] for h in run["history"]] == [1, 2]  # Ray's training_iteration
        assert run["history"][-1]["recon"] == pytest.approx(rows_[-1]["recon"])
        assert run["history"][-1]["kl"] == pytest.approx(rows_[-1]["kl"])


@pytest.mark.ray
def test_optuna_dashboard_serves_the_studys_journal(optuna_study):
    import optuna_dashboard
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = str(optuna_study / OPTUNA_JOURNAL_FILE)

    def get(app, path: str) -> dict:
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        status: list[str] = []
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        assert status == ["200 OK"], (status, body[:300])
        return json.loads(body)

    # the storage itself, and the path as `optuna-dashboard runs/NAME/optuna.journal` gives it
    for storage in (JournalStorage(JournalFileBackend(journal)), journal):
        app = optuna_dashboard.wsgi(storage)
        (summary,) = get(app, "/api/studies")["study_summaries"]
        assert summary["study_name"] == "tracked" and summary["directions"] == ["minimize"]
        detail = get(app, f"/api/studies/{summary['study_id']}")
        assert detail["name"] == "tracked"
        assert [t["state"] for t in detail["trials"]] == ["Complete", "Complete"]


@pytest.mark.ray
@pytest.mark.xfail(
    strict=False,
    reason="known defect: in one full-suite run an offline .wandb file of this packed study "
    "held no run record (it passes alone and passed in other runs); cause not yet found",
)
def test_wandb_logs_each_packed_member_as_a_run(ray_cluster, tmp_path, no_wandb_key):
    spec = tiny_spec(
        tmp_path / "runs",
        name="packed",
        trial=TINY,
        space={"c_max": [2.0, 5.0]},
        resources={"cpu": 1, "population": 2},
        tracking=["wandb"],
    )
    run_cli(write_spec(tmp_path, spec), "--no-report")
    study_dir = tmp_path / "runs" / "packed"
    trials = trials_json(study_dir)
    assert len({t["path"].split("/")[0] for t in trials}) == 1  # one population
    runs = wandb_runs(study_dir)
    (pop_id,) = [i for i, r in runs.items() if r["job_type"] != "member"]  # its Ray trial
    assert runs[pop_id]["history"][-1]["members_done"] == 2
    members = {i: r for i, r in runs.items() if r["job_type"] == "member"}
    expected = [member_id(pop_id, 0), member_id(pop_id, 1)]  # each member's trial id
    assert sorted(members) == sorted(t["trial_id"] for t in trials) == expected
    for t in trials:
        run, rows_ = members[t["trial_id"]], rows(study_dir / t["path"])
        assert run["project"] == "packed" and run["config"]["c_max"] == t["config"]["c_max"]
        assert [h["step"] for h in run["history"]] == [r["step"] for r in rows_] == [10, 20]
        assert run["history"][-1]["recon"] == pytest.approx(rows_[-1]["recon"])
        tb = tensorboard_scalars(study_dir / t["path"])["ray/tune/recon"]  # local: as before
        assert tb == [(r["step"], pytest.approx(r["recon"])) for r in rows_]


def test_a_members_tensorboard_files_reach_cloud_storage(tmp_path, monkeypatch):
    """A packed member in a cloud study writes its event files in a local folder and
    uploads them with its rows (each checkpoint) and when closed; a pyarrow file system
    that is not the local one stands in for the bucket."""
    import pyarrow.fs as pafs

    from trainables import members

    bucket = tmp_path / "bucket"
    bucket.mkdir()
    cloud = pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem())
    monkeypatch.setattr(members, "filesystem", lambda loc: (cloud, loc.split("://", 1)[1]))

    class Member:  # what MemberFolder.checkpoint uses of a Trainer
        step = 20

        def save_checkpoint(self, directory):
            Path(directory, STATE_FILE).write_bytes(b"state")

    folder = members.MemberFolder("s3://study/population/member_000", small())
    assert not folder.local
    where = bucket / "study" / "population" / "member_000"
    for step, recon in [(10, 3.0), (20, 2.0)]:
        folder.add_row({"step": step, "images_seen": 16 * step, "recon": recon})
    assert not list(where.glob("events.out.tfevents.*"))  # uploaded with the rows only
    folder.checkpoint(Member())
    assert [r["step"] for r in rows(where)] == [10, 20]
    (events,) = where.glob("events.out.tfevents.*")
    assert events.name.endswith(f".{os.getpid()}.0001")  # a restart's file is another one
    assert tensorboard_scalars(where)["ray/tune/recon"] == [(10, 3.0), (20, 2.0)]
    local = folder._events
    folder.add_row({"step": 30, "images_seen": 480, "recon": 1.5})
    folder.close()
    assert len(list(where.glob("events.out.tfevents.*"))) == 2  # a file per upload
    assert tensorboard_scalars(where)["ray/tune/recon"] == [(10, 3.0), (20, 2.0), (30, 1.5)]
    assert local is not None and not os.path.exists(local)  # the local copy is gone
