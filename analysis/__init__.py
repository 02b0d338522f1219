"""After the run: disentanglement metrics, result loading, figures and the report.

Nothing here imports torch, ray, ``study`` or ``trainables``: a report is built from
the files of a study directory alone.

The names below are the Python API, imported on first use (``import analysis`` alone
loads nothing heavy): ``load_study`` reads a study directory (a path or a URI); each
figure is a ``*_data`` function that returns tidy data and a ``plot_*`` function that
draws it; ``build_report`` writes the HTML report.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "load_study": ("analysis.load", "load_study"),
    "Study": ("analysis.load", "Study"),
    "build_report": ("analysis.report", "build_report"),
    "export_study": ("analysis.export", "export_study"),
    "frontier_data": ("analysis.frontier", "frontier_data"),
    "plot_frontier": ("analysis.frontier", "plot_frontier"),
    "grid_data": ("analysis.frontier", "grid_data"),
    "plot_grid_heatmaps": ("analysis.frontier", "plot_grid_heatmaps"),
    "activation_data": ("analysis.activation", "activation_data"),
    "plot_activation": ("analysis.activation", "plot_activation"),
    "activation_summary_data": ("analysis.activation", "activation_summary_data"),
    "plot_activation_summary": ("analysis.activation", "plot_activation_summary"),
    "traversal_data": ("analysis.traversals", "traversal_data"),
    "plot_traversals": ("analysis.traversals", "plot_traversals"),
    "traversal_animation_data": ("analysis.traversals", "traversal_animation_data"),
    "plot_traversal_animation": ("analysis.traversals", "plot_traversal_animation"),
    "training_curves_data": ("analysis.views", "training_curves_data"),
    "plot_training_curves": ("analysis.views", "plot_training_curves"),
    "parallel_coords_data": ("analysis.views", "parallel_coords_data"),
    "plot_parallel_coords": ("analysis.views", "plot_parallel_coords"),
    "importance_data": ("analysis.views", "importance_data"),
    "plot_importance": ("analysis.views", "plot_importance"),
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
