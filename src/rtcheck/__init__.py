"""rtcheck: decide whether a radiotherapy plan meets a clinical trial's dose limits."""

from rtcheck.dicom.plan import Plan, load_plan
from rtcheck.dvh.engine import DVH, compute_dvh
from rtcheck.dvh.metrics import evaluate_metric, parse_metric
from rtcheck.errors import RtcheckError

__version__ = "0.1.0"

__all__ = [
    "DVH",
    "Plan",
    "RtcheckError",
    "__version__",
    "compute_dvh",
    "evaluate_metric",
    "load_plan",
    "parse_metric",
]
