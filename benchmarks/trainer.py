"""Trainer throughput across the speed options, without Ray (runs where only torch is).

    python benchmarks/trainer.py [--steps 2000] [--batch-size 64]

On CUDA it times fp32 eager, bf16, a CUDA graph of the whole step, and both together,
each against the conventional DataLoader loop (``betastudy bench trainer`` times one
configuration). On CPU it times the fp32 eager trainer only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainables.bench import compare


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    variants = [{}]
    if torch.cuda.is_available():
        variants += [
            {"precision": "bf16"},
            {"cuda_graph": True},
            {"cuda_graph": True, "precision": "bf16"},
        ]
    for v in variants:
        print("\n".join(compare(args.steps, {"batch_size": args.batch_size, **v})), "\n")


if __name__ == "__main__":
    main()
