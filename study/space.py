"""The searched fields of a study: grid values, or distributions for Optuna.

A space entry in the YAML is either a list (grid values; in an Optuna study, a
categorical choice) or a one-key mapping naming a distribution:

    beta: [1, 2, 4]                 # grid values (optuna: choice)
    lr: {loguniform: [1.0e-4, 1.0e-3]}
    c_max: {uniform: [5, 50]}
    latent_dim: {int: [4, 12]}      # both ends included
    encoder: {choice: [image, factors]}

Pure data here; ``to_tune`` and ``to_optuna`` turn a ``Dim`` into the searchers' objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


@dataclass(frozen=True)
class Dim:
    """One searched field: ``kind`` is ``grid`` or a distribution of DISTRIBUTIONS."""

    kind: str
    values: tuple[Any, ...]  # grid/choice: the values; uniform/loguniform/int: (low, high)
    # (what validation checks: every listed value, or both ends of a range)

    def to_yaml(self) -> Any:
        values = [list(v) if isinstance(v, tuple) else v for v in self.values]
        return values if self.kind == "grid" else {self.kind: values}


def points(space: dict[str, Dim]) -> Iterator[dict[str, Any]]:
    """Every combination of the candidates (the grid itself, or the ranges' corners)."""
    keys = list(space)
    for combo in itertools.product(*(space[k].values for k in keys)):
        yield dict(zip(keys, combo))


def n_points(space: dict[str, Dim]) -> int:
    n = 1
    for dim in space.values():
        n *= len(dim.values)
    return n


def to_tune(dim: Dim) -> Any:
    """A Ray Tune search-space object (grid studies use only ``grid``)."""
    from ray import tune

    if dim.kind == "grid":
        return tune.grid_search(list(dim.values))
    raise ValueError(f"{dim.kind} is not a grid dimension")


def to_optuna(dim: Dim) -> Any:
    """An Optuna distribution; a grid list becomes a categorical choice."""
    from optuna import distributions as d

    lo, hi = (dim.values + (None, None))[:2]
    if dim.kind == "uniform":
        return d.FloatDistribution(float(lo), float(hi))
    if dim.kind == "loguniform":
        return d.FloatDistribution(float(lo), float(hi), log=True)
    if dim.kind == "int":
        return d.IntDistribution(int(lo), int(hi))
    return d.CategoricalDistribution(list(dim.values))
