"""A tiny PNG encoder (numpy + zlib), so the report embeds images without Pillow."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 (values outside are clipped, NaN becomes 0)."""
    x = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """Encode a uint8 image, (H, W) grey or (H, W, 3|4) RGB(A), as PNG bytes.

    Each scanline uses the "Up" filter (difference to the row above), which shrinks
    the mostly flat traversal mosaics well below what no filter gives.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"encode_png needs uint8 pixels, got {img.dtype}")
    channels = 1 if img.ndim == 2 else img.shape[2] if img.ndim == 3 else 0
    if channels not in _COLOR_TYPES or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"encode_png needs (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    h, w = img.shape[:2]
    rows = img.reshape(h, w * channels)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 wrap-around is what PNG's filter arithmetic expects
    filtered = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1)  # (H, 1 + W*C)
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI for an <img> or a plotly Image trace."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)
