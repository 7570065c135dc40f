"""The dashboard's what-if over the archive: every plan checked against a protocol, judged
again against an edited copy of it (:mod:`rtcheck.evaluation.whatif`)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from rtcheck.evaluation.whatif import AppliedCache, WhatIf, what_if
from rtcheck.protocol.definition import Protocol, load_protocol
from rtcheck.web.queries import evidence

#: Largest protocol text accepted (a protocol file is a few kB).
MAX_PROTOCOL_BYTES = 1_000_000


@dataclass(frozen=True)
class PlanWhatIf:
    """One plan's what-if."""

    plan_key: str
    patient_id: str | None
    outcome: WhatIf


@dataclass(frozen=True)
class ArchiveWhatIf:
    """The what-if over every plan of a protocol: the plans whose decision changes, those that
    need a new check, how many were judged, and how long it took (s)."""

    protocol: str
    edited: str
    judged: int
    changed: tuple[PlanWhatIf, ...]
    needs_check: tuple[PlanWhatIf, ...]
    seconds: float


def load_edited(text: str) -> Protocol:
    """A protocol from the text a user gave (checked as any protocol file is).

    Raises
    ------
    ProtocolError
        The text is not a valid protocol (the message says where).
    """
    from rtcheck.errors import ProtocolError

    if len(text.encode()) > MAX_PROTOCOL_BYTES:
        raise ProtocolError(f"the protocol is larger than {MAX_PROTOCOL_BYTES // 1000} kB")
    with tempfile.TemporaryDirectory(prefix="rtcheck-whatif-") as folder:
        path = Path(folder) / "edited-protocol.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_protocol(str(path))
        except ProtocolError as exc:
            # The temporary file's name means nothing to the user.
            raise ProtocolError(str(exc).replace(str(path), "the edited protocol")) from None


def archive_what_if(engine: Engine, protocol: str, edited: Protocol) -> ArchiveWhatIf:
    """Judge every stored plan of ``protocol`` against ``edited``."""
    start = time.perf_counter()
    changed, needs, judged = [], [], 0
    applied: AppliedCache = {}
    for plan in evidence(engine, protocol):
        outcome = what_if(plan.record, edited, plan.dvhs, applied)
        judged += 1
        if outcome.needs_check is not None:
            needs.append(PlanWhatIf(plan.plan_key, plan.patient_id, outcome))
        elif outcome.changed:
            changed.append(PlanWhatIf(plan.plan_key, plan.patient_id, outcome))
    label = f"{edited.name} {edited.version}"
    return ArchiveWhatIf(
        protocol, label, judged, tuple(changed), tuple(needs), time.perf_counter() - start
    )
