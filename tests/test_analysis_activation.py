"""Activation figures and the across-trial summary, on hand-made information curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.activation import (
    activation_data,
    activation_summary_data,
    configurations,
    latent_label,
    order_summary,
    pair_table,
    plot_activation,
    plot_activation_summary,
    trial_title,
)
from analysis.contract import FACTOR_NAMES, FACTOR_SIZES
from analysis.load import Study

C = np.arange(11.0)  # C = 0, 1, ..., 10 nats at steps 0, 100, ..., 1000
H = {f: math.log(n) for f, n in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)}


def _curves(trial_id: str, latents: list[tuple[float, str]], factors: dict[str, float]):
    """Latent i tells (C - start)+ nats, all of it about its factor; KL is one nat more
    (an offset). The code tells about factor f a share rising from C = factors[f]."""
    frame = pd.DataFrame({"trial_id": trial_id, "step": C * 100, "C": C, "recon": 100 - C})
    for i, (start, factor) in enumerate(latents):
        info = np.maximum(C - start, 0.0)
        frame[f"info_z{i}"] = info
        frame[f"kl_z{i}"] = info + 1.0
        for f in FACTOR_NAMES:
            frame[f"info/z{i}/{f}"] = info if f == factor else 0.0
    for f in FACTOR_NAMES:
        start = factors.get(f, np.inf)
        frame[f"info/{f}"] = np.clip((C - start + 1) * 0.3, 0, 1) * H[f]
    return frame


def _study() -> Study:
    # t1: posX latent at C=2, scale latent at C=5, a dead latent (KL 1 nat, no information)
    t1 = _curves("t1", [(1.5, "posX"), (4.5, "scale"), (np.inf, "shape")], {"posX": 2, "scale": 5})
    # t2: scale before position: against the paper
    t2 = _curves("t2", [(5.5, "posX"), (1.5, "scale")], {"posX": 6, "scale": 2})
    # t3: only position opened
    t3 = _curves("t3", [(1.5, "posY")], {"posY": 2})
    # t4: failed halfway
    t4 = _curves("t4", [(1.5, "posX")], {"posX": 2}).iloc[:5]
    curves = pd.concat([t1, t2, t3, t4], ignore_index=True)
    trials = pd.DataFrame(
        {
            "trial_id": ["t1", "t2", "t3", "t4"],
            "status": ["TERMINATED", "TERMINATED", "TERMINATED", "ERROR"],
            "complete": [True, True, True, False],
            "config/gamma": [10.0, 10.0, 100.0, 100.0],
            "config/seed": [0, 1, 0, 1],
        }
    )
    return Study("hand", "", {}, trials, curves, pd.DataFrame(), pd.DataFrame())


def test_one_trial_latents_factors_and_order():
    data = activation_data(_study(), "t1")
    lat = data.latents
    assert lat["latent"].tolist() == [0, 1, 2]  # by switch-on; the dead latent last
    assert lat["factor"].tolist() == ["posX", "scale", None]
    assert lat["C_on"].tolist()[:2] == [2.0, 5.0] and np.isnan(lat["C_on"].iloc[2])
    assert lat["active"].tolist() == [True, True, False]
    assert [latent_label(r) for _, r in lat.iterrows()] == [
        "z0 · posX · on at C=2",
        "z1 · scale · on at C=5",
        "z2 · inactive",
    ]
    assert data.order == [["posX"], ["scale"]]
    assert data.x == "C"
    assert data.title == "trial t1 · gamma=10, seed=0"
    fig = plot_activation(data)
    # info and KL per latent, a switch-on dot per active latent; per factor a curve and
    # its threshold, the factors' switch-on diamonds; a point on each top C axis
    assert len(fig.data) == 3 * 2 + 2 + 5 * 2 + 1 + 3
    assert list(fig.layout.xaxis4.ticktext) == ["0", "2", "4", "6", "8", "10"]
    assert "posX > scale" in fig.layout.title.text
    assert "gamma=10" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "step"


def test_one_trial_drawn_against_c():
    data = activation_data(_study(), "t1")
    fig = plot_activation(data, against="C")
    info_z0 = fig.data[0]
    assert info_z0.x.tolist() == C.tolist()  # against C itself, not the step
    dot = fig.data[2]  # z0's switch-on dot, at its C_on
    assert list(dot.x) == [2.0] and "C=" in dot.hovertemplate
    diamonds = fig.data[-1]
    assert list(diamonds.x) == [5.0, 2.0] and list(diamonds.text) == ["scale", "posX"]
    assert len(fig.data) == 3 * 2 + 2 + 5 * 2 + 1  # no top C axes: the x axis is C
    assert fig.layout.xaxis.title.text == "C (nats)"
    constant = _study()
    constant.curves["C"] = 25.0
    with pytest.raises(ValueError, match="C does not move"):
        plot_activation(activation_data(constant, "t1"), against="C")


def test_summary_counts_finished_trials_and_lists_the_others():
    s = activation_summary_data(_study())
    assert s.counted == ["t1", "t2", "t3"]
    assert s.excluded[["trial_id", "status"]].values.tolist() == [["t4", "ERROR"]]
    assert s.orders[["trial_id", "configuration", "order", "at 10%"]].values.tolist() == [
        ["t1", "gamma=10", "posX > scale", "posX > scale"],
        ["t2", "gamma=10", "scale > posX", "scale > posX"],
        ["t3", "gamma=100", "posY", "posY"],
    ]
    assert list(s.orders.columns[3:]) == [
        "at 10%",
        "at 15%",
        "at 40%",
        "at 0.25 nats",
        "at 0.5 nats",
    ]
    pos = s.factors[(s.factors["factor"] == "posX") & s.factors["C_on"].notna()]
    assert pos[["trial_id", "C_on"]].values.tolist() == [["t1", 2.0], ["t2", 6.0]]
    fig = plot_activation_summary(s)
    assert "over 3 finished trials in 2 configurations" in fig.layout.title.text
    assert "gamma=10 · position before scale: 1 of 2 trials (0.01–0.99)" in fig.data[-1].y


def test_summary_pools_seeds_of_one_configuration_only():
    s = activation_summary_data(_study())
    assert configurations(_study().trials).to_dict() == {
        "t1": "gamma=10", "t2": "gamma=10", "t3": "gamma=100", "t4": "gamma=100"
    }  # fmt: skip
    assert s.configurations.values.tolist() == [["gamma=10", 2, "t1 t2"], ["gamma=100", 1, "t3"]]
    p = s.pairwise.table.set_index(["configuration", "a", "b"])
    ten = p.loc[("gamma=10", "position", "scale")]  # t1 position first, t2 scale first
    assert ten[["a_first", "b_first", "a_only", "n"]].tolist() == [1, 1, 0, 2]
    assert (
        ten["null"] == pytest.approx(2 / 3) and p.loc[("gamma=10", "scale", "shape"), "null"] == 0.5
    )
    hundred = p.loc[("gamma=100", "position", "scale")]  # t3: only position opened
    assert hundred[["a_first", "b_first", "a_only", "n"]].tolist() == [0, 0, 1, 0]
    v = s.verdicts.set_index(["configuration", "a", "b"])["text"]
    assert v[("gamma=100", "position", "scale")] == (
        "position before scale: not seen at any threshold (scale never opened in 1 trial at 25%)"
    )
    assert v[("gamma=10", "position", "scale")].startswith(
        "position before scale: no majority at any threshold: 10%: 1 of 2, 15%: 1 of 2"
    )
    assert set(s.thresholds["threshold"]) == {"10%", "15%", "25%", "40%", "0.25 nats", "0.5 nats"}
    fig = plot_activation_summary(s)
    null = fig.data[-3]  # the chance level drawn per row
    assert list(null.x)[:2] == [pytest.approx(2 / 3), pytest.approx(2 / 3)]
    assert null.x[3] == 0.5
    assert len(fig.data[-2].x) == 5  # gamma=10 position vs scale at the other 5 thresholds


def test_one_configuration_is_not_named_in_the_figure():
    study = _study()
    study.trials["config/gamma"] = 10.0
    s = activation_summary_data(study)
    assert s.configurations["configuration"].tolist() == ["all trials"]
    p = s.pairwise.table.set_index(["a", "b"]).loc[("position", "scale")]
    assert p[["a_first", "b_first", "a_only", "n"]].tolist() == [1, 1, 1, 2]
    assert "position before scale: 1 of 2 trials (0.01–0.99); only position opened in 1" in (
        plot_activation_summary(s).data[-1].y
    )


def test_stopped_early_trials_are_listed_not_counted():
    study = _study()
    study.trials.loc[1, "complete"] = False  # ASHA stopped t2: TERMINATED, not at its end
    s = activation_summary_data(study)
    assert s.counted == ["t1", "t3"]
    assert "stopped early" in s.excluded.set_index("trial_id").at["t2", "reason"]


def test_trials_that_learned_nothing_are_listed_not_counted():
    study = _study()
    study.trials["recon"] = [120.0, 130.0, 566.0, np.nan]
    s = activation_summary_data(study)
    assert s.counted == ["t1", "t2"]
    assert "learned nothing" in s.excluded.set_index("trial_id").at["t3", "reason"]


def test_study_without_information_columns_draws_nothing():
    study = _study()
    study.curves = study.curves[["trial_id", "step", "C", "recon", "kl_z0"]]
    assert activation_data(study, "t1") is None
    s = activation_summary_data(study)
    assert s.counted == [] and len(s.excluded) == 4


def test_constant_capacity_trials_are_drawn_against_the_step():
    study = _study()
    study.curves["C"] = 25.0  # the bottleneck experiment: C held constant
    data = activation_data(study, "t1")
    assert data.x == "step"
    assert trial_title(study, "t3") == "trial t3 · gamma=100, seed=0"


def test_a_trial_without_its_own_information_rows_is_not_counted():
    study = _study()
    cols = [c for c in study.curves.columns if c.startswith("info")]
    study.curves.loc[study.curves["trial_id"] == "t2", cols] = np.nan  # probe_points=0
    s = activation_summary_data(study)
    assert s.counted == ["t1", "t3"]
    assert "no information columns" in s.excluded.set_index("trial_id").at["t2", "reason"]


def test_the_summary_line_says_whether_the_order_holds_per_configuration():
    s = activation_summary_data(_study())
    assert order_summary(s) == (
        "Per configuration (seeds pooled, configurations not): gamma=10 (2 trials): "
        "position before scale: no majority at any threshold: 10%: 1 of 2, 15%: 1 of 2, "
        "25%: 1 of 2, 40%: 1 of 2, 0.25 nats: 1 of 2, 0.5 nats: 1 of 2 (trials where both "
        "opened); gamma=100 (1 trial): position before scale: not seen at any threshold "
        "(scale never opened in 1 trial at 25%)."
    )
    assert order_summary(s, listed=1) == (
        "Position before scale: per configuration (seeds pooled, configurations not), no "
        "majority at any threshold in 1 (gamma=10), not seen (never both opened) in 1 "
        "(gamma=100); the table below has the counts."
    )
    study = _study()
    study.trials["config/gamma"] = 10.0
    study.trials.loc[1, "status"] = "ERROR"  # t2, against the paper, not counted
    assert order_summary(activation_summary_data(study)) == (
        "Over 2 trials of one configuration: position before scale in every trial where both "
        "opened, at every threshold from "
        "10% to 40% and 0.25 to 0.5 nats; at 25%: 1 of 1 trial (0.03–1.00; chance 0.67, "
        "p = 0.67); only position opened in 1."
    )


def test_the_pair_table_keeps_censored_trials_and_the_verdict_beside_the_counts():
    table = pair_table(activation_summary_data(_study()))
    assert len(table) == 2 * 6  # two configurations, six pairs of groups each
    row = table.iloc[6]  # gamma=100: t3, only position opened
    assert row[["configuration", "first", "second", "first opened first"]].tolist() == [
        "gamma=100", "position", "scale", 0
    ]  # fmt: skip
    assert row["only first opened"] == 1 and row["95% interval (exact)"] == "n/a"
    assert row["chance"] == pytest.approx(2 / 3) and np.isnan(row["p (one-sided)"])
    assert row["across thresholds"].startswith("position before scale: not seen")


def test_an_image_trials_exact_evaluation_marks_the_factors_its_bound_misses():
    study = _study()
    # t1's last evaluation: the exact values. Scale's bound (its whole entropy) is close;
    # orientation's bound reads 0 where the exact value is 1.2 nats: unread
    evals = pd.DataFrame(
        {"trial_id": ["t1"], "step": [1000.0], "exact/scale": [H["scale"]],
         "exact/orientation": [1.2], "exact/posX": [H["posX"]]}
    )  # fmt: skip
    study = Study("hand", "", {}, study.trials, study.curves, evals, pd.DataFrame())
    data = activation_summary_data(study)
    check = data.bound_check.set_index("factor")
    assert check.at["orientation", "close"] == False  # noqa: E712 (numpy bool)
    assert check.at["scale", "close"] and check.at["posX", "close"]
    orders = data.orders.set_index("trial_id")["order"]
    assert orders["t1"].endswith("(unread: orientation)") and "unread" not in orders["t2"]
    table = pair_table(data)
    row = table[(table["first"] == "scale") & (table["second"] == "orientation")].iloc[0]
    assert row["unread (bound short of exact)"] == 1 and row["only first opened"] == 1  # t2


def test_one_image_trial_draws_its_exact_values_and_leaves_unread_factors_out_of_its_order():
    study = _study()
    evals = pd.DataFrame(
        {"trial_id": ["t1", "t1"], "step": [500.0, 1000.0], "C": [5.0, 10.0],
         "exact/scale": [0.4, H["scale"]], "exact/orientation": [0.3, 1.2]}
    )  # fmt: skip
    study = Study("hand", "", {}, study.trials, study.curves, evals, pd.DataFrame())
    data = activation_data(study, "t1")
    assert sorted(data.exact["factor"].unique()) == ["orientation", "scale"]
    assert data.exact.loc[data.exact["factor"] == "orientation", "exact"].tolist() == [0.3, 1.2]
    assert not data.factors.set_index("factor").at["orientation", "read"]
    fig = plot_activation(data)
    assert "I(orientation; z) exact" in {t.name for t in fig.data}
    assert fig.layout.title.text.endswith("(unread: orientation)")


def test_an_image_trial_checked_at_enough_evaluations_is_ordered_by_its_exact_values():
    from analysis.report import _bound_table, _estimator

    study = _study()  # t1's bound: posX at C 2, scale at C 5
    steps = [200.0, 400.0, 600.0, 800.0, 1000.0]
    evals = pd.DataFrame({"trial_id": "t1", "step": steps, "C": [s / 100 for s in steps]})
    for f in FACTOR_NAMES:
        evals[f"exact/{f}"] = 0.0
    evals["exact/scale"] = H["scale"]  # exact: scale told in full from C 2, posX from 6
    evals["exact/posX"] = [0.0, 0.0, H["posX"], H["posX"], H["posX"]]
    study = Study("hand", "", {}, study.trials, study.curves, evals, pd.DataFrame())
    data = activation_summary_data(study)
    assert data.exact_read == {"t1"}
    orders = data.orders.set_index("trial_id")["order"]
    assert orders["t1"] == "scale > posX" and orders["t2"] == "scale > posX"
    on = data.factors.set_index(["trial_id", "factor"])
    assert on.at[("t1", "scale"), "C_on"] == 2.0 and on.at[("t1", "posX"), "C_on"] == 6.0
    assert activation_data(study, "t1").order == [["scale"], ["posX"]]
    exported = study.frames()["factor_switch_on"].set_index(["trial_id", "factor"])
    assert exported.at[("t1", "scale"), "step_on"] == 200.0
    assert exported["source"].to_dict() == {
        **{(t, f): "bound" for t, f in exported.index},
        **{("t1", f): "exact checks" for f in FACTOR_NAMES if ("t1", f) in exported.index},
    }
    text = _estimator(study.trials, data.bound_check, data.exact_read)
    assert "1 image trial carries the exact value (every grid image encoded" in text
    assert "at 3 or more checked rows" in text and "threshold (t1)." in text
    assert "fewer rows" not in text and "unread" not in text  # no trial is read off a bound
    # t2 checked once, at its end: read off its bound, which the check supports or not
    end = evals.iloc[-1:].assign(trial_id="t2")
    both = pd.concat([evals, end], ignore_index=True)
    mixed = activation_summary_data(
        Study("hand", "", {}, study.trials, study.curves, both, pd.DataFrame())
    )
    text = _estimator(study.trials, mixed.bound_check, mixed.exact_read)
    assert "threshold (t1)." in text
    assert (
        "1 image trial carries the exact value at fewer rows, too few to date an opening (t2)"
        in text
    )
    table = _bound_table(data.bound_check, data.exact_read)
    assert "<td>exact</td>" in table and "unread" not in table.split("</h3>")[1].split("</p>")[1]
