"""The crash-prone CUDA paths, each run for a few windows under its own guard.

    python benchmarks/gpu_checks.py paths|compile

Runs where only torch is (no Ray, Optuna or Plotly). Each check prints one line,
``[ok]   NAME (S s): what it measured`` or ``[FAIL] NAME (S s): the error``, and the next
check runs; the exit status is the number of failures. ``benchmarks/gpu.sh`` runs it.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainables.bench import step_flops, timing_config
from trainables.population import Population
from trainables.trainer import Trainer

STEPS = 20_000  # the trials' length: enough for a C table, never trained to the end
WINDOW = 20


def check(name: str, fn: Callable[[], Any], failures: list[str]) -> None:
    t0 = time.perf_counter()
    try:
        out = fn()
        print(f"[ok]   {name} ({time.perf_counter() - t0:.1f} s): {out}", flush=True)
    except Exception as e:  # one line, a short traceback, and the next check
        first = (str(e).splitlines() or [""])[0][:200]
        print(f"[FAIL] {name} ({time.perf_counter() - t0:.1f} s): {type(e).__name__}: {first}")
        traceback.print_exc(limit=6)
        failures.append(name)


def config(**over: Any):
    return timing_config({"steps": STEPS, "batch_size": 64, **over})


def windows(step: Callable[[int], dict], n: int = 3) -> str:
    """Train n windows; every loss finite; the last window's rate and loss."""
    rows = [step(WINDOW) for _ in range(n)]
    losses = [r["loss"] for r in rows if "loss" in r]
    if not all(torch.isfinite(torch.tensor(losses))):
        raise FloatingPointError(f"non-finite loss: {losses}")
    last = rows[-1]
    return f"loss {last['loss']:.1f}, {last.get('images_per_s', float('nan')):,.0f} images/s"


def trainer_windows(**over: Any) -> str:
    return windows(Trainer(config(**over)).train_steps)


def population_windows(k: int, **over: Any) -> str:
    pop = Population([config(seed=i, **over) for i in range(k)])
    for _ in range(3):
        seconds = pop.train_steps(WINDOW)
    rate = k * WINDOW * 64 / seconds
    peak = torch.cuda.max_memory_allocated() / 2**30
    return f"K={k}: {rate:,.0f} images/s aggregate, {peak:.1f} GiB allocated at most"


def flops_on_a_graph() -> str:
    eager, graph = step_flops(config()), step_flops(config(cuda_graph=True))
    if graph <= 0 or abs(graph - eager) > 0.01 * eager:
        raise AssertionError(f"graph {graph} FLOP against eager {eager}")
    return f"{graph / 1e9:.2f} GFLOP a step, graphed as eager"


PATHS: list[tuple[str, Callable[[], Any]]] = [
    ("graph, image encoder", lambda: trainer_windows(cuda_graph=True)),
    ("graph, factor encoder", lambda: trainer_windows(cuda_graph=True, encoder="factors")),
    ("graph, rendered per batch", lambda: trainer_windows(cuda_graph=True, prerender="off")),
    ("graph + bf16", lambda: trainer_windows(cuda_graph=True, precision="bf16")),
    ("graph, NCHW", lambda: trainer_windows(cuda_graph=True, channels_last=False)),
    ("eager bf16", lambda: trainer_windows(precision="bf16")),
    ("step_flops on a graphed config", flops_on_a_graph),
    ("population vmap", lambda: population_windows(4)),
    ("population graph", lambda: population_windows(4, cuda_graph=True)),
    ("population graph + bf16", lambda: population_windows(4, cuda_graph=True, precision="bf16")),
    ("population graph K=64", lambda: population_windows(64, cuda_graph=True)),
]
COMPILE: list[tuple[str, Callable[[], Any]]] = [
    ("compile=default", lambda: trainer_windows(compile="default")),
    ("compile=default + graph", lambda: trainer_windows(compile="default", cuda_graph=True)),
]


def main() -> int:
    groups = {"paths": PATHS, "compile": COMPILE}
    if len(sys.argv) != 2 or sys.argv[1] not in groups:
        print(f"usage: python benchmarks/gpu_checks.py {'|'.join(groups)}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(
            "error: benchmarks/gpu_checks.py needs a CUDA device; none is visible", file=sys.stderr
        )
        return 2
    failures: list[str] = []
    for name, fn in groups[sys.argv[1]]:
        check(name, fn, failures)
        torch.cuda.empty_cache()
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
