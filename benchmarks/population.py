"""Population throughput against solo trials, without Ray (runs where only torch is).

    python benchmarks/population.py [--sizes 1,4,16,64] [--steps N] [--rounds 3]

For each variant (CUDA: eager vmap, a CUDA graph of the population step, graph + bf16,
graph in NCHW; a CPU: the loop and vmap forwards), aggregate images/s of a population of K against
the same K members trained as solo trials one after another, interleaved in one run
(``betastudy bench population`` times one variant). Then what the best measured
aggregate rate means for a 64-configuration x 100k-step study (a projection from the
rate, not a measured study: evaluations, probes and checkpoints come on top).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainables.bench import compare_population, format_population

STUDY_CONFIGS, STUDY_STEPS = 64, 100_000


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,4,16,64" if cuda else "1,4,16")
    p.add_argument("--steps", type=int, help="steps per turn [50 on CUDA, 4 on a CPU]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    sizes = [int(k) for k in args.sizes.split(",")]
    steps = args.steps or (50 if cuda else 4)
    if cuda:
        variants = [
            ("vmap", {}),
            ("vmap", {"cuda_graph": True}),
            ("vmap", {"cuda_graph": True, "precision": "bf16"}),
            # cuDNN's grouped convolutions have slow weight gradients in channels_last
            ("vmap", {"cuda_graph": True, "channels_last": False}),
        ]
    else:
        variants = [("loop", {}), ("vmap", {})]
    best = 0.0
    for forward, v in variants:
        print(f"variant: forward {forward} {v or ''}")
        result = compare_population(sizes, steps, {"batch_size": args.batch_size, **v}, forward,
                                    args.rounds)  # fmt: skip
        print("\n".join(format_population(result)), "\n")
        best = max([best, *(r.population_images_per_s for r in result.sizes)])
    images = STUDY_CONFIGS * STUDY_STEPS * args.batch_size
    print(
        f"best aggregate rate {best:,.0f} images/s: a {STUDY_CONFIGS}-configuration x "
        f"{STUDY_STEPS:,}-step study ({images:,} images) would train in "
        f"{images / best / 60:,.1f} minutes at it (projection, not a measured study)"
    )


if __name__ == "__main__":
    main()
