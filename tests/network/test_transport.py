"""rtcheck's associations send without Nagle's algorithm, on both ends: as the calling side
(`rtcheck pull`) and as the called side (`rtcheck listen`). With it, each query to a PACS
waited about 40 ms for a delayed acknowledgement (benchmarks/pull_speed.py)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt

from rtcheck.network.listener import Listener, ListenerSettings
from rtcheck.network.pull import Pacs, _Association
from tests.network.peers import free_port

VERIFICATION = "1.2.840.10008.1.1"


def nodelay(assoc: Any) -> int:
    return int(assoc.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_both_ends_of_an_association_send_without_delay(tmp_path: Path) -> None:
    port = free_port()
    listener = Listener(ListenerSettings(storage=tmp_path / "s", port=port, settle_s=3600))
    listener.start()
    seen: list[int] = []
    accepted = threading.Event()

    def record(event: Any) -> None:
        seen.append(nodelay(event.assoc))
        accepted.set()

    try:
        listener._server.bind(evt.EVT_ACCEPTED, record)
        ae = AE(ae_title="RTCHECK")
        ae.add_requested_context(VERIFICATION)
        with _Association(ae, Pacs("RTCHECK", "127.0.0.1", port)) as assoc:
            assert nodelay(assoc) != 0  # the calling side
            assert assoc.send_c_echo().Status == 0
            assert accepted.wait(10)
        # A plain pynetdicom association does not set it: the check above can fail.
        plain = ae.associate("127.0.0.1", port, ae_title="RTCHECK")
        assert nodelay(plain) == 0
        plain.release()
    finally:
        listener.stop()
    assert seen and seen[0] != 0  # the called side, set by the listener's own handler first
