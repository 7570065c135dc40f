"""``rtcheck pull``: find a PACS's RT plans by C-FIND and retrieve them by C-GET, or by C-MOVE
to a Storage SCP this command runs for the while (pynetdicom), into the same storage layout as
``rtcheck listen``; the caller then checks the storage folder as ``rtcheck batch`` does.

Queries are Study Root: studies first (by patient, study UID and study date), then each study's
series, of which those of modality RTSTRUCT, RTDOSE or RTPLAN are kept, then each series'
instances, so that an object already stored is not retrieved again (a pull interrupted or
repeated only fetches what is missing). A series that cannot be retrieved is reported with the
PACS's status and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydicom.dataset import Dataset

from rtcheck.dicom.dose import READABLE_SYNTAXES
from rtcheck.errors import PacsError, UnreadableObjectError
from rtcheck.network.storage import RT_STORAGE, ObjectStore
from rtcheck.network.transport import without_nagle

LOG = logging.getLogger("rtcheck.pull")

#: Modalities of the series a plan is made of.
RT_MODALITIES = frozenset({"RTSTRUCT", "RTDOSE", "RTPLAN"})
_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
_GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve Information Model - MOVE
_PENDING = frozenset({0xFF00, 0xFF01})
_TIMEOUT_S = 60.0
_ENDED = "the retrieval ended without a status (association lost or timed out)"


@dataclass(frozen=True)
class Pacs:
    """A remote Query/Retrieve SCP: its AE title, host and port."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Pacs:
        """``AE@host:port``."""
        ae, at, address = text.partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and host and 0 < len(ae) <= 16 and port.isdigit()):
            raise ValueError(f"{text!r}: expected AE@host:port (an AE title of 1 to 16 characters)")
        if not 0 < int(port) < 65536:
            raise ValueError(f"{text!r}: the port must be from 1 to 65535")
        return cls(ae, host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class PullQuery:
    """Which studies to look in; None matches every value."""

    patient_id: str | None = None
    study_uid: str | None = None
    since: date | None = None


@dataclass(frozen=True)
class RtSeries:
    """One RT series found on the PACS."""

    patient_id: str
    study_uid: str
    series_uid: str
    modality: str


@dataclass(frozen=True)
class MoveReceiver:
    """Retrieve by C-MOVE: the address this command receives on while it pulls (the PACS must
    know this node's AE title at that address and port)."""

    port: int
    host: str = "127.0.0.1"


@dataclass
class PullSummary:
    """What a pull found and fetched."""

    studies: int = 0
    series: list[RtSeries] = field(default_factory=list)
    received: int = 0
    already_stored: int = 0
    #: (series UID, reason) of each series that could not be retrieved.
    failed: list[tuple[str, str]] = field(default_factory=list)


class _Association:
    """An established association, released on exit."""

    def __init__(self, ae: Any, pacs: Pacs, **kwargs: Any) -> None:
        self.assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title, **kwargs)
        if not self.assoc.is_established:
            why = "rejected" if self.assoc.is_rejected else "not established (no answer)"
            raise PacsError(f"association with {pacs} {why}")
        without_nagle(self.assoc)

    def __enter__(self) -> Any:
        return self.assoc

    def __exit__(self, *exc: object) -> None:
        if self.assoc.is_established:
            self.assoc.release()


def _application_entity(calling_ae: str) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = _TIMEOUT_S
    return ae


def _find(assoc: Any, pacs: Pacs, identifier: Dataset, first: bool = False) -> Iterator[Dataset]:
    """The matches of a C-FIND; ``first`` for the association's first query, whose end
    without a status is what a PACS does to a calling AE title it does not know."""
    for status, found in assoc.send_c_find(identifier, _FIND):
        code = int(status.Status) if "Status" in status else None
        if code in _PENDING and found is not None:
            yield found
        elif code is None and not first:
            raise PacsError(
                f"{pacs} ended the association during a {identifier.QueryRetrieveLevel} query"
            )
        elif code is None:
            # What a PACS does to a calling AE title it does not know (Orthanc does so).
            raise PacsError(
                f"{pacs} ended the association at a {identifier.QueryRetrieveLevel} query: is "
                f"{assoc.requestor.ae_title.strip()!s} among its known AE titles, allowed C-FIND "
                "and C-GET?"
            )
        elif code != 0x0000:
            raise PacsError(
                f"{pacs} failed a {identifier.QueryRetrieveLevel} query (status {_hex(code)})"
            )


def _hex(code: int | None) -> str:
    return "none: the association ended" if code is None else f"0x{code:04X}"


def find_rt_series(pacs: Pacs, query: PullQuery, calling_ae: str = "RTCHECK") -> PullSummary:
    """The RT series of every study matching ``query``.

    Raises
    ------
    PacsError
        The PACS cannot be reached, refuses the association or fails a query.
    """
    ae = _application_entity(calling_ae)
    ae.add_requested_context(_FIND)
    summary = PullSummary()
    with _Association(ae, pacs) as assoc:
        studies = Dataset()
        studies.QueryRetrieveLevel = "STUDY"
        studies.PatientID = query.patient_id or ""
        studies.StudyInstanceUID = query.study_uid or ""
        studies.StudyDate = f"{query.since:%Y%m%d}-" if query.since else ""
        found = [
            (str(s.get("PatientID", "")), str(s.StudyInstanceUID))
            for s in _find(assoc, pacs, studies, first=True)
            if s.get("StudyInstanceUID")
        ]
        summary.studies = len(found)
        for patient_id, study_uid in found:
            series = Dataset()
            series.QueryRetrieveLevel = "SERIES"
            series.StudyInstanceUID = study_uid
            series.SeriesInstanceUID = ""
            series.Modality = ""
            for one in _find(assoc, pacs, series):
                modality = str(one.get("Modality", "")).upper()
                if modality in RT_MODALITIES and one.get("SeriesInstanceUID"):
                    summary.series.append(
                        RtSeries(patient_id, study_uid, str(one.SeriesInstanceUID), modality)
                    )
    return summary


def _instances(assoc: Any, pacs: Pacs, series: RtSeries) -> list[str]:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = series.study_uid
    identifier.SeriesInstanceUID = series.series_uid
    identifier.SOPInstanceUID = ""
    return [
        str(i.SOPInstanceUID) for i in _find(assoc, pacs, identifier) if i.get("SOPInstanceUID")
    ]


def retrieve(
    pacs: Pacs,
    summary: PullSummary,
    store: ObjectStore,
    calling_ae: str = "RTCHECK",
    move: MoveReceiver | None = None,
) -> PullSummary:
    """Retrieve every series of ``summary`` that has an instance not yet in ``store``, by C-GET
    or, with ``move``, by C-MOVE to this node; counts and failures are added to ``summary``.

    Raises
    ------
    PacsError
        The PACS cannot be reached or refuses the association, or ``move``'s address cannot be
        listened on.
    """
    from pynetdicom import build_role, evt

    store.prepare()
    ae = _application_entity(calling_ae)
    ae.add_requested_context(_FIND)
    ae.add_requested_context(_MOVE if move else _GET)
    roles = []
    if move is None:
        for uid in RT_STORAGE:
            ae.add_requested_context(uid, sorted(READABLE_SYNTAXES))
        roles = [build_role(uid, scp_role=True) for uid in RT_STORAGE]

    def received(event: Any) -> int:
        sop_class = str(event.request.AffectedSOPClassUID)
        kind = RT_STORAGE.get(sop_class)
        if kind is None:
            return 0xA900  # not an RT object: refused
        try:
            written = store.put_received(event, kind)
        except UnreadableObjectError as exc:
            LOG.warning(
                "%s %s from %s refused: %s", kind, event.request.AffectedSOPInstanceUID, pacs, exc
            )
            return exc.status
        except OSError:
            return 0xA700
        if written:  # one already stored was counted when the series was queried
            summary.received += 1
        return 0x0000

    handlers = [(evt.EVT_C_STORE, received)]
    receiver = _receiver(calling_ae, pacs, move, handlers) if move else None
    try:
        with _Association(ae, pacs, ext_neg=roles, evt_handlers=handlers) as assoc:
            _retrieve_each(assoc, pacs, summary, store, calling_ae if move else None)
    finally:
        if receiver is not None:
            receiver.shutdown()
    return summary


def _receiver(calling_ae: str, pacs: Pacs, move: MoveReceiver, handlers: list[Any]) -> Any:
    """The Storage SCP a C-MOVE sends to, accepting only the PACS's AE title."""
    from pynetdicom import evt

    ae = _application_entity(calling_ae)
    for uid in RT_STORAGE:
        ae.add_supported_context(uid, sorted(READABLE_SYNTAXES))
    ae.require_calling_aet = [pacs.ae_title]
    try:
        return ae.start_server(
            (move.host, move.port),
            block=False,
            evt_handlers=[
                *handlers,
                (evt.EVT_ACCEPTED, lambda event: without_nagle(event.assoc)),
            ],
        )
    except OSError as exc:
        raise PacsError(
            f"cannot receive on {move.host}:{move.port}: {exc.strerror or exc}"
        ) from None


def _retrieve_each(
    assoc: Any,
    pacs: Pacs,
    summary: PullSummary,
    store: ObjectStore,
    move_to: str | None,
) -> None:
    """Retrieve each series with an instance ``store`` lacks (C-MOVE to ``move_to``, else
    C-GET), adding to ``summary``."""
    lost = False
    for series in summary.series:
        if lost or not assoc.is_established:  # the PACS ended it: the rest cannot be retrieved
            summary.failed.append((series.series_uid, "the association was lost"))
            continue
        try:
            wanted = _instances(assoc, pacs, series)
        except PacsError as exc:  # the PACS went away mid-pull: this series and the rest fail
            summary.failed.append((series.series_uid, str(exc)))
            continue
        missing = [uid for uid in wanted if not store.holds(series.patient_id, uid)]
        summary.already_stored += len(wanted) - len(missing)
        if missing:
            reason = _get(assoc, series, move_to)
            if reason:
                summary.failed.append((series.series_uid, reason))
                LOG.warning("series %s (%s): %s", series.series_uid, series.modality, reason)
            if reason == _ENDED:
                # pynetdicom may not have seen the abort yet: a query sent now would wait for
                # the whole DIMSE time-out. The association is given up at once.
                lost = True
                assoc.abort()


def _get(assoc: Any, series: RtSeries, move_to: str | None = None) -> str | None:
    """C-GET one series (or C-MOVE it to ``move_to``); the reason it failed, or None."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.StudyInstanceUID = series.study_uid
    identifier.SeriesInstanceUID = series.series_uid
    last: int | None = None
    failed = 0
    responses = (
        assoc.send_c_move(identifier, move_to, _MOVE)
        if move_to
        else assoc.send_c_get(identifier, _GET)
    )
    for status, _ in responses:
        last = int(status.Status) if "Status" in status else None
        failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
    if last == 0x0000 and not failed:
        return None
    if last is None:
        return _ENDED
    return f"retrieval status {_hex(last)}, {failed} objects not received"


def pull(
    pacs: Pacs,
    query: PullQuery,
    store: ObjectStore,
    calling_ae: str = "RTCHECK",
    move: MoveReceiver | None = None,
) -> PullSummary:
    """Find the RT series matching ``query`` on ``pacs`` and retrieve into ``store`` those not
    already there (by C-GET, or by C-MOVE with ``move``)."""
    summary = find_rt_series(pacs, query, calling_ae)
    LOG.info("%d studies, %d RT series on %s", summary.studies, len(summary.series), pacs)
    return retrieve(pacs, summary, store, calling_ae, move)


def parse_since(text: str) -> date:
    """A study date, ``YYYY-MM-DD`` or DICOM's ``YYYYMMDD``."""
    digits = text.replace("-", "")
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise ValueError(f"{text!r}: expected a date YYYY-MM-DD") from None
