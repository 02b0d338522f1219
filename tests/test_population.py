"""The population trainer on CPU: each member computes what its solo trial computes."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.helpers import (
    KINDS,
    assert_rows_close,
    assert_weights_close,
    population_rows,
    returns,
    rows_of,
    small,
)
from trainables.config import ConfigError
from trainables.population import Population
from trainables.trainer import WARMUP_STEPS, Trainer, TrainingDiverged


@pytest.fixture
def no_metrics(monkeypatch):
    """Evaluations without the metric suite (an empty row update): these tests compare
    training, and each final evaluation would cost seconds; the member-equals-solo test
    keeps the real one."""
    monkeypatch.setattr("trainables.evaluate.evaluate_model", lambda *args, fast: {})


@pytest.mark.parametrize("forward,kinds", [("loop", list(KINDS)), ("vmap", ["beta", "piecewise"])])
def test_each_member_equals_its_solo_trial(forward, kinds):
    # vmap's grouped kernels sum in another order (1e-7 apart). At beta = 4 the encoder's
    # posterior collapses within these 30 steps, and Adam, which divides each gradient by
    # its own scale, turns those differences in its near-zero gradients into 1e-3 in the
    # weights (measured); a plain VAE's (beta = 1) stay within 3e-7.
    plain = {"beta": 1.0} if forward == "vmap" else {}
    cfgs = [small(steps=30, **{**KINDS[kind], **plain}) for kind in kinds]
    pop = Population(cfgs, forward=forward)
    rows = population_rows(pop)
    for i, cfg in enumerate(cfgs):
        solo = Trainer(cfg)
        solo_rows = rows_of(solo)
        assert_rows_close(rows[i], solo_rows)
        assert_weights_close(pop.members[i], solo)
        # the probe columns come from the member's own probe set and weights
        for a, b in zip(rows[i], solo_rows):
            assert a["info_x"] == pytest.approx(b["info_x"], abs=0.02)
        # a member's final row carries its evaluation, like a solo trial's
        assert "mig" in rows[i][-1] and np.isfinite(rows[i][-1]["recon"])


@pytest.mark.parametrize("encoder", ["image", "factors"])
def test_a_vmapped_population_encodes_every_members_probe_in_one_call(
    encoder, monkeypatch, no_metrics
):
    # the probe posteriors from the stacked weights, one vmapped encode a window, read
    # what each member's own encode reads (its probe set, its weights); the factor
    # encoder's exact column is still each member's own whole-grid calculation
    from trainables.probe import Probe

    cfgs = [
        small(encoder=encoder, steps=20, report_every=10, probe_points=96, **KINDS[k])
        for k in ("beta", "linear", "constant")
    ]
    calls = {"encode": 0}
    encode = Probe.encode

    def counted(self, enc):
        calls["encode"] += 1
        return encode(self, enc)

    monkeypatch.setattr(Probe, "encode", counted)
    rows = population_rows(Population(cfgs, forward="vmap"))
    assert calls["encode"] == 0  # no member encoded its probe set alone
    monkeypatch.setattr(Population, "_probe_all", lambda self, slots: {})
    alone = population_rows(Population(cfgs, forward="vmap"))
    assert calls["encode"] == 2 * len(cfgs)  # two rows each, member by member
    for i in range(len(cfgs)):
        for a, b in zip(rows[i], alone[i], strict=True):
            probe = [k for k in a if k.startswith(("info", "var_mu"))]
            assert len(probe) > 10
            assert [a[k] for k in probe] == pytest.approx([b[k] for k in probe], rel=1e-3, abs=1e-4)


def layer_dtypes(model: torch.nn.Module, run) -> dict[str, torch.dtype]:
    """The output dtype of each convolution and linear layer of ``model`` while ``run()``."""
    seen: dict[str, torch.dtype] = {}
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)

    def hook(name: str):
        def record(module, args, out) -> None:  # None: the output is left as it is
            seen.setdefault(name, out.dtype)

        return record

    hooks = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if isinstance(m, kinds)
    ]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no bf16 units"
)
@pytest.mark.parametrize("encoder", ["image", "factors"])
def test_a_vmapped_bf16_population_runs_its_layers_in_bf16_like_a_solo_trial(encoder):
    """vmap's rules for batched weights run below autocast (and add the bias with a plain
    add, bf16 + fp32 -> fp32): without the population's own casts every layer of a bf16
    population would run in fp32."""
    cfgs = [small(encoder=encoder, precision="bf16", seed=s) for s in (1, 2)]
    pop = Population(cfgs, forward="vmap")
    solo = Trainer(cfgs[0])
    inputs, x, noise = pop._batch()
    got = layer_dtypes(pop._base, lambda: pop._forward(inputs, noise))
    with solo.autocast:
        want = layer_dtypes(solo.model, lambda: solo.model(inputs[0], noise[0]))
    assert got == want
    head = [n for n in want if n.startswith("encoder.")][-1]  # the encoder's last layer
    assert want[head] == torch.float32  # the posterior head stays fp32 (model.fp32_head)
    assert {n: d for n, d in want.items() if n != head} == dict.fromkeys(
        (n for n in want if n != head), torch.bfloat16
    )
    # member 0 computes what its solo trial computes, to bf16 rounding
    logits, mu, logvar = pop._forward(inputs, noise)
    with solo.autocast:
        solo_logits, solo_mu, solo_logvar = solo.model(inputs[0], noise[0])
    assert logits.dtype == solo_logits.dtype == torch.bfloat16
    torch.testing.assert_close(mu[0], solo_mu, rtol=0.05, atol=0.05)
    torch.testing.assert_close(logits[0].float(), solo_logits.float(), rtol=0.05, atol=0.1)


def test_members_with_different_lengths_and_report_intervals(no_metrics):
    cfgs = [small(steps=20, report_every=10, seed=1), small(steps=35, report_every=7, seed=2)]
    rows = population_rows(Population(cfgs))
    assert [r["step"] for r in rows[0]] == [10, 20]
    assert [r["step"] for r in rows[1]] == [7, 14, 21, 28, 35]
    assert_rows_close(rows[1], rows_of(Trainer(cfgs[1])))


def test_a_diverging_member_is_frozen_and_the_others_finish(no_metrics):
    cfgs = [small(steps=30, seed=1), small(steps=30, seed=2), small(steps=30, seed=3)]
    pop = Population(cfgs)
    with torch.no_grad():
        pop.params["decoder.fc.0.weight"][1].fill_(math.inf)  # member 1's loss is not finite
    ended: dict[int, Exception | None] = {}
    rows = population_rows(pop, on_end=lambda i, e: ended.setdefault(i, e))
    assert isinstance(ended[1], TrainingDiverged) and ended[1].step == 1
    assert rows[1] == []  # failed before its first row, at the step that diverged
    assert ended[0] is None and ended[2] is None
    for i in (0, 2):  # the others are untouched by it
        assert_rows_close(rows[i], rows_of(Trainer(cfgs[i])))
    # the frozen member took no update: its other weights are where they started
    start = Trainer(cfgs[1]).model.state_dict()
    torch.testing.assert_close(
        pop.params["encoder.conv.0.weight"][1], start["encoder.conv.0.weight"]
    )


def test_a_freed_slot_is_refilled_in_place(no_metrics):
    first, later = small(steps=10, seed=1), small(**{**KINDS["piecewise"], "steps": 30, "seed": 5})
    other = small(steps=30, seed=2)
    pop = Population([first, other])
    storage = {n: p.data_ptr() for n, p in pop.params.items()}
    rows: dict[int, list] = {0: [], 1: []}
    refilled = []

    def on_end(i, error):
        if i == 0 and not refilled:
            refilled.append(Trainer(later, pop.data))
            rows[0] = []
            pop.admit(0, refilled[0])

    pop.run(lambda i, row, due: rows[i].append(row), on_end=on_end)
    assert {n: p.data_ptr() for n, p in pop.params.items()} == storage  # nothing reallocated
    # the refilled member starts from its own initial weights, moments and step 0
    solo = Trainer(later)
    assert_rows_close(rows[0], rows_of(solo))
    assert_weights_close(pop.members[0], solo)
    assert_rows_close(rows[1], rows_of(Trainer(other)))


def test_a_member_checkpoint_resumes_alone_or_in_a_population(tmp_path, no_metrics):
    cfgs = [small(steps=30, checkpoint_every=10, **KINDS["linear"]), small(steps=30, seed=9)]
    saved = tmp_path / "member0"

    pop = Population(cfgs)

    def on_report(i, row, due):
        if i == 0 and due and row["step"] == 10:
            pop.members[0].save_checkpoint(saved)
        rows[i].append(row)

    rows: dict[int, list] = {0: [], 1: []}
    pop.run(on_report)
    continued = [r for r in rows[0] if r["step"] > 10]

    alone = Trainer.from_checkpoint(saved)
    assert alone.step == 10
    assert_rows_close(rows_of(alone), continued)
    assert_weights_close(alone, pop.members[0])

    again = Population([Trainer.from_checkpoint(saved).cfg])
    again.admit(0, Trainer.from_checkpoint(saved, again.data))
    assert_rows_close(population_rows(again)[0], continued)


def test_shared_batches_give_every_member_the_same_data(no_metrics):
    same = [small(steps=10, seed=1), small(steps=10, seed=1, lr=1e-3)]
    rows = population_rows(Population(same, data_mode="shared"))
    # same seed, same data: the first row differs only through lr's effect on steps 2..10
    assert rows[0][0]["recon"] != rows[1][0]["recon"]
    twins = population_rows(Population([same[0], same[0]], data_mode="shared"))
    assert twins[0][0]["recon"] == pytest.approx(twins[1][0]["recon"], rel=1e-6)


def test_a_rows_images_per_s_leaves_out_the_populations_set_up(monkeypatch, no_metrics):
    """As a solo trial's row does: a CUDA graph's warm-up steps and capture (here one
    second of set-up, and its steps) are not in the first row's images/s."""
    cfgs = [small(steps=20, seed=1), small(steps=20, seed=2)]
    pop = Population(cfgs)
    calls = []

    def slow_set_up(n):
        if calls:
            return 0
        calls.append(n)
        time.sleep(1.0)  # what capturing costs, and no replayed step does
        for _ in range(WARMUP_STEPS):
            pop._train_step()
        return WARMUP_STEPS

    monkeypatch.setattr(pop, "_set_up", slow_set_up)
    rows = population_rows(pop)
    assert_rows_close(rows[0], rows_of(Trainer(cfgs[0])))  # its steps are trained steps
    for i in (0, 1):  # the seven steps after it, not the second
        assert rows[i][0]["images_per_s"] > 16 * (10 - WARMUP_STEPS) / 1.0
        assert rows[i][1]["images_per_s"] > 0


def test_members_must_share_the_architecture():
    with pytest.raises(ConfigError, match="must share latent_dim"):
        Population([small(latent_dim=4), small(latent_dim=5)])
    with pytest.raises(ConfigError, match="data_mode"):
        Population([small()], data_mode="mine")


class _Ops(TorchDispatchMode):
    """Counts the operators a block dispatches (views included: each is a dispatch)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("encoder", "ratio"), [("image", 1.65), ("factors", 1.5)])
def test_a_population_step_dispatches_about_as_many_ops_as_a_solo_step(encoder, ratio):
    # K = 4 vmapped members against one solo trial with fused Adam (344 and 351 ops). The
    # update is a dozen ops on the (K, P) buffers whatever the number of parameters (it
    # was a dozen per parameter: 1,098 ops a step); what is left above the solo step is
    # vmap's batching of the layers (the image encoder's convolutions: reshapes and a
    # separate bias add per layer), not the update.
    cfg = small(encoder=encoder, probe_points=0)
    solo = Trainer(cfg)
    solo._train_step()  # Adam's state exists: a steady step is counted
    pop = Population([cfg.replace(seed=s) for s in range(4)], forward="vmap")
    pop._train_step()
    with _Ops() as one:
        solo._train_step()
    with _Ops() as four:
        pop._train_step()
    assert four.n <= ratio * one.n, (four.n, one.n)


def test_the_populations_update_is_the_same_few_ops_whatever_the_parameters():
    counts = {}
    for encoder in ("image", "factors"):
        pop = Population([small(encoder=encoder, probe_points=0, seed=s) for s in range(4)])
        pop._train_step()
        with _Ops() as update:
            pop._adam(pop.alive.clone())
        counts[encoder] = (update.n, len(pop.params))
    (image, n_image), (factors, n_factors) = counts["image"], counts["factors"]
    assert n_image > n_factors and image == factors <= 40, counts


def test_the_population_reaches_its_members_through_the_trainers_public_interface():
    import ast
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "trainables" / "population.py"
    tree = ast.parse(source.read_text())
    private = {
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id == "self")
    }
    assert not private, private  # e.g. member._acc: use Trainer.window_state()


def test_bench_population_prints_a_row_per_size(monkeypatch):
    from click.testing import CliRunner

    from study.cli import main
    from trainables import bench

    results = returns(monkeypatch, bench, "compare_population")
    args = ["bench", "population", "--sizes", "1,2", "--steps", "1", "--rounds", "2"]
    args += ["--forward", "loop", "--threads", "1", "--set", "prerender=off"]
    for s in ("batch_size=8", "channels=4", "hidden=16", "latent_dim=4"):
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [r] = results
    assert (r.device, r.threads, r.rounds, r.steps) == ("CPU", 1, 2, 1)
    assert [(s.k, s.forward) for s in r.sizes] == [(1, "loop"), (2, "loop")]
    assert all(s.population_images_per_s > 0 and s.solo_images_per_s > 0 for s in r.sizes)
    lines = result.output.splitlines()
    assert lines == bench.format_population(r)
    assert lines[0].startswith("device: CPU  threads 1  batch 8  latent_dim 4  encoder image")
    assert lines[1].split() == ["K", "forward", "population", "img/s", "K", "solo", "trials",
                                "img/s", "ratio"]  # fmt: skip
    assert lines[3].split()[:2] == ["2", "loop"]
    assert lines[3].endswith(f"  {r.sizes[1].ratio:.2f}x")
