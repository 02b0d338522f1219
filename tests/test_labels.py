"""Entangled labels: a latent telling a comparable amount about a second factor is
labelled with both, in the switch-on table, the traversal rows and the export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from analysis import activation as act
from analysis import switch_on as so
from analysis.contract import FACTOR_NAMES
from analysis.export import export_study
from analysis.load import load_study
from analysis.synthetic import _BASE_CONFIG
from analysis.traversals import traversal_mosaic

STEPS = np.arange(1, 11) * 100  # rows at steps 100..1000
# what each latent tells about posY and scale once open (rows 3 on): z0 codes both
# (scale at 0.6 of posY), z1 posY with a small leak into scale (0.3 of posY), z2 scale
# with posY at 0.55 of it but below LABEL_NATS itself, z3 nothing (inactive)
TOLD = {0: (1.0, 0.6), 1: (1.0, 0.3), 2: (0.22, 0.4), 3: (0.0, 0.0)}


def _rows() -> list[dict]:
    rows = []
    for t, step in enumerate(STEPS):
        on = t >= 2
        row = {"step": int(step), "images_seen": int(step) * 64, "recon": 200.0, "kl": 9.0,
               "C": step / 100, "loss": 210.0, "images_per_s": 1.0}  # fmt: skip
        for i, (pos_y, scale) in TOLD.items():
            row[f"info_z{i}"] = (pos_y + scale) * on
            row[f"kl_z{i}"] = (pos_y + scale) * on + 0.5
            for f in FACTOR_NAMES:
                row[f"info/z{i}/{f}"] = {"posY": pos_y, "scale": scale}.get(f, 0.0) * on
        for f in FACTOR_NAMES:
            row[f"info/{f}"] = 0.0
        rows.append(row)
    return rows


def _table() -> pd.DataFrame:
    return so.latent_switch_on(pd.DataFrame(_rows()).assign(trial_id="t"))


def test_a_comparable_second_factor_joins_the_label():
    table = _table().set_index("latent")
    assert table["final_factor"].tolist() == ["posY", "posY", "scale", None]
    assert table["final_second"].tolist() == ["scale", None, None, None]
    assert table.at[0, "final_second_info"] == 0.6
    assert table["label"].tolist() == ["posY + scale", "posY", "scale", "inactive"]
    assert [so.code_label(r) for _, r in table.iterrows()] == table["label"].tolist()
    legend = act.latent_label(table.reset_index().iloc[0])  # the activation figure's legend
    assert legend == "z0 · posY + scale · on at C=3"


def test_the_second_factor_follows_the_opened_on_note():
    row = _table().iloc[0].copy()
    row["factor"] = "shape"  # had it opened on another factor
    assert so.code_label(row) == "posY + scale (opened on shape)"
    # a row without the column (an older table) keeps the one-factor label
    assert so.code_label(row.drop(["final_second", "label"])) == "posY (opened on shape)"


def test_traversal_rows_carry_both_factors():
    size, d, s = 4, 4, 3
    arrays = {
        "inputs": np.ones((1, size, size), np.float32),
        "reconstructions": np.ones((1, size, size), np.float32),
        "traversals": np.zeros((d, s, size, size), np.float32),
        "values": np.linspace(-2, 2, s),
        "latent_index": np.arange(d),
        "kl": np.array([2.1, 1.8, 1.2, 0.5]),
        "factor": np.array(["posY", "posY", "scale", ""]),  # the checkpoint's own words
    }
    labels = traversal_mosaic(arrays, latents=_table()).row_labels[2:]
    assert labels == [
        "z0 · posY + scale · I=1.60 · KL=2.10 nats",
        "z1 · posY · I=1.30 · KL=1.80 nats",
        "z2 · scale · I=0.62 · KL=1.20 nats",
        "z3 · inactive · I=0.00 · KL=0.50 nats",
    ]


def test_the_export_carries_the_label(tmp_path):
    run = tmp_path / "run"  # a `betastudy train` folder
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_BASE_CONFIG))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    export_study(load_study(run), tmp_path / "out", csv=True)
    for back in (
        pd.read_parquet(tmp_path / "out" / "latents.parquet"),
        pd.read_csv(tmp_path / "out" / "latents.csv"),
    ):
        assert back["label"].tolist() == ["posY + scale", "posY", "scale", "inactive"]
        assert back["final_second"].tolist()[0] == "scale"
