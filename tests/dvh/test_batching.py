"""How planes are grouped into batches changes the time, never the DVH."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh import engine

PHANTOM = Path(__file__).resolve().parents[2] / "phantom_data" / "thorax"


@pytest.mark.parametrize("chunk", [1, 4096, 65536, 10**9])
def test_batches_of_any_size_give_the_same_dvh(monkeypatch, chunk):
    plan = load_plan([PHANTOM])
    grid = plan.doses[0].grid
    body = plan.structure_set.by_name("BODY")
    reference = engine.compute_dvh(body, grid)
    monkeypatch.setattr(engine, "CHUNK_PIXELS", chunk)
    other = engine.compute_dvh(body, grid)
    assert other.volume_cc == pytest.approx(reference.volume_cc, rel=1e-12)
    assert other.mean_gy == pytest.approx(reference.mean_gy, rel=1e-9)
    # Equal but for the order of floating-point sums (a 22-litre body: 1e-12 of it).
    atol = 1e-12 * reference.volume_cc
    assert np.allclose(other.differential_cc, reference.differential_cc, rtol=0, atol=atol)


@pytest.mark.parametrize("chunk", [1, 3000, 65536])
@pytest.mark.parametrize("frames", [slice(None), slice(12, 40)])
def test_batches_cut_slabs_at_dose_frames_and_window_their_contours(monkeypatch, chunk, frames):
    # Every slab's depth is shared out whole among the batches, no dose cell is in two of
    # them (so its whole pixels pool in one), and each batch's window holds every contour of
    # its slabs; also with a dose grid that stops short of the ROI in z (cuts beyond it).
    from dataclasses import replace

    from rtcheck.dvh.regions import Region

    monkeypatch.setattr(engine, "CHUNK_PIXELS", chunk)
    plan = load_plan([PHANTOM])
    full = plan.doses[0].grid
    dose = replace(full, z_mm=full.z_mm[frames], dose_gy=full.dose_gy[frames])
    ss = plan.structure_set
    region = Region("Lungs-PTV", (ss.by_name("Lung Rt"), ss.by_name("LUNG LT")),
                    (ss.by_name("PTV_50"),))  # fmt: skip
    for part in region.apart(margin_mm=4 * engine.sampling_spacing(region, dose)):
        grid = engine.sampling_grid(part, dose)
        slabs = part.slabs()
        depth = np.zeros(len(slabs))
        cells_seen: set[int] = set()
        batches = list(engine._batches(part, grid, slabs, dose))
        assert len(batches) >= (2 if chunk < 65536 else 1)
        for batch, rows, columns in batches:
            if chunk == 1:  # beyond the dose grid, a batch may end at any slab's end
                assert np.count_nonzero(batch.bottom_mm > dose.z_mm[-1] + 0.01) <= 1
            index = np.searchsorted(slabs.top_mm, batch.top_mm, side="left")
            assert np.all(slabs.bottom_mm[index] <= batch.bottom_mm + 1e-12)
            depth[index] += batch.depth_mm
            pieces = engine._SlabPieces.of(batch.bottom_mm, batch.top_mm, dose)
            if pieces is not None:
                cells = set(pieces.frame[pieces.depth_mm > 0].tolist())
                assert not cells & cells_seen
                cells_seen |= cells
            s = grid.spacing_mm
            for structure, planes in zip(part.plus, batch.planes, strict=False):
                for k in planes[planes >= 0]:
                    for polygon in structure.planes[k].polygons:
                        column = (polygon[:, 0] - grid.x0_mm) / s
                        row = (polygon[:, 1] - grid.y0_mm) / s
                        assert columns.start < column.min() and column.max() < columns.stop
                        assert rows.start < row.min() and row.max() < rows.stop
        assert np.allclose(depth, slabs.depth_mm, rtol=0, atol=1e-9)


def test_whole_cells_pool_every_piece_of_a_cell_into_its_moments():
    # Against a plain per-cell sum of each piece's depth moments over the whole pixels.
    rng = np.random.default_rng(11)
    planes, width, npix, lowest = 7, 3, 6, 4
    frame = lowest + rng.integers(0, 4, (planes, width))
    depth = rng.uniform(0.1, 1.5, (planes, width)) * (rng.random((planes, width)) > 0.2)
    depth[0, 0], frame[0, 0] = 0.7, lowest  # the lowest cell is reached
    frame[depth == 0] = lowest  # (a missing piece points at a cell the batch uses)
    fraction = rng.uniform(0, 1, (planes, width))
    per_mm = rng.uniform(0.2, 0.6, (planes, width))
    whole = rng.random((planes, npix)) > 0.3
    cells, moments = engine._whole_cells(engine._SlabPieces(frame, fraction, depth, per_mm), whole)
    expected = np.zeros((int(frame.max()) - lowest + 1, 3, npix))
    for p, j in zip(*np.nonzero(depth > 0), strict=True):
        f, dz = fraction[p, j], depth[p, j]
        extent = dz * per_mm[p, j]
        row = np.array([dz, dz * f, dz * (f * f + extent * extent / 12.0)])
        expected[frame[p, j] - lowest] += row[:, None] * whole[p]
    assert cells.tolist() == list(range(lowest, int(frame.max()) + 1))
    assert np.allclose(moments, expected, rtol=1e-12, atol=1e-15)
