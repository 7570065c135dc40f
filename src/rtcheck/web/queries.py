"""What the dashboard and the API read from the results database: plans filtered, sorted and
paged in SQL (so that 100,000 plans cost one indexed query per page), a plan with its history,
and a limit's values across the archive. Every value from a request is a bound parameter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rtcheck.archive.store import checks_table, errors_table, limits_table, plans_table
from rtcheck.evaluation.results import BROKEN

SortKey = Literal["checked_at", "patient_id", "decision", "protocol", "lesion_count"]
SORT_KEYS: tuple[SortKey, ...] = ("checked_at", "patient_id", "decision", "protocol",
                                  "lesion_count")  # fmt: skip
DECISIONS = ("excluded", "not_excluded", "indeterminate", "error")
#: Most plans one page shows.
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class PlanFilter:
    """Which plans to list; None or "" matches all. ``since`` and ``until`` are ISO dates
    (YYYY-MM-DD) compared with the time of the check (UTC)."""

    decision: str | None = None
    protocol: str | None = None
    since: str | None = None
    until: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class PlanPage:
    """One page of plans and the number of plans matching the filter."""

    rows: tuple[dict[str, Any], ...]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _where(f: PlanFilter) -> list[Any]:
    p = plans_table.c
    clauses: list[Any] = []
    if f.decision == "error":
        clauses.append(p.status == "error")
    elif f.decision:
        clauses.append(p.decision == f.decision)
    if f.protocol:
        clauses.append(p.protocol == f.protocol)
    if f.since:
        clauses.append(p.checked_at >= f.since)
    if f.until:
        clauses.append(p.checked_at < f.until + "~")  # the whole day: '~' sorts after 'T...'
    if f.text:
        # LIKE with the user's wildcards escaped, so that '%' and '_' match themselves.
        needle = "%" + f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(sa.or_(*(column.ilike(needle, escape="\\") for column in (
            p.patient_id, p.plan_key, p.study_uid, p.failed_mandatory))))  # fmt: skip
    return clauses


def list_plans(
    engine: Engine,
    f: PlanFilter,
    sort: SortKey = "checked_at",
    descending: bool = True,
    page: int = 1,
    size: int = 50,
) -> PlanPage:
    """A page of the plans matching ``f``, sorted (then by plan key, so pages are stable)."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    page = max(1, page)
    p = plans_table.c
    column = getattr(p, sort if sort in SORT_KEYS else "checked_at")
    order = [column.desc() if descending else column.asc(), p.plan_key.asc()]
    where = _where(f)
    with engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(plans_table).where(*where)
        ).scalar_one()
        rows = connection.execute(
            sa.select(p.id, p.plan_key, p.patient_id, p.study_uid, p.protocol, p.status,
                      p.decision, p.failed_mandatory, p.lesion_count, p.checked_at)
            .where(*where).order_by(*order).limit(size).offset((page - 1) * size)
        ).mappings().all()  # fmt: skip
    return PlanPage(tuple(dict(r) for r in rows), int(total), page, size)


def protocols(engine: Engine) -> list[str]:
    """The protocols plans were checked against ("name version"), sorted."""
    with engine.connect() as connection:
        names = connection.execute(sa.select(plans_table.c.protocol).distinct()).scalars()
        return sorted(str(n) for n in names if n)


@dataclass(frozen=True)
class StoredPlan:
    """One stored plan: its row, its record (None for a plan whose check failed), its error,
    and every check of it (oldest first)."""

    row: dict[str, Any]
    record: dict[str, Any] | None
    error: str | None
    history: tuple[dict[str, Any], ...]


def stored_plan(engine: Engine, key: str) -> StoredPlan | None:
    """The plan stored under ``key``, or None."""
    p = plans_table.c
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(plans_table, errors_table.c.message.label("error"))
            .select_from(plans_table.outerjoin(errors_table)).where(p.plan_key == key)
        ).mappings().first()  # fmt: skip
        if row is None:
            return None
        history = connection.execute(
            sa.select(checks_table).where(checks_table.c.plan_key == key)
            .order_by(checks_table.c.checked_at, checks_table.c.id)
        ).mappings().all()  # fmt: skip
    record = json.loads(row["record"]) if row["record"] else None
    plain = {k: v for k, v in row.items() if k not in ("record",)}
    return StoredPlan(plain, record, row["error"], tuple(dict(h) for h in history))


@dataclass(frozen=True)
class LimitKey:
    """A limit as stored: structure, metric and priority, with the plans it was evaluated in
    and how many of them it failed."""

    structure: str
    metric: str
    priority: str
    plans: int
    failed: int


def limit_keys(engine: Engine, protocol: str) -> list[LimitKey]:
    """Every limit stored for plans of ``protocol``, the most often failed first."""
    lim = limits_table.c
    failed = sa.func.sum(sa.case((lim.result.in_(BROKEN), 1), else_=0))
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(lim.structure, lim.metric, lim.priority,
                      sa.func.count().label("plans"), failed.label("failed"))
            .select_from(limits_table.join(plans_table))
            .where(plans_table.c.protocol == protocol)
            .group_by(lim.structure, lim.metric, lim.priority)
            .order_by(sa.desc("failed"), lim.structure, lim.metric)
        ).all()  # fmt: skip
    return [LimitKey(r.structure, r.metric, r.priority, int(r.plans), int(r.failed or 0))
            for r in rows]  # fmt: skip


@dataclass(frozen=True)
class LimitValues:
    """One limit's evaluations across the archive."""

    rows: tuple[dict[str, Any], ...]

    @property
    def values(self) -> list[float]:
        return [float(r["value"]) for r in self.rows if r["value"] is not None]

    def nearest(self, count: int = 10) -> list[dict[str, Any]]:
        """The plans whose value is nearest to the limit (smallest margin, failures first)."""
        measured = [r for r in self.rows if r["margin"] is not None]
        return sorted(measured, key=lambda r: float(r["margin"]))[:count]

    def failure_rate_by_month(self) -> list[tuple[str, int, int]]:
        """(YYYY-MM, failed, evaluated) for each month plans were checked in."""
        months: dict[str, list[int]] = {}
        for r in self.rows:
            if r["value"] is None:
                continue
            counts = months.setdefault(str(r["checked_at"])[:7], [0, 0])
            counts[0] += r["result"] in BROKEN
            counts[1] += 1
        return [(m, c[0], c[1]) for m, c in sorted(months.items())]


def limit_values(engine: Engine, protocol: str, structure: str, metric: str) -> LimitValues:
    """Every stored evaluation of one limit in plans of ``protocol``."""
    lim, p = limits_table.c, plans_table.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(p.plan_key, p.patient_id, p.checked_at, lim.lesion, lim.limit, lim.value,
                      lim.margin, lim.result, lim.priority)
            .select_from(limits_table.join(plans_table))
            .where(p.protocol == protocol, lim.structure == structure, lim.metric == metric)
        ).mappings().all()  # fmt: skip
    return LimitValues(tuple(dict(r) for r in rows))


def shown_decision(row: dict[str, Any]) -> str:
    """A plan's decision, or "error" for a plan whose check failed."""
    return "error" if row.get("status") == "error" else str(row.get("decision") or "-")
