"""Exception classes raised by rtcheck.

Every error a user can cause with bad input derives from :class:`RtcheckError`, so that the
command line can turn it into one line on stderr and a non-zero exit status.
"""


class RtcheckError(Exception):
    """Base class of every error caused by the input rather than by a bug."""


class InvalidInputError(RtcheckError):
    """A file is not DICOM, is truncated, or cannot be read."""


class InvalidDoseError(RtcheckError):
    """An RTDOSE is of a kind rtcheck refuses (relative units, oblique or inconsistent grid...)."""


class InvalidStructureError(RtcheckError):
    """An RTSTRUCT or one of its ROIs cannot be used."""


class PlanLinkError(RtcheckError):
    """The RT objects given do not form one consistent plan (missing or mismatched objects)."""


class MetricSyntaxError(RtcheckError):
    """A DVH metric does not follow the TG-263 grammar."""


class MetricEvaluationError(RtcheckError):
    """A well-formed metric cannot be evaluated (e.g. no prescription for a relative dose)."""
