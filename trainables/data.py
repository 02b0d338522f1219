"""dSprites as a ground-truth dataset: procedural (no download) or the official .npz.

Both implement the interface the metrics use (``analysis.metrics.GroundTruthData``):
``factor_names``, ``factor_sizes``, ``sample_factors(n, rng)`` and
``observations(factors)``; and the one the trainer uses: ``images(factors)`` and
``sample_indices(n, generator)`` on the device, so a training batch never leaves it.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from analysis.contract import FACTOR_NAMES, FACTOR_SIZES
from trainables import grid, render
from trainables.config import DataError
from trainables.render import factors_of, index_of  # the official order; importable here too

OFFICIAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"


def factor_features(factors: torch.Tensor, sizes: tuple[int, ...] = FACTOR_SIZES) -> torch.Tensor:
    """(B, 5) indices -> (B, 8) encoder input: one-hot shape, scale, sin/cos angle, posX, posY.

    Continuous factors are mapped to [-1, 1] (scale, positions) or the unit circle
    (orientation), so the factor encoder sees them on comparable scales.
    """
    f = factors.long()
    # one-hot by comparison: F.one_hot checks its range on the host (a sync per call)
    shape = (f[:, :1] == torch.arange(3, device=f.device)).float()
    last = [1.0 / max(n - 1, 1) for n in sizes[1:]]  # python scalars: no host-to-device copy
    rel = torch.stack([f[:, i + 1].float() * last[i] for i in range(4)], dim=1)  # (B, 4) in [0, 1]
    angle = rel[:, 1] * 2 * math.pi  # the last orientation is 2*pi, the same angle as 0
    cols = [rel[:, 0] * 2 - 1, torch.sin(angle), torch.cos(angle), rel[:, 2] * 2 - 1]
    cols.append(rel[:, 3] * 2 - 1)
    return torch.cat([shape, torch.stack(cols, dim=-1)], dim=-1)


FACTOR_FEATURES = 8  # width of factor_features


class DSprites:
    """Ground-truth dSprites on ``device``; subclasses supply ``images``."""

    factor_names: tuple[str, ...] = FACTOR_NAMES

    def __init__(
        self, device: torch.device | str = "cpu", sizes: tuple[int, ...] = FACTOR_SIZES
    ) -> None:
        self.device = torch.device(device)
        self.factor_sizes = tuple(int(n) for n in sizes)
        self.num_images = math.prod(self.factor_sizes)

    def index_of(self, factors: torch.Tensor) -> torch.Tensor:
        return index_of(factors, self.factor_sizes)

    def factors_of(self, index: torch.Tensor) -> torch.Tensor:
        return factors_of(index, self.factor_sizes)

    def features(self, factors: torch.Tensor) -> torch.Tensor:
        """(B, 5) indices -> (B, 8) input of the factor encoder."""
        return factor_features(factors, self.factor_sizes)

    def images(self, factors: torch.Tensor) -> torch.Tensor:
        """(B, 5) factor indices on the device -> (B, 1, 64, 64) float images in {0, 1}."""
        raise NotImplementedError

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) official indices -> (B, 1, 64, 64) images."""
        return self.images(self.factors_of(index))

    def sample_indices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n official indices drawn uniformly with ``generator`` (on the device)."""
        return torch.randint(self.num_images, (n,), generator=generator, device=self.device)

    # -- the metrics' interface (numpy in, device tensors out) --

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 5) int64 factor indices drawn uniformly with a numpy Generator."""
        return np.stack([rng.integers(0, k, size=n) for k in self.factor_sizes], axis=1)

    def observations(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images for the given factor indices, on the device."""
        return self.images(torch.as_tensor(np.asarray(factors), device=self.device))


class ProceduralDSprites(DSprites):
    """Rendered by ``trainables.render`` on the dataset's device, batch by batch; or, with
    ``cached``, gathered from the bit-packed grid of ``trainables.grid`` (rendered once per
    machine and renderer version): one gather and an unpack instead of ~90 small kernels.
    The images are the same either way.
    """

    def __init__(self, device: torch.device | str = "cpu", cached: bool = False) -> None:
        super().__init__(device)
        self._packed: torch.Tensor | None = None
        if cached:
            self._packed = torch.from_numpy(grid.load()).to(self.device)  # (N, 512) uint8

    @property
    def cached(self) -> bool:
        return self._packed is not None

    def images(self, factors: torch.Tensor) -> torch.Tensor:
        if self._packed is not None:
            return self.images_at(self.index_of(factors))
        return render.render(factors).unsqueeze(1)

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        if self._packed is not None:
            return grid.unpack(self._packed.index_select(0, index))
        return self.images(self.factors_of(index))


class NpzDSprites(DSprites):
    """The official file, held on the device bit-packed (360 MiB for the full set).

    The factor grid is read from the file's ``latents_classes``, so a smaller file of
    the same layout (every combination once, posY fastest) loads too.
    """

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        imgs, sizes = load_npz(Path(path))
        super().__init__(device, sizes)
        self.path = Path(path)
        self._packed = grid.pack(torch.from_numpy(imgs)).to(self.device)  # (N, 512)

    def images(self, factors: torch.Tensor) -> torch.Tensor:
        return self.images_at(self.index_of(factors))

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        return grid.unpack(self._packed.index_select(0, index))


def load_npz(path: Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read and check the official .npz -> (imgs (N, 64, 64) uint8, factor sizes).

    Raises DataError naming the problem: missing, unreadable, or not the official layout.
    """
    if not path.is_file():
        raise DataError(
            f"data={path}: no such file; give the path of {OFFICIAL_FILE} "
            "or data=procedural to render dSprites without a download"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:  # metadata (pickled) is not read
            missing = {"imgs", "latents_classes"} - set(npz.files)
            if missing:
                raise DataError(f"data={path}: no {sorted(missing)} array; is it {OFFICIAL_FILE}?")
            imgs, classes = npz["imgs"], npz["latents_classes"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"data={path}: cannot read it as .npz ({e}); download it again") from e
    side = render.IMAGE_SIZE
    if imgs.ndim != 3 or imgs.shape[1:] != (side, side):
        raise DataError(f"data={path}: imgs has shape {imgs.shape}, expected (N, {side}, {side})")
    if classes.shape != (len(imgs), 6):
        raise DataError(
            f"data={path}: latents_classes has shape {classes.shape}, expected ({len(imgs)}, 6)"
        )
    if imgs.dtype != np.uint8 or imgs.max(initial=0) > 1:
        raise DataError(f"data={path}: imgs must be uint8 in {{0, 1}}, got {imgs.dtype}")
    sizes = tuple(int(n) for n in classes[:, 1:].max(axis=0) + 1)  # drop colour
    in_order = math.prod(sizes) == len(imgs) and np.array_equal(
        np.stack(np.unravel_index(np.arange(len(imgs)), sizes), axis=1), classes[:, 1:]
    )
    if not in_order:
        raise DataError(
            f"data={path}: latents_classes is not every factor combination in the official "
            "order (posY fastest); the file is corrupt or not dSprites"
        )
    return imgs, sizes


def load_dataset(data: str, device: torch.device | str = "cpu", cached: bool = False) -> DSprites:
    """``procedural`` -> ProceduralDSprites (``cached``: from the packed grid), anything else
    is the path of the official .npz."""
    if data == "procedural":
        return ProceduralDSprites(device, cached)
    return NpzDSprites(data, device)
