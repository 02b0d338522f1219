"""The driver: study specs, search spaces, the Ray Tune runner and the CLI.

``from study import run, resume`` is the Python API (``study.api``); they are imported on
first use, so ``import study`` alone starts nothing and imports neither ray nor torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run", "resume", "resolve_spec"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from study import api

        return getattr(api, name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")
