"""Every exception rtcheck raises for a reason the user can act on, in one tree.

Each derives from :class:`RtcheckError`, so that the command line turns any of them into one
line on stderr and a non-zero exit status, a batch into an error row, and the dashboard into
an HTTP 4xx. The classes are defined here and imported where they are raised. ::

    RtcheckError
    ├── InvalidInputError         a file is not DICOM, is truncated, cannot be read
    │   └── UnreadableObjectError     a received object cannot be decoded or is not what it says
    ├── InvalidDoseError          an RTDOSE of a kind rtcheck refuses
    ├── InvalidStructureError     an RTSTRUCT or one of its ROIs cannot be used
    ├── PlanLinkError             the objects given are not one plan (of one patient)
    ├── RegistrationError         a registration object cannot relate two courses safely
    ├── PriorCourseError          an earlier course cannot be summed with the current one
    ├── MetricSyntaxError         a DVH metric is not TG-263 grammar
    ├── MetricEvaluationError     a well-formed metric cannot be evaluated
    ├── LimitExceededError        an input larger than an enforced size (rtcheck.caps)
    ├── YamlFileError             a YAML file cannot be read (too large, aliases, nesting)
    ├── ProtocolError             a protocol file is missing or wrong
    ├── MapFileError              a map file (ROI names, lesion facts) is wrong
    ├── SubjectMapError           the PatientID → trial subject key map is wrong
    ├── RecordFileError           a file is not an eligibility record
    ├── StoredDVHError            a DVH stored for the what-if cannot be read
    ├── StoreError                the results database refuses or is too new
    ├── PacsError                 a PACS cannot be reached, refuses, or fails a query
    ├── UploadError               an upload to the dashboard is too large, empty or unreadable
    │   └── UploadCheckError          an uploaded plan is refused (names the user's files)
    ├── ReportUnavailableError    a stored plan's report cannot be made again
    ├── PoolBusyError             every dashboard check worker is busy, the queue full
    ├── WorkerLostError           a dashboard check worker died
    └── UsageError                the command line itself is wrong (rtcheck.cli)
        └── NoPlanFoundError          a folder to check holds no plan
"""


class RtcheckError(Exception):
    """Base class of every error caused by the input rather than by a bug."""


class InvalidInputError(RtcheckError):
    """A file is not DICOM, is truncated, or cannot be read."""


class UnreadableObjectError(InvalidInputError):
    """A received object that cannot be kept: pydicom cannot decode it, or it is not the
    object it was sent as. ``status`` is the C-STORE failure status to answer with."""

    def __init__(self, message: str, status: int = 0xC000) -> None:
        super().__init__(message)
        self.status = status


class InvalidDoseError(RtcheckError):
    """An RTDOSE is of a kind rtcheck refuses (relative units, oblique or inconsistent grid...)."""


class InvalidStructureError(RtcheckError):
    """An RTSTRUCT or one of its ROIs cannot be used."""


class PlanLinkError(RtcheckError):
    """The RT objects given do not form one consistent plan (missing or mismatched objects,
    or objects of two patients)."""


class RegistrationError(RtcheckError):
    """A Spatial Registration object cannot be used to relate two courses (no item for a
    frame, several matrices in one item, a RIGID matrix that is not a rotation, a deformable
    object read as rigid, a deformation the wrong way...)."""


class PriorCourseError(RtcheckError):
    """An earlier course cannot be summed with the current one (no dose, another patient, no
    registration relating the two frames of reference...)."""


class MetricSyntaxError(RtcheckError):
    """A DVH metric does not follow the TG-263 grammar."""


class MetricEvaluationError(RtcheckError):
    """A well-formed metric cannot be evaluated (e.g. no prescription for a relative dose)."""


class LimitExceededError(RtcheckError):
    """An input is larger than a limit rtcheck enforces."""


class YamlFileError(RtcheckError):
    """A YAML file cannot be read; the message says why (the caller names the file)."""


class ProtocolError(RtcheckError):
    """A protocol file is missing or wrong."""


class MapFileError(RtcheckError):
    """A map file is wrong (the message names the file and the entry)."""


class SubjectMapError(RtcheckError):
    """The subject map is missing, malformed, or lacks a patient being exported."""


class RecordFileError(RtcheckError):
    """A file given as an eligibility record is not one."""


class StoredDVHError(RtcheckError):
    """A DVH stored for the what-if cannot be read back."""


class StoreError(RtcheckError):
    """The results database cannot be used (written by a newer rtcheck, or refusing)."""


class PacsError(RtcheckError):
    """The PACS cannot be reached, refuses the association, or fails a query."""


class UploadError(RtcheckError):
    """An upload that is too large, empty, or a zip that cannot be read."""


class UploadCheckError(UploadError):
    """An uploaded plan is refused; the message names the user's files."""


class ReportUnavailableError(RtcheckError):
    """A stored plan's report cannot be made again (its files or protocol have changed)."""


class PoolBusyError(RtcheckError):
    """Every worker is busy and the queue of waiting checks is full."""


class WorkerLostError(RtcheckError):
    """The worker process checking a plan died (killed by the system, out of memory?)."""


class UsageError(RtcheckError):
    """The command line itself is wrong."""


class NoPlanFoundError(UsageError):
    """A folder to check holds no plan (almost always the wrong folder)."""
