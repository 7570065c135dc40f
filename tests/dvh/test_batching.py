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
