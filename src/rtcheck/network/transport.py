"""How rtcheck's DICOM associations use TCP."""

from __future__ import annotations

import contextlib
import socket
from typing import Any


def without_nagle(assoc: Any) -> None:
    """Send each PDU at once (TCP_NODELAY). pynetdicom writes a request's command and its
    identifier separately; with Nagle's algorithm the second write waits for the peer's
    delayed acknowledgement of the first, about 40 ms per query on Linux."""
    connection = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if connection is not None:
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
