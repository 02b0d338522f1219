"""build_report on edge cases: an empty study, one ``betastudy train`` trial, a broken figure."""

from __future__ import annotations

import json
import re
import shutil

from analysis import report as report_module
from analysis.report import build_report
from analysis.synthetic import write_synthetic_study


def _figures(text: str) -> list[str]:
    return re.findall(r'<div id="(fig-[^"]+)" class="plotly-graph-div"', text)


def test_empty_study_builds_with_notes(tmp_path):
    (tmp_path / "study.yaml").write_text("name: empty\n")
    text = build_report(tmp_path, tmp_path / "r.html").read_text()
    assert _figures(text) == []
    assert "No finished trial reported mig: no frontier yet." in text
    assert "No trials yet." in text and "could not draw" not in text


def test_single_trial_directory(tmp_path):
    root = write_synthetic_study(
        tmp_path, 1, steps=2000, report_every=100, eval_every=500, failed=0, running=0, pending=0
    )
    trial = next(root.glob("train_*"))
    one = tmp_path / "run"
    (one / "checkpoints" / "step_0002000").mkdir(parents=True)
    (one / "config.json").write_text((trial / "params.json").read_text())
    rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    (one / "metrics.jsonl").write_text(
        "\n".join(json.dumps({k: v for k, v in r.items() if k != "config"}) for r in rows)
    )
    shutil.copy(
        trial / "checkpoint_000000" / "traversals.npz", one / "checkpoints" / "step_0002000"
    )
    text = build_report(one, tmp_path / "one.html").read_text()
    assert _figures(text) == [
        "fig-frontier",
        "fig-activation-summary",
        "fig-activation-0",
        "fig-traversals-0",
        "fig-curves",
    ]
    assert "Traversals, trial run (final checkpoint)" in text
    assert "Every trial finished." in text
    # the rule as switch_on applies it, and the synthetic KL, nats above C, warned about
    assert "it switches on at the first row of its last active run" in text
    assert "switches on when it becomes active" not in text
    assert "KL did not track C in 1 of 1 capacity trial (run)" in text
    assert "learned nothing" not in text


def test_a_failing_figure_costs_one_section(tmp_path, monkeypatch):
    root = write_synthetic_study(tmp_path, 6, steps=1000, report_every=100, eval_every=500)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report_module.fr, "plot_frontier", broken)
    text = build_report(root, tmp_path / "r.html").read_text()
    assert "could not draw this section: RuntimeError: boom" in text
    assert "fig-frontier" not in _figures(text) and "fig-curves" in _figures(text)


def test_synthetic_trials_carry_the_trainers_config_defaults():
    """analysis cannot import trainables: its synthetic config is a copy, kept equal here."""
    from analysis.synthetic import _BASE_CONFIG
    from trainables.config import TrialConfig

    assert _BASE_CONFIG == TrialConfig().to_dict()


def _tables(text: str) -> dict[str, list[list[str]]]:
    """Each table's rows of cell texts, keyed by its class attribute."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found: dict[str, list[list[str]]] = {}
            self.rows: list[list[str]] | None = None
            self.cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.rows = self.found.setdefault(dict(attrs).get("class", ""), [])
            elif tag == "tr" and self.rows is not None:
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.rows is not None and self.cell is not None:
                self.rows[-1].append("".join(self.cell).strip())
                self.cell = None
            elif tag == "table":
                self.rows = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(text)
    return parser.found


def test_the_unfinished_trials_table_gives_each_reason(tmp_path):
    from analysis.load import load_study

    root = write_synthetic_study(tmp_path, 6, steps=1000, report_every=100, eval_every=500)
    trials = load_study(root).trials
    unfinished = trials[~trials["status"].isin(["TERMINATED"])]
    text = build_report(root, tmp_path / "r.html").read_text()
    head, *rows = _tables(text)["dataframe failures"]
    assert head == ["trial", "status", "last step", "configuration", "reason"]
    assert sorted(r[0] for r in rows) == sorted(unfinished["trial_id"])
    failed = unfinished[unfinished["status"] == "ERROR"].iloc[0]
    row = next(r for r in rows if r[0] == failed["trial_id"])
    assert row[1] == "ERROR" and row[4] == failed["error"] and failed["error"]
