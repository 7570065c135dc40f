"""The plan list's text search on both databases: any case, and a user's '%' and '_' match
themselves (SQLite's LIKE, PostgreSQL's ILIKE)."""

from __future__ import annotations

import os

import pytest

from rtcheck.archive.store import PlanOutcome, checks_table, open_store, plans_table, save_outcome
from rtcheck.web.queries import PlanFilter, list_plans

POSTGRES = os.environ.get("RTCHECK_TEST_POSTGRES_URL")
DATABASES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL")),
]


@pytest.mark.parametrize("url", DATABASES)
def test_text_search_ignores_case_and_takes_wildcards_literally(tmp_path, url):
    engine = open_store(f"sqlite:///{tmp_path / 'q.db'}" if url == "sqlite" else str(POSTGRES))
    for key, patient in (("1.2.1", "Ab%_c"), ("1.2.2", "AbXYc"), ("1.2.3", "other")):
        outcome = PlanOutcome(key, "0" * 64, patient, "1.2.9", ("f.dcm",), None, (), "broken")
        save_outcome(engine, outcome, "p 1", "h" * 64)
    try:

        def found(text: str) -> list[str]:
            return [r["patient_id"] for r in list_plans(engine, PlanFilter(text=text)).rows]

        assert found("ab%_") == ["Ab%_c"]  # not AbXYc
        assert sorted(found("AB")) == ["Ab%_c", "AbXYc"]
        assert found("error-free") == []
        assert list_plans(engine, PlanFilter(decision="error")).total == 3
    finally:
        with engine.begin() as connection:
            connection.execute(plans_table.delete())
            connection.execute(checks_table.delete())
