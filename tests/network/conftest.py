"""Fixtures of the network tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.network.peers import Node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """`rtcheck listen` on a free loopback port, sent to by storescu's AE title."""
    running = Node(tmp_path, "--allow", "STORESCU")
    yield running
    if running.process.poll() is None:
        running.process.kill()
