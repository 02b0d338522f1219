"""The cached, bit-packed dSprites grid: packing, the cache's keys and lock, and that a
trial served from it trains bitwise as one that renders every batch (test_trainer)."""

from __future__ import annotations

import mmap
import multiprocessing
import os
import resource
import time

import numpy as np
import pytest
import torch

from trainables import grid, render
from trainables.data import DataError, ProceduralDSprites, factors_of, load_dataset


def test_unpack_inverts_pack_in_numpys_bit_order():
    imgs = (torch.rand(5, 64, 64) < 0.3).to(torch.uint8)
    packed = grid.pack(imgs)
    assert packed.shape == (5, grid.ROW_BYTES) and packed.dtype == torch.uint8
    assert np.array_equal(packed.numpy(), np.packbits(imgs.numpy().reshape(5, -1), axis=1))
    out = grid.unpack(packed)
    assert out.shape == (5, 1, 64, 64) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], imgs.float())


def test_the_cache_is_keyed_by_the_renderers_source(monkeypatch, tmp_path):
    monkeypatch.setenv("BETASTUDY_CACHE", str(tmp_path))
    path = grid.grid_path()
    assert path.parent == tmp_path and grid.renderer_version() in path.name
    monkeypatch.setattr(grid, "renderer_version", lambda: "0123456789ab")
    assert grid.grid_path() != path  # an edited renderer never serves the old images


def test_auto_uses_the_grid_when_cached_or_when_it_pays(monkeypatch, tmp_path):
    monkeypatch.setenv("BETASTUDY_CACHE", str(tmp_path))
    assert grid.wanted("on", 1) and not grid.wanted("off", 10**9)
    assert not grid.wanted("auto", 1000)  # a short trial renders: cheaper than a build
    assert grid.wanted("auto", grid.NUM_IMAGES)  # it would render the grid's worth anyway
    grid.grid_path().write_bytes(b"")
    assert grid.wanted("auto", 1000)  # built already: free


def _load_in_child(directory, log):
    grid.NUM_IMAGES = 1024  # a small grid: the lock is what is tested
    real = grid.build

    def slow_build(path, progress=True):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # the others arrive while this one builds
        real(path, progress=False)

    grid.build = slow_build
    assert grid.load(directory, progress=False).shape == (1024, grid.ROW_BYTES)


def test_concurrent_trials_build_the_grid_once(tmp_path):
    log = tmp_path / "builds.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_load_in_child, args=(tmp_path, log)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1
    assert not list(tmp_path.glob("*.tmp"))  # written under a temporary name, then renamed


def test_a_damaged_grid_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BETASTUDY_CACHE", str(tmp_path))
    np.save(grid.grid_path(), np.zeros((3, 4), np.uint8))
    with pytest.raises(DataError, match="not a packed dSprites grid; delete it"):
        grid.load(progress=False)


def test_a_cache_that_cannot_be_written_is_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BETASTUDY_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(DataError, match="set BETASTUDY_CACHE to a writable directory") as e:
        grid.load(progress=False)
    assert "\n" not in str(e.value)


def test_the_cached_grid_holds_the_renderers_images(packed_grid):
    assert packed_grid.shape == (737_280, 512)
    data = load_dataset("procedural", "cpu", cached=True)
    assert isinstance(data, ProceduralDSprites) and data.cached
    idx = torch.cat(
        [torch.arange(64), torch.randint(737_280, (2000,)), torch.arange(737_216, 737_280)]
    )
    want = render.render(factors_of(idx)).unsqueeze(1)
    assert torch.equal(data.images_at(idx), want)


@pytest.mark.skipif(not hasattr(mmap, "MAP_POPULATE"), reason="pages are mapped in on Linux")
def test_drawing_rows_from_the_grid_meets_no_page_faults(packed_grid):
    rows = torch.from_numpy(grid.load(progress=False))  # a mapping of its own
    assert np.array_equal(rows[:100].numpy(), packed_grid[:100])
    gen = torch.Generator().manual_seed(0)
    rows[:64].index_select(0, torch.randint(64, (64,), generator=gen))  # torch's own set-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):  # 20 batches of 64 rows: ~1,200 first touches if faulted in
        rows.index_select(0, torch.randint(rows.shape[0], (64,), generator=gen))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 100


def test_a_build_logged_to_a_file_says_two_lines_not_a_bar(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(grid, "NUM_IMAGES", 1024)  # a small grid: the output is tested
    grid.load(tmp_path, progress=True)
    err = capsys.readouterr().err  # not a terminal, as a Ray worker's stderr is not
    lines = err.splitlines()
    assert len(lines) == 2 and "\r" not in err
    assert (
        lines[0].startswith("rendering the dSprites grid once into") and "rendered in" in lines[1]
    )
