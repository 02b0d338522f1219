"""Synthetic study directories in Ray Tune's on-disk layout, for tests and `bench report`.

The numbers follow the paper's story, not a real model: C climbs linearly to c_max,
latents switch on in the order posX, posY, scale, orientation, shape at capacities a
little apart, reconstruction falls as KL grows and MIG peaks at a middling c_max. Some
trials fail (``error.txt``), some are still running (no final row), some never started.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.contract import (
    CONFIG_FILE,
    ERROR,
    ERROR_FILE,
    FACTOR_NAMES,
    FACTOR_SIZES,
    INFO_X,
    METRICS,
    PARAMS_FILE,
    PENDING,
    RESULT_FILE,
    RUNNING,
    STUDY_SPEC_FILE,
    TERMINATED,
    TRAVERSALS_FILE,
    TRIALS_FILE,
    factor_info_key,
    info_key,
    kl_key,
    latent_factor_info_key,
    mean_var_key,
    mi_key,
    traversal_snapshot,
)

# Capacity (nats) at which each factor's latent starts to open, and its share of KL.
_OPEN_AT = {"posX": 0.5, "posY": 0.7, "scale": 5.0, "orientation": 10.0, "shape": 14.0}
_SHARE = {"posX": 0.3, "posY": 0.3, "scale": 0.2, "orientation": 0.12, "shape": 0.08}

_BASE_CONFIG = {
    "objective": "capacity",
    "beta": 4.0,
    "gamma": 1000.0,
    "c_start": 0.0,
    "c_max": 25.0,
    "c_steps": 100_000,
    "c_schedule": "linear",
    "steps": 100_000,
    "batch_size": 64,
    "lr": 5e-4,
    "latent_dim": 10,
    "report_every": 100,
    "eval_every": 10_000,
    "seed": 0,
    "c_points": [],
    "channels": 32,
    "hidden": 256,
    "encoder": "image",
    "data": "procedural",
    "eval_fast": True,
    "checkpoint_every": 10_000,
    "device": "auto",
    "precision": "fp32",
    "compile": "none",
    "cuda_graph": False,
    "channels_last": True,
    "eval_points": -1,
    "probe_points": 1024,
    "grid_info_samples": 256,
    "grid_info_images": "auto",
    "prerender": "auto",
}


def write_synthetic_study(
    root: str | Path,
    n_trials: int = 24,
    *,
    steps: int = 100_000,
    report_every: int = 100,
    eval_every: int = 10_000,
    latent_dim: int = 10,
    seeds: int = 2,
    failed: int = 1,
    running: int = 1,
    pending: int = 1,
    traversals: bool = True,
    trials_json: bool = True,
    name: str = "synthetic",
) -> Path:
    """Write a study of ``n_trials`` trials under ``root/name`` and return its directory.

    Configurations are a grid over gamma x c_max with ``seeds`` seeds each; the last
    ``failed + running + pending`` trials are a failure, partial runs and unstarted ones.
    """
    rng = np.random.default_rng(0)
    study = Path(root) / name
    study.mkdir(parents=True, exist_ok=True)
    (study / STUDY_SPEC_FILE).write_text(
        f"name: {name}\nsearch:\n  mode: grid\nseeds: {seeds}\n# synthetic study\n"
    )
    # a grid gamma x lr x c_max, c_max as fine as the trial count allows
    n_configs = max(1, -(-n_trials // seeds))
    gammas, lrs = [100.0, 300.0, 1000.0, 3000.0], [2e-4, 5e-4, 1e-3]
    n_c = max(1, -(-n_configs // (len(gammas) * len(lrs))))
    c_maxes = np.round(np.linspace(5.0, 50.0, n_c), 2)
    npz = _traversal_bytes(latent_dim) if traversals else b""
    entries = []
    for i in range(n_trials):
        cfg_i, seed = divmod(i, seeds)
        g, rest = cfg_i % len(gammas), cfg_i // len(gammas)
        config = dict(
            _BASE_CONFIG,
            gamma=gammas[g],
            lr=lrs[rest % len(lrs)],
            c_max=float(c_maxes[(rest // len(lrs)) % len(c_maxes)]),
            seed=seed,
            steps=steps,
            c_steps=steps,
            report_every=report_every,
            eval_every=eval_every,
            latent_dim=latent_dim,
        )
        kind = "ok"
        if i >= n_trials - pending:
            kind = "pending"
        elif i >= n_trials - pending - running:
            kind = "running"
        elif i >= n_trials - pending - running - failed:
            kind = "failed"
        trial_id = f"a1b2c_{i:05d}"
        rel = f"train_{trial_id}_{i}_c_max={config['c_max']},gamma={config['gamma']}"
        tdir = study / rel
        tdir.mkdir(exist_ok=True)
        (tdir / PARAMS_FILE).write_text(json.dumps(config, indent=2))
        status, error = (
            {"ok": TERMINATED, "running": RUNNING, "pending": PENDING}.get(kind, ERROR),
            None,
        )
        if kind != "pending":
            stop = steps if kind == "ok" else steps // 2
            lines = _result_lines(trial_id, config, stop, rng)
            (tdir / RESULT_FILE).write_text("\n".join(lines) + "\n")
            if kind == "ok" and traversals:
                ckpt = tdir / "checkpoint_000000"
                ckpt.mkdir(exist_ok=True)
                (ckpt / CONFIG_FILE).write_text(json.dumps(config, indent=2))
                (ckpt / TRAVERSALS_FILE).write_bytes(npz)
                for step in range(eval_every, steps + 1, eval_every or steps + 1):
                    snap = tdir / traversal_snapshot(step)  # one per evaluation, KL growing
                    snap.parent.mkdir(exist_ok=True)
                    snap.write_bytes(_traversal_bytes(latent_dim, grown=step / steps))
        if kind == "failed":
            error = f"TrainingDiverged: non-finite loss at step {stop + report_every}"
            (tdir / ERROR_FILE).write_text(
                "Failure # 1 (occurred at 2025-01-01_00-00-00)\n"
                "Traceback (most recent call last):\n  ...\n"
                f"trainables.trainer.{error}\n"
            )
        entries.append(
            {"trial_id": trial_id, "path": rel, "status": status, "error": error, "config": config}
        )
    if trials_json:
        (study / TRIALS_FILE).write_text(json.dumps(entries, indent=1))
    return study


def _result_lines(trial_id: str, config: dict, stop: int, rng: np.random.Generator) -> list[str]:
    """Ray's result.json for one trial: contract rows plus Ray's own keys and the config."""
    d, c_max, gamma = config["latent_dim"], config["c_max"], config["gamma"]
    every, evals = config["report_every"], config["eval_every"]
    step = np.arange(every, stop + 1, every)
    cap = c_max * np.minimum(step / config["c_steps"], 1.0)  # (T,) linear C schedule
    jitter = rng.normal(0.0, 0.3, len(FACTOR_NAMES))  # per-trial shift of switch-on C
    if rng.random() < 0.15:  # now and then orientation opens before scale
        jitter[2], jitter[3] = 6.0, -6.0
    info = np.abs(rng.normal(0.0, 0.005, (len(step), d)))  # (T, d) inactive latents ~0
    order = ("posX", "posY", "scale", "orientation", "shape")[:d]  # latent j codes order[j]
    for j, f in enumerate(order):
        info[:, j] += _SHARE[f] * 2.0 * np.maximum(cap - _OPEN_AT[f] - jitter[j], 0.0)
    kl = info + 0.2  # every latent also spends KL on a mean offset that tells nothing
    total = kl.sum(1)
    entropy = dict(zip(FACTOR_NAMES, np.log(FACTOR_SIZES), strict=True))
    recon = 25.0 + 400.0 * np.exp(-total / 8.0) + rng.normal(0.0, 0.5, len(step))
    mig_peak = 0.45 * np.exp(-((c_max - 25.0) ** 2) / 300.0) * (0.7 + 0.3 * (gamma >= 1000))
    mig_peak *= 1.0 - 0.2 * abs(np.log10(config["lr"] / 5e-4))
    config_json = json.dumps(config)
    lines = []
    for t in range(len(step)):
        row = {
            "step": int(step[t]),
            "images_seen": int(step[t]) * config["batch_size"],
            "recon": float(recon[t]),
            "kl": float(total[t]),
            "C": float(cap[t]),
            "loss": float(recon[t] + gamma * abs(total[t] - cap[t])),
            "images_per_s": 5000.0,
        }
        row.update({kl_key(i): float(kl[t, i]) for i in range(d)})
        row.update({mean_var_key(i): float(f"{info[t, i]:.4g}") for i in range(d)})
        row.update({info_key(i): float(f"{info[t, i]:.4g}") for i in range(d)})
        row[INFO_X] = float(f"{min(info[t].sum(), np.log(512)):.4g}")
        for f in FACTOR_NAMES:  # latent j tells 70% of its information about order[j]
            told = [0.7 * info[t, i] if i < len(order) and order[i] == f else 0.0 for i in range(d)]
            row.update({latent_factor_info_key(i, f): round(v, 4) for i, v in enumerate(told)})
            row[factor_info_key(f)] = round(float(min(sum(told), entropy[f])), 4)
        if (evals and step[t] % evals == 0) or t == len(step) - 1:
            frac = min(step[t] / config["steps"], 1.0)
            for m in METRICS:
                row[m] = float(np.clip(mig_peak * frac + rng.normal(0.0, 0.02), 0.0, 1.0))
            for i in range(d):
                for f in FACTOR_NAMES:
                    on = i < len(order) and order[i] == f and kl[t, i] > 0.5
                    row[mi_key(i, f)] = round(0.6 if on else float(abs(rng.normal(0, 0.01))), 4)
        ray = (
            f', "done": {"true" if step[t] >= config["steps"] else "false"}, '
            f'"training_iteration": {t + 1}, "trial_id": "{trial_id}", '
            f'"time_total_s": {0.2 * (t + 1):.3f}, "hostname": "node", "config": {config_json}}}'
        )
        lines.append(json.dumps(row)[:-1] + ray)
    return lines


def _traversal_bytes(d: int, n: int = 8, s: int = 10, size: int = 64, grown: float = 1.0) -> bytes:
    """An npz in the contract's TRAVERSAL_ARRAYS layout: squares that move, grow, turn;
    ``grown`` < 1: part-way through training (KL that much of the final)."""
    import io

    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)  # (H, W) in [0, 1]
    values = np.linspace(-2.0, 2.0, s)

    def sprite(x: float, y: float, scale: float, angle: float) -> np.ndarray:
        u, v = xx - x, yy - y
        c, sn = np.cos(angle), np.sin(angle)
        ru, rv = c * u + sn * v, -sn * u + c * v
        return ((np.abs(ru) < scale) & (np.abs(rv) < scale)).astype(np.float32)

    rng = np.random.default_rng(1)
    inputs = np.stack([sprite(*rng.uniform(0.3, 0.7, 2), 0.1, 0.0) for _ in range(n)])
    recons = np.clip(inputs * 0.8 + 0.05, 0, 1).astype(np.float32)
    kl = np.array([4.0, 3.8, 2.5, 1.5, 1.0] + [0.01] * max(0, d - 5))[:d] * grown
    factor = np.array(["posX", "posY", "scale", "orientation", "shape"] + [""] * d)[:d]
    rows = []
    for r in range(d):
        t = (values + 2.0) / 4.0  # (s,) in [0, 1]
        x = 0.3 + 0.4 * t if factor[r] == "posX" else np.full(s, 0.5)
        y = 0.3 + 0.4 * t if factor[r] == "posY" else np.full(s, 0.5)
        sc = 0.05 + 0.1 * t if factor[r] == "scale" else np.full(s, 0.1)
        an = np.pi / 2 * t if factor[r] in ("orientation", "shape") else np.zeros(s)
        rows.append(np.stack([sprite(x[k], y[k], sc[k], an[k]) for k in range(s)]))
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        inputs=inputs,
        reconstructions=recons,
        traversals=np.stack(rows),
        values=values.astype(np.float32),
        latent_index=np.arange(d),
        kl=kl.astype(np.float32),
        factor=factor,
    )
    return buf.getvalue()
