"""The report's capacity warnings (KL tracks C; C met with little information) on
hand-made rows, and which trials get their own figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import report
from analysis.load import Study, load_study
from analysis.synthetic import write_synthetic_study

C = np.arange(1.0, 11.0)  # 10 rows: C = 1..10 nats; the first row is not judged


def _study(trials: dict[str, dict]) -> Study:
    """One row per trial (objective, probe_points) and its rows (kl, C, info_x)."""
    curves, meta = [], []
    for tid, t in trials.items():
        cap = t.get("C", C)
        curves.append(
            pd.DataFrame(
                {
                    "trial_id": tid,
                    "step": np.arange(1, len(cap) + 1) * 100.0,
                    "C": cap,
                    "kl": cap + t.get("gap", 0.0),
                    "info_x": t.get("info", 0.9 * cap),
                }
            )
        )
        meta.append(
            {
                "trial_id": tid,
                "status": "TERMINATED",
                "n_reports": len(cap),
                "config/objective": t.get("objective", "capacity"),
                **(
                    {}
                    if t.get("probe") == "default"
                    else {"config/probe_points": t.get("probe", 1024)}
                ),
            }
        )
    empty = pd.DataFrame()
    return Study("s", "here", {}, pd.DataFrame(meta), pd.concat(curves), empty, empty)


def _gap(rows: list[int], nats: float = 2.0) -> np.ndarray:
    gap = np.full(len(C), 0.3)  # within a nat of C
    gap[rows] = nats
    return gap


TRIALS = {
    "track": {},  # KL 0.3 above C, I(x; z) at 90% of C
    "off": {"gap": _gap([4, 5, 6, 7, 8, 9])},  # 6 of 9 judged rows 2 nats off: off
    "brief": {"gap": _gap([4, 5])},  # 2 of 9: a moment, not a trial off
    "start": {"gap": _gap([0], 5.0)},  # off at the first row only: not judged
    "below": {"gap": -_gap([1, 2, 3])},  # 3 of 9 below C (|KL - C|): off
    "empty": {"info": 0.2 * C},  # at C, telling a fifth of it: empty
    "half": {"info": np.r_[0.2 * C[:3], 0.9 * C[3:]]},  # little on 2 of 9 judged rows
    # C above ln 64 = 4.16, what a 64-point probe's bound can read: 4.0 nats is not little
    "saturated": {"C": C + 10.0, "probe": 64, "info": np.full(len(C), 4.0)},
    "beta": {"objective": "beta", "gap": _gap(list(range(10)), 9.0)},  # not judged
}


def test_capacity_tracking_known_answers():
    table = report.capacity_tracking(_study(TRIALS))
    assert list(table.columns) == report.TRACKING_COLUMNS
    assert table["trial_id"].tolist() == [t for t in TRIALS if t != "beta"]
    assert table["rows"].tolist() == [9] * 8
    assert table["off"].tolist() == [0.0, 6 / 9, 2 / 9, 0.0, 3 / 9, 0.0, 0.0, 0.0]
    assert table["little"].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2 / 9, 0.0]
    assert table["untracked"].tolist() == [False, True, False, False, True, False, False, False]
    assert table["empty"].tolist() == [False, False, False, False, False, True, False, False]


def test_little_information_is_not_read_at_low_c_or_off_c():
    # C up to a nat: half of C is within the bound's noise; KL off C: not "met"
    low = {"C": np.linspace(0.1, 1.0, 10), "info": np.zeros(10)}
    off = {"gap": np.full(10, 3.0), "info": 0.1 * C}
    table = report.capacity_tracking(_study({"low": low, "off": off}))
    assert table["little"].tolist() == [0.0, 0.0]
    assert table["empty"].tolist() == [False, False]
    assert table["untracked"].tolist() == [False, True]


def test_a_trial_with_the_default_probe_is_read_against_its_bounds_ceiling():
    # probe_points left out (a study that keeps the default): info_x reads at most
    # ln INFO_X_POINTS = ln 512 = 6.24 nats, so a C-16 trial at 6.2 nats told what the
    # bound can read (the quick preset's c_max=16 trials were flagged before); 2 nats is little
    from analysis.contract import INFO_X_POINTS

    c16 = np.linspace(1.5, 16.0, len(C))
    ceiling = np.minimum(c16, np.log(INFO_X_POINTS)) - 0.05
    trials = {
        "at_ceiling": {"C": c16, "probe": "default", "info": ceiling},
        "little": {"C": c16, "probe": "default", "info": np.minimum(ceiling, 2.0)},
    }
    study = _study(trials)
    assert "config/probe_points" not in study.trials
    table = report.capacity_tracking(study)
    assert table["empty"].tolist() == [False, True]
    assert table["little"].iloc[0] == 0.0


def test_the_warnings_name_the_trials():
    text = report._tracking_warning(report.capacity_tracking(_study(TRIALS)))
    assert text.count("<div class=warn><b>Warning.</b>") == 2
    assert "KL did not track C in 2 of 8 capacity trials (off, below): " in text
    assert "gamma too small or lr too high for the budget" in text
    assert "(Burgess et al. advise the KL to track C)" in text
    assert "1 of 8 capacity trials met the capacity with little information (empty)" in text
    assert "KL = C from constant offsets or sigma ≠ 1" in text
    assert report._tracking_warning(report.capacity_tracking(_study({"t": {}}))) == ""


def test_synthetic_trials_overshoot_c(tmp_path):
    """The synthetic rows spend 0.2 nats per latent on offsets on top of information that
    grows twice as fast as C: KL runs nats above C, in every trial with rows."""
    root = write_synthetic_study(tmp_path, 4, steps=1000, report_every=100, eval_every=500)
    table = report.capacity_tracking(load_study(root))
    assert table["status"].tolist() == ["TERMINATED", "ERROR", "RUNNING"]
    assert table["untracked"].all() and not table["empty"].any()


def test_detail_trials_put_finished_trials_first():
    trials = pd.DataFrame(
        {
            "trial_id": ["err", "ok1", "run", "ok2", "ok3", "pend"],
            "status": ["ERROR", "TERMINATED", "RUNNING", "TERMINATED", "TERMINATED", "PENDING"],
            "n_reports": [5, 10, 7, 10, 10, 0],
            "mig": [0.9, 0.5, 0.95, 0.7, np.nan, np.nan],
        }
    )
    empty = pd.DataFrame()
    study = Study("s", "here", {}, trials, empty, empty, empty)
    assert report._detail_trials(study, None, "mig", 10) == ["ok2", "ok1", "ok3", "run", "err"]
    assert report._detail_trials(study, None, "mig", 2) == ["ok2", "ok1"]

    class Front:  # the front's configurations: their best seed by the metric leads
        front = pd.DataFrame({"trial_ids": ["ok3 ok1"]})

    assert report._detail_trials(study, Front(), "mig", 3) == ["ok1", "ok2", "ok3"]
