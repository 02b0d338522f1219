"""The PNG encoder (decoded back by hand) and the traversal mosaic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.png import data_uri, encode_png, to_uint8
from analysis.traversals import GAP, plot_traversals, traversal_mosaic


def _decode(png: bytes) -> tuple[np.ndarray, str]:
    """The pixels and mode of PNG bytes, read back by Pillow."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        return np.array(im), im.mode


@pytest.mark.parametrize("shape", [(7, 5), (4, 6, 3), (3, 2, 4), (1, 1)])
def test_png_round_trip(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    back, mode = _decode(encode_png(img))
    assert mode == {2: "L", 3: {3: "RGB", 4: "RGBA"}.get(shape[-1])}[len(shape)]
    np.testing.assert_array_equal(back, img)


def test_png_rejects_bad_input():
    with pytest.raises(TypeError):
        encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 2), np.uint8))


def test_to_uint8_and_data_uri():
    assert to_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])).tolist() == [
        0,
        0,
        128,
        255,
        255,
        0,
    ]
    assert data_uri(b"\x89PNG").startswith("data:image/png;base64,iVBORw")


def test_traversal_mosaic_rows_ordered_by_kl_without_information():
    size, d, s, n = 8, 3, 4, 2
    trav = np.zeros((d, s, size, size), np.float32)
    for r in range(d):
        trav[r] = (r + 1) / 4  # row r is a flat grey (r+1)/4
    arrays = {
        "inputs": np.ones((n, size, size), np.float32),
        "reconstructions": np.full((n, size, size), 0.5, np.float32),
        "traversals": trav,
        "values": np.linspace(-2, 2, s),
        "latent_index": np.array([4, 7, 1]),
        "kl": np.array([0.2, 3.0, 1.5]),
        "factor": np.array(["", "posX", "scale"]),
    }
    data = traversal_mosaic(arrays, "t")
    assert data.row_labels == [
        "inputs",
        "reconstructions",
        "z7 · posX · KL=3.00 nats",
        "z1 · scale · KL=1.50 nats",
        "z4 · — · KL=0.20 nats",
    ]
    cell = size + GAP
    assert data.mosaic.shape == (5 * cell - GAP, s * cell - GAP)
    assert data.mosaic[0, 0] == 255 and data.mosaic[cell, 0] == 128
    assert data.mosaic[2 * cell, 0] == to_uint8(np.array(0.5))  # z7 was traversal row 1
    assert data.mosaic[0, n * cell] == 90  # no third input: the gap grey fills the cell
    fig = plot_traversals(data)
    assert fig.data[0].source.startswith("data:image/png;base64,")
    assert list(fig.layout.yaxis.ticktext) == data.row_labels


def test_traversal_rows_by_information_labelled_by_the_switch_on_rule():
    size, d, s = 8, 3, 4
    arrays = {
        "inputs": np.ones((1, size, size), np.float32),
        "reconstructions": np.ones((1, size, size), np.float32),
        "traversals": np.zeros((d, s, size, size), np.float32),
        "values": np.linspace(-2, 2, s),
        "latent_index": np.array([0, 1, 2]),
        "kl": np.array([4.0, 2.0, 1.0]),  # z0: the most KL, all of it an offset
        "info": np.array([0.01, 1.9, 0.8]),
        "factor": np.array(["", "posX", "scale"]),
    }
    assert traversal_mosaic(arrays).row_labels[2:] == [
        "z1 · posX · I=1.90 · KL=2.00 nats",
        "z2 · scale · I=0.80 · KL=1.00 nats",
        "z0 · inactive · I=0.01 · KL=4.00 nats",
    ]
    # the trial's rows have the last word: z2 died by the end, z0 never opened, z1
    # opened on scale and codes posY in the final model
    table = pd.DataFrame(
        {
            "latent": [0, 1, 2],
            "active": [False, True, False],
            "factor": [None, "scale", None],
            "final_factor": [None, "posY", None],
            "final_info": [0.0, 2.1, 0.03],
        }
    )
    assert traversal_mosaic(arrays, latents=table).row_labels[2:] == [
        "z1 · posY (opened on scale) · I=2.10 · KL=2.00 nats",
        "z2 · inactive · I=0.03 · KL=1.00 nats",
        "z0 · inactive · I=0.00 · KL=4.00 nats",
    ]
