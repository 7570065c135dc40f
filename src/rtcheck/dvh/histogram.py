"""Dose histograms of samples that each stand for a small volume with a spread of dose.

A sample is a volume (cc) whose dose has a mean and a variance; it is spread uniformly over the
range with that mean and variance (half-width sqrt(3) sigma), which keeps D-metrics from
snapping to the sampling grid. The ends of each range are taken to the nearest bin edge (half
a bin at most), a range narrower than a bin fills the bin nearest to it, and a dose below 0 Gy
counts as 0 Gy. :class:`HistogramTally` gathers samples as they are produced, so that no ROI
ever holds all of its samples in memory at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Samples are histogrammed in groups of about this many (small enough to stay in cache).
TALLY_SAMPLES = 65536


@dataclass(frozen=True, eq=False)
class DoseSummary:
    """What a tally of samples amounts to.

    Attributes
    ----------
    volume_cc
        Total volume of the samples (cc).
    mean_gy, min_gy, max_gy
        Volume-weighted mean, lowest and highest dose (Gy), doses below 0 Gy taken as 0 Gy;
        NaN when there is no volume.
    differential_cc
        Volume (cc) with dose in ``[i*w, (i+1)*w)`` for bin ``i`` of width ``w``.
    """

    volume_cc: float
    mean_gy: float
    min_gy: float
    max_gy: float
    differential_cc: NDArray[np.float64]


class HistogramTally:
    """A differential dose histogram, with the volume, mean, lowest and highest dose, built
    from samples added a group at a time.

    Parameters
    ----------
    bin_width_gy
        Width of the histogram bins (Gy).
    """

    def __init__(self, bin_width_gy: float):
        self._bin_width_gy = bin_width_gy
        self._scale = 1.0 / bin_width_gy
        self._steps = np.zeros(4096)
        self._top_bin = 0
        self._volume_cc = 0.0
        self._dose_volume = 0.0
        self._min_gy = math.inf
        self._max_gy = -math.inf
        self._waiting: list[tuple[NDArray[np.float64], ...]] = []
        self._waiting_size = 0

    def add(
        self,
        dose_gy: NDArray[np.float64],
        volume_cc: NDArray[np.float64],
        variance_gy2: NDArray[np.float64],
    ) -> None:
        """Add samples: mean dose (Gy), volume (cc) and dose variance (Gy²) of each. Samples of
        no volume are left out."""
        used = volume_cc > 0
        if not used.all():
            dose_gy, volume_cc, variance_gy2 = dose_gy[used], volume_cc[used], variance_gy2[used]
        if dose_gy.size == 0:
            return
        self._waiting.append((dose_gy, volume_cc, variance_gy2))
        self._waiting_size += dose_gy.size
        if self._waiting_size >= TALLY_SAMPLES:
            self._histogram_waiting()

    def summary(self) -> DoseSummary:
        """The histogram and totals of every sample added so far."""
        self._histogram_waiting()
        if self._volume_cc <= 0:
            return DoseSummary(0.0, math.nan, math.nan, math.nan, np.zeros(1))
        differential = np.maximum(np.cumsum(self._steps[: self._top_bin]), 0.0)
        return DoseSummary(
            volume_cc=self._volume_cc,
            mean_gy=self._dose_volume / self._volume_cc,
            min_gy=max(0.0, self._min_gy),
            max_gy=self._max_gy,
            differential_cc=differential,
        )

    def _histogram_waiting(self) -> None:
        if not self._waiting:
            return
        if len(self._waiting) == 1:
            dose, volume, variance = self._waiting[0]
        else:
            dose, volume, variance = (np.concatenate(a) for a in zip(*self._waiting, strict=True))
        self._waiting.clear()
        self._waiting_size = 0
        dose = np.maximum(dose, 0.0)
        half_width = np.maximum(variance, 0.0)
        half_width *= 3.0
        np.sqrt(half_width, out=half_width)
        lower, upper = dose - half_width, dose + half_width
        self._volume_cc += float(volume.sum())
        self._dose_volume += float(np.sum(dose * volume))  # not np.dot: no BLAS threads
        self._min_gy = min(self._min_gy, float(lower.min()))
        self._max_gy = max(self._max_gy, float(upper.max()))
        first, last, density = _spread_steps(lower, upper, volume, self._scale)
        top = int(last.max())
        if top >= len(self._steps):
            grown = np.zeros(max(2 * len(self._steps), top + 1))
            grown[: len(self._steps)] = self._steps
            self._steps = grown
        size = len(self._steps)
        self._steps += np.bincount(first, weights=density, minlength=size)
        self._steps -= np.bincount(last, weights=density, minlength=size)
        self._top_bin = max(self._top_bin, top)


def _spread_steps(
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    volume_cc: NDArray[np.float64],
    scale: float,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """First bin, one past the last bin, and volume per bin of each sample's dose range
    ``lower..upper`` (Gy; both arrays are overwritten). ``scale`` is bins per Gy."""
    lower *= scale
    np.rint(lower, out=lower)
    np.maximum(lower, 0.0, out=lower)
    upper *= scale
    np.rint(upper, out=upper)
    np.maximum(upper, lower + 1.0, out=upper)
    density = volume_cc / (upper - lower)
    return lower.astype(np.intp), upper.astype(np.intp), density
