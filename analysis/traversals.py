"""The paper's traversal figure from a trial's final checkpoint (``traversals.npz``).

Rows: the inputs, their reconstructions, then one row per latent ordered by KL (largest
first), each swept over the prior's standard deviations; every row is labelled, latent
rows with their KL and the factor they code. The mosaic is drawn as one small PNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from analysis.load import Study
from analysis.png import data_uri, encode_png, to_uint8

GAP = 2  # px between images
GAP_VALUE = 90  # grey of the gaps (images are white sprites on black)


@dataclass
class TraversalData:
    trial_id: str
    mosaic: np.ndarray  # (rows * (size + GAP) - GAP, cols * (size + GAP) - GAP) uint8
    size: int  # px of one image
    row_labels: list[str]  # one per mosaic row, top to bottom
    values: np.ndarray  # (s,) swept values, prior standard deviations
    latents: list[tuple[int, float, str]]  # (latent, KL nats, factor or "") per latent row


def traversal_data(
    study: Study, trial_id: str, max_latents: int | None = None
) -> TraversalData | None:
    """The mosaic of one trial, or None when its final checkpoint has no traversals."""
    arrays = study.traversals(trial_id)
    return None if arrays is None else traversal_mosaic(arrays, trial_id, max_latents)


def traversal_mosaic(
    arrays: dict[str, np.ndarray], trial_id: str = "", max_latents: int | None = None
) -> TraversalData:
    """Contract arrays (see ``analysis.contract.TRAVERSAL_ARRAYS``) -> one labelled mosaic."""
    inputs = np.asarray(arrays["inputs"], np.float32)  # (n, H, W)
    recons = np.asarray(arrays["reconstructions"], np.float32)  # (n, H, W)
    trav = np.asarray(arrays["traversals"], np.float32)  # (d, s, H, W)
    kl = np.asarray(arrays["kl"], np.float64)  # (d,)
    index = np.asarray(arrays["latent_index"]).astype(int)  # (d,)
    factor = [str(f) for f in np.asarray(arrays["factor"]).tolist()]  # (d,)
    order = np.argsort(-kl, kind="stable")[:max_latents]  # largest KL first
    size = int(inputs.shape[-1]) if inputs.size else int(trav.shape[-1])
    rows = [inputs, recons, *[trav[r] for r in order]]
    cols = max(len(r) for r in rows)
    cell = size + GAP
    mosaic = np.full((len(rows) * cell - GAP, cols * cell - GAP), GAP_VALUE, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(to_uint8(row)):
            mosaic[i * cell : i * cell + size, j * cell : j * cell + size] = img
    latents = [(int(index[r]), float(kl[r]), factor[r]) for r in order]
    labels = ["inputs", "reconstructions"] + [
        f"z{z} · {k:.2f} nats · {f or '—'}" for z, k, f in latents
    ]
    values = np.asarray(arrays["values"], np.float64)
    return TraversalData(trial_id, mosaic, size, labels, values, latents)


def plot_traversals(data: TraversalData, scale: float = 0.6) -> go.Figure:
    """The mosaic as one PNG-backed Image trace, rows labelled on the y axis."""
    cell = data.size + GAP
    n_rows = len(data.row_labels)
    n_cols = (data.mosaic.shape[1] + GAP) // cell
    centers = np.arange(n_rows) * cell + data.size / 2
    fig = go.Figure(go.Image(source=data_uri(encode_png(data.mosaic)), hoverinfo="skip"))
    fig.update_yaxes(
        tickvals=centers.tolist(), ticktext=data.row_labels, showgrid=False, zeroline=False
    )
    fig.update_xaxes(
        tickvals=(np.arange(min(n_cols, len(data.values))) * cell + data.size / 2).tolist(),
        ticktext=[f"{v:+.1f}σ" for v in data.values[:n_cols]],
        showgrid=False,
        zeroline=False,
        side="top",
    )
    h, w = data.mosaic.shape
    fig.update_layout(
        title=f"Traversals, trial {data.trial_id} (final checkpoint)",
        width=int(w * scale) + 260,
        height=int(h * scale) + 120,
        margin={"l": 230, "r": 20, "t": 90, "b": 20},
    )
    return fig
