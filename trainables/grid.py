"""The procedural dSprites grid rendered once, bit-packed, and cached on disk.

A training batch is then a gather of 64 rows of 512 bytes and an unpack, instead of
~90 small rendering kernels: on a CPU, ``betastudy bench data`` measures both. The
grid is 737,280 images x 64 x 64 bits = 360 MiB, a file under the cache directory
(``$BETASTUDY_CACHE``, else ``$XDG_CACHE_HOME/betastudy``, else ``~/.cache/betastudy``)
whose name carries a hash of the renderer's source, so a change to the renderer builds
a new grid instead of serving stale images. The first trial on a machine builds it
(about half a minute on one core, with a progress bar) under a file lock; every later
trial and run maps the same file, so trials on one machine share one copy in the
page cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from analysis.contract import FACTOR_SIZES
from trainables import render

NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737,280
ROW_BYTES = render.IMAGE_SIZE * render.IMAGE_SIZE // 8  # 512 bytes per packed image
CHUNK = 256  # images rendered per call while building
_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)  # unpack: np.packbits' bit 7 first
_SHIFTS_ON: dict[torch.device, torch.Tensor] = {}


def _shifts(device: torch.device) -> torch.Tensor:
    """The shifts on ``device``, copied there once: a host-to-device copy every batch would
    wait on the stream, and is not allowed while a CUDA graph is captured (the first
    call comes from an eager warm-up step)."""
    if device not in _SHIFTS_ON:
        _SHIFTS_ON[device] = _SHIFTS.to(device)
    return _SHIFTS_ON[device]


def cache_dir() -> Path:
    """Where cached data lives: $BETASTUDY_CACHE, $XDG_CACHE_HOME/betastudy or ~/.cache."""
    if os.environ.get("BETASTUDY_CACHE"):
        return Path(os.environ["BETASTUDY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "betastudy"


def renderer_version() -> str:
    """A hash of the renderer's source (the shapes and the index order the grid is laid
    out in, ``render.factors_of``): images change only when it does."""
    return hashlib.sha256(Path(render.__file__).read_bytes()).hexdigest()[:12]


def grid_path(directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"dsprites-procedural-{renderer_version()}.npy"


def pack(images: torch.Tensor) -> torch.Tensor:
    """(B, 64, 64) images in {0, 1} -> (B, 512) uint8 on the CPU, 8 pixels a byte,
    row-major, bit 7 first (np.packbits)."""
    flat = images.reshape(images.shape[0], -1).to("cpu", torch.uint8).numpy()
    return torch.from_numpy(np.packbits(flat, axis=1))


def unpack(packed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 512) uint8 -> (B, 1, 64, 64) images in {0, 1} of ``dtype``: the inverse of pack."""
    bits = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    side = render.IMAGE_SIZE
    return bits.view(packed.shape[0], 1, side, side).to(dtype)


def build(path: Path, progress: bool = True) -> None:
    """Render every image of the grid, pack it and write ``path`` atomically."""
    from tqdm import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(NUM_IMAGES, ROW_BYTES))
    # A bar on a terminal; two plain lines where stderr is a log (a Ray worker's, which
    # the study driver prints: a bar's carriage returns would flood it)
    tty = progress and sys.stderr.isatty()
    if progress and not tty:
        print(f"rendering the dSprites grid once into {path} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    bar = tqdm(
        total=NUM_IMAGES,
        desc="rendering the dSprites grid once",
        unit="img",
        unit_scale=True,
        disable=not tty,
        file=sys.stderr,
    )
    for start in range(0, NUM_IMAGES, CHUNK):
        idx = torch.arange(start, min(start + CHUNK, NUM_IMAGES))
        images = render.render(render.factors_of(idx), torch.uint8)
        out[start : start + len(idx)] = pack(images).numpy()
        bar.update(len(idx))
    bar.close()
    if progress and not tty:
        print(f"rendered in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    out.flush()
    del out
    os.replace(tmp, path)  # atomic: a reader never maps half a grid


def wanted(mode: str, images: int) -> bool:
    """Whether a trial serves its batches from the cached grid: ``on`` always, ``off``
    never, ``auto`` when the grid is on disk already or the trial renders at least as
    many images as the grid holds (then building it costs less than rendering)."""
    if mode == "auto":
        return images >= NUM_IMAGES or grid_path().is_file()
    return mode == "on"


def _map(path: Path) -> np.ndarray:
    """The .npy file's array, mapped copy-on-write. Where the system can (Linux), its
    pages are mapped in up front: one sequential read of the file (about 0.2 s from the
    page cache) instead of a page fault at the first touch of each page, which a
    training run meets at nearly every row it draws (28 faults a step at batch 64)."""
    header = np.load(path, mmap_mode="r")  # the header: shape, dtype, data offset
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if not populate or not header.flags.c_contiguous:
        return np.load(path, mmap_mode="c")
    with open(path, "rb") as f:
        flags, prot = mmap.MAP_PRIVATE | populate, mmap.PROT_READ | mmap.PROT_WRITE
        buf = mmap.mmap(f.fileno(), 0, flags=flags, prot=prot)
    return np.frombuffer(buf, header.dtype, header.size, header.offset).reshape(header.shape)


def load(directory: Path | None = None, progress: bool = True) -> np.ndarray:
    """The packed grid (737,280, 512) uint8, memory-mapped; built first if missing.

    Concurrent trials wait on a lock while one of them builds it. The map is
    copy-on-write, so torch can wrap it without a copy and nothing writes the file.
    """
    from trainables.config import DataError

    path = grid_path(directory)
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_name(path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                if not path.is_file():  # another trial may have built it while we waited
                    build(path, progress)
        grid = _map(path)
    except (OSError, ValueError) as e:
        raise DataError(
            f"dSprites grid cache {path}: {e.strerror if isinstance(e, OSError) else e}; "
            "set BETASTUDY_CACHE to a writable directory, delete a damaged file, or "
            "render every batch with prerender=off"
        ) from e
    if grid.shape != (NUM_IMAGES, ROW_BYTES) or grid.dtype != np.uint8:
        raise DataError(f"{path}: not a packed dSprites grid; delete it and it is built again")
    return grid
