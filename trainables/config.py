"""The trial configuration: one frozen dataclass with the Burgess et al. 2018 defaults."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A trial config field is unknown or holds a bad value; the message names it, and
    ``key`` is the field ("" when the problem is not one field's)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class DataError(ValueError):
    """The dataset file (or the data cache) is missing, corrupt or of the wrong layout."""


OBJECTIVES = ("beta", "capacity")
SCHEDULES = ("linear", "constant", "piecewise")
ENCODERS = ("image", "factors")
GRID_INFO_IMAGES = ("auto", "capacity", "eval", "end", "off")
PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TrialConfig:
    """One trial of beta-VAE or capacity-annealed VAE training (units: nats per image)."""

    objective: str = "capacity"
    """`beta`: recon + beta*KL; `capacity`: recon + gamma*|KL - C(step)|."""
    beta: float = 4.0
    """Weight of the KL term in the beta objective."""
    gamma: float = 1000.0
    """Weight of |KL - C| in the capacity objective."""
    c_start: float = 0.0
    """Capacity C at step 0 (nats)."""
    c_max: float = 25.0
    """Capacity C reached after c_steps and held (nats); the constant schedule's value."""
    c_steps: int = 100_000
    """Steps over which the linear schedule climbs from c_start to c_max."""
    c_schedule: str = "linear"
    """Shape of C(step): `linear`, `constant` (c_max) or `piecewise` (through c_points)."""
    c_points: tuple[tuple[int, float], ...] = ()
    """(step, C) points of the piecewise-linear schedule, steps increasing; held after."""
    steps: int = 100_000
    """Optimizer updates to train for."""
    batch_size: int = 64
    """Images per step."""
    lr: float = 5e-4
    """Adam learning rate."""
    latent_dim: int = 10
    """Number of latents z."""
    channels: int = 32
    """Channels of each of the four 4x4 stride-2 convolutions."""
    hidden: int = 256
    """Width of the two fully connected layers."""
    encoder: str = "image"
    """`image`: q(z|x); `factors`: q(z|f) over the ground-truth factors (bottleneck)."""
    seed: int = 0
    """Seeds the model, the data sampling and evaluation."""
    data: str = "procedural"
    """`procedural` renders dSprites on the device; else the path of the official .npz."""
    report_every: int = 100
    """Steps between report rows."""
    eval_every: int = 10_000
    """Steps between disentanglement evaluations (also at the end); 0: only at the end."""
    eval_fast: bool = True
    """Evaluate with the fast metric sample sizes during training (final eval: full sizes)."""
    eval_points: int = -1
    """Points per metric sample (groups of a tenth); 0: own sizes; -1: own on CUDA, 250 on CPU."""
    probe_points: int = 1024
    """Held-out inputs on which every report row measures what the code tells; 0: off."""
    grid_info_samples: int = 256
    """I(f; z) per factor exact over the whole grid, from this many probe draws; 0: off."""
    grid_info_images: str = "auto"
    """Image encoder: when to encode all 737,280 grid images for the exact I(f; z):
    `capacity` (the report rows where C reaches 1, 2, 3, 4, 5, 6, 8, 11, 15, 20, 25, 35, 50
    and 75 nats and each tenth of its ramp, four rows log-spaced over the hold after it,
    and the end; where C does not ramp, 12 rows log-spaced in the step:
    objectives.capacity_check_steps), `eval`
    (every evaluation), `end` (the final one), `off`; `auto`: capacity on CUDA, off on a CPU."""
    checkpoint_every: int = 10_000
    """Steps between checkpoints (also at the end); 0: only at the end."""
    prerender: str = "auto"
    """Batches from the cached bit-packed grid (trainables.grid, 360 MiB): `on`, `off` (render
    each batch), `auto` (when cached already or the trial renders more images than it holds)."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`."""
    precision: str = "fp32"
    """`fp32`, or `bf16` autocast (CUDA, or a CPU with bf16 units); the mean/log-variance
    head stays fp32."""
    channels_last: bool = True
    """NHWC memory format for the convolutions (faster on CUDA, and on a CPU: +4-8% fp32,
    +40% bf16, measured interleaved)."""
    compile: str = "none"
    """torch.compile mode: `none`, `default`, `reduce-overhead` (CUDA graphs), `max-autotune`."""
    cuda_graph: bool = False
    """Capture the whole train step (data, forward, backward, Adam) in one CUDA graph."""

    def __post_init__(self) -> None:
        _validate(self)

    # ---- conversion at the edges -------------------------------------------------

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        """Build from a plain dict (Ray's config, YAML, JSON); unknown keys raise ConfigError."""
        known = cls.fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown trial config key {unknown[0]!r}; known keys: {', '.join(known)}",
                unknown[0],
            )
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    def replace(self, **changes: Any) -> TrialConfig:
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["c_points"] = [list(p) for p in self.c_points]
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrialConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


# ---- coercion and validation -------------------------------------------------------

FIELD_TYPES = typing.get_type_hints(TrialConfig)  # field -> type (the study spec reads it too)
_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(key: str, value: Any) -> Any:
    """Turn a YAML/JSON/CLI value into the field's type, or raise ConfigError naming key."""
    kind = FIELD_TYPES[key]
    try:
        if key == "c_points":
            points = tuple((int(s), float(c)) for s, c in (value or ()))
            return points
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise TypeError
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float) and not value.is_integer():
                raise TypeError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind is str:
            if isinstance(value, bool):  # YAML 1.1 reads on/off (and yes/no) as booleans
                return "on" if value else "off"
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    else:
        return value
    what = "a list of [step, C] pairs" if key == "c_points" else _KIND_NAMES[kind]
    raise ConfigError(f"trial config {key}={value!r} is not {what}", key)


def _check(ok: bool, key: str, value: Any, need: str) -> None:
    if not ok:
        raise ConfigError(f"trial config {key}={value!r} is out of range: {need}", key)


def _validate(c: TrialConfig) -> None:
    for key in FIELD_TYPES:
        v = getattr(c, key)
        if key != "c_points" and _coerce(key, v) != v:
            raise ConfigError(
                f"trial config {key}={v!r} is not {_KIND_NAMES[FIELD_TYPES[key]]}", key
            )
    _check(c.objective in OBJECTIVES, "objective", c.objective, f"one of {OBJECTIVES}")
    _check(c.c_schedule in SCHEDULES, "c_schedule", c.c_schedule, f"one of {SCHEDULES}")
    _check(c.encoder in ENCODERS, "encoder", c.encoder, f"one of {ENCODERS}")
    _check(c.precision in PRECISIONS, "precision", c.precision, f"one of {PRECISIONS}")
    _check(c.compile in COMPILE_MODES, "compile", c.compile, f"one of {COMPILE_MODES}")
    _check(c.prerender in ("auto", "on", "off"), "prerender", c.prerender, "auto, on or off")
    _check(
        not (c.cuda_graph and c.compile in ("reduce-overhead", "max-autotune")),
        "compile",
        c.compile,
        "these modes make CUDA graphs of their own: use compile=default with cuda_graph=true",
    )
    _check(c.beta >= 0, "beta", c.beta, "beta >= 0")
    _check(c.gamma >= 0, "gamma", c.gamma, "gamma >= 0")
    _check(c.c_start >= 0, "c_start", c.c_start, "c_start >= 0")
    _check(c.c_max >= c.c_start, "c_max", c.c_max, f"c_max >= c_start ({c.c_start})")
    _check(c.c_steps >= 1, "c_steps", c.c_steps, "c_steps >= 1")
    _check(c.steps >= 1, "steps", c.steps, "steps >= 1")
    _check(c.batch_size >= 2, "batch_size", c.batch_size, "batch_size >= 2")
    _check(0 < c.lr < 1, "lr", c.lr, "0 < lr < 1")
    _check(c.latent_dim >= 1, "latent_dim", c.latent_dim, "latent_dim >= 1")
    _check(c.channels >= 1, "channels", c.channels, "channels >= 1")
    _check(c.hidden >= 1, "hidden", c.hidden, "hidden >= 1")
    _check(c.report_every >= 1, "report_every", c.report_every, "report_every >= 1")
    _check(c.eval_every >= 0, "eval_every", c.eval_every, "eval_every >= 0")
    _check(c.eval_points >= -1, "eval_points", c.eval_points, "-1 (auto), 0 or more")
    _check(
        c.probe_points == 0 or c.probe_points >= 64,
        "probe_points",
        c.probe_points,
        "0 (off) or at least 64",
    )
    _check(c.grid_info_samples >= 0, "grid_info_samples", c.grid_info_samples, ">= 0 (0: bound)")
    _check(
        c.grid_info_images in GRID_INFO_IMAGES,
        "grid_info_images",
        c.grid_info_images,
        ", ".join(GRID_INFO_IMAGES),
    )
    _check(c.checkpoint_every >= 0, "checkpoint_every", c.checkpoint_every, ">= 0")
    dev = c.device
    _check(
        dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
        "device",
        dev,
        "`auto`, `cpu`, `cuda` or `cuda:N`",
    )
    if c.c_schedule == "piecewise":
        pts = c.c_points
        _check(len(pts) >= 1, "c_points", list(pts), "at least one [step, C] point")
        steps = [s for s, _ in pts]
        _check(steps == sorted(set(steps)), "c_points", list(pts), "steps strictly increasing")
        _check(steps[0] >= 0, "c_points", list(pts), "steps >= 0")
        _check(all(v >= 0 for _, v in pts), "c_points", list(pts), "C >= 0")


def parse_overrides(pairs: typing.Iterable[str]) -> dict[str, Any]:
    """``["beta=4", "c_points=[[0,0],[100,5]]"]`` -> dict, values parsed as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} is not key=value (e.g. --set beta=4)")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out
