"""``betastudy bench metrics`` through click's CliRunner, on the fast sizes."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from analysis.metrics import bench
from analysis.metrics.bench import SyntheticEncoder, SyntheticSprites, format_table
from study.cli import main
from tests.helpers import returns

STEPS = ["mig", "mi", "beta_vae", "factor_vae", "dci", "sap", "sample", "total", "total_cpu"]


def test_bench_metrics_prints_seconds_per_metric(monkeypatch):
    results = returns(monkeypatch, bench, "bench_metrics")
    result = CliRunner().invoke(main, ["bench", "metrics", "--preset", "fast"])
    assert result.exit_code == 0, result.output
    [measured] = results
    assert list(measured) == ["fast"]
    seconds = measured["fast"]
    assert list(seconds) == STEPS
    assert all(s >= 0 for s in seconds.values())
    assert seconds["total"] >= seconds["dci"] > 0  # the total covers the metrics
    assert result.output == format_table(measured) + "\n"
    header, *rows = result.output.strip().splitlines()
    assert header.split() == ["seconds", "fast"]
    assert rows[-2] == f"{'total':<12}{seconds['total']:>10.3f}"


def test_format_table_has_a_column_per_preset():
    table = format_table({"default": {"mig": 1.5}, "fast": {"mig": 0.25}})
    assert table.splitlines() == [
        "seconds        default      fast",
        "mig              1.500     0.250",
    ]


def test_synthetic_codes_look_like_a_beta_vae():
    factors = SyntheticSprites().sample_factors(1000, np.random.default_rng(0))
    z = SyntheticEncoder()(factors)
    assert z.shape == (1000, 10)
    assert np.all(z[:, :6].std(axis=0) > 0.1)  # active latents
    assert np.all(z[:, 6:].std(axis=0) < 0.02)  # collapsed latents
