"""rtcheck: decide whether a radiotherapy plan meets a clinical trial's dose limits."""

from rtcheck.dvh import DVH, compute_dvh
from rtcheck.errors import RtcheckError
from rtcheck.metrics import evaluate_metric, parse_metric
from rtcheck.plan import Plan, load_plan

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
