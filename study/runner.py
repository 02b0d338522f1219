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

import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml
from ray import tune
from ray.tune.logger import LoggerCallback

from analysis import fs as storage
from analysis.contract import (
    DIVERGED_KEY,
    MEMBERS_KEY,
    OPTUNA_JOURNAL_FILE,
    PARAMS_FILE,
    REPORT_FILE,
    RESULT_FILE,
    STUDY_SPEC_FILE,
    member_dirname,
    member_id,
)
from study import records as rec
from study.callbacks import NoRetryAfterDivergence, SessionCallbacks
from study.progress import AUTOSCALER, Progress
from study.search import journal_path, param_space, tune_config
from study.spec import (
    AUTO,
    Cluster,
    Machine,
    Node,
    Spec,
    SpecError,
    resolve_resources,
    validate,
    wandb_mode,
)
from trainables.tune import MEMBER_RESULTS_KEY, STUDY_DIR_KEY, train, train_population


class JoinError(ConnectionError):
    """The Ray cluster named by --address or RAY_ADDRESS cannot be joined."""


CHECKPOINTS_KEPT = 2  # the newest; the final one holds the traversals
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
    # Tune warns every minute that no trial runs while trials wait for a node; the wait
    # line of Progress says what they wait for instead
    logging.getLogger(INSUFFICIENT_RESOURCES_LOGGER).addFilter(_not_the_wait_warning)
    # Ray 2.52's init tips at every start about a future change to CUDA_VISIBLE_DEVICES
    # for tasks without GPUs; a CPU trial's device is set by its spec, so it changes
    # nothing here (later Ray no longer prints it)
    warnings.filterwarnings(
        "ignore", message="Tip: In future versions of Ray", category=FutureWarning
    )
    target = address or os.environ.get("RAY_ADDRESS")
    if not target:  # "local": always a fresh Ray here, never a cluster that happens to run
        ray.init(address="local", include_dashboard=False, **quiet)
        _fold_autoscaler_events()
        return True
    try:
        with _stderr_held():
            _refused_at_once(target)
            ray.init(address=target, **quiet)
    except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as e:
        reason = str(e).strip().splitlines()[-1][:300]
        auth = os.environ.get("RAY_AUTH_MODE")
        hint = "" if auth else "; a cluster with token auth needs RAY_AUTH_MODE=token"
        raise JoinError(f"cannot join the Ray cluster at {target}: {reason}{hint}") from e
    _fold_autoscaler_events()
    return True


AUTH_PROBE_S = 5.0  # seconds the token check before ray.init may take


def _refused_at_once(target: str) -> None:
    """Raise Ray's AuthenticationError if the cluster at ``target`` refuses this process's
    token (or its lack of one). ray.init finds that out only after 25 s of retries; a
    bare GCS client is told at once. Run on a thread (the client releases the GIL): an
    address that does not answer is left to ray.init, after ``AUTH_PROBE_S``."""
    import threading

    import ray
    from ray._private import services

    try:
        from ray._raylet import GcsClient

        address = services.canonicalize_bootstrap_address(target)
    except Exception:  # another Ray, or an address only ray.init understands
        return
    if not address:
        return
    refused: list[BaseException] = []

    def probe() -> None:
        try:
            GcsClient(address=address)
        except ray.exceptions.AuthenticationError as e:
            refused.append(e)
        except Exception:  # unreachable, or anything else: ray.init says what
            pass

    thread = threading.Thread(target=probe, name="betastudy-auth-probe", daemon=True)
    thread.start()
    thread.join(AUTH_PROBE_S)
    if refused:
        raise refused[0]


TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
INSUFFICIENT_RESOURCES_LOGGER = "ray.tune.execution.insufficient_resources_manager"
PRINT_LOGS = "ray_print_logs"  # ray.init's handler that prints workers' and autoscaler lines


def _not_the_token_auth_note(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")


def _not_the_wait_warning(record: logging.LogRecord) -> bool:
    return "not having enough resources" not in record.getMessage()


@contextlib.contextmanager
def _stderr_held():
    """Ray's C++ client writes each failed try to reach the GCS to file descriptor 2 (an
    InvalidAuthToken line a second, for twenty seconds): while joining, fd 2 goes to a
    file, dropped when the join fails (the JoinError says why), passed on when it works."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to hold
        yield
        return
    joined = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            joined = True
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read()
            if joined and text:
                os.write(2, text)


def _fold_autoscaler_events() -> None:
    """Ray prints its autoscaler's events on the driver, "(autoscaler +35s) Error: No
    available node types can fulfill resource request" every half minute while trials
    wait on a cluster whose workers join by hand; they go to ``AUTOSCALER`` instead, and
    Progress folds the newest into its wait line. Every other forwarded line prints."""
    try:
        from ray._private import worker as ray_worker
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

        printer = dict(dispatcher.handlers).get(PRINT_LOGS)
    except (ImportError, AttributeError, TypeError, ValueError):
        return  # another Ray: its lines print as they are
    if printer is None or getattr(printer, "folds_autoscaler", False):
        return

    def handle(data: dict) -> None:
        if data.get("pid") == "autoscaler":
            for line in ray_worker.filter_autoscaler_events(data.get("lines", [])):
                AUTOSCALER.add(line)
        else:
            printer(data)

    handle.folds_autoscaler = True  # type: ignore[attr-defined]
    dispatcher.remove_handler(PRINT_LOGS)  # and ray.shutdown removes ours by that name
    dispatcher.add_handler(PRINT_LOGS, handle)


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
WANDB_DIR = "wandb"  # W&B's run folders, in a local study directory (wandb.init's dir=)


def trackers(spec: Spec) -> list[tune.Callback]:
    """Ray Tune's logger callbacks for ``spec.tracking`` (TensorBoard needs none: Ray
    writes its event files into every trial folder already). MLflow: one run per trial,
    its config as parameters and every row's numbers as metrics, in MLFLOW_TRACKING_URI
    or a file store in the study directory. W&B: ``WandbTracking``."""
    out: list[tune.Callback] = []
    if "mlflow" in spec.tracking:
        out.append(_mlflow(spec))
    if "wandb" in spec.tracking:
        out.append(WandbTracking(spec.name, wandb_dir(spec), wandb_mode()))
    return out


def _mlflow(spec: Spec) -> tune.Callback:
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
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.name)


def wandb_dir(spec: Spec) -> str:
    """Where W&B writes its run folders (``wandb/`` inside): the study directory, or for
    cloud storage a folder beside the driver (W&B writes local files only)."""
    if storage.is_local(spec.storage):
        return storage.join_location(spec.storage, spec.name)
    from trainables.grid import cache_dir

    return os.path.join(cache_dir(), WANDB_DIR, spec.name)


class WandbTracking(LoggerCallback):
    """W&B through Ray Tune's own WandbLoggerCallback: a run per Ray trial in project
    ``project`` (its config, every reported row), ``mode`` as ``wandb_mode`` decided, the
    run folders in ``directory``/wandb. Ray's callback is made in ``setup`` (importing it
    imports wandb). A packed study's members are not Ray trials: its runs are the
    populations' (their summary rows), and when a population ends each member becomes a
    run of its own, id and name its trial id, its rows logged from its folder
    (``log_member_runs``, a task on the driver's node, as Ray's logging actors)."""

    EXCLUDED = (MEMBERS_KEY, STUDY_DIR_KEY, MEMBER_RESULTS_KEY)  # config and result keys

    def __init__(self, project: str, directory: str, mode: str) -> None:
        self.project, self.directory, self.mode = project, directory, mode
        self._ray: LoggerCallback | None = None
        self._members: list = []  # the member-logging tasks' ObjectRefs

    def setup(self, *args, **kwargs) -> None:
        from ray.air.integrations.wandb import WandbLoggerCallback

        os.makedirs(self.directory, exist_ok=True)
        self._ray = WandbLoggerCallback(
            project=self.project, excludes=list(self.EXCLUDED), **self._init_kwargs()
        )
        saved = os.environ.get("WANDB_MODE")
        os.environ["WANDB_MODE"] = self.mode  # Ray asks for an API key unless offline
        try:
            self._ray.setup(*args, **kwargs)
        finally:
            if saved is None:
                os.environ.pop("WANDB_MODE", None)
            else:
                os.environ["WANDB_MODE"] = saved

    def _init_kwargs(self) -> dict:
        """wandb.init's arguments for every run: silent, as the study's output is its own
        (each run would print its folder and a summary); ``reinit`` as Ray's True means
        it, in the words wandb no longer warns about."""
        return {
            "dir": self.directory,
            "mode": self.mode,
            "settings": {"silent": True},
            "reinit": "finish_previous",
        }

    def log_trial_start(self, trial) -> None:
        self._ray.log_trial_start(trial)

    def log_trial_restore(self, trial) -> None:
        self._ray.log_trial_restore(trial)

    def log_trial_save(self, trial) -> None:
        self._ray.log_trial_save(trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        self._ray.log_trial_result(iteration, trial, result)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        self._ray.log_trial_end(trial, failed)
        members = trial.config.get(MEMBERS_KEY)
        if members and trial.config.get(STUDY_DIR_KEY):
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), False)
            task = ray.remote(num_cpus=0, scheduling_strategy=here)(log_member_runs)
            population = storage.join_location(
                trial.config[STUDY_DIR_KEY], trial.storage.trial_dir_name
            )
            init = {"project": self.project, "group": trial.experiment_dir_name}
            init.update(self._init_kwargs())
            self._members.append(task.remote(init, trial.trial_id, population, len(members)))

    def on_experiment_end(self, trials, **info) -> None:
        self._ray.on_experiment_end(trials, **info)
        if self._members:
            import ray

            done, _ = ray.wait(self._members, num_returns=len(self._members), timeout=MEMBER_RUNS_S)
            for ref in done:
                try:
                    ray.get(ref)
                except Exception as e:  # the study's results stand; say what W&B lacks
                    logging.getLogger(__name__).warning("W&B member runs: %s", e)
            self._members = []


MEMBER_RUNS_S = 600.0  # at most this long, at the end, for the members' W&B runs


def log_member_runs(init: dict, population_id: str, location: str, n: int) -> None:
    """The ``n`` members of the population at ``location`` (its folder in the study), each
    a W&B run (``init``: wandb.init's project, group, dir ...): id and name its trial
    id, its params.json as config, each row's numbers logged at its row number (Ray logs
    a trial's rows at their training_iteration)."""
    import json

    import wandb

    for j in range(n):
        folder = storage.join_location(location, member_dirname(j))
        if not storage.exists(storage.join_location(folder, RESULT_FILE)):
            continue  # it never reported
        text = storage.read_text(storage.join_location(folder, RESULT_FILE))
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        config = json.loads(storage.read_text(storage.join_location(folder, PARAMS_FILE)))
        name = member_id(population_id, j)
        run = wandb.init(**init, id=name, name=name, job_type="member", config=config)
        for i, row in enumerate(rows, 1):
            numbers = {
                k: v for k, v in row.items() if isinstance(v, (int, float)) and k != DIVERGED_KEY
            }
            run.log(numbers, step=i)
        run.finish()


def _session(spec: Spec, callbacks: Sequence[tune.Callback], progress: bool, echo: Echo) -> None:
    # a failure's reason is on the progress line and in the summary: no traceback dumps
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # Tune's own output engine prints a configuration table, the results path and a
    # TensorBoard hint into Ray's session folder whatever `verbose` says; the legacy
    # reporter at verbose=0 prints nothing, and Progress says what is going on
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # checkpoints of short trials force many state snapshots; Ray warns at every one
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    shown = [Progress(echo, [*spec.space, "seed"], fits=fits_a_live_node)] if progress else []
    SessionCallbacks.use([NoRetryAfterDivergence(), *shown, *callbacks])


BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # the autoscaler's config on a `ray up` head
WAIT_SAY_S = 30.0  # seconds between wait lines


def with_cluster_resources(spec: Spec, here: bool, echo: Echo, poll_s: float = 2.0) -> Spec:
    """``spec``'s resources checked against what Ray can give a trial, ``gpu: auto``
    decided there: this machine when Ray was started ``here``, else the cluster's live
    nodes and node types (``capacity``). A cluster with no worker yet and no node types
    known decides ``gpu: auto`` when the first worker joins: this waits for it."""
    start, said = time.monotonic(), None
    while True:
        checked = resolve_resources(spec, capacity(here))
        if checked.resources.gpu != AUTO:
            return checked
        now = time.monotonic()
        if said is None or now - said >= WAIT_SAY_S:
            said = now
            echo(
                f"waiting for a worker to join, to decide resources.gpu: auto by its GPUs: "
                f"{now - start:.0f} s"
            )
        time.sleep(poll_s)


def capacity(here: bool) -> Machine | Cluster:
    """What a trial may ask for: this machine's Ray (``here``), or the joined cluster."""
    nodes = live_nodes()
    if here:
        return Machine(int(sum(n.cpus for n in nodes)), int(sum(n.gpus for n in nodes)))
    return Cluster(nodes, node_types())


def live_nodes() -> tuple[Node, ...]:
    """The CPUs and GPUs of each live node of the cluster, by Ray's count."""
    import ray

    return tuple(
        Node(n.get("NodeManagerAddress", "?"), r.get("CPU", 0), r.get("GPU", 0))
        for n in ray.nodes()
        if n.get("Alive")
        for r in [n.get("Resources") or {}]
    )


def fits_a_live_node(cpu: float, gpu: float) -> bool:
    return Cluster(live_nodes()).fits(cpu, gpu)


def node_types(bootstrap: str = BOOTSTRAP_CONFIG) -> tuple[Node, ...] | None:
    """The node types the cluster's autoscaler may start, where Ray tells them: the
    cluster config in the GCS (KubeRay's autoscaler writes it), else the autoscaler's
    config on this head (``ray up`` leaves it at ``bootstrap``); None when neither is
    there (a cluster whose workers join by hand)."""
    from ray._private.state import state

    try:
        config = state.get_cluster_config()
    except Exception:  # an older GCS without it: the config file below may still be there
        config = None
    if config is not None and config.node_group_configs:
        return tuple(
            Node(g.name, g.resources.get("CPU", 0), g.resources.get("GPU", 0))
            for g in config.node_group_configs
            if g.max_count != 0
        )
    path = os.path.expanduser(bootstrap)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return node_types_of_config(yaml.safe_load(f))


def node_types_of_config(config: object) -> tuple[Node, ...] | None:
    """The node types of a cluster launcher config (``available_node_types``) that its
    autoscaler may start: the head's, and the workers' of max_workers > 0 (the cluster's
    max_workers by default). None when a worker type's resources are not filled in."""
    if not isinstance(config, dict) or not isinstance(config.get("available_node_types"), dict):
        return None
    head, most = config.get("head_node_type"), config.get("max_workers", 2)
    out = []
    for name, kind in config["available_node_types"].items():
        resources = (kind or {}).get("resources") or {}
        if name != head:
            if not most or not (kind or {}).get("max_workers", most):
                continue  # never started
            if not resources:
                return None  # detected at launch: not known here
        elif not resources:
            continue  # the head is a live node: counted there
        out.append(Node(name, resources.get("CPU", 0), resources.get("GPU", 0)))
    return tuple(out)


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
        spec = fresh_study(with_cluster_resources(spec, _here(address, started), echo))
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
        for note in with_cluster_resources(spec, _here(address, started), echo).notes:
            echo(note)
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


def _here(address: str | None, started: bool) -> bool:
    """Ray was started on this machine by ``connect`` (not joined, not already running)."""
    return started and not (address or os.environ.get("RAY_ADDRESS"))


def _disconnect(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
