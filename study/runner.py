"""The study runner: a validated Spec -> a Ray Tune experiment in the study directory.

Layout of ``<storage>/<name>/`` (local or cloud): ``study.yaml`` (the resolved spec),
Ray's experiment state and one folder per trial (``result.json``, ``params.json``,
``checkpoint_NNNNNN/`` with state.pt, config.json and, in the final one,
traversals.npz; ``error.txt`` when it failed), then ``trials.json``, ``optuna.db``
(Optuna studies) and ``report.html`` at the end.

Failures: a trial whose process dies is restarted from its last checkpoint, up to
``max_failures`` times (Ray's FailureConfig). A diverged trial is not restarted: its
last row says so (trainables/tune.py) and ``NoRetryAfterDivergence`` drops its retries,
so it ends as ERROR with its reason while the others go on. Trials reuse their worker
process (``reuse_actors``): a trial that ends well hands its process, torch already
imported, to the next one, which saves about two seconds a trial. ``resume`` continues an
interrupted study (``Tuner.restore``): finished and failed trials are kept as they
are, unfinished ones continue from their last checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml
from ray import tune

from analysis import fs as storage
from analysis.contract import OPTUNA_JOURNAL_FILE, STUDY_SPEC_FILE
from study import records as rec
from study.callbacks import NoRetryAfterDivergence, SessionCallbacks
from study.progress import Progress
from study.search import journal_path, param_space, tune_config
from study.spec import AUTO, Machine, Spec, SpecError, validate
from trainables.tune import train, train_population


class JoinError(ConnectionError):
    """The Ray cluster named by --address or RAY_ADDRESS cannot be joined."""


CHECKPOINTS_KEPT = 2  # the newest; the final one holds the traversals
REPORT_FILE = "report.html"
Echo = Callable[[str], None]


@dataclass(frozen=True)
class StudyResult:
    spec: Spec
    study_dir: str
    records: list[rec.TrialRecord]
    summary: list[str]
    report: str | None


def connect(address: str | None = None) -> bool:
    """Join a running cluster (``address``, or RAY_ADDRESS) or start Ray on this machine.

    Returns True when Ray was started (or joined) here, False when already initialized.
    """
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    # Ray notes at every start that token auth is on (its default): not a warning. The
    # warning that it is *off* stays.
    logging.getLogger(TOKEN_AUTH_LOGGER).addFilter(_not_the_token_auth_note)
    target = address or os.environ.get("RAY_ADDRESS")
    if not target:  # "local": always a fresh Ray here, never a cluster that happens to run
        ray.init(address="local", include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=target, **quiet)
    except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as e:
        reason = str(e).strip().splitlines()[-1][:300]
        auth = os.environ.get("RAY_AUTH_MODE")
        hint = "" if auth else "; a cluster with token auth needs RAY_AUTH_MODE=token"
        raise JoinError(f"cannot join the Ray cluster at {target}: {reason}{hint}") from e
    return True


TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _not_the_token_auth_note(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")


def trainable(spec: Spec):
    fn = train_population if spec.resources.population > 1 else train
    return tune.with_resources(fn, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def run_config(spec: Spec) -> tune.RunConfig:
    return tune.RunConfig(
        name=spec.name,
        storage_path=spec.storage,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        callbacks=[SessionCallbacks(), *trackers(spec)],
        verbose=0,  # Progress prints instead
    )


MLFLOW_DIR = "mlruns"  # in a local study directory, unless MLFLOW_TRACKING_URI says where


def trackers(spec: Spec) -> list[tune.Callback]:
    """Ray Tune's logger callbacks for ``spec.tracking`` (TensorBoard needs none: Ray
    writes its event files into every trial folder already). MLflow: one run per trial,
    its config as parameters and every row's numbers as metrics, in MLFLOW_TRACKING_URI
    or a file store in the study directory."""
    if "mlflow" not in spec.tracking:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        if not storage.is_local(spec.storage):
            raise SpecError(
                "tracking: mlflow with cloud storage needs MLFLOW_TRACKING_URI (a tracking "
                "server); its file store is local"
            )
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it
        uri = "file:" + storage.join_location(spec.storage, spec.name, MLFLOW_DIR)
    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.name)]


def _session(spec: Spec, callbacks: Sequence[tune.Callback], progress: bool, echo: Echo) -> None:
    # a failure's reason is on the progress line and in the summary: no traceback dumps
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # Tune's own output engine prints a configuration table, the results path and a
    # TensorBoard hint into Ray's session folder whatever `verbose` says; the legacy
    # reporter at verbose=0 prints nothing, and Progress says what is going on
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # checkpoints of short trials force many state snapshots; Ray warns at every one
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    shown = [Progress(echo, [*spec.space, "seed"])] if progress else []
    SessionCallbacks.use([NoRetryAfterDivergence(), *shown, *callbacks])


def with_cluster_gpus(spec: Spec) -> Spec:
    """``resources.gpu: auto`` decided on the joined cluster: its GPUs (by Ray's count)."""
    if spec.resources.gpu != AUTO:
        return spec
    import ray

    total = ray.cluster_resources()
    machine = Machine(cpus=int(total.get("CPU", 0)), gpus=int(total.get("GPU", 0)))
    return validate(spec.to_dict(), machine)


def cluster_hosts() -> set[str]:
    """The addresses of the joined cluster's live nodes (several nodes may share one)."""
    import ray

    return {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}


def check_storage_reaches(spec: Spec, hosts: set[str], mounts: str = "/proc/mounts") -> None:
    """A storage folder on this machine's own disk: refused when trials run on other
    hosts too (Ray needs storage every node reaches: a cloud URI, or a folder on a shared
    network file system mounted alike on every node)."""
    where = spec.storage
    if storage.is_local(where) and len(hosts) > 1:
        if storage.on_network_filesystem(where, mounts):
            return
        raise SpecError(
            f"storage={where} is a folder on this machine's own disk, but the cluster runs "
            f"trials on {len(hosts)} hosts that cannot write there; use --set "
            "storage=s3://BUCKET/PATH (or gs://...), or a folder on a shared file system"
        )


def fresh_study(spec: Spec) -> Spec:
    """``spec`` named so that its directory does not exist yet (name, name-2, name-3 ...)."""
    name, n = spec.name, 1
    while storage.exists(storage.join_location(spec.storage, name)):
        n += 1
        name = f"{spec.name}-{n}"
    return dataclasses.replace(spec, name=name)


def run_study(
    spec: Spec,
    address: str | None = None,
    callbacks: Sequence[tune.Callback] = (),
    progress: bool = True,
    echo: Echo = print,
    report: bool = True,
) -> StudyResult:
    """Run a new study; returns its records once every trial has ended (or on Ctrl-C)."""
    started = connect(address)  # first: a cluster that cannot be joined leaves no folder
    try:
        spec = fresh_study(with_cluster_gpus(spec))
        check_storage_reaches(spec, cluster_hosts())
        for note in spec.notes:
            echo(note)
        study_dir = storage.join_location(spec.storage, spec.name)
        text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
        storage.write_text(storage.join_location(study_dir, STUDY_SPEC_FILE), text)
        echo(f"study {spec.name}: {spec.n_trials} trials -> {study_dir}")
        _session(spec, callbacks, progress, echo)
        tuner = tune.Tuner(
            trainable(spec),
            param_space=param_space(spec, study_dir),
            tune_config=tune_config(spec, study_dir),
            run_config=run_config(spec),
        )
        tuner.fit()
        return finish(spec, study_dir, echo, report)
    finally:
        SessionCallbacks.use([])
        _disconnect(started)


def load_study_spec(study_dir: str) -> Spec:
    where = storage.join_location(study_dir, STUDY_SPEC_FILE)
    if not storage.exists(where):
        raise SpecError(f"--resume {study_dir}: no {STUDY_SPEC_FILE} there; not a betastudy study")
    raw = yaml.safe_load(storage.read_text(where))
    return validate(raw)


def resume_study(
    study_dir: str,
    address: str | None = None,
    callbacks: Sequence[tune.Callback] = (),
    progress: bool = True,
    echo: Echo = print,
    report: bool = True,
) -> StudyResult:
    """Continue an interrupted study without rerunning its finished trials."""
    study_dir = study_dir.rstrip("/") if "://" in study_dir else os.path.abspath(study_dir)
    spec = load_study_spec(study_dir)
    started = connect(address)
    _session(spec, callbacks, progress, echo)
    try:
        check_storage_reaches(spec, cluster_hosts())
        if not tune.Tuner.can_restore(study_dir):
            raise SpecError(f"--resume {study_dir}: Ray's experiment state is not there")
        echo(f"resuming study {spec.name} in {study_dir}")
        tuner = tune.Tuner.restore(
            study_dir,
            trainable=trainable(spec),
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
        tuner.fit()
        return finish(spec, study_dir, echo, report)
    finally:
        SessionCallbacks.use([])
        _disconnect(started)


def finish(spec: Spec, study_dir: str, echo: Echo, report: bool) -> StudyResult:
    """trials.json, optuna.db, the summary and the report; results are written first."""
    records = rec.collect(study_dir)
    rec.write_trials_json(study_dir, records)
    if spec.search.mode == "optuna":
        rec.write_optuna_db(study_dir, spec, records)
        if not storage.is_local(study_dir):  # the live journal was kept beside the driver
            with open(journal_path(spec, study_dir), "rb") as f:
                storage.write_bytes(storage.join_location(study_dir, OPTUNA_JOURNAL_FILE), f.read())
    lines = rec.summary(spec, study_dir, records)
    for line in lines:
        echo(line)
    path = build_report(spec, study_dir, echo) if report else None
    return StudyResult(spec, study_dir, records, lines, path)


def build_report(spec: Spec, study_dir: str, echo: Echo) -> str | None:
    """The HTML report in the study directory (and, for cloud storage, here too)."""
    try:
        from analysis.report import build_report as build
    except ImportError as e:
        echo(f"report: not built ({e}); results are in {study_dir}")
        return None
    local = storage.is_local(study_dir)
    out = storage.join_location(study_dir, REPORT_FILE) if local else f"{spec.name}-{REPORT_FILE}"
    try:
        path = str(build(study_dir, out))
        if not local:
            with open(path, "rb") as f:
                storage.write_bytes(storage.join_location(study_dir, REPORT_FILE), f.read())
    except Exception as e:  # the results are written already; a report is never worth them
        echo(f"report: could not build it ({type(e).__name__}: {e})")
        echo(f"  results are safe in {study_dir}; try: betastudy report {study_dir}")
        return None
    echo(f"report: {path}")
    return path


def _disconnect(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
