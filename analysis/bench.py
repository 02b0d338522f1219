"""``betastudy bench report``: what loading a study and building its report cost, on a
synthetic study (``analysis.synthetic``) of the size asked for."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from analysis.contract import REPORT_FILE


@dataclass(frozen=True)
class ReportBench:
    """``bench_report``'s figures: a study of ``trials`` trials x ``reports`` rows each."""

    trials: int
    reports: int  # report rows a finished trial has
    disk_bytes: int  # the study's files
    write_s: float  # writing the synthetic study
    load_s: float  # analysis.load.load_study
    total_s: float  # loading and building the report
    report_bytes: int  # the report's HTML file
    cpus: int | None  # os.cpu_count()

    @property
    def build_s(self) -> float:
        """Building the report from the loaded study."""
        return self.total_s - self.load_s


def bench_report(trials: int, steps: int, report_every: int, out: str | None) -> ReportBench:
    """Write a synthetic study (3 seeds a configuration, 2% failed, 1% running, 1% not
    started) in a temporary folder, load it and build its report (at ``out``, else in
    the temporary folder); time each."""
    from analysis.load import load_study
    from analysis.report import build_report
    from analysis.synthetic import write_synthetic_study

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = write_synthetic_study(
            tmp,
            trials,
            steps=steps,
            report_every=report_every,
            seeds=3,
            failed=max(1, trials // 50),
            running=max(1, trials // 100),
            pending=max(1, trials // 100),
        )
        made = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        t0 = time.perf_counter()
        study = load_study(root)
        loaded = time.perf_counter() - t0
        path = build_report(study, out or os.path.join(tmp, REPORT_FILE))
        total = time.perf_counter() - t0
        size = os.path.getsize(path)
    return ReportBench(
        trials=trials,
        reports=steps // report_every,
        disk_bytes=disk,
        write_s=made,
        load_s=loaded,
        total_s=total,
        report_bytes=size,
        cpus=os.cpu_count(),
    )


def format_report_bench(result: ReportBench) -> list[str]:
    """The lines ``betastudy bench report`` prints for ``result``."""
    r = result
    return [
        f"synthetic study: {r.trials} trials x {r.reports} reports, "
        f"{r.disk_bytes / 1e6:.0f} MB on disk (written in {r.write_s:.1f} s)",
        f"load {r.load_s:.2f} s + report {r.build_s:.2f} s = {r.total_s:.2f} s",
        f"{REPORT_FILE} {r.report_bytes / 1e6:.1f} MB, {r.cpus} CPUs",
    ]
