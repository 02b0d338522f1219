"""PNG images for the report (Pillow), embedded as ``data:`` URIs."""

from __future__ import annotations

import base64
import io

import numpy as np

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 (values outside are clipped, NaN becomes 0)."""
    x = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """Encode a uint8 image, (H, W) grey or (H, W, 3|4) RGB(A), as PNG bytes."""
    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"encode_png needs uint8 pixels, got {img.dtype}")
    channels = 1 if img.ndim == 2 else img.shape[2] if img.ndim == 3 else 0
    if channels not in _MODES or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"encode_png needs (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(img, _MODES[channels]).save(buf, "PNG", compress_level=level)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI for an <img> or a plotly Image trace."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
