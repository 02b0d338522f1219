"""Trainer throughput across the speed options, without Ray (runs where only torch is).

    python benchmarks/trainer.py [--steps 2000] [--batch-size 64] [--window N]

Each variant runs interleaved with the conventional DataLoader loop (``betastudy bench
trainer`` times one configuration). On CUDA: fp32 eager, bf16, torch.compile, a CUDA
graph of the whole step, and graph + bf16. On a CPU: fp32, and bf16 where the CPU has
bf16 units (AVX512-BF16 or AMX). Then where an fp32 eager step goes, layer by layer
(``betastudy bench layers``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainables.bench import compare, format_compare, format_layers, profile_layers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--window", type=int, help="steps per turn [25 on a CPU, 200 on CUDA]")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    variants: list[dict] = [{}]
    if torch.cuda.is_available():
        variants += [
            {"precision": "bf16"},
            {"compile": "default"},
            {"cuda_graph": True},
            {"cuda_graph": True, "precision": "bf16"},
        ]
    elif torch.ops.mkldnn._is_mkldnn_bf16_supported():
        variants.append({"precision": "bf16"})
    for v in variants:
        window = args.window or (200 if torch.cuda.is_available() else 25)
        lines = format_compare(compare(args.steps, {"batch_size": args.batch_size, **v}, window))
        print("\n".join(lines), "\n")
    print("\n".join(format_layers(profile_layers({"batch_size": args.batch_size}))))


if __name__ == "__main__":
    main()
