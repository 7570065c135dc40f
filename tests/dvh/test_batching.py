"""How planes are grouped into batches changes the time, never the DVH."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh import engine

PHANTOM = Path(__file__).resolve().parents[2] / "phantom_data" / "thorax"


@pytest.mark.parametrize(("chunk", "min_planes"), [(4096, 1), (4096, 4), (65536, 1)])
def test_batches_of_any_size_give_the_same_dvh(monkeypatch, chunk, min_planes):
    plan = load_plan([PHANTOM])
    grid = plan.doses[0].grid
    body = plan.structure_set.by_name("BODY")
    reference = engine.compute_dvh(body, grid)
    monkeypatch.setattr(engine, "CHUNK_PIXELS", chunk)
    monkeypatch.setattr(engine, "MIN_BATCH_PLANES", min_planes)
    other = engine.compute_dvh(body, grid)
    assert other.volume_cc == pytest.approx(reference.volume_cc, rel=1e-12)
    assert other.mean_gy == pytest.approx(reference.mean_gy, rel=1e-9)
    assert np.allclose(other.differential_cc, reference.differential_cc, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "batches",
    [
        ((2, True), (3, True), (5, True), (5, False), (7, True), (9, True)),  # as the engine goes
        ((5, False), (3, False), (7, False), (2, False)),  # in any order, none taken between
    ],
)
def test_whole_cells_pool_each_cell_over_every_batch_that_reaches_it(batches):
    # The pooled moments against a plain per-cell sum: each cell comes out once, with the
    # pieces of every batch that reached it, whether its batches came up in z (taking the
    # cells below each as the engine does) or in any order.
    rng = np.random.default_rng(11)
    npix, expected, taken = 6, {}, {}
    cells = engine._WholeCells(npix)

    def take(frame):
        ready = cells.take_below(frame)
        for cell, moments in zip(*ready, strict=True) if ready is not None else ():
            assert int(cell) not in taken, "a cell came out twice"
            taken[int(cell)] = moments

    for lowest, take_first in batches:
        planes, width = 3, 2
        frame = lowest + rng.integers(0, 3, (planes, width))
        depth = rng.uniform(0.1, 1.5, (planes, width)) * (rng.random((planes, width)) > 0.2)
        depth[0, 0] = 0.7  # the batch's lowest cell is reached
        frame[0, 0] = lowest
        frame[depth == 0] = lowest
        fraction = rng.uniform(0, 1, (planes, width))
        whole = rng.random((planes, npix)) > 0.3
        if take_first:
            take(lowest)
        cells.add(engine._SlabPieces(frame, fraction, depth, np.full((planes, width), 0.5)), whole)
        for p, j in zip(*np.nonzero(depth > 0), strict=True):
            f, dz = fraction[p, j], depth[p, j]
            extent = dz * 0.5
            row = np.array([dz, dz * f, dz * (f * f + extent * extent / 12.0)])
            moments = expected.setdefault(int(frame[p, j]), np.zeros((3, npix)))
            moments += row[:, None] * whole[p]
    take(100)
    for cell, moments in expected.items():
        assert np.allclose(taken.pop(cell), moments, rtol=1e-12, atol=1e-12), cell
    assert all(not m.any() for m in taken.values())  # cells no piece reached hold nothing
