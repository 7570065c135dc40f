"""``rtcheck listen``: a DICOM Storage SCP (pynetdicom) that stores the RT objects it receives and
checks each plan once it is complete.

Each object is written once, atomically (a temporary file renamed into place, so a transfer
dropped half-way leaves nothing that could be checked), under ``STORAGE/<PatientID>/`` with
sanitised names. When no object has arrived for the settle time, the storage folder goes
through the same pipeline as ``rtcheck batch``: plans are grouped by UID, a plan already stored
with the same inputs is skipped, a plan re-sent with a new dose is checked again, and each
outcome is stored in the database (with its report, when asked). The same happens at start, so
complete plans received before a stop are checked.

Only calling AE titles (and hosts) on the allow list are accepted; every association and every
decision is logged in one line, without patient names. An object that cannot be decoded, or is
not what it was sent as, is refused with a failure status and a log line, never kept unread.

The network is bounded: at most ``max_associations`` at once; a connection that has not asked
for an association within :data:`ASSOCIATE_TIMEOUT_S` is dropped (so idle connections cannot
hold every slot for long), and an association silent for ``idle_timeout_s`` is ended. A stop
lets transfers in progress finish for :data:`STOP_GRACE_S`, then aborts what is still open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtcheck.dicom.dose import READABLE_SYNTAXES
from rtcheck.errors import UnreadableObjectError
from rtcheck.network.storage import IMAGE_STORAGE, RT_STORAGE, ObjectStore
from rtcheck.network.transport import without_nagle

LOG = logging.getLogger("rtcheck.listen")

_SUCCESS, _NOT_AUTHORISED, _OUT_OF_RESOURCES = 0x0000, 0x0124, 0xA700
_VERIFICATION = "1.2.840.10008.1.1"
#: Seconds a connection may stay open without asking for an association (the ARTIM timer).
ASSOCIATE_TIMEOUT_S = 5.0
#: Seconds a stop waits for transfers in progress before it aborts them.
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class Peer:
    """A calling AE allowed to send: its AE title, and its host (None: any host)."""

    ae_title: str
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> Peer:
        """``AE`` or ``AE@host``."""
        ae, _, host = text.partition("@")
        if not 0 < len(ae.strip()) <= 16 or "\\" in ae:
            raise ValueError(f"{text!r}: an AE title is 1 to 16 characters")
        return cls(ae.strip(), host.strip() or None)

    def admits(self, ae_title: str, host: str) -> bool:
        return ae_title.strip() == self.ae_title and self.host in (None, host)


@dataclass
class ListenerSettings:
    """How the listener runs (see ``rtcheck listen --help``)."""

    storage: Path
    port: int = 11112
    host: str = "127.0.0.1"
    ae_title: str = "RTCHECK"
    allow: Sequence[Peer] = ()
    settle_s: float = 5.0
    store_images: bool = False
    check: Callable[[Path], None] | None = None
    max_associations: int = 32
    idle_timeout_s: float = 30.0


@dataclass
class _State:
    last_object: float = 0.0
    pending: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Listener:
    """The Storage SCP and the thread that checks complete plans."""

    def __init__(self, settings: ListenerSettings) -> None:
        self.settings = settings
        self.state = _State(pending=True)  # what is already in storage is checked at start
        self._server: Any = None
        self._stop = threading.Event()
        self._checker = threading.Thread(target=self._check_loop, name="rtcheck-check", daemon=True)
        self.store = ObjectStore(settings.storage)
        self._stopping = False

    def start(self) -> None:
        """Start listening (returns at once)."""
        from pynetdicom import AE, evt

        settings = self.settings
        self.store.prepare()
        ae = AE(ae_title=settings.ae_title)
        ae.add_supported_context(_VERIFICATION)
        for uid in (*RT_STORAGE, *IMAGE_STORAGE):
            ae.add_supported_context(uid, sorted(READABLE_SYNTAXES))
        ae.maximum_pdu_size = 0
        ae.maximum_associations = settings.max_associations
        ae.acse_timeout = ASSOCIATE_TIMEOUT_S
        ae.dimse_timeout = settings.idle_timeout_s
        ae.network_timeout = settings.idle_timeout_s
        handlers: list[Any] = [
            (evt.EVT_ACCEPTED, self._accepted),
            (evt.EVT_REJECTED, self._rejected),
            (evt.EVT_ABORTED, self._aborted),
            (evt.EVT_RELEASED, self._released),
            (evt.EVT_C_ECHO, lambda event: _SUCCESS),
            (evt.EVT_C_STORE, self._store),
        ]
        if settings.allow:
            ae.require_calling_aet = sorted({p.ae_title for p in settings.allow})
        self._server = ae.start_server(
            (settings.host, settings.port), block=False, evt_handlers=handlers
        )
        self._checker.start()
        LOG.info(
            "listening as %s on %s:%d, storing in %s",
            settings.ae_title,
            settings.host,
            settings.port,
            settings.storage,
        )

    def stop(self) -> None:
        """Stop accepting, let transfers in progress finish for :data:`STOP_GRACE_S`, abort
        what is still open, then stop the checker (after the check in progress)."""
        server, self._stopping = self._server, True
        if server is not None:
            end = time.monotonic() + STOP_GRACE_S
            while server.active_associations and time.monotonic() < end:
                time.sleep(0.05)
            for assoc in server.active_associations:
                ae_title, host = self._peer_of(assoc)
                LOG.warning("association from %s@%s aborted: rtcheck is stopping", ae_title, host)
                assoc.abort()
            server.shutdown()
        self._stop.set()
        if self._checker.is_alive():
            self._checker.join(timeout=60)
        LOG.info("stopped")

    # Association events -------------------------------------------------------------------

    def _peer(self, event: Any) -> tuple[str, str]:
        return self._peer_of(event.assoc)

    @staticmethod
    def _peer_of(assoc: Any) -> tuple[str, str]:
        requestor = assoc.requestor
        return str(requestor.ae_title).strip(), str(requestor.address)

    def _accepted(self, event: Any) -> None:
        ae_title, host = self._peer(event)
        if self._stopping:
            LOG.info("association from %s@%s refused: rtcheck is stopping", ae_title, host)
            event.assoc.abort()
            return
        allowed = self.settings.allow
        if allowed and not any(p.admits(ae_title, host) for p in allowed):
            LOG.warning("association from %s@%s refused: not on the allow list", ae_title, host)
            event.assoc.abort()
            return
        without_nagle(event.assoc)
        LOG.info("association from %s@%s accepted", ae_title, host)

    def _rejected(self, event: Any) -> None:
        ae_title, host = self._peer(event)
        LOG.warning("association from %s@%s rejected (AE title not allowed)", ae_title, host)

    def _aborted(self, event: Any) -> None:
        ae_title, host = self._peer(event)
        LOG.info("association from %s@%s aborted", ae_title, host)

    def _released(self, event: Any) -> None:
        ae_title, host = self._peer(event)
        LOG.info("association from %s@%s released", ae_title, host)

    # Storage ------------------------------------------------------------------------------

    def _store(self, event: Any) -> int:
        ae_title, host = self._peer(event)
        allowed = self.settings.allow
        if allowed and not any(p.admits(ae_title, host) for p in allowed):
            return _NOT_AUTHORISED
        sop_class = str(event.request.AffectedSOPClassUID)
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        kind = RT_STORAGE.get(sop_class) or IMAGE_STORAGE.get(sop_class)
        if kind in IMAGE_STORAGE.values() and not self.settings.store_images:
            return _SUCCESS  # accepted and not kept, as configured
        try:
            written = self.store.put_received(event, str(kind))
        except UnreadableObjectError as exc:
            LOG.warning(
                "%s %s from %s@%s refused: %s", kind or "object", sop_uid, ae_title, host, exc
            )
            return exc.status
        except OSError as exc:
            LOG.error("could not store %s: %s", sop_uid, exc.strerror or exc)
            return _OUT_OF_RESOURCES
        if written:
            with self.state.lock:
                self.state.last_object, self.state.pending = time.monotonic(), True
        LOG.info(
            "%s %s from %s@%s %s",
            kind,
            sop_uid,
            ae_title,
            host,
            "stored" if written else "already stored",
        )
        return _SUCCESS

    # Checking -----------------------------------------------------------------------------

    def _check_loop(self) -> None:
        while not self._stop.wait(0.2):
            with self.state.lock:
                quiet = time.monotonic() - self.state.last_object >= self.settings.settle_s
                due = self.state.pending and quiet
                if due:
                    self.state.pending = False
            if due and self.settings.check is not None:
                try:
                    self.settings.check(self.settings.storage)
                except Exception as exc:  # one bad check never stops the listener
                    LOG.error("check failed: %s: %s", type(exc).__name__, exc)
