"""The activation-order protocol: its result and printed lines on hand-made rows, and a
tiny real run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.contract import FACTOR_NAMES, FACTOR_SIZES
from study.cli import main
from tests.helpers import returns
from trainables import activation_protocol
from trainables.activation_protocol import activation_result, format_activation

H = {f: math.log(n) for f, n in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)}


def _seed(name: str, opens: dict[str, int]) -> pd.DataFrame:
    """Rows at steps 100..1000, C = step / 100; factor f reaches its full entropy from
    row opens[f] on (never when absent)."""
    steps = np.arange(1, 11) * 100.0
    frame = pd.DataFrame(
        {"trial_id": name, "step": steps, "C": steps / 100, "kl": steps / 100, "recon": 120.0}
    )
    for f in FACTOR_NAMES:
        row = opens.get(f, 99)
        frame[f"info/{f}"] = [H[f] if i >= row else 0.0 for i in range(10)]
    return frame


def _hand_made() -> pd.DataFrame:
    return pd.concat(
        [
            _seed("seed 0", {"posX": 1, "posY": 2, "scale": 4}),
            _seed("seed 1", {"posY": 1, "scale": 3, "shape": 6}),
            _seed("seed 2", {"scale": 2, "posX": 5}),  # against the paper
        ],
        ignore_index=True,
    )


def test_activation_result_from_hand_made_seeds():
    result = activation_result(_hand_made())
    assert result.threshold.label == "25%"
    assert [s.trial_id for s in result.seeds] == ["seed 0", "seed 1", "seed 2"]
    seed0 = result.seeds[0]
    assert (seed0.recon, seed0.kl, seed0.C) == (120.0, 10.0, 10.0)
    assert seed0.order == (("posX",), ("posY",), ("scale",))
    assert seed0.switch_on_c["posX"] == 2.0 and seed0.switch_on_c["posY"] == 3.0
    assert seed0.switch_on_c["scale"] == 5.0 and math.isnan(seed0.switch_on_c["shape"])
    assert result.final_info["posX"] == pytest.approx(2 / 3 * H["posX"])
    # 2 of the 3 seeds where both opened; position is the earlier of two axes: chance 2/3
    ps = result.pair("position", "scale")
    assert (ps["a_first"], ps["n"], ps["ties"]) == (2, 3, 0)
    assert (ps["low"], ps["high"]) == pytest.approx((0.0943, 0.9916), abs=1e-4)
    assert ps["null"] == pytest.approx(2 / 3) and ps["p_value"] == pytest.approx(0.7407, abs=1e-4)
    # orientation opened nowhere: said so, and no pair with it is counted as an order
    assert result.never_opened == ("orientation",)
    assert result.pair("scale", "orientation")["n"] == 0
    # shape opened in one seed only: one ordered seed, two censored beside it
    ss = result.pair("scale", "shape")
    assert (ss["a_first"], ss["n"], ss["a_only"], ss["b_only"]) == (1, 1, 2, 0)
    assert result.threshold in result.thresholds
    assert result.verdict("position", "scale")[["verdict", "first"]].tolist() == [
        "holds",
        "position",
    ]
    assert result.verdict("scale", "orientation")["verdict"] == "not seen"


def test_format_activation_says_each_seed_and_pair():
    lines = format_activation(activation_result(_hand_made()))
    text = "\n".join(lines)
    seed0 = next(line for line in lines if line.startswith("seed 0"))
    assert seed0 == (
        "seed 0: recon 120.0, KL 10.00, C 10.00, order posX > posY > scale; switch-on C: "
        "shape -, scale 5.00, orientation -, posX 2.00, posY 3.00"
    )
    assert "  position before scale: 2 of 3 (0.09–0.99; chance 0.67, p = 0.74; ties 0)" in text
    assert "never opened within the budget, in any seed: orientation" in text
    assert "  scale before orientation: not seen (orientation never opened in 3 trials)" in text
    assert "  scale before shape: 1 of 1 (0.03–1.00; chance 0.50, p = 0.5; ties 0); " in text
    assert "only scale opened in 2" in text
    assert "  position before scale in most trials where both opened, at every threshold" in text


def test_bench_activation_runs_and_prints_the_order(tmp_path, monkeypatch):
    results = returns(monkeypatch, activation_protocol, "activation_result")
    rows = tmp_path / "rows.csv"
    args = ["bench", "activation", "--seeds", "2", "--jobs", "1", "--rows", str(rows)]
    sets = ["steps=60", "c_steps=60", "report_every=20", "probe_points=128", "hidden=32",
            "channels=8", "latent_dim=4"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 seeds, 1 at a time: encoder factors, gamma 1000" in result.output
    assert "position before scale" in result.output
    [measured] = results
    assert [s.trial_id for s in measured.seeds] == ["seed 0", "seed 1"]
    assert len(measured.pairs) == len(measured.verdicts) == 6  # the four groups' pairs
    frame = pd.read_csv(rows)
    assert sorted(set(frame["trial_id"])) == ["seed 0", "seed 1"]
    assert frame.groupby("trial_id")["step"].max().tolist() == [60, 60]


def test_bench_activation_bad_input_is_one_line():
    result = CliRunner().invoke(main, ["bench", "activation", "--set", "gamma=-1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: trial config gamma=-1.0 is out of range: gamma >= 0"
    ]


def test_bench_activation_from_rows_prints_without_training(tmp_path):
    rows = pd.concat([_seed("seed 0", {"posX": 1, "scale": 3})], ignore_index=True)
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    result = CliRunner().invoke(main, ["bench", "activation", "--from-rows", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == format_activation(activation_result(pd.read_csv(path)))


def test_the_images_protocol_trains_the_image_encoder():
    from trainables.activation_protocol import IMAGES, protocol_config

    config = protocol_config("images")
    assert config["encoder"] == "image" and config["gamma"] == 1000.0
    assert config["c_max"] == IMAGES["c_max"] and config["steps"] > config["c_steps"]


def test_an_exact_last_row_checks_each_seeds_bound_and_marks_what_it_misses():
    rows = _hand_made()
    last = rows.groupby("trial_id").tail(1).index
    for f in FACTOR_NAMES:
        rows.loc[last, f"exact/{f}"] = rows.loc[last, f"info/{f}"]  # the bound is exact ...
    rows.loc[last[0], "exact/orientation"] = 1.5  # ... but misses seed 0's orientation
    result = activation_result(rows)
    assert result.seeds[0].checked["orientation"] == (0.0, 1.5, False)
    assert result.seeds[1].checked["orientation"] == (0.0, 0.0, True)
    assert result.unread == ("orientation",)
    assert result.never_opened == ()  # seed 0's orientation may have opened: not a finding
    pair = result.pair("scale", "orientation")
    assert (pair["unread"], pair["neither"], pair["n"]) == (1, 0, 0)
    text = "\n".join(format_activation(result))
    assert (
        "seed 0: recon 120.0, KL 10.00, C 10.00, order posX > posY > scale (unread: orientation)"
        in text
    )
    assert (
        "  held-out bound / exact over every grid image at the end (nats): shape 0.00/0.00," in text
    )
    assert "orientation 0.00/1.50 unread" in text
    assert "unread (the held-out bound fell short of the exact value" in text


def test_a_seed_checked_at_every_row_is_ordered_by_its_exact_values():
    rows = _hand_made()  # seed 2's bound: scale at C 2, posX at C 5
    mine = rows["trial_id"] == "seed 2"
    for f in FACTOR_NAMES:
        rows.loc[mine, f"exact/{f}"] = rows.loc[mine, f"info/{f}"]
    rows.loc[mine & (rows["step"] >= 100), "exact/posX"] = H["posX"]  # posX exact from C 1
    result = activation_result(rows)
    seed = result.seeds[2]
    assert seed.order == (("posX",), ("scale",)) and seed.switch_on_c["posX"] == 1.0
    assert len(seed.exact) == 10 and seed.exact[0] == (1.0, {**dict.fromkeys(FACTOR_NAMES, 0.0),
                                                            "posX": H["posX"]})  # fmt: skip
    assert result.seeds[0].exact == () and result.unread == ()  # read off exact: none unread
    text = "\n".join(format_activation(result))
    assert "seed 2: recon 120.0, KL 10.00, C 10.00, order posX > scale;" in text
    assert (
        "  order read off the exact values over every grid image, at C 1.0/2.0/3.0/4.0/5.0/"
        "6.0/7.0/8.0/9.0/10.0 (nats): shape 0.00/0.00/" in text
    )
    assert "(nats; the order does not use the bound): shape 0.00/0.00" in text
    # one exact-read seed of three: the text says which is which, the mean says its source
    assert "mean over seeds, exact over every grid image in 1 of 3 seeds, the rows' in" in text
    assert result.final_info["posX"] == pytest.approx(2 * H["posX"] / 3)  # seed 1: 0 nats
    assert (
        "never opened within the budget, in any seed: orientation (no order is claimed for "
        "them; read off the exact values over every grid image in 1 of 3 seeds, in the others "
        "as the probe reads them" in text
    )


def test_the_images_protocol_checks_the_code_where_c_reaches_each_listed_capacity():
    from trainables.activation_protocol import EXACT_AT_C, exact_steps, protocol_config
    from trainables.config import TrialConfig

    cfg = TrialConfig.from_dict(protocol_config("images"))
    assert cfg.grid_info_images == "end" and cfg.c_max == 20 and cfg.c_steps == 20_000
    assert sorted(exact_steps(cfg)) == [int(1000 * c) for c in EXACT_AT_C]  # 0.001 nats a step
    odd = TrialConfig.from_dict({**protocol_config("images"), "c_steps": 3000, "steps": 3100})
    assert sorted(exact_steps(odd)) == [200, 400, 600, 800, 1000, 1200, 1800, 2400]  # rounded up


def test_an_image_seed_with_grid_info_images_off_reads_its_bound_alone():
    from trainables.activation_protocol import protocol_config, run_seed

    config = {**protocol_config("images"), "grid_info_images": "off", "steps": 20,
              "c_steps": 20, "report_every": 10, "channels": 4, "hidden": 16,
              "probe_points": 64, "precision": "fp32"}  # fmt: skip
    rows = run_seed(config)
    assert [r["step"] for r in rows] == [10, 20]
    assert not any(k.startswith("exact/") for r in rows for k in r)  # no check: minutes each
    assert all(f"info/{f}" in rows[-1] for f in FACTOR_NAMES)
