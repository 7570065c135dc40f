"""The names of the plan-quality indices of a lesion, as metrics a protocol can limit (their
computation is in :mod:`rtcheck.dvh.quality`). Kept apart so that reading a protocol does not
load the computation's dependencies."""

from __future__ import annotations

from rtcheck.dvh.metrics import Metric

#: The indices, each with its definition and unit ("" for a ratio).
INDICES = {
    "R100%": ("prescription isodose volume (body) / PTV volume (RTOG 0813/0915)", ""),
    "R50%": ("50 % isodose volume (body) / PTV volume (RTOG 0813/0915)", ""),
    "CI_Paddick": ("(PTV volume covered by the prescription)² / (PTV volume × PIV)", ""),
    "GI_Paddick": ("50 % isodose volume / prescription isodose volume", ""),
    "D2cm[%]": ("highest dose 2 cm or more from the PTV, % of prescription", "%"),
    "HI_ICRU83": ("(D2% − D98%) / D50% of the PTV (ICRU 83)", ""),
}


#: How a lesion's isodose volumes and D2cm are attributed to it, as the record states it.
ATTRIBUTION = (
    "isodose volumes in the body outline; each point within 35 mm of a lesion's PTV is "
    "attributed to the nearest target (every PTV of the plan) by its distance to the target's "
    "surface, and a lesion's isodose volumes are taken in its own part; D2cm is the highest "
    "dose in its part 2 cm or more from its PTV and from every other target; not attributed "
    "where the 50 % isodose attributed to the lesion reaches 35 mm from its PTV or the end of "
    "the body outline, or where the dose grid does not cover the body within 35 mm of it"
)


def parse_index(text: str) -> Metric | None:
    """The plan-quality index named ``text`` as a metric (quantity ``Index``), or None."""
    name = text.strip()
    if name not in INDICES:
        return None
    return Metric(name, "Index", None, None, INDICES[name][1])
