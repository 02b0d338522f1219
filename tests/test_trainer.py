"""The trainer end to end on CPU: determinism, exact resume, learning, divergence, checkpoints."""

from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np
import pytest
import torch

from analysis.contract import (
    CONFIG_FILE,
    FACTOR_NAMES,
    STATE_FILE,
    TRAIN_COLUMNS,
    TRAVERSAL_ARRAYS,
    factor_info_key,
    info_key,
    kl_key,
    latent_factor_info_key,
    mean_var_key,
)
from tests.helpers import SMALL, returns, rows_of, small
from trainables.config import ConfigError, TrialConfig
from trainables.objectives import capacity
from trainables.trainer import Trainer, TrainingDiverged


def strip_timing(rows):
    """Rows without their timing; NaN (an undefined metric) as a string, so rows compare."""
    nan = lambda v: "nan" if isinstance(v, float) and v != v else v  # noqa: E731
    return [{k: nan(v) for k, v in r.items() if k != "images_per_s"} for r in rows]


def params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_rows_follow_the_results_contract():
    cfg = small(steps=25, report_every=10)
    rows = rows_of(Trainer(cfg))
    assert [r["step"] for r in rows] == [10, 20, 25]
    probe = {"info_x"} | {factor_info_key(f) for f in FACTOR_NAMES}
    probe |= {k(i) for i in range(4) for k in (mean_var_key, info_key)}
    probe |= {latent_factor_info_key(i, f) for i in range(4) for f in FACTOR_NAMES}
    for r in rows:
        assert set(TRAIN_COLUMNS) | {kl_key(i) for i in range(4)} | probe <= set(r)
        assert all(np.isfinite(r[k]) and r[k] >= 0 for k in probe)
        assert r["images_seen"] == r["step"] * 16
        assert r["kl"] == pytest.approx(sum(r[kl_key(i)] for i in range(4)), rel=1e-5)
    assert {"mig", "mi/z0/shape"} <= set(rows[-1])  # the final row carries the evaluation


def test_same_seed_same_numbers_on_cpu():
    a, b, c = Trainer(small(seed=3)), Trainer(small(seed=3)), Trainer(small(seed=4))
    rows_a = strip_timing(rows_of(a))
    assert rows_a == strip_timing(rows_of(b))  # evaluation included: it is seeded too
    assert all(torch.equal(p, q) for p, q in zip(params(a), params(b)))
    assert strip_timing(rows_of(c))[0] != rows_a[0]


@pytest.mark.parametrize("encoder", ["image", "factors"])
def test_resume_is_bitwise_identical(tmp_path, encoder):
    # N steps straight == k steps, save, load, N - k steps; k off the report grid
    cfg = small(steps=30, report_every=10, checkpoint_every=13, encoder=encoder)
    straight = Trainer(cfg)
    rows_straight = strip_timing(rows_of(straight))

    first = Trainer(cfg)
    rows_first: list[dict] = []

    def stop_at_checkpoint(row, due):
        rows_first.append(row)
        if due:
            first.save_checkpoint(tmp_path)
            raise KeyboardInterrupt  # the process "dies" right after its checkpoint

    with pytest.raises(KeyboardInterrupt):
        first.run(stop_at_checkpoint)
    assert first.step == 13 and (tmp_path / STATE_FILE).is_file()
    resumed = Trainer.from_checkpoint(tmp_path)
    assert resumed.step == 13 and resumed.cfg == cfg
    rows_resumed = strip_timing(rows_first + rows_of(resumed))
    assert rows_resumed == rows_straight
    assert all(torch.equal(p, q) for p, q in zip(params(straight), params(resumed)))


@pytest.mark.parametrize("encoder", ["image", "factors"])
@pytest.mark.parametrize("objective", ["beta", "capacity"])
def test_short_run_lowers_the_loss(encoder, objective):
    cfg = small(steps=150, report_every=25, encoder=encoder, objective=objective,
                beta=1.0, gamma=20.0, c_max=5.0, c_steps=150)  # fmt: skip
    rows = rows_of(Trainer(cfg))
    assert rows[-1]["recon"] < 0.6 * rows[0]["recon"]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert all(np.isfinite(r["loss"]) for r in rows)
    if objective == "capacity":  # KL follows C up
        assert rows[-1]["C"] == pytest.approx(np.mean([capacity(s, cfg) for s in range(125, 150)]))
        assert rows[-1]["kl"] > rows[0]["kl"] + 1.0
        assert rows[-1]["kl"] > 0.4 * rows[-1]["C"]


def test_non_finite_loss_stops_the_trial_naming_the_step():
    trainer = Trainer(small(steps=40, report_every=20, gamma=1e39))  # gamma*|KL-C| overflows
    with pytest.raises(TrainingDiverged, match="step 1\\b") as e:
        trainer.run()
    assert e.value.step == 1
    again = pickle.loads(pickle.dumps(e.value))  # Ray ships trial errors pickled
    assert str(again) == str(e.value) and again.step == 1


def test_final_checkpoint_holds_weights_config_and_traversals(tmp_path):
    trainer = Trainer(small(steps=20))
    trainer.run()
    trainer.save_checkpoint(tmp_path)
    assert {STATE_FILE, CONFIG_FILE, "traversals.npz"} <= {p.name for p in tmp_path.iterdir()}
    with np.load(tmp_path / "traversals.npz") as t:
        assert set(TRAVERSAL_ARRAYS) <= set(t.files)
        assert t["inputs"].shape == t["reconstructions"].shape == (8, 64, 64)
        assert t["traversals"].shape == (4, 9, 64, 64)
        assert t["values"][0] == -3 and t["values"][-1] == 3
        assert sorted(t["latent_index"].tolist()) == [0, 1, 2, 3]
        assert np.all(np.diff(t["info"]) <= 0)  # most informative first
        # stored as float32: equal to the row's float64 value to float32's precision
        # (numpy < 2 compares the two in float64)
        want = trainer.history[-1][info_key(int(t["latent_index"][0]))]
        assert t["info"][0] == np.float32(want)
        assert ((t["traversals"] >= 0) & (t["traversals"] <= 1)).all()


def test_reported_c_is_the_mean_of_the_schedule_over_the_row():
    # like kl, C is averaged over the steps s in [step - report_every, step) of the row
    pts = ((0, 0.0), (20, 4.0), (30, 1.0))
    cfg = small(steps=40, c_schedule="piecewise", c_points=pts)
    rows = rows_of(Trainer(cfg))
    want = [np.mean([capacity(s, cfg) for s in range(a, a + 10)]) for a in (0, 10, 20, 30)]
    assert [r["C"] for r in rows] == pytest.approx(want)
    assert [r["C"] for r in rows] == pytest.approx([0.9, 2.9, 2.65, 1.0])


def test_final_weights_are_checkpointed_before_the_final_evaluation(tmp_path):
    from trainables.local import latest_checkpoint, train_to_directory

    seen = []

    def on_evaluate(final):
        seen.append((final, latest_checkpoint(tmp_path)))

    train_to_directory(Trainer(small(steps=20, eval_every=10)), tmp_path, None, on_evaluate)
    assert seen[0] == (False, None)
    final, ckpt = seen[-1]
    assert final and ckpt is not None and ckpt.name == "step_0000020"


def test_eval_points_auto_is_seconds_on_a_cpu():
    from trainables.evaluate import CPU_EVAL_POINTS, eval_points

    assert TrialConfig().eval_points == -1
    assert eval_points(TrialConfig(), "cpu") == CPU_EVAL_POINTS
    assert eval_points(TrialConfig(), "cuda") == 0  # the reference sizes
    assert eval_points(TrialConfig(eval_points=0), "cpu") == 0


def test_train_step_never_waits_on_the_host():
    """No op of a step reads a device value on the host or copies a host list to the device.

    Either would be a device sync per step on CUDA, and would break CUDA-graph capture.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class Watch(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    for encoder in ("image", "factors"):
        trainer = Trainer(small(encoder=encoder))
        trainer._train_step()  # Adam's state exists: the watched step is a steady one
        with Watch() as w:
            trainer._train_step()
        assert not {"aten._local_scalar_dense", "aten.lift_fresh"} & w.seen, w.seen


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"latent_dim": 3}, "cannot change 'latent_dim'"),
        ({"seed": 1}, "cannot change 'seed'"),
    ],
)
def test_resume_refuses_changes_to_the_model(tmp_path, changes, match):
    trainer = Trainer(small(steps=5))
    trainer.train_steps(5)
    trainer.save_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match=match):
        Trainer.from_checkpoint(tmp_path, **changes)
    assert Trainer.from_checkpoint(tmp_path, steps=50).cfg.steps == 50


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        Trainer.from_checkpoint(tmp_path)


def test_building_a_trainer_leaves_the_global_random_state_alone(monkeypatch):
    """A trainer seeds only what it owns: its generator, and the CPU generator its
    weights are drawn from, put back as it was. torch.manual_seed would also reseed
    every CUDA device's default generator (another trial's, on a shared GPU)."""
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: reseeded.append(seed))
    torch.rand(3)  # somewhere along the global stream
    before = torch.random.get_rng_state()
    a, b, other = Trainer(small(seed=5)), Trainer(small(seed=5)), Trainer(small(seed=6))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert reseeded == []
    # the weights still depend on the seed alone
    assert all(torch.equal(p, q) for p, q in zip(params(a), params(b)))
    assert not all(torch.equal(p, q) for p, q in zip(params(a), params(other)))


def test_cuda_graph_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        Trainer(small(cuda_graph=True))


def test_a_trial_from_the_cached_grid_trains_bitwise_as_one_that_renders(packed_grid):
    cached, rendered = Trainer(small(prerender="on")), Trainer(small(prerender="off"))
    assert cached.data.cached and not rendered.data.cached
    assert strip_timing(rows_of(cached)) == strip_timing(rows_of(rendered))
    assert all(torch.equal(p, q) for p, q in zip(params(cached), params(rendered)))


def test_bf16_on_a_cpu_keeps_the_posterior_head_in_fp32():
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        with pytest.raises(ConfigError, match="no bf16 units"):
            Trainer(small(precision="bf16"))
        return
    trainer = Trainer(small(precision="bf16", steps=40))
    assert trainer._channels_last  # the default: NHWC
    conv = trainer.model.encoder.conv[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    x = trainer.data.images_at(torch.arange(8))
    with trainer.autocast:
        logits, mu, logvar = trainer.model(x, torch.zeros(8, 4))
    assert logits.dtype == torch.bfloat16  # the convolutions ran in bf16
    assert mu.dtype == logvar.dtype == torch.float32  # gamma * KL sees fp32 rounding
    rows = rows_of(trainer)
    assert rows[-1]["recon"] < rows[0]["recon"] and abs(rows[-1]["kl"] - 5.0) < 5.0


def test_channels_last_computes_the_same_step():
    nchw, nhwc = Trainer(small(channels_last=False)), Trainer(small(channels_last=True))
    assert not nchw._channels_last and nhwc._channels_last
    a, b = nchw.train_steps(5), nhwc.train_steps(5)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)  # other kernels, same math
    for p, q in zip(params(nchw), params(nhwc)):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)


def test_adam_is_fused_on_every_device():
    assert all(g["fused"] for g in Trainer(small()).opt.param_groups)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_cpu_trainer_steps_without_page_faults():
    """Freed activations stay in the process (trainables.host): a step of the default
    model at batch 64 no longer page-faults its ~60 MiB of activations in again (with
    glibc's defaults: 8-15 thousand minor faults a step)."""
    import resource

    trainer = Trainer(TrialConfig(steps=50, eval_every=0, probe_points=0, prerender="off"))
    trainer.train_steps(3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    trainer.train_steps(5)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    assert faults < 500, faults


def test_bench_trainer_prints_both_loops_and_their_ratio(monkeypatch):
    from click.testing import CliRunner

    from study.cli import main
    from trainables import bench

    results = returns(monkeypatch, bench, "compare")
    args = ["bench", "trainer", "--steps", "4", "--window", "2", "--threads", "1"]
    args += ["--set", "prerender=off", "--set", "channels=8", "--set", "hidden=32"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [r] = results
    assert (r.windows, r.window, r.threads, r.device) == (2, 2, 1, "CPU")
    assert r.config.channels == 8 and not r.cached  # prerender=off: rendered per batch
    for loop in (r.ours, r.conventional):
        assert loop.slowest <= loop.images_per_s <= loop.fastest
        assert loop.images_per_s == pytest.approx(r.config.batch_size / loop.step_s)
        assert loop.faults_per_step >= 0
    assert r.turn_ratio_low <= r.turn_ratio <= r.turn_ratio_high
    assert r.step_flops > 0 and r.matmul_flops > 0 and r.setup_s > 0
    assert r.probe_s > 0 and r.probed_images_per_s < r.ours.images_per_s
    lines = result.output.splitlines()
    assert lines == bench.format_compare(r)
    assert "each loop in its own process" in lines[1]
    assert f"ratio:              {r.ratio:12.2f}x" in lines
    assert "median of the 2 turns' ratios" in lines[5]


def test_bench_layers_attributes_each_convolution_its_own_forward_and_backward(monkeypatch):
    from click.testing import CliRunner

    from study.cli import main
    from trainables import bench

    results = returns(monkeypatch, bench, "profile_layers")
    b, c = 8, 4
    args = ["bench", "layers", "--steps", "2", "--threads", "1", "--batch-size", str(b)]
    args += ["--set", "prerender=off", "--set", f"channels={c}", "--set", "hidden=16"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [profile] = results
    layers = {layer.name: layer for layer in profile.layers}
    names = [f"encoder.conv.{i}" for i in (0, 2, 4, 6)]
    names += [f"decoder.deconv.{i}" for i in (0, 2, 4, 6)]
    assert list(layers) == names
    # MACs: input channels x output channels x 16 taps x the smaller side's positions
    positions = dict(zip(names, (32 * 32, 16 * 16, 8 * 8, 4 * 4, 4 * 4, 8 * 8, 16 * 16, 32 * 32)))
    for name, layer in layers.items():
        one_channel = name in ("encoder.conv.0", "decoder.deconv.6")
        fwd = 2 * b * c * (1 if one_channel else c) * positions[name] * 16
        bwd = fwd if name == "encoder.conv.0" else 2 * fwd  # images need no input gradient
        assert (layer.forward_flops, layer.backward_flops) == (fwd, bwd), name
        assert layer.forward_s > 0 and layer.backward_s > 0, name
    first, last = layers["encoder.conv.0"], layers["decoder.deconv.6"]
    assert (first.input_shape, first.output_shape) == ((1, 64, 64), (c, 32, 32))
    assert (last.input_shape, last.output_shape) == ((c, 32, 32), (1, 64, 64))
    assert 0 < profile.conv_s < profile.profiled_step_s
    lines = result.output.splitlines()
    assert lines == bench.format_layers(profile)
    assert lines[2].startswith(f"encoder.conv.0     1x64x64 -> {c}x32x32          1.0 ")


def test_step_flops_of_a_graphed_or_compiled_config_are_the_eager_ones():
    """A CUDA graph's replay passes no operator through the dispatcher: the count is
    taken on an eager trainer of the same model, so the graphed config (which a CPU
    cannot train, but can count) reads what the eager one reads."""
    from trainables.bench import step_flops

    b, c = 8, 4
    eager = small(batch_size=b, channels=c, hidden=16)
    flops = step_flops(eager)
    # at least the encoder's second convolution's forward: 2 b c c 16 taps x 16x16 outputs
    assert flops > 2 * b * c * c * 16 * 16 * 16
    assert step_flops(eager.replace(cuda_graph=True)) == flops
    assert step_flops(eager.replace(compile="default")) == flops


def test_paired_ratios_are_the_turns_conventional_over_ours():
    from trainables.bench import paired_ratios

    per_step = {"ours": [1.0, 2.0, 1.0, 4.0, 1.0], "conventional": [1.5, 2.0, 2.0, 6.0, 1.2]}
    # ratios 1.5, 1.0, 2.0, 1.5, 1.2 -> sorted 1.0 1.2 1.5 1.5 2.0
    assert paired_ratios(per_step) == pytest.approx((1.5, 1.2, 1.5))
    assert paired_ratios({"ours": [2.0], "conventional": [3.0]}) == (1.5, 1.5, 1.5)


def test_threads_follow_the_cpus_a_trial_was_given(monkeypatch):
    from trainables.trainer import use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert use_threads(3.0) == 3 == torch.get_num_threads()  # Ray's resources.cpu
        assert use_threads(0.5) == 1  # a fraction of a CPU: one thread
        assert use_threads() == len(os.sched_getaffinity(0))  # betastudy train: the machine
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert use_threads(4) == 2  # the user's choice wins
    finally:
        torch.set_num_threads(before)


def test_factor_encoder_at_constant_capacity_opens_a_position_latent():
    """The bottleneck experiment in miniature: q(z|f) at a constant C = 5 nats learns
    (well below the mean image) and a latent that tells about position switches on."""
    import pandas as pd

    from analysis import switch_on as so
    from analysis.contract import MEAN_IMAGE_RECON

    cfg = TrialConfig.from_dict(
        {**SMALL, "encoder": "factors", "channels": 16, "hidden": 64, "latent_dim": 4,
         "batch_size": 32, "lr": 1e-3, "objective": "capacity", "c_schedule": "constant",
         "c_max": 5.0, "gamma": 30.0, "steps": 600, "report_every": 100, "probe_points": 512,
         "eval_points": 0}
    )  # fmt: skip
    trainer = Trainer(cfg)
    rows = []
    while trainer.step < cfg.steps:  # rows as run() reports them, without the metric suite
        rows.append({**trainer.train_steps(100), **trainer.measure()})
    last = rows[-1]
    assert last["recon"] < MEAN_IMAGE_RECON - 150
    latents = so.latent_switch_on(pd.DataFrame(rows).assign(trial_id="t"))
    active = latents[latents["active"]]
    assert set(active["factor"]) & {"posX", "posY"}
    assert max(last["info/posX"], last["info/posY"]) > 0.5  # nats, of ln 32 = 3.47
    assert last["kl"] == pytest.approx(5.0, abs=0.5)  # the capacity target is met


def test_cuda_devices_are_resolved_with_their_index(monkeypatch):
    from trainables.trainer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 2)  # set_device needs the index
    assert resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")


def test_resume_takes_adam_flags_from_its_own_config(tmp_path):
    # a checkpoint written with capturable (CUDA graph) Adam resumes on a run without it
    straight = Trainer(small(steps=30))
    straight.run()
    first = Trainer(small(steps=30))
    first.train_steps(20)
    first.save_checkpoint(tmp_path)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True
    torch.save(state, tmp_path / STATE_FILE)
    resumed = Trainer.from_checkpoint(tmp_path)
    assert all(g["capturable"] is False for g in resumed.opt.param_groups)
    assert all(s["step"].device.type == "cpu" for s in resumed.opt.state.values())
    resumed.run()
    assert all(torch.equal(p, q) for p, q in zip(params(straight), params(resumed)))


def test_resume_refuses_a_random_stream_from_another_device(tmp_path):
    trainer = Trainer(small(steps=20))
    trainer.train_steps(10)
    trainer.save_checkpoint(tmp_path)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state
    torch.save(state, tmp_path / STATE_FILE)
    with pytest.raises(ConfigError, match="random stream comes from another device type"):
        Trainer.from_checkpoint(tmp_path)


def test_stopped_during_the_final_evaluation_a_resume_evaluates_and_reports(tmp_path):
    from trainables.local import prepare, read_rows, train_to_directory

    def stop(final):
        if final:  # Ctrl-C once the trained weights are checkpointed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_to_directory(Trainer(small(steps=20)), tmp_path, None, stop)
    assert [r["step"] for r in read_rows(tmp_path / "metrics.jsonl")] == [10]
    trainer = prepare(None, tmp_path, resume=True)
    assert trainer.step == 20 and trainer.pending is not None
    last = train_to_directory(trainer, tmp_path)
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20]
    assert "mig" in rows[-1] and last["recon"] == rows[-1]["recon"]
    again = Trainer.from_checkpoint(tmp_path / "checkpoints" / "step_0000020")
    assert again.pending is None  # the final checkpoint was written again, finished


def test_beta_objective_rows_carry_no_capacity():
    rows = rows_of(Trainer(small(steps=20, objective="beta")))
    assert all(np.isnan(r["C"]) for r in rows)


def test_a_rows_images_per_s_leaves_out_compile_time():
    trainer = Trainer(small(compile="default"))  # torch.compile wraps lazily: no cost yet
    calls = []

    def first_call_compiles(*args):
        if not calls:
            time.sleep(1.0)  # what compiling costs, and no training step does
        calls.append(1)
        return trainer._loss(*args)

    trainer._loss_fn = first_call_compiles
    row = trainer.train_steps(10)
    assert row["images_per_s"] > 16 * 9 / 1.0  # the nine steps after it, not the second
    assert trainer.train_steps(10)["images_per_s"] > 0


@pytest.mark.parametrize("burst", [0.0, 1e9])
def test_rows_read_in_bursts_are_the_rows_read_one_by_one(monkeypatch, burst):
    """On CUDA the loop reads its rows from the device in bursts (the GPU trains the next
    window meanwhile); what it reports, and when a checkpoint is due, does not change."""
    from trainables import trainer as trainer_module

    cfg = small(steps=45, report_every=5, eval_every=20, checkpoint_every=15)
    one_by_one: list = []
    Trainer(cfg).run(lambda row, due: one_by_one.append((row, due)))
    monkeypatch.setattr(trainer_module, "REPORT_SECONDS", burst)
    deferred = Trainer(cfg)
    deferred._defer_reads = True
    seen: list = []
    deferred.run(lambda row, due: seen.append((row, due, deferred.step)))
    assert [d for _, d, _ in seen] == [d for _, d in one_by_one]
    assert strip_timing([r for r, _, _ in seen]) == strip_timing([r for r, _ in one_by_one])
    # a checkpoint is due only once every row before it is out, at the trainer's own step
    assert all(step == row["step"] for row, due, step in seen if due)
    if burst:  # plain rows wait for the next evaluation, checkpoint or the end
        assert any(step > row["step"] for row, _, step in seen)


def test_traversal_images_are_handed_over_at_every_evaluation():
    trainer = Trainer(small(steps=25, eval_every=10))
    seen: list[tuple[int, set]] = []
    trainer.run(on_traversals=lambda step, arrays: seen.append((step, set(arrays))))
    assert [step for step, _ in seen] == [10, 20, 25]  # two evaluations and the final one
    assert all(keys >= set(TRAVERSAL_ARRAYS) for _, keys in seen)  # the contract's arrays
