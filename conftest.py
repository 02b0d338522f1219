"""Test-wide settings, loaded by pytest before any test module.

One intra-op thread per process: the suite runs several processes at once (Ray
workers, the browser), and on a small machine OpenMP threads that spin-wait for busy
cores slow every step by an order of magnitude.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)
