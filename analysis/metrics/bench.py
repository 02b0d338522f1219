"""Seconds per metric at the default and fast sizes, on dSprites-shaped synthetic codes.

The dataset has dSprites' factors (3 x 6 x 40 x 32 x 32); its observations are the factor
indices themselves and the representation is a cheap fixed function of them (10 latents:
some clean, some entangled, four collapsed), so the figures are the metrics' own cost.
"""

from __future__ import annotations

import time

import numpy as np

from analysis.contract import FACTOR_NAMES, FACTOR_SIZES
from analysis.metrics.evaluate import DEFAULT, FAST, Sizes, evaluate_timed


class SyntheticSprites:
    """Ground-truth data with dSprites' factors whose observations are the factors."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def observations(self, factors: np.ndarray) -> np.ndarray:
        return factors


class SyntheticEncoder:
    """A fixed, noisy 10-latent linear code of the factors: roughly what a beta-VAE learns
    (position clean, scale entangled with shape, one rotated latent, four collapsed)."""

    # Rows: shape, scale, orientation, posX, posY (each scaled to [0, 1]); columns: latents.
    MIXING = np.array(
        [
            [0.0, 0.0, 0.3, 0.0, 1.0, 0.0, 0, 0, 0, 0],
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0, 0, 0, 0],
            [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0, 0, 0, 0],
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0, 0, 0, 0],
            [0.0, 1.0, 0.0, 0.0, 0.0, 0.5, 0, 0, 0, 0],
        ]
    )
    NOISE = np.array([0.05] * 6 + [0.01] * 4, dtype=np.float32)  # posterior-mean jitter

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        x = factors / (np.asarray(FACTOR_SIZES) - 1.0)  # (n, 5) in [0, 1]
        noise = self.rng.standard_normal((len(x), 10), dtype=np.float32) * self.NOISE
        return x @ self.MIXING + noise  # (n, 10)


def bench_metrics(
    presets: tuple[str, ...] = ("default", "fast"), seed: int = 0
) -> dict[str, dict[str, float]]:
    """Seconds per step for each preset: ``{"default": {step: seconds}, "fast": ...}``.

    Steps: each metric, ``sample`` (drawing and encoding the points MIG, DCI and SAP
    share), ``total`` (wall clock) and ``total_cpu`` (this process's CPU time, which a busy
    machine inflates less than the wall clock).
    """
    sizes: dict[str, Sizes] = {"default": DEFAULT, "fast": FAST}
    out = {}
    for name in presets:
        rng = np.random.default_rng(seed)
        wall, cpu = time.perf_counter(), time.process_time()
        _, seconds = evaluate_timed(
            SyntheticSprites(), SyntheticEncoder(seed), rng, sizes=sizes[name]
        )
        seconds["sample"] = seconds.pop("sample") + seconds.pop("sample_test")
        seconds["total"] = time.perf_counter() - wall
        seconds["total_cpu"] = time.process_time() - cpu
        out[name] = seconds
    return out


def format_table(seconds: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per step, one column per preset."""
    presets = list(seconds)
    steps = list(seconds[presets[0]])
    lines = [f"{'seconds':<12}" + "".join(f"{p:>10}" for p in presets)]
    for step in steps:
        lines.append(f"{step:<12}" + "".join(f"{seconds[p][step]:>10.3f}" for p in presets))
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(bench_metrics()))
