"""The switch-on rule on hand-made report rows, and the pairwise-order summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import switch_on as so
from analysis.contract import FACTOR_NAMES

STEPS = np.arange(1, 11) * 100.0  # rows at steps 100..1000
C = STEPS / 100  # C = 1..10


def _rows(trial_id: str, info: dict[int, list[float]], labels: dict[int, list[str]] | None = None,
          factors: dict[str, list[float]] | None = None) -> pd.DataFrame:  # fmt: skip
    """Rows of one trial: info_z{i} per latent; latent i tells info_z{i} about the factor
    labels[i][row] (else nothing); the code tells factors[f] about f (else 0)."""
    frame = pd.DataFrame({"trial_id": trial_id, "step": STEPS, "C": C})
    for i, values in info.items():
        frame[f"info_z{i}"] = values
        frame[f"kl_z{i}"] = np.asarray(values) + 1.0  # KL always above: offsets
        names = (labels or {}).get(i, ["posX"] * len(STEPS))
        for f in FACTOR_NAMES:
            frame[f"info/z{i}/{f}"] = [
                v * 0.8 if name == f else 0.0 for v, name in zip(values, names, strict=True)
            ]
    for f in FACTOR_NAMES:
        frame[f"info/{f}"] = (factors or {}).get(f, [0.0] * len(STEPS))
    return frame


RAMP = [0.0, 0.0, 0.05, 0.2, 0.6, 1.0, 1.5, 2.0, 2.5, 3.0]  # active from row 4 (step 400)


def test_latent_switches_on_when_it_tells_enough_not_when_its_kl_grows():
    rows = _rows("t", {0: RAMP, 1: [0.0] * 10})
    table = so.latent_switch_on(rows).set_index("latent")
    assert table.at[0, "active"] and table.at[0, "step_on"] == 400 and table.at[0, "C_on"] == 4
    assert table.at[0, "factor"] == "posX"
    assert not table.at[1, "active"]  # KL of 1 nat throughout: no information, never on
    assert table.at[1, "factor"] is None and np.isnan(table.at[1, "step_on"])
    assert table.at[1, "final_kl"] == 1.0


def test_factor_is_read_when_the_latent_switches_on_not_at_the_end():
    labels = {0: ["scale"] * 6 + ["posX"] * 4}  # codes scale when it opens, posX later
    table = so.latent_switch_on(_rows("t", {0: RAMP}, labels))
    assert table["factor"].tolist() == ["scale"]
    assert table["label_step"].tolist() == [500.0]  # on at 400 (0.16 nats of scale), read at 500


def test_final_factor_is_what_the_trained_latent_codes():
    labels = {0: ["scale"] * 6 + ["posY"] * 4}  # opens on scale, codes posY from row 7
    row = so.latent_switch_on(_rows("t", {0: RAMP}, labels)).iloc[0]
    assert row["factor"] == "scale" and row["final_factor"] == "posY"
    assert row["final_factor_info"] == pytest.approx(0.8 * 3.0)
    assert so.code_label(row) == "posY (opened on scale)"
    same = so.latent_switch_on(_rows("t", {0: RAMP}, {0: ["posX"] * 10})).iloc[0]
    assert same["final_factor"] == "posX" and so.code_label(same) == "posX"


def test_a_latent_that_ends_telling_little_about_each_factor_codes_no_single_one():
    rows = _rows("t", {0: RAMP}, {0: ["scale"] * 10})
    rows.loc[9, [f"info/z0/{f}" for f in FACTOR_NAMES]] = [0.0, 0.1, 0.1, 0.05, 0.0]
    row = so.latent_switch_on(rows).iloc[0]
    assert row["active"] and row["factor"] == "scale" and row["final_factor"] is None
    assert np.isnan(row["final_factor_info"])
    assert so.code_label(row) == "no single factor (opened on scale)"
    dead = so.latent_switch_on(_rows("t", {0: [0.0] * 10})).iloc[0]
    assert dead["final_factor"] is None and so.code_label(dead) == "inactive"


def test_the_final_factor_holds_through_noise_at_its_threshold():
    rows = _rows("t", {0: RAMP}, {0: ["posY"] * 10})
    rows.loc[9, "info/z0/posY"] = 0.2  # below LABEL_NATS, above half of it: still posY
    row = so.latent_switch_on(rows).iloc[0]
    assert row["final_factor"] == "posY" and row["final_factor_info"] == pytest.approx(0.2)
    rows.loc[8, "info/z0/posY"] = 0.1  # fell below half at row 9: not told enough since
    assert so.latent_switch_on(rows).iloc[0]["final_factor"] is None


def test_label_waits_until_one_factor_is_told_enough():
    weak = [0.0, 0.0, 0.0, 0.11, 0.35, 0.5, 1.0, 1.0, 1.0, 1.0]  # 0.8 x 0.35 > LABEL_NATS
    labels = {
        0: ["shape", "shape", "shape", "shape", "posY", "posY", "posY", "posY", "posY", "posY"]
    }
    rows = _rows("t", {0: weak}, labels)
    rows.loc[3, "info/z0/shape"] = 0.08  # row 4: active, a little about shape: not enough
    table = so.latent_switch_on(rows)
    assert table["step_on"].tolist() == [400.0] and table["label_step"].tolist() == [500.0]
    assert table["factor"].tolist() == ["posY"]


def test_a_latent_inactive_at_the_end_has_no_factor():
    dies = [0.0, 0.5, 1.0, 1.0, 0.8, 0.3, 0.04, 0.02, 0.01, 0.0]  # opens at row 2, dies
    table = so.latent_switch_on(_rows("t", {0: dies}, {0: ["scale"] * 10})).iloc[0]
    assert not table["active"] and table["factor"] is None
    assert np.isnan(table["step_on"]) and table["first_step_on"] == 200.0


def test_hysteresis_keeps_a_latent_on_through_noise_at_the_threshold():
    flicker = [0.0, 0.0, 0.12, 0.09, 0.11, 0.08, 0.12, 0.09, 0.1, 0.07]
    table = so.latent_switch_on(_rows("t", {0: flicker})).iloc[0]
    assert table["active"] and table["step_on"] == 300.0
    reopen = [0.0, 0.3, 0.3, 0.01, 0.0, 0.0, 0.2, 0.4, 0.6, 0.8]
    table = so.latent_switch_on(_rows("t", {0: reopen})).iloc[0]
    assert table["step_on"] == 700.0 and table["first_step_on"] == 200.0  # the last run


def test_trials_do_not_leak_into_each_other():
    a = _rows("a", {0: [0.0] * 9 + [3.0]})  # switches on at its last row
    b = _rows("b", {0: [3.0] * 10})  # on from its first row
    table = so.latent_switch_on(pd.concat([a, b], ignore_index=True)).set_index("trial_id")
    assert table.at["a", "step_on"] == 1000.0 and table.at["b", "step_on"] == 100.0


def test_thresholds_are_parameters():
    rows = _rows("t", {0: RAMP})
    assert so.latent_switch_on(rows, active_nats=1.0)["step_on"].tolist() == [600.0]
    f = _rows("t", {0: RAMP}, factors={"posX": RAMP})
    assert so.factor_switch_on(f, share=0.5)["step_on"].tolist()[3] == 800.0  # 2.0 >= 1.73


def test_factor_order_from_the_share_of_entropy():
    h = {f: math.log(n) for f, n in zip(FACTOR_NAMES, (3, 6, 40, 32, 32), strict=True)}
    cross = lambda row: [0.0] * row + [1.0] * (10 - row)  # noqa: E731  reaches share*H at `row`
    factors = {
        "posX": [v * h["posX"] for v in cross(2)],
        "posY": [v * h["posY"] for v in cross(2)],
        "scale": [v * h["scale"] for v in cross(5)],
        "shape": [0.2 * h["shape"]] * 10,  # 20% of its entropy: below the 25% share
    }
    table = so.factor_switch_on(_rows("t", {0: RAMP}, factors=factors)).set_index("factor")
    assert table.at["posX", "step_on"] == 300.0 and table.at["scale", "C_on"] == 6.0
    assert np.isnan(table.at["shape", "step_on"]) and np.isnan(table.at["orientation", "C_on"])
    order = so.trial_order(table.reset_index())
    assert order == [["posX", "posY"], ["scale"]]
    assert so.format_order(order) == "posX = posY > scale"


def _groups(table: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"trial_id": t, "group": g, "step_on": per.get(g, np.nan), "C_on": per.get(g, np.nan)}
        for t, per in table.items()
        for g in so.GROUPS
    ]
    return pd.DataFrame(rows)


def test_pairwise_order_keeps_censored_trials_apart():
    groups = _groups(
        {
            "t1": {"position": 1, "scale": 3, "shape": 5},
            "t2": {"position": 2, "scale": 1},  # against the paper
            "t3": {"position": 1},  # only position opened: censored, not an ordering
            "t4": {"position": 2, "scale": 2},  # the same row: a tie
            "t5": {},  # nothing opened
        }
    )
    p = so.pairwise_order(groups).table.set_index(["a", "b"])
    ps = p.loc[("position", "scale")]
    counts = ["a_first", "b_first", "ties", "a_only", "b_only", "neither", "n"]
    assert ps[counts].tolist() == [1, 1, 1, 1, 0, 1, 2]
    assert ps["fraction"] == 0.5 and ps["paper"] and ps["null"] == pytest.approx(2 / 3)
    assert (ps["low"], ps["high"]) == so.clopper_pearson(1, 2)
    assert ps["p_value"] == pytest.approx(1 - (1 / 3) ** 2)  # P(X >= 1), X ~ Bin(2, 2/3)
    po = p.loc[("position", "orientation")]  # orientation never opened: nothing to order
    assert po[counts].tolist() == [0, 0, 0, 4, 0, 1, 0]
    assert np.isnan(po["fraction"]) and np.isnan(po["low"]) and np.isnan(po["p_value"])
    os_ = p.loc[("orientation", "shape")]
    assert os_["paper"] is None and os_[counts].tolist() == [0, 0, 0, 0, 1, 4, 0]
    assert os_["null"] == 0.5
    assert so.unseen_reason(po, "position", "orientation") == "orientation never opened in 5 trials"


def test_the_null_is_the_chance_that_the_group_opens_first():
    assert so.pair_null("position", "scale") == pytest.approx(2 / 3)  # min of two axes
    assert so.pair_null("scale", "orientation") == 0.5
    assert so.pair_null("orientation", "shape") == 0.5


def test_clopper_pearson_and_binomial_tail_known_values():
    lo, hi = so.clopper_pearson(4, 4)
    assert lo == pytest.approx(0.3976, abs=1e-4) and hi == 1.0
    lo, hi = so.clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.3085, abs=1e-4)
    lo, hi = so.clopper_pearson(3, 10)  # scipy.stats.beta.ppf(0.025, 3, 8), (0.975, 4, 7)
    assert lo == pytest.approx(0.066740, abs=1e-6) and hi == pytest.approx(0.652453, abs=1e-6)
    lo, hi = so.clopper_pearson(5, 10, 0.9)
    assert lo == pytest.approx(1 - hi) and lo == pytest.approx(
        0.222441, abs=1e-6
    )  # beta.ppf(0.05, 5, 6)
    assert all(math.isnan(v) for v in so.clopper_pearson(0, 0))
    assert so.binomial_tail(4, 4, 2 / 3) == pytest.approx(16 / 81)
    assert so.binomial_tail(3, 10, 0.5) == pytest.approx(0.9453125)
    assert so.binomial_tail(0, 5, 0.3) == 1.0 and so.binomial_tail(6, 5, 0.3) == 0.0


def test_a_factor_switches_on_with_hysteresis_at_its_last_run():
    h = math.log(32)
    dips = [0.0, 0.3, 0.2, 0.3, 0.3, 0.01, 0.0, 0.3, 0.3, 0.3]  # x H: 20% keeps 25% on
    table = so.factor_switch_on(_rows("t", {0: RAMP}, factors={"posX": [v * h for v in dips]}))
    posx = table.set_index("factor").loc["posX"]
    assert posx["step_on"] == 800.0 and posx["threshold"] == pytest.approx(0.25 * h)
    steady = [0.0, 0.3, 0.2, 0.3, 0.3, 0.3, 0.2, 0.3, 0.3, 0.3]
    table = so.factor_switch_on(_rows("t", {0: RAMP}, factors={"posX": [v * h for v in steady]}))
    assert table.set_index("factor").at["posX", "step_on"] == 200.0
    falls = [0.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.1]  # off at the end: not on
    table = so.factor_switch_on(_rows("t", {0: RAMP}, factors={"posX": [v * h for v in falls]}))
    assert np.isnan(table.set_index("factor").at["posX", "step_on"])
    nats = so.factor_switch_on(_rows("t", {0: RAMP}, factors={"posX": RAMP}), nats=0.5)
    assert nats.set_index("factor").at["posX", "step_on"] == 500.0  # 0.6 >= 0.5
    assert so.threshold_switch_on(_rows("t", {0: RAMP}), so.Threshold("nats", 0.5)).equals(
        so.factor_switch_on(_rows("t", {0: RAMP}), nats=0.5)
    )


def _opening(trial_id: str, curves: dict[str, list[float]]) -> pd.DataFrame:
    """Rows where the code tells curves[f] (shares of H) about f."""
    h = {f: math.log(n) for f, n in zip(FACTOR_NAMES, (3, 6, 40, 32, 32), strict=True)}
    return _rows(trial_id, {0: RAMP}, factors={f: [v * h[f] for v in c] for f, c in curves.items()})


def test_an_order_that_holds_at_every_threshold():
    step = lambda row: [0.0] * row + [1.0] * (10 - row)  # noqa: E731  full entropy from `row`
    rows = pd.concat(
        [
            _opening("s0", {"posX": step(2), "scale": step(6)}),
            _opening("s1", {"posY": step(1), "scale": step(4)}),
            _opening("s2", {"posX": step(3)}),  # scale never opens: censored
        ],
        ignore_index=True,
    )
    across = so.order_across_thresholds(rows, {"s0": "c_max=6", "s1": "c_max=6", "s2": "c_max=6"})
    assert set(across["configuration"]) == {"c_max=6"}
    assert across["threshold"].drop_duplicates().tolist() == [t.label for t in so.THRESHOLDS]
    ps = across[(across["a"] == "position") & (across["b"] == "scale")]
    assert ps[["a_first", "b_first", "a_only", "n"]].values.tolist() == [[2, 0, 1, 2]] * 6
    v = so.order_verdicts(across).set_index(["a", "b"])
    assert v.at[("position", "scale"), "verdict"] == "holds"
    assert v.at[("position", "scale"), "first"] == "position"
    assert v.at[("position", "scale"), "text"] == (
        "position before scale in every trial where both opened, at every threshold from "
        "10% to 40% and 0.25 to 0.5 nats; "
        "at 25%: 2 of 2 trials (0.16–1.00; chance 0.67, p = 0.44); only position opened in 1"
    )
    assert v.at[("scale", "orientation"), "text"] == (
        "scale before orientation: not seen at any threshold "
        "(orientation never opened in 3 trials at 25%)"
    )


def test_an_order_that_depends_on_the_threshold():
    # scale jumps to 20% of its entropy at once; position creeps to 30%, then to all of it
    scale = [0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 1.0, 1.0]
    posx = [0.0, 0.0, 0.0, 0.0, 0.3, 0.3, 1.0, 1.0, 1.0, 1.0]
    rows = _opening("s0", {"posX": posx, "scale": scale})
    across = so.order_across_thresholds(rows)
    ps = across[(across["a"] == "position") & (across["b"] == "scale")].set_index("threshold")
    assert ps["a_first"].to_dict() == {
        "10%": 0, "15%": 0, "25%": 1, "40%": 1, "0.25 nats": 0, "0.5 nats": 1
    }  # fmt: skip
    v = so.order_verdicts(across).set_index(["a", "b"]).loc[("position", "scale")]
    assert v["verdict"] == "depends" and v["first"] is None
    assert v["text"] == (
        "position before scale depends on the threshold: 10%: 0 of 1, 15%: 0 of 1, "
        "25%: 1 of 1, 40%: 1 of 1, 0.25 nats: 0 of 1, 0.5 nats: 1 of 1 "
        "(trials where both opened)"
    )
    one = so.order_verdicts(across[across["threshold"] == "25%"]).set_index(["a", "b"])
    assert one.at[("position", "scale"), "text"].startswith(
        "position before scale in every trial where both opened, at the 25% threshold; "
        "at 25%: 1 of 1 trial"
    )


def test_only_replicates_are_pooled():
    step = lambda row: [0.0] * row + [1.0] * (10 - row)  # noqa: E731
    rows = pd.concat(
        [
            _opening("a0", {"posX": step(2), "scale": step(6)}),
            _opening("a1", {"posX": step(2), "scale": step(5)}),
            _opening("b0", {"posX": step(6), "scale": step(2)}),  # another configuration
        ],
        ignore_index=True,
    )
    config = {"a0": "c_max=6", "a1": "c_max=6", "b0": "c_max=16"}
    across = so.order_across_thresholds(rows, config, (so.DEFAULT_THRESHOLD,))
    ps = across[(across["a"] == "position") & (across["b"] == "scale")]
    assert ps[["configuration", "a_first", "b_first", "n"]].values.tolist() == [
        ["c_max=6", 2, 0, 2],
        ["c_max=16", 0, 1, 1],
    ]
    v = so.order_verdicts(across).set_index(["configuration", "a", "b"])
    assert v.at[("c_max=16", "position", "scale"), "first"] == "scale"
    assert v.at[("c_max=16", "position", "scale"), "text"] == (
        "scale before position in every trial where both opened, at the 25% threshold; "
        "at 25%: 1 of 1 trial "
        "(0.03–1.00; chance 0.33, p = 0.33)"
    )


def test_thresholds_with_another_share():
    labels = [t.label for t in so.thresholds_with(0.3)]
    assert labels == ["10%", "15%", "25%", "30%", "40%", "0.25 nats", "0.5 nats"]
    assert [t.label for t in so.thresholds_with(0.25)] == [t.label for t in so.THRESHOLDS]


def test_learned_nothing():
    assert so.learned_nothing(566.0)
    assert so.learned_nothing(560.0)  # within 10 nats of the mean image's 565.3
    assert not so.learned_nothing(200.0)
    assert not so.learned_nothing(560.0, margin=2.0)
    assert not so.learned_nothing(float("nan"))


def test_progress_lines_count_active_latents():
    from study.progress import _row

    row = {"step": 300, "recon": 210.04, "kl": 6.0, "C": 6.0, "info_z0": 2.1, "info_z1": 0.02}
    assert _row(row) == "step 300 recon 210.0 kl 6.00 C 6.00 active 1/2"


def test_labels_and_latents_stay_within_their_trial():
    a = _rows("a", {0: [0.2] * 10})  # active, 0.16 nats about posX: never labelled
    b = _rows("b", {0: [3.0] * 10}, {0: ["shape"] * 10})
    b["info_z1"] = 1.0  # b has a second latent; a does not
    for f in FACTOR_NAMES:
        b[f"info/z1/{f}"] = 0.0
    table = so.latent_switch_on(pd.concat([a, b], ignore_index=True))
    assert table[["trial_id", "latent"]].values.tolist() == [["a", 0], ["b", 0], ["b", 1]]
    by = table.set_index(["trial_id", "latent"])
    assert by.at[("a", 0), "factor"] is None and np.isnan(by.at[("a", 0), "label_step"])
    assert by.at[("b", 0), "factor"] == "shape"


def test_an_order_seen_only_at_some_thresholds_holds_where_seen():
    # position opens fully at row 2; scale climbs to 30% of its entropy and stays: it
    # never reaches 40%, so no order is claimed there, and none is contradicted
    scale = [0.0] * 5 + [0.3] * 5
    posx = [0.0, 0.0] + [1.0] * 8
    across = so.order_across_thresholds(_opening("s0", {"posX": posx, "scale": scale}))
    v = so.order_verdicts(across).set_index(["a", "b"]).loc[("position", "scale")]
    assert v["verdict"] == "holds where seen" and v["first"] == "position"
    assert v["text"] == (
        "position before scale in every trial where both opened, at every threshold where "
        "both did (10%, 15%, 25%, 0.25 nats and 0.5 nats; not seen at 40%); "
        "at 25%: 1 of 1 trial (0.03–1.00; chance 0.67, p = 0.67)"
    )


def _checked(bound: float, exact: float, factor: str = "orientation") -> pd.DataFrame:
    curves = pd.DataFrame({"trial_id": ["t"], "step": [1000.0], f"info/{factor}": [bound]})
    evals = pd.DataFrame({"trial_id": ["t"], "step": [1000.0], f"exact/{factor}": [exact]})
    return so.bound_check(curves, evals)


@pytest.mark.parametrize(
    ("bound", "exact", "close"),
    [
        (0.00, 0.80, False),  # orientation on the factor encoder, measured: a miss
        (0.18, 0.46, False),  # shape there: 39%, short by 0.28 nats
        (0.69, 1.17, True),  # scale there: 59% of the exact value
        (0.00, 0.08, True),  # short by less than 0.1 nats: both say "not coded"
    ],
)
def test_the_bound_is_read_where_it_is_close_to_the_exact_value(bound, exact, close):
    check = _checked(bound, exact)
    assert check[["factor", "bound", "exact", "close"]].values.tolist() == [
        ["orientation", bound, exact, close]
    ]
    assert so.unread_factors(check) == (frozenset() if close else {("t", "orientation")})


def test_the_check_pairs_rows_and_evaluations_by_step_and_is_empty_without_exact_values():
    curves = pd.DataFrame({"trial_id": "t", "step": STEPS, "info/scale": np.linspace(0, 1, 10)})
    evals = pd.DataFrame(
        {"trial_id": ["t", "t"], "step": [500.0, 1000.0], "exact/scale": [0.5, 2.5]}
    )
    check = so.bound_check(curves, evals)
    assert check["step"].tolist() == [500.0, 1000.0]
    assert check["close"].tolist() == [True, False]  # 0.44 of 0.5; 1.0 of 2.5
    assert so.bound_check(curves, evals.drop(columns="exact/scale")).empty


def test_an_unread_factor_orders_nothing_and_is_not_a_never_opened_one():
    # t1: position at row 3, scale at row 6, orientation's bound never reaches 25% (it is
    # unread: the exact value was far above); t2 the same, orientation read and never on
    pos = [0.0, 0.0, 1.0, 1.5, 2, 2, 2, 2, 2, 2]
    scale = [0.0] * 5 + [0.6, 0.9, 1, 1, 1]
    orient = [0.0] * 10
    rows = pd.concat(
        [
            _rows(t, {0: RAMP}, factors={"posX": pos, "scale": scale, "orientation": orient})
            for t in ("t1", "t2")
        ],
        ignore_index=True,
    )
    unread = frozenset({("t1", "orientation")})
    factors = so.factor_switch_on(rows, unread=unread)
    assert (
        factors.set_index(["trial_id", "factor"])["read"].to_dict()[("t1", "orientation")] is False
    )
    assert so.unread_note(factors[factors["trial_id"] == "t1"]) == " (unread: orientation)"
    groups = so.group_switch_on(factors)
    assert not groups.set_index(["trial_id", "group"]).at[("t1", "orientation"), "read"]
    table = so.pairwise_order(groups).table.set_index(["a", "b"])
    pair = table.loc[("position", "orientation")]
    assert (pair["a_only"], pair["unread"], pair["n"]) == (1, 1, 0)  # t2 censored, t1 unread
    assert table.loc[("position", "scale"), "a_first"] == 2  # unread orientation: no matter
    reason = so.unseen_reason(pair, "position", "orientation")
    assert reason == "orientation never opened in 1 trial; unread in 1"
    only_unread = table.loc[("scale", "orientation")].copy()
    only_unread[["a_only", "b_only", "neither"]] = 0
    assert so.unseen_reason(only_unread, "scale", "orientation").startswith("unread in 1 trial")
    verdicts = so.order_verdicts(so.order_across_thresholds(rows, unread=unread))
    text = verdicts.set_index(["a", "b"]).at[("position", "orientation"), "text"]
    assert "unread in 1" in text


def test_a_trial_with_exact_values_at_enough_steps_is_ordered_by_them_not_by_its_bound():
    # the bound sees posX at step 300 and scale at 800: posX > scale. Trial "e" carries the
    # exact value at four steps, and scale reached 25% of its entropy (0.45 nats) by step
    # 400, posX its 0.87 only by 600: read off those, scale > posX. Trial "b" has one check
    # at the end: it keeps its bound's order, and orientation, whose bound the check shows
    # short (0.00 of 2.00), is unread there and only there.
    posx = [0.0, 0.0, 1.0, 1.2, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0]
    scale = [0.0] * 7 + [0.6, 0.8, 1.0]
    bound = {"posX": posx, "scale": scale}
    curves = pd.concat([_rows(t, {0: RAMP}, factors=bound) for t in ("b", "e")], ignore_index=True)
    exact = {"posX": [0.1, 0.3, 2.0, 2.5], "scale": [0.1, 0.9, 1.2, 1.5]}
    evals = pd.DataFrame({"trial_id": "e", "step": [200.0, 400.0, 600.0, 1000.0]})
    for f in FACTOR_NAMES:
        evals[f"exact/{f}"] = exact.get(f, [0.05] * 4)
    end = {f"exact/{f}": [{"posX": 2.5, "scale": 1.5, "orientation": 2.0}.get(f, 0.05)]
           for f in FACTOR_NAMES}  # fmt: skip
    evals = pd.concat([pd.DataFrame({"trial_id": ["b"], "step": [1000.0], **end}), evals])

    reading = so.factor_reading(curves, evals)
    assert reading.exact == {"e"}
    assert reading.unread == {("b", "orientation")}  # e's short bound (scale at 400) is moot
    assert list(dict.fromkeys(reading.curves["trial_id"])) == ["b", "e"]
    mine = reading.curves[reading.curves["trial_id"] == "e"]
    assert mine["step"].tolist() == [200.0, 400.0, 600.0, 1000.0]
    assert mine["C"].tolist() == [2.0, 4.0, 6.0, 10.0]  # the report rows' C at those steps
    assert mine["info/scale"].tolist() == exact["scale"]
    assert (reading.curves[reading.curves["trial_id"] == "b"]["info/posX"] == posx).all()

    factors = so.factor_switch_on(reading.curves, unread=reading.unread)
    on = factors.set_index(["trial_id", "factor"])
    assert on.at[("e", "scale"), "step_on"] == 400 and on.at[("e", "scale"), "C_on"] == 4
    assert on.at[("e", "posX"), "step_on"] == 600
    assert on.at[("e", "orientation"), "read"] and np.isnan(on.at[("e", "orientation"), "step_on"])
    assert not on.at[("b", "orientation"), "read"]
    orders = {t: so.trial_order(g) for t, g in factors.groupby("trial_id")}
    assert orders == {"b": [["posX"], ["scale"]], "e": [["scale"], ["posX"]]}

    two = evals[(evals["trial_id"] == "b") | (evals["step"] <= 400)]  # e: 2 < EXACT_ROWS
    assert so.EXACT_ROWS == 3 and so.factor_reading(curves, two).exact == frozenset()
    assert ("e", "scale") in so.factor_reading(curves, two).unread  # its bound, checked


def test_a_check_that_misses_one_factor_keeps_its_step_and_leaves_that_factor_unread():
    # Trial "e" is checked at four steps; at step 400 the orientation value is missing (a
    # row written by another version, or a failed check). The step still dates posX and
    # scale, and orientation, with a gap in its values, is unread, not "never opened".
    curves = _rows("e", {0: RAMP}, factors={"posX": [2.0] * 10, "scale": [1.0] * 10})
    evals = pd.DataFrame({"trial_id": "e", "step": [200.0, 400.0, 600.0, 1000.0]})
    for f in FACTOR_NAMES:
        evals[f"exact/{f}"] = [0.05, 0.9, 1.2, 1.5] if f == "scale" else [0.05] * 4
    evals.loc[1, "exact/orientation"] = np.nan
    reading = so.factor_reading(curves, evals)
    assert reading.exact == {"e"}
    assert reading.curves["step"].tolist() == [200.0, 400.0, 600.0, 1000.0]
    assert reading.unread == {("e", "orientation")}
    on = so.factor_switch_on(reading.curves, unread=reading.unread).set_index("factor")
    assert on.at["scale", "step_on"] == 400 and not on.at["orientation", "read"]
    # three checks with any value make an exact-read trial; two do not
    assert so.factor_reading(curves, evals.iloc[1:]).exact == {"e"}
    assert so.factor_reading(curves, evals.iloc[2:]).exact == frozenset()


def test_a_pair_tied_at_some_thresholds_is_said_tied_there_not_unseen():
    # posX and scale reach 12% and 14.5% of their entropies (0.42 and 0.26 nats) at the
    # same row, scale 30% a row before posX's 50%, and both 50% at that row: tied at 10%,
    # 40% and 0.25 nats, scale first
    # at 15%, 25% and 0.5 nats
    posx = [0.0, 0.12, 0.12, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    scale = [0.0, 0.145, 0.3, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    across = so.order_across_thresholds(_opening("s0", {"posX": posx, "scale": scale}))
    ps = across[(across["a"] == "position") & (across["b"] == "scale")].set_index("threshold")
    assert ps["ties"].to_dict() == {
        "10%": 1, "15%": 0, "25%": 0, "40%": 1, "0.25 nats": 1, "0.5 nats": 0
    }  # fmt: skip
    v = so.order_verdicts(across).set_index(["a", "b"]).loc[("position", "scale")]
    assert v["verdict"] == "holds where seen" and v["first"] == "scale"
    assert v["text"].startswith(
        "scale before position in every trial where both opened, at every threshold where "
        "both did (15%, 25% and 0.5 nats; tied at 10%, 40% and 0.25 nats); at 25%: 1 of 1"
    )
    # a second trial tied at every threshold: the order holds apart from ties, and says so
    jump = [0.0, 0.0, *[1.0] * 8]
    same = _opening("s2", {"posX": jump, "scale": jump})
    pooled = so.order_across_thresholds(
        pd.concat([_opening("s0", {"posX": posx, "scale": scale}), same])
    )
    text = so.order_verdicts(pooled).set_index(["a", "b"]).at[("position", "scale"), "text"]
    assert text.startswith(
        "scale before position in every trial where both opened (ties apart), at every "
        "threshold where both did (15%, 25% and 0.5 nats; tied at 10%, 40% and 0.25 nats)"
    )
    # where the order changes sign, each threshold's count shows its ties
    flip = _opening("s1", {"posX": [0.0, 0.5, *[1.0] * 8], "scale": [0.0, 0.0, *[1.0] * 8]})
    both = so.order_across_thresholds(
        pd.concat([_opening("s0", {"posX": posx, "scale": scale}), flip])
    )
    text = so.order_verdicts(both).set_index(["a", "b"]).at[("position", "scale"), "text"]
    assert text.startswith("position before scale depends on the threshold: 10%: 1 of 1 (1 tied), ")
    assert text.endswith("(trials where both opened; tied: both at the same row)")
