"""The linear-quadratic model: BED, EQD2 and conversion of doses between fractionations.

All doses in Gy (total over the course), ``alpha_beta`` in Gy, ``fractions`` a count.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def bed(total_gy: float, fractions: int, alpha_beta: float) -> float:
    """Biologically effective dose, ``n d (1 + d / (α/β))``, of ``total_gy`` in ``fractions``."""
    _check(fractions, alpha_beta)
    return total_gy * (1 + total_gy / fractions / alpha_beta)


def eqd2(total_gy: float, fractions: int, alpha_beta: float) -> float:
    """Equivalent dose in 2 Gy fractions, ``n d (d + α/β) / (2 + α/β)``."""
    return bed(total_gy, fractions, alpha_beta) / (1 + 2 / alpha_beta)


def physical_from_bed(bed_gy: float, fractions: int, alpha_beta: float) -> float:
    """The total dose in ``fractions`` fractions that has biologically effective dose ``bed_gy``.

    Solves ``D (1 + D / (n α/β)) = BED`` for ``D >= 0``.
    """
    _check(fractions, alpha_beta)
    k = fractions * alpha_beta
    return k / 2 * (math.sqrt(1 + 4 * bed_gy / k) - 1)


def convert(total_gy: float, from_fractions: int, to_fractions: int, alpha_beta: float) -> float:
    """The total dose in ``to_fractions`` that is iso-effective (same BED) with ``total_gy`` in
    ``from_fractions``."""
    if from_fractions == to_fractions:
        return total_gy
    return physical_from_bed(bed(total_gy, from_fractions, alpha_beta), to_fractions, alpha_beta)


def eqd2_grid(
    dose_gy: NDArray[np.floating], fractions: int, alpha_beta: float
) -> NDArray[np.float32]:
    """Voxel-wise EQD2 of a dose grid delivered in ``fractions`` fractions."""
    _check(fractions, alpha_beta)
    d = np.asarray(dose_gy, dtype=np.float64)
    return (d * (d / fractions + alpha_beta) / (2 + alpha_beta)).astype(np.float32)


def _check(fractions: int, alpha_beta: float) -> None:
    if fractions < 1:
        raise ValueError(f"number of fractions must be at least 1, not {fractions}")
    if not alpha_beta > 0:
        raise ValueError(f"alpha/beta must be positive, not {alpha_beta}")
