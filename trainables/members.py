"""A population member's folder in a study, laid out as an unpacked trial's folder.

``<trial dir>/member_NNN/``: ``params.json`` (its trial config), ``result.json`` (one
contract row per line), ``checkpoint_<step>/`` (state.pt, config.json, traversals.npz in
the final one; the newest ``KEPT`` are kept) and ``error.txt`` when it failed. The study
directory may be local or behind a URI (pyarrow's file systems, as Ray's storage).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from analysis.contract import (
    ERROR_FILE,
    ERROR_KEY,
    PARAMS_FILE,
    RESULT_FILE,
    STATE_FILE,
    STOPPED_FILE,
    Row,
    member_dirname,
    traversal_snapshot,
)
from analysis.fs import filesystem, join_location, write_bytes
from trainables.config import TrialConfig
from trainables.data import DSprites
from trainables.trainer import Trainer

TIME_KEY = "time_total_s"  # Ray's name
KEPT = 2  # checkpoints kept per member: the newest (the final one holds the traversals)
_CHECKPOINT = re.compile(r"checkpoint_(\d+)$")


def write_snapshot(trial_dir: str, step: int, arrays: dict[str, Any]) -> None:
    """A trial's traversal images at one evaluation, beside its rows."""
    from trainables.evaluate import snapshot_npz

    write_bytes(join_location(trial_dir, traversal_snapshot(step)), snapshot_npz(arrays))


class MemberFolder:
    """Writes (and on a restart reads back) one member's rows, checkpoints and failure."""

    def __init__(self, location: str, cfg: TrialConfig) -> None:
        """``location``: the member's folder, a local path or a URI; created here, with
        its params.json."""
        self.location, self.cfg = location.rstrip("/"), cfg
        self.fs, self.path = filesystem(self.location)
        self.rows: list[Row] = []
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.started = time.monotonic()
        self.earlier_s = 0.0  # training time of earlier runs (a restart resumes it)
        self._writer: Any = None  # TensorBoard's, opened at the first row
        self._events: str | None = None  # its local folder in a cloud study (uploaded)
        self._event_files = 0  # files started there: one per upload
        self.fs.create_dir(self.path, recursive=True)
        self._write(PARAMS_FILE, json.dumps(cfg.to_dict(), indent=1) + "\n")

    @classmethod
    def at(cls, trial_dir: str, j: int, cfg: TrialConfig) -> MemberFolder:
        return cls(join_location(trial_dir, member_dirname(j)), cfg)

    # ---- writing -----------------------------------------------------------------------

    def add_row(self, row: Row) -> None:
        """Append a row, with its trial's training time so far (Ray's ``time_total_s``,
        which every row of an unpacked trial carries), to result.json and to TensorBoard
        event files (as Ray's logger writes an unpacked trial's). In a cloud study both
        reach the member's folder at each checkpoint (``_flush_rows``) and at ``close``:
        the event files are written in a local folder and uploaded (``_upload_events``)."""
        row = {**row, TIME_KEY: round(self.earlier_s + time.monotonic() - self.started, 3)}
        self.rows.append(row)
        if self.local:  # a line at a time, as a solo trial's result.json grows
            with open(self._p(RESULT_FILE), "a") as f:
                f.write(json.dumps(row) + "\n")
        self._tensorboard(row)

    def _tensorboard(self, row: Row) -> None:
        try:
            from tensorboardX import SummaryWriter  # installed with ray[tune]
        except ImportError:
            return
        if self._writer is None:
            if self.local:
                self._writer = SummaryWriter(self.path, flush_secs=30)
            else:  # named by pid and number: no file, of this run or a restart's, replaced
                self._events = self._events or tempfile.mkdtemp(prefix="betastudy-events-")
                self._event_files += 1
                suffix = f".{os.getpid()}.{self._event_files:04d}"
                self._writer = SummaryWriter(self._events, flush_secs=30, filename_suffix=suffix)
        step = int(row["step"])
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                self._writer.add_scalar(f"ray/tune/{key}", value, step)
        self._writer.flush()

    def checkpoint(self, member: Trainer) -> None:
        """The member's checkpoint at its step (with the rows so far); older ones pruned."""
        name = f"checkpoint_{member.step:06d}"
        if self.local:
            member.save_checkpoint(self._p(name))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                member.save_checkpoint(tmp)
                self.fs.create_dir(self._p(name), recursive=True)
                pafs.copy_files(tmp, self._p(name), destination_filesystem=self.fs)
            self._flush_rows()
        for old in self._checkpoints()[:-KEPT]:
            self.fs.delete_dir(self._p(old))

    def close(self) -> None:
        """Close the TensorBoard writer (its events all on disk); in a cloud study, upload
        its last file and remove the local folder."""
        if self._writer is not None and self.local:
            self._writer.close()
            self._writer = None
        self._upload_events()
        if self._events is not None:
            shutil.rmtree(self._events, ignore_errors=True)
            self._events = None

    def snapshot(self, step: int, arrays: dict[str, Any]) -> None:
        write_snapshot(self.location, step, arrays)

    def fail(self, row: Row) -> None:
        """The diverged row (it names the reason) and error.txt."""
        self.add_row(row)
        if not self.local:
            self._flush_rows()
        self._write(ERROR_FILE, f"{row.get(ERROR_KEY)}\n")

    def stop(self, reason: str) -> None:
        """Stopped early by successive halving: its rows so far, and stopped.txt."""
        if not self.local:
            self._flush_rows()
        self._write(STOPPED_FILE, f"{reason}\n")

    # ---- reading back on a restart -----------------------------------------------------

    def resume(self, data: DSprites) -> Trainer | None:
        """The member at its newest checkpoint (rows after it dropped: they are trained
        again), or None when it has none. A failed member comes back failed
        (``failed``)."""
        ckpts = self._checkpoints()
        if not ckpts:
            self._write(RESULT_FILE, "")
            return None
        newest = ckpts[-1]
        if self.local:
            member = Trainer.from_checkpoint(self._p(newest), data)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                pafs.copy_files(self._p(newest), tmp, source_filesystem=self.fs)
                member = Trainer.from_checkpoint(tmp, data)
        self.rows = [r for r in self._read_rows() if r.get("step", 0) <= member.step]
        self._flush_rows()
        if self.rows and isinstance(self.rows[-1].get(TIME_KEY), (int, float)):
            self.earlier_s = float(self.rows[-1][TIME_KEY])
        return member

    @property
    def failed(self) -> bool:
        return self.fs.get_file_info(self._p(ERROR_FILE)).type == pafs.FileType.File

    @property
    def stopped(self) -> bool:
        return self.fs.get_file_info(self._p(STOPPED_FILE)).type == pafs.FileType.File

    def read_rows(self) -> list[Row]:
        """The rows written so far (all of them, of every run)."""
        return self._read_rows()

    # ---- files -------------------------------------------------------------------------

    def _p(self, name: str) -> str:
        return f"{self.path}/{name}"

    def _write(self, name: str, text: str) -> None:
        with self.fs.open_output_stream(self._p(name)) as f:
            f.write(text.encode())

    def _flush_rows(self) -> None:
        self._write(RESULT_FILE, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._upload_events()

    def _upload_events(self) -> None:
        """A cloud study's events so far into the member's folder: the writer is closed
        (tensorboardX writes from a queue on a thread: only closing puts every event in
        the file), its file copied there and removed here; the next row starts a file."""
        if self._events is None or self._writer is None:
            return
        self._writer.close()
        self._writer = None
        for name in sorted(os.listdir(self._events)):
            path = os.path.join(self._events, name)
            with open(path, "rb") as f:
                data = f.read()
            with self.fs.open_output_stream(self._p(name)) as out:
                out.write(data)
            os.remove(path)

    def _read_rows(self) -> list[dict[str, Any]]:
        try:
            with self.fs.open_input_stream(self._p(RESULT_FILE)) as f:
                text = f.readall().decode()
        except (FileNotFoundError, OSError):
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _checkpoints(self) -> list[str]:
        """Checkpoint folders holding a state, oldest first."""
        found = []
        for info in self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True)):
            m = _CHECKPOINT.match(Path(info.path).name)
            if info.type == pafs.FileType.Directory and m:
                state = f"{info.path}/{STATE_FILE}"
                if self.fs.get_file_info(state).type == pafs.FileType.File:
                    found.append((int(m.group(1)), Path(info.path).name))
        return [name for _, name in sorted(found)]
