"""dSprites datasets: official index order, the .npz loader and its errors, features."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from analysis.contract import MEAN_IMAGE_RECON
from trainables.data import (
    DataError,
    NpzDSprites,
    ProceduralDSprites,
    factor_features,
    factors_of,
    index_of,
    load_dataset,
)
from trainables.render import render

SMALL = (3, 2, 4, 3, 5)  # a small grid of the official layout


def write_npz(path, sizes=SMALL, **changes):
    """A file laid out like the official one: every combination once, posY fastest."""
    classes = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), axis=1)
    classes = np.concatenate([np.zeros((len(classes), 1), np.int64), classes], axis=1)
    imgs = render(torch.from_numpy(classes[:, 1:])).numpy().astype(np.uint8)
    arrays = {
        "imgs": imgs,
        "latents_classes": classes,
        "latents_values": classes.astype(np.float64),
        "metadata": np.array(pickle.dumps({"description": "test"}), dtype=object),
    }
    arrays.update(changes)
    np.savez(path, **arrays)
    return imgs, classes


def test_official_index_order_round_trips():
    idx = torch.tensor([0, 1, 32, 1024, 40 * 1024, 737_279])
    f = factors_of(idx)
    assert f[1].tolist() == [0, 0, 0, 0, 1]  # posY varies fastest
    assert f[2].tolist() == [0, 0, 0, 1, 0]
    assert f[3].tolist() == [0, 0, 1, 0, 0]
    assert f[-1].tolist() == [2, 5, 39, 31, 31]
    assert torch.equal(index_of(f), idx)


def test_loader_reads_a_file_of_the_official_layout(tmp_path):
    imgs, classes = write_npz(tmp_path / "d.npz")
    data = load_dataset(str(tmp_path / "d.npz"))
    assert isinstance(data, NpzDSprites)
    assert data.factor_sizes == SMALL and data.num_images == len(imgs)
    rng = np.random.default_rng(0)
    f = data.sample_factors(50, rng)
    assert f.shape == (50, 5) and (f < np.array(SMALL)).all()
    got = data.observations(f)
    want = imgs[[int(np.flatnonzero((classes[:, 1:] == row).all(1))[0]) for row in f]]
    assert got.shape == (50, 1, 64, 64)
    assert np.array_equal(got[:, 0].numpy(), want)
    gen = torch.Generator().manual_seed(0)
    idx = data.sample_indices(16, gen)
    assert torch.equal(data.images_at(idx)[:, 0].to(torch.uint8), torch.from_numpy(imgs)[idx])


def test_procedural_dataset_matches_the_renderer():
    data = load_dataset("procedural")
    assert isinstance(data, ProceduralDSprites) and data.num_images == 737_280
    f = data.sample_factors(8, np.random.default_rng(1))
    assert torch.equal(data.observations(f)[:, 0], render(torch.from_numpy(f)))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"not a zip at all"), "cannot read it"),
        (lambda p: np.savez(p, other=np.zeros(3)), "no \\['imgs', 'latents_classes'\\]"),
        (lambda p: write_npz(p, imgs=np.zeros((5, 32, 32), np.uint8)), "imgs has shape"),
        (lambda p: write_npz(p, latents_classes=np.zeros((360, 6), np.int64)), "official order"),
        (lambda p: write_npz(p, imgs=np.full((360, 64, 64), 7, np.uint8)), "uint8 in"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path, make, match):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(str(path))
    assert str(path) in str(e.value)


def test_factor_features_encode_the_ground_truth():
    f = torch.tensor([[0, 0, 0, 0, 31], [2, 5, 10, 31, 0]])
    x = factor_features(f)
    assert x.shape == (2, 8)
    assert x[0, :3].tolist() == [1, 0, 0] and x[1, :3].tolist() == [0, 0, 1]
    assert x[0, 3].item() == -1 and x[1, 3].item() == 1  # scale in [-1, 1]
    assert x[0, 4].item() == pytest.approx(0) and x[0, 5].item() == pytest.approx(1)  # sin, cos
    assert x[0, 6:].tolist() == [-1, 1] and x[1, 6:].tolist() == [1, -1]


def test_mean_image_baseline_matches_the_renderer():
    # the reconstruction of a model that predicts the mean image: the summed entropy of the
    # pixels' means. The contract's figure is over all 737,280 images; 16,384 uniform
    # samples estimate it a little low (the entropy of a sample mean is biased down).
    data = ProceduralDSprites("cpu")
    rng = np.random.default_rng(0)
    factors = data.sample_factors(16_384, rng)
    chunks = (factors[i : i + 4096] for i in range(0, 16_384, 4096))
    total = sum(data.observations(f)[:, 0].double().sum(0) for f in chunks)
    p = (total / 16_384).clamp(1e-12, 1 - 1e-12)
    nats = float(-(p * p.log() + (1 - p) * (1 - p).log()).sum())
    assert MEAN_IMAGE_RECON - 1.5 < nats < MEAN_IMAGE_RECON + 0.3
