"""The streaming dose histogram: exact spreads, the same result however samples are grouped."""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck.dvh.histogram import TALLY_SAMPLES, HistogramTally

W = 0.005  # bin width (Gy)


def test_a_sample_spreads_uniformly_over_its_range():
    tally = HistogramTally(W)
    # Half-width sqrt(3 * variance) = 1 Gy around 10 Gy: 400 bins of 1/400 cc each.
    tally.add(np.array([10.0]), np.array([1.0]), np.array([1.0 / 3.0]))
    summary = tally.summary()
    filled = np.flatnonzero(summary.differential_cc)
    assert filled[0] == 1800 and filled[-1] == 2199
    assert np.allclose(summary.differential_cc[filled], 1.0 / 400)
    assert summary.volume_cc == 1.0 and summary.mean_gy == 10.0
    assert summary.min_gy == pytest.approx(9.0) and summary.max_gy == pytest.approx(11.0)


def test_grouping_does_not_change_the_result():
    rng = np.random.default_rng(3)
    n = 3 * TALLY_SAMPLES + 1234
    dose = rng.uniform(0.0, 80.0, n)  # past the tally's first allocation of bins
    volume = rng.uniform(0.0, 0.01, n)
    variance = rng.uniform(0.0, 0.5, n)
    whole = HistogramTally(W)
    whole.add(dose.copy(), volume.copy(), variance.copy())
    pieces = HistogramTally(W)
    cuts = np.sort(rng.choice(np.arange(1, n), 40, replace=False))
    for d, v, s in zip(*(np.split(a, cuts) for a in (dose, volume, variance)), strict=True):
        pieces.add(d.copy(), v.copy(), s.copy())
    a, b = whole.summary(), pieces.summary()
    assert a.differential_cc.shape == b.differential_cc.shape
    assert np.allclose(a.differential_cc, b.differential_cc, rtol=0, atol=1e-12)
    assert a.volume_cc == pytest.approx(b.volume_cc, rel=1e-12)
    assert a.mean_gy == pytest.approx(b.mean_gy, rel=1e-12)
    assert (a.min_gy, a.max_gy) == (b.min_gy, b.max_gy)
    assert a.differential_cc.sum() == pytest.approx(volume.sum(), rel=1e-9)


def test_samples_without_volume_and_doses_below_zero():
    tally = HistogramTally(W)
    # A sample of no volume counts nowhere, not even in the highest dose.
    tally.add(np.array([-0.3, 5.0, 90.0]), np.array([2.0, 1.0, 0.0]), np.zeros(3))
    summary = tally.summary()
    assert summary.volume_cc == 3.0
    assert summary.mean_gy == pytest.approx(5.0 / 3.0)  # -0.3 Gy counts as 0 Gy
    assert summary.min_gy == 0.0 and summary.max_gy == 5.0
    assert summary.differential_cc[0] == 2.0 and summary.differential_cc[1000] == 1.0
    assert len(summary.differential_cc) == 1001


def test_no_sample_is_no_volume():
    summary = HistogramTally(W).summary()
    assert summary.volume_cc == 0.0 and np.isnan(summary.mean_gy)
