"""The dose each limit is evaluated on, and the DVHs computed in it.

- one plan: its physical dose (in its own number of fractions);
- several plans: the voxel-wise sum of each plan's EQD2 (each grid converted with its own number
  of fractions and the structure's α/β), one sum per α/β.
"""

from __future__ import annotations

import numpy as np

from rtcheck.dicom.dose import DoseGrid
from rtcheck.dicom.plan import DoseSet, Plan
from rtcheck.dicom.slabs import EndCaps
from rtcheck.dvh.engine import DVH, compute_dvh
from rtcheck.dvh.regions import Region
from rtcheck.evaluation.results import NotEvaluable
from rtcheck.protocol import lq
from rtcheck.protocol.lesions import Lesion


class PlanDoses:
    """A plan's doses for evaluation, with the EQD2 sums and DVHs computed so far (cached)."""

    def __init__(self, plan: Plan, fractions: int | None, end_caps: EndCaps) -> None:
        self.plan, self.fractions_override, self.end_caps = plan, fractions, end_caps
        self.summed = len(plan.doses) > 1
        self.dvhs: dict[tuple[str, str], DVH] = {}
        self._eqd2: dict[float, DoseGrid] = {}

    @property
    def mode(self) -> str:
        """How the dose is evaluated, as the record says it."""
        return "EQD2 sum of plans" if self.summed else "physical dose"

    def own_doses(self, lesion: Lesion) -> list[DoseSet]:
        """The dose sets of the plan that names ``lesion`` (its RTPLAN's label)."""
        return [d for d in self.plan.doses if d.plan and d.plan.label == lesion.plan_label]

    def lesion_dose(self, lesion: Lesion) -> DoseSet | None:
        """The dose that treats ``lesion``: its own plan's, else the plan's only one; None when
        neither is known."""
        own = self.own_doses(lesion)
        if own:
            return own[0]
        return self.plan.doses[0] if len(self.plan.doses) == 1 else None

    def fractions_of(self, dose: DoseSet) -> int:
        """The number of fractions of a dose set: its RTPLAN's, else ``--fractions``."""
        n = dose.plan.fractions if dose.plan and dose.plan.fractions else self.fractions_override
        if not n:
            raise NotEvaluable(
                f"unknown fractionation of dose {dose.label!r} (no RTPLAN; give --fractions)"
            )
        return n

    def for_limits(self, alpha_beta: float) -> tuple[DoseGrid, str, int | None]:
        """The grid to evaluate OAR limits on, its key, and its number of fractions (None for
        an EQD2 sum, which is in 2 Gy fractions)."""
        if not self.summed:
            dose = self.plan.doses[0]
            if dose.per_fraction:
                raise NotEvaluable("the RTDOSE is the dose of one fraction, not of the course")
            return dose.grid, "physical", self.fractions_of(dose)
        if alpha_beta not in self._eqd2:
            self._eqd2[alpha_beta] = self._eqd2_sum(alpha_beta)
        return self._eqd2[alpha_beta], f"eqd2:{alpha_beta:g}", None

    def eqd2(self, alpha_beta: float) -> DoseGrid:
        """The current course's EQD2 (Gy) at ``alpha_beta``: the plan's dose converted with its
        fractions, or the EQD2 sum of its plans."""
        grid, _, fractions = self.for_limits(alpha_beta)
        if fractions is None:
            return grid
        return grid.with_dose(lq.eqd2_grid(grid.dose_gy, fractions, alpha_beta), "EQD2")

    def _eqd2_sum(self, alpha_beta: float) -> DoseGrid:
        grids = []
        for dose in self.plan.doses:
            n = self.fractions_of(dose)
            if dose.per_fraction:
                raise NotEvaluable(f"dose {dose.label!r} is the dose of one fraction")
            grids.append((dose.grid, n))
        first = grids[0][0]
        for grid, _ in grids[1:]:
            if not first.same_geometry(grid):
                raise NotEvaluable(
                    "the plans' dose grids differ in geometry; cannot sum their EQD2"
                )
        total = np.zeros(first.dose_gy.shape)
        for grid, n in grids:
            total += lq.eqd2_grid(grid.dose_gy, n, alpha_beta)
        return first.with_dose(total.astype(np.float32), "EQD2_SUM")

    def dvh(self, region: Region, grid: DoseGrid, key: str) -> DVH:
        """The DVH of a region in the grid named ``key`` (computed once)."""
        cache_key = (region.name, key)
        if cache_key not in self.dvhs:
            self.dvhs[cache_key] = compute_dvh(region, grid, end_caps=self.end_caps)
        return self.dvhs[cache_key]
