"""The paper's traversal figure from a trial's final checkpoint (``traversals.npz``), and
the same figure at every evaluation (``traversals/step_*.npz``) as an animation.

Rows: the inputs, their reconstructions, then one row per latent ordered by what it tells
about the input (largest first; KL when that was not measured), each swept over the
prior's standard deviations. Latent rows are labelled with their information, their KL
and what they code by the switch-on rule (``analysis.switch_on``), read from the trial's
rows: the same labels as the activation figure, two factors where a latent tells about
both comparably (``posY + scale``). The mosaic is drawn as one small PNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis import switch_on as so
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
    latents: list[tuple[int, float, str]]  # (latent, KL nats, label) per latent row


def traversal_data(
    study: Study,
    trial_id: str,
    max_latents: int | None = None,
    active_nats: float = so.ACTIVE_NATS,
) -> TraversalData | None:
    """The mosaic of one trial, or None when its final checkpoint has no traversals.

    Labels come from the switch-on rule over the trial's rows when they carry the
    information columns, else from the checkpoint's own ``factor`` array."""
    arrays = study.traversals(trial_id)
    if arrays is None:
        return None
    curve = so.trial_curve(study.curves, trial_id)
    table = so.latent_switch_on(curve, active_nats) if so.has_information(curve) else None
    return traversal_mosaic(arrays, trial_id, max_latents, table, active_nats)


def traversal_mosaic(
    arrays: dict[str, np.ndarray],
    trial_id: str = "",
    max_latents: int | None = None,
    latents: pd.DataFrame | None = None,
    active_nats: float = so.ACTIVE_NATS,
    latent_order: list[int] | None = None,
) -> TraversalData:
    """Contract arrays (see ``analysis.contract.TRAVERSAL_ARRAYS``) -> one labelled mosaic.

    ``latents``: the trial's ``switch_on.latent_switch_on`` table, whose activity, final
    factor (with a comparable second one, and the one it opened on where that differs:
    ``switch_on.code_label``) and final information label the rows (else the arrays'
    ``factor`` and ``info``).
    ``latent_order``: latent indices in the row order wanted (else most informative
    first)."""
    inputs = np.asarray(arrays["inputs"], np.float32)  # (n, H, W)
    recons = np.asarray(arrays["reconstructions"], np.float32)  # (n, H, W)
    trav = np.asarray(arrays["traversals"], np.float32)  # (d, s, H, W)
    kl = np.asarray(arrays["kl"], np.float64)  # (d,)
    index = np.asarray(arrays["latent_index"]).astype(int)  # (d,)
    factor = [str(f) for f in np.asarray(arrays["factor"]).tolist()]  # (d,)
    info = np.asarray(arrays["info"], np.float64) if "info" in arrays else np.full(len(kl), np.nan)
    active: list[bool | None] = [None] * len(kl)
    if latents is not None and len(latents):
        by = latents.set_index("latent")
        for r, z in enumerate(index):
            if z in by.index:
                factor[r] = so.code_label(by.loc[z])
                info[r] = by.at[z, "final_info"]
                active[r] = bool(by.at[z, "active"])
    for r in range(len(kl)):  # a checkpoint without rows: activity from its own info
        if active[r] is None and np.isfinite(info[r]):
            active[r] = bool(info[r] >= active_nats)
    # most informative first; KL orders rows only when information was not measured
    key = np.where(np.isnan(info), -np.inf, info)
    order = np.lexsort((-kl, -key))[:max_latents]
    if latent_order is not None:  # a fixed order (the frames of an animation)
        row_of = {int(z): r for r, z in enumerate(index)}
        order = np.array([row_of[z] for z in latent_order if z in row_of], dtype=int)
    size = int(inputs.shape[-1]) if inputs.size else int(trav.shape[-1])
    rows = [inputs, recons, *[trav[r] for r in order]]
    cols = max(len(r) for r in rows)
    cell = size + GAP
    mosaic = np.full((len(rows) * cell - GAP, cols * cell - GAP), GAP_VALUE, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(to_uint8(row)):
            mosaic[i * cell : i * cell + size, j * cell : j * cell + size] = img
    labels = ["inputs", "reconstructions"]
    latent_rows = []
    for r in order:
        what = {False: "inactive", True: factor[r] or "no single factor"}.get(active[r], "—")
        what = factor[r] if active[r] is None and factor[r] else what
        tells = f"I={info[r]:.2f} · " if np.isfinite(info[r]) else ""
        labels.append(f"z{index[r]} · {what} · {tells}KL={kl[r]:.2f} nats")
        latent_rows.append((int(index[r]), float(kl[r]), what))
    values = np.asarray(arrays["values"], np.float64)
    return TraversalData(trial_id, mosaic, size, labels, values, latent_rows)


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


# ---- traversals over training: one frame per evaluation ---------------------------------

MAX_FRAMES = 40  # evaluations shown (evenly spaced, the last always): the HTML stays small


@dataclass
class TraversalAnimation:
    trial_id: str
    steps: list[int]
    C: list[float]  # the capacity at each frame's step (NaN for the beta objective)
    frames: list[TraversalData]  # rows in one fixed order: the final frame's


def traversal_animation_data(
    study: Study, trial_id: str, active_nats: float = so.ACTIVE_NATS
) -> TraversalAnimation | None:
    """The traversal snapshot of every evaluation of a trial (``traversals/step_*.npz``),
    rows in the final snapshot's order, each labelled with that step's information, KL
    and factor (the snapshot's own switch-on labels: what was known then); None when the
    trial has fewer than two."""
    found = study.traversal_steps(trial_id)
    if len(found) < 2:
        return None
    if len(found) > MAX_FRAMES:
        keep = np.unique(np.linspace(0, len(found) - 1, MAX_FRAMES).round().astype(int))
        found = [found[i] for i in keep]
    loaded = [(step, a) for step, path in found if (a := study.traversal_snapshot(path))]
    if len(loaded) < 2:
        return None
    final = traversal_mosaic(loaded[-1][1], trial_id, active_nats=active_nats)
    order = [z for z, _, _ in final.latents]
    frames = [
        traversal_mosaic(a, trial_id, active_nats=active_nats, latent_order=order)
        for _, a in loaded
    ]
    curve = so.trial_curve(study.curves, trial_id)
    by_step = curve.set_index("step")["C"] if "C" in curve else pd.Series(dtype=float)
    cs = [float(by_step.get(step, np.nan)) for step, _ in loaded]
    return TraversalAnimation(trial_id, [s for s, _ in loaded], cs, frames)


def plot_traversal_animation(data: TraversalAnimation, scale: float = 0.6) -> go.Figure:
    """The traversal mosaic at each evaluation as Plotly frames, with a slider over the
    steps and a play button; the rows' labels change with the frame."""
    first = data.frames[0]
    fig = plot_traversals(first, scale)

    def label(i: int) -> str:
        c = data.C[i]
        return f"step {data.steps[i]:,}" + (f" · C={c:.2f} nats" if np.isfinite(c) else "")

    cell = first.size + GAP
    centers = (np.arange(len(first.row_labels)) * cell + first.size / 2).tolist()
    fig.frames = [
        go.Frame(
            data=[go.Image(source=data_uri(encode_png(f.mosaic)), hoverinfo="skip")],
            layout={"yaxis": {"tickvals": centers, "ticktext": f.row_labels}},
            name=str(step),
        )
        for step, f in zip(data.steps, data.frames)
    ]
    fig.update_layout(
        title=f"Traversals over training, trial {data.trial_id}: {label(0)}",
        sliders=[
            {
                "active": 0,
                "currentvalue": {"visible": False},
                "pad": {"t": 10},
                "steps": [
                    {
                        "label": f"{step:,}",
                        "method": "animate",
                        "args": [
                            [str(step)],
                            {
                                "mode": "immediate",
                                "frame": {"duration": 0, "redraw": True},
                                "transition": {"duration": 0},
                            },
                        ],
                    }
                    for step in data.steps
                ],
            }
        ],
        updatemenus=[
            {
                "type": "buttons",
                "showactive": False,
                "x": 0,
                "y": -0.02,
                "xanchor": "right",
                "yanchor": "top",
                "buttons": [
                    {
                        "label": "play",
                        "method": "animate",
                        "args": [
                            None,
                            {"frame": {"duration": 600, "redraw": True}, "fromcurrent": True},
                        ],
                    }
                ],
            }
        ],
    )
    for frame, i in zip(fig.frames, range(len(data.steps))):
        frame.layout.title = {
            "text": f"Traversals over training, trial {data.trial_id}: {label(i)}"
        }
    fig.update_layout(height=fig.layout.height + 90, margin={"b": 90})
    return fig
