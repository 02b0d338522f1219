"""A procedural dSprites renderer: factor indices -> 64x64 binary images, on any device.

Pure and vectorized: one call renders a whole batch with elementwise tensor ops on the
device the factor tensor lives on, so a GPU batch never visits the CPU. Geometry is
calibrated against frames of the official dataset (see tests/test_render.py):

- pixel (row i, col j) is inside when its centre (x=j, y=i) is inside the shape;
- the sprite's anchor is at 15.5 + 32 * pos pixels (pos in linspace(0, 1, 32));
- a square at scale s has half-side 10 s (10x10 pixels at s=0.5, 20x20 at s=1);
- the ellipse and the heart follow the areas and outlines of the official frames;
- orientation turns the sprite counter-clockwise as seen on screen (y up).

``index_of`` and ``factors_of`` map factor indices to the official dataset's image index
and back: the order the prerendered grid (trainables/grid.py) is laid out in.
"""

from __future__ import annotations

import math

import torch

from analysis.contract import FACTOR_SIZES

IMAGE_SIZE = 64
SCALES = torch.linspace(0.5, 1.0, 6, dtype=torch.float64).tolist()
ORIENTATIONS = torch.linspace(0.0, 2 * math.pi, 40, dtype=torch.float64).tolist()
POSITIONS = torch.linspace(0.0, 1.0, 32, dtype=torch.float64).tolist()

ANCHOR_OFFSET = 15.5  # pixels: position 0 puts the anchor here
ANCHOR_SPAN = 32.0  # pixels: position 1 puts it at 47.5

SQUARE_HALF = 9.6  # half-side at scale 1 (20 pixels wide axis-aligned, 19.2 turned)
ELLIPSE_AXES = (12.6, 7.3)  # semi-axes at scale 1 (x, y)
# Heart at scale 1, sprite coordinates (y up): two lobes of radius HEART_R centred at
# (+-HEART_LOBE_X, HEART_LOBE_Y), joined by tangent lines to the tip (0, -HEART_TIP).
HEART_R = 5.0
HEART_LOBE_X = 4.925
HEART_LOBE_Y = 4.25
HEART_TIP = 8.6


def _strides(sizes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.prod(sizes[i + 1 :]) for i in range(len(sizes)))


def index_of(factors: torch.Tensor, sizes: tuple[int, ...] = FACTOR_SIZES) -> torch.Tensor:
    """(B, 5) factor indices -> (B,) index in the official order (posY varying fastest)."""
    f = factors.long()  # python-int strides: no host-to-device copy, graph-safe
    return sum(f[:, i] * s for i, s in enumerate(_strides(sizes)))


def factors_of(index: torch.Tensor, sizes: tuple[int, ...] = FACTOR_SIZES) -> torch.Tensor:
    """(B,) indices in the official order -> (B, 5) factor indices (inverse of index_of)."""
    cols = [(index // s) % n for s, n in zip(_strides(sizes), sizes)]
    return torch.stack(cols, dim=-1)


def factor_values(factors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(B, 5) int indices -> (shape, scale, angle, x, y) float tensors of shape (B, 1, 1).

    Computed from the indices with scalar arithmetic (the grids are linspaces), so no
    table is copied to the device and nothing waits on the host: CUDA-graph safe.
    """
    f = factors.long()
    g = f[:, 1:].float()  # (B, 4)
    scale = SCALES[0] + g[:, 0] * ((SCALES[-1] - SCALES[0]) / (len(SCALES) - 1))
    angle = g[:, 1] * (ORIENTATIONS[-1] / (len(ORIENTATIONS) - 1))
    x = ANCHOR_OFFSET + g[:, 2] * (ANCHOR_SPAN / (len(POSITIONS) - 1))
    y = ANCHOR_OFFSET + g[:, 3] * (ANCHOR_SPAN / (len(POSITIONS) - 1))
    return tuple(t.view(-1, 1, 1) for t in (f[:, 0], scale, angle, x, y))


def render(
    factors: torch.Tensor, dtype: torch.dtype = torch.float32, window: int = 32
) -> torch.Tensor:
    """(B, 5) factor indices (shape, scale, orientation, posX, posY) -> (B, 64, 64) in {0, 1}.

    Runs on ``factors.device``; the result has ``dtype``. Shapes are evaluated on a
    ``window`` x ``window`` patch around each anchor (every sprite reaches less than
    14 pixels from its anchor, so 32 holds it whole; 64 evaluates the whole canvas).
    """
    shape, scale, angle, cx, cy = factor_values(factors)
    b = factors.shape[0]
    dev = factors.device
    step = torch.arange(window, device=dev)
    if window >= IMAGE_SIZE:
        x0 = y0 = torch.zeros(b, 1, 1, dtype=torch.long, device=dev)
    else:  # the patch starts window/2 - 1 pixels before the anchor, inside the canvas
        x0 = (cx.floor().long() - (window // 2 - 1)).clamp(0, IMAGE_SIZE - window)
        y0 = (cy.floor().long() - (window // 2 - 1)).clamp(0, IMAGE_SIZE - window)
    xs = (x0 + step.view(1, 1, -1)).float()  # (B, 1, w) pixel columns
    ys = (y0 + step.view(1, -1, 1)).float()  # (B, w, 1) pixel rows
    dx, dy = xs - cx, cy - ys  # y up
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Undo the sprite's rotation, then its scale: (u, v) are unit-scale sprite coordinates.
    u = (cos * dx + sin * dy) / scale  # (B, w, w)
    v = (-sin * dx + cos * dy) / scale
    inside = torch.where(
        shape == 0,
        _square(u, v),
        torch.where(shape == 1, _ellipse(u, v), _heart(u, v)),
    ).to(dtype)
    if window >= IMAGE_SIZE:
        return inside
    canvas = torch.zeros(b, IMAGE_SIZE, IMAGE_SIZE, dtype=dtype, device=dev)
    rows = ys.long().expand(b, window, window)
    cols = xs.long().expand(b, window, window)
    batch = torch.arange(b, device=dev).view(b, 1, 1).expand(b, window, window)
    canvas[batch, rows, cols] = inside  # same shapes every call: CUDA-graph friendly
    return canvas


def _square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) < SQUARE_HALF


def _ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u / ELLIPSE_AXES[0]) ** 2 + (v / ELLIPSE_AXES[1]) ** 2 < 1


def _heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    au = u.abs()  # the heart is mirror-symmetric about u = 0
    # Lobe: disc of radius R at (LOBE_X, LOBE_Y).
    lu, lv = au - HEART_LOBE_X, v - HEART_LOBE_Y
    lobe = lu * lu + lv * lv < HEART_R * HEART_R
    # Cone from the tip T = (0, -TIP) tangent to the lobe: axis towards the lobe centre.
    ax, ay = HEART_LOBE_X, HEART_LOBE_Y + HEART_TIP
    length = math.hypot(ax, ay)
    ax, ay = ax / length, ay / length
    half_angle = math.asin(min(HEART_R / length, 1.0))
    tu, tv = au, v + HEART_TIP  # relative to the tip
    along = tu * ax + tv * ay
    perp = (tu * ay - tv * ax).abs()
    cone = (along >= 0) & (along <= length * math.cos(half_angle) ** 2)
    cone = cone & (perp <= along * math.tan(half_angle))
    # Fill between the two cones below the lobe centres (the heart's middle).
    middle = (v <= HEART_LOBE_Y) & (tv >= 0) & (au * ay <= tv * ax + 1e-6)
    return lobe | cone | middle
