"""The trainer's CUDA paths: skipped without a CUDA device (run them where one is)."""

from __future__ import annotations

import pytest
import torch

from analysis.contract import STATE_FILE
from tests.helpers import population_rows, rows_of
from trainables.config import ConfigError, TrialConfig
from trainables.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SMALL = dict(
    device="cuda", batch_size=16, latent_dim=4, channels=8, hidden=32, lr=2e-3,
    report_every=10, eval_every=0, checkpoint_every=0, eval_points=100, probe_points=128,
    steps=40, prerender="off",
)  # fmt: skip


def cuda_cfg(**kw) -> TrialConfig:
    return TrialConfig.from_dict({**SMALL, **kw})


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch):
    """Full fp32 products for every comparison here: with TF32 (10-bit mantissas) two
    runs that should agree to 1e-5 differ by what each kernel happened to round."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def losses(trainer: Trainer, rows: int = 3) -> list[float]:
    return [trainer.train_steps(10)["loss"] for _ in range(rows)]


def test_cuda_auto_device_carries_its_index_and_trains():
    trainer = Trainer(cuda_cfg(device="auto"))
    assert trainer.device.type == "cuda" and trainer.device.index is not None
    assert torch.backends.cudnn.benchmark  # fixed shapes: tuned once
    assert all(g["fused"] for g in trainer.opt.param_groups)
    assert all(v == v for v in losses(trainer))


def test_cuda_graph_replays_the_eager_step():
    eager, graphed = Trainer(cuda_cfg()), Trainer(cuda_cfg(cuda_graph=True))
    a, b = losses(eager), losses(graphed)
    assert graphed._graph is not None
    assert a == pytest.approx(b, rel=1e-3)  # same data, noise and updates


@pytest.fixture
def deterministic(monkeypatch):
    """cuDNN's deterministic algorithms: runs compared to 1e-5 must not differ by the
    algorithm benchmark mode happened to pick."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


def test_cuda_graph_replays_the_eager_step_from_the_cached_grid(packed_grid):
    eager, graphed = (
        Trainer(cuda_cfg(prerender="on")),
        Trainer(cuda_cfg(cuda_graph=True, prerender="on")),
    )
    assert graphed.data.cached
    assert losses(eager) == pytest.approx(losses(graphed), rel=1e-3)


def test_two_cuda_graphs_in_one_process_keep_their_own_random_streams(deterministic):
    alone = losses(Trainer(cuda_cfg(cuda_graph=True, seed=1)))
    first, second = Trainer(cuda_cfg(cuda_graph=True, seed=1)), Trainer(cuda_cfg(cuda_graph=True))
    together = []
    for _ in range(3):  # interleaved replays: a shared stream would change both
        together.append(first.train_steps(10)["loss"])
        second.train_steps(10)
    assert together == pytest.approx(alone, rel=1e-5)


def test_cuda_graph_checkpoint_resumes_exactly(tmp_path, deterministic):
    straight = Trainer(cuda_cfg(cuda_graph=True))
    want = losses(straight, 4)
    first = Trainer(cuda_cfg(cuda_graph=True))
    losses(first, 2)
    first.save_checkpoint(tmp_path)
    resumed = Trainer.from_checkpoint(tmp_path)
    assert losses(resumed, 2) == pytest.approx(want[2:], rel=1e-5)


def test_cuda_resume_may_switch_the_graph_off_and_on(tmp_path):
    first = Trainer(cuda_cfg(cuda_graph=True))
    losses(first, 2)
    first.save_checkpoint(tmp_path)
    eager = Trainer.from_checkpoint(tmp_path, cuda_graph=False)
    assert all(g["capturable"] is False for g in eager.opt.param_groups)
    assert all(v == v for v in losses(eager, 1))
    eager.save_checkpoint(tmp_path)
    graphed = Trainer.from_checkpoint(tmp_path, cuda_graph=True)
    assert all(v == v for v in losses(graphed, 1)) and graphed._graph is not None


def test_cuda_refuses_a_cpu_random_stream_in_one_line(tmp_path):
    cpu = Trainer(cuda_cfg(device="cpu"))
    cpu.train_steps(10)
    cpu.save_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="another device type"):
        Trainer.from_checkpoint(tmp_path, device="cuda")
    assert (tmp_path / STATE_FILE).is_file()


def test_cuda_bf16_keeps_the_posterior_head_in_fp32():
    trainer = Trainer(cuda_cfg(precision="bf16"))
    x = trainer.data.images_at(torch.arange(8, device="cuda"))
    with trainer.autocast:
        logits, mu, logvar = trainer.model(x, torch.zeros(8, 4, device="cuda"))
    assert logits.dtype == torch.bfloat16 and mu.dtype == logvar.dtype == torch.float32
    assert all(v == v for v in losses(trainer))


def test_cuda_grid_is_held_bit_packed_on_the_device(packed_grid):
    trainer = Trainer(cuda_cfg(prerender="on"))
    packed = trainer.data._packed
    assert packed.device.type == "cuda" and packed.numel() == 737_280 * 512  # 360 MiB
    idx = torch.randint(737_280, (256,), device="cuda")
    want = torch.from_numpy(packed_grid[idx.cpu().numpy()])
    assert torch.equal(packed[idx].cpu(), want)


def test_tf32_is_off_for_the_comparisons():
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_building_a_cuda_trainer_leaves_the_cuda_generators_alone():
    torch.cuda.manual_seed_all(123)
    torch.rand(3, device="cuda")  # somewhere along the default stream
    before = torch.cuda.get_rng_state_all()
    Trainer(cuda_cfg(seed=5))
    assert all(torch.equal(a, b) for a, b in zip(before, torch.cuda.get_rng_state_all()))


def test_cuda_graph_step_flops_are_the_eager_ones():
    from trainables.bench import step_flops

    flops = step_flops(cuda_cfg())
    assert flops > 0 and step_flops(cuda_cfg(cuda_graph=True)) == flops


def test_cuda_graph_with_compile_runs_or_says_why_in_one_line():
    try:
        trainer = Trainer(cuda_cfg(cuda_graph=True, compile="default"))
        assert all(v == v for v in losses(trainer, 2))
    except ConfigError as e:
        assert "compile='default' recompiled" in str(e) and "\n" not in str(e)


# ---- populations on CUDA ----------------------------------------------------------------


@pytest.mark.parametrize("graph", [False, True])
def test_cuda_population_members_equal_their_solo_trials(graph):
    from tests.helpers import KINDS, assert_rows_close
    from trainables.population import Population

    cfgs = [cuda_cfg(cuda_graph=graph, **KINDS[k]) for k in ("beta", "piecewise")]
    pop = Population(cfgs)
    assert pop.forward == "vmap"
    rows = population_rows(pop)
    assert (pop._graph is not None) == graph
    for i, cfg in enumerate(cfgs):
        assert_rows_close(rows[i], rows_of(Trainer(cfg)), rel=1e-3)


def test_cuda_graph_population_refills_a_slot_without_recapturing():
    from tests.helpers import KINDS, assert_rows_close
    from trainables.population import Population

    first, later = (
        cuda_cfg(cuda_graph=True, steps=20),
        cuda_cfg(cuda_graph=True, **{**KINDS["linear"], "seed": 7}),
    )
    pop = Population([first, cuda_cfg(cuda_graph=True, seed=3)])
    rows: dict[int, list] = {0: [], 1: []}
    graphs = []

    def on_end(i, error):
        if i == 0 and not graphs:
            graphs.append(pop._graph)
            rows[0] = []
            pop.admit(0, Trainer(later, pop.data))

    pop.run(lambda i, row, due: rows[i].append(row), on_end=on_end)
    assert graphs and pop._graph is graphs[0]  # the same graph went on replaying
    assert_rows_close(rows[0], rows_of(Trainer(later)), rel=1e-3)


@pytest.mark.parametrize("encoder", ["image", "factors"])
def test_cuda_bf16_population_runs_its_layers_in_bf16_like_a_solo_trial(encoder):
    from tests.test_population import layer_dtypes
    from trainables.population import Population

    cfgs = [cuda_cfg(encoder=encoder, precision="bf16", seed=s) for s in (1, 2)]
    pop = Population(cfgs)
    assert pop.forward == "vmap"
    solo = Trainer(cfgs[0])
    inputs, _, noise = pop._batch()
    got = layer_dtypes(pop._base, lambda: pop._forward(inputs, noise))
    with solo.autocast:
        want = layer_dtypes(solo.model, lambda: solo.model(inputs[0], noise[0]))
    assert got == want and torch.bfloat16 in want.values()
