"""Fixtures shared by the archive tests."""

from __future__ import annotations

import pytest

from tests.archive_factory import write_bases


@pytest.fixture(scope="session")
def bases(tmp_path_factory):
    """One phantom plan of each kind (pass, excluded, indeterminate...), written once."""
    return write_bases(tmp_path_factory.mktemp("bases"))
