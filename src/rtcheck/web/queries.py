"""What the dashboard and the API read from the results database: plans filtered, sorted and
paged in SQL (so that 100,000 plans cost one indexed query per page), a plan with its history,
and a limit's values across the archive. Every value from a request is a bound parameter."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rtcheck.archive.store import (
    checks_table,
    dvh_table,
    errors_table,
    limits_table,
    plans_table,
    records_table,
)
from rtcheck.dvh.compact import decode_dvh
from rtcheck.dvh.engine import DVH
from rtcheck.evaluation.results import BROKEN, Eligibility

SortKey = Literal["checked_at", "patient_id", "decision", "protocol", "lesion_count"]
SORT_KEYS: tuple[SortKey, ...] = (
    "checked_at",
    "patient_id",
    "decision",
    "protocol",
    "lesion_count",
)
DECISIONS = (Eligibility.EXCLUDED, Eligibility.NOT_EXCLUDED, Eligibility.INDETERMINATE, "error")
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


def _where(f: PlanFilter, dialect: str) -> list[Any]:
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
        columns = (p.patient_id, p.plan_key, p.study_uid, p.failed_mandatory)
        # SQLite's LIKE ignores ASCII case already; its ILIKE (lower() on both sides) costs
        # three times as much over every row.
        if dialect == "sqlite":
            clauses.append(sa.or_(*(c.like(needle, escape="\\") for c in columns)))
        else:
            clauses.append(sa.or_(*(c.ilike(needle, escape="\\") for c in columns)))
    return clauses


def list_plans(
    engine: Engine,
    f: PlanFilter,
    *,
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
    where = _where(f, engine.dialect.name)
    with engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(plans_table).where(*where)
        ).scalar_one()
        rows = (
            connection.execute(
                sa.select(
                    p.id,
                    p.plan_key,
                    p.patient_id,
                    p.study_uid,
                    p.protocol,
                    p.status,
                    p.decision,
                    p.failed_mandatory,
                    p.lesion_count,
                    p.checked_at,
                    p.kind,
                )
                .where(*where)
                .order_by(*order)
                .limit(size)
                .offset((page - 1) * size)
            )
            .mappings()
            .all()
        )
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
        row = (
            connection.execute(
                sa.select(
                    plans_table, records_table.c.record, errors_table.c.message.label("error")
                )
                .select_from(plans_table.outerjoin(errors_table).outerjoin(records_table))
                .where(p.plan_key == key)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        history = (
            connection.execute(
                sa.select(checks_table)
                .where(checks_table.c.plan_key == key)
                .order_by(checks_table.c.checked_at, checks_table.c.id)
            )
            .mappings()
            .all()
        )
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
            sa.select(
                lim.structure,
                lim.metric,
                lim.priority,
                sa.func.count().label("plans"),
                failed.label("failed"),
            )
            .select_from(limits_table.join(plans_table))
            .where(plans_table.c.protocol == protocol)
            .group_by(lim.structure, lim.metric, lim.priority)
            .order_by(sa.desc("failed"), lim.structure, lim.metric)
        ).all()
    return [
        LimitKey(r.structure, r.metric, r.priority, int(r.plans), int(r.failed or 0)) for r in rows
    ]


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
        rows = (
            connection.execute(
                sa.select(
                    p.plan_key,
                    p.patient_id,
                    p.checked_at,
                    lim.lesion,
                    lim.limit,
                    lim.value,
                    lim.margin,
                    lim.result,
                    lim.priority,
                )
                .select_from(limits_table.join(plans_table))
                .where(p.protocol == protocol, lim.structure == structure, lim.metric == metric)
            )
            .mappings()
            .all()
        )
    return LimitValues(tuple(dict(r) for r in rows))


def shown_decision(row: dict[str, Any]) -> str:
    """A plan's decision, or "error" for a plan whose check failed; a screen's says it is one
    (``screen: plan_needed``), never a plan check's."""
    if row.get("status") == "error":
        return "error"
    decision = str(row.get("decision") or "-")
    return f"screen: {decision}" if row.get("kind") == "screen" else decision


class _StoredDVHs(Mapping[tuple[str, str], DVH]):
    """A plan's stored DVHs by (structure, dose key), each read and decoded when asked for:
    a what-if reads one only where an edit changed a metric."""

    def __init__(self, engine: Engine, plan_id: int) -> None:
        self.engine, self.plan_id = engine, plan_id
        self._keys: list[tuple[str, str]] | None = None

    def __getitem__(self, key: tuple[str, str]) -> DVH:
        d = dvh_table.c
        with self.engine.connect() as connection:
            data = connection.execute(
                sa.select(d.curve).where(
                    d.plan_id == self.plan_id, d.structure == key[0], d.dose == key[1]
                )
            ).scalar()
        if data is None:
            raise KeyError(key)
        return decode_dvh(key[0], bytes(data))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if self._keys is None:
            d = dvh_table.c
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(d.structure, d.dose).where(
                        d.plan_id == self.plan_id, d.curve.is_not(None)
                    )
                ).all()
            self._keys = [(r.structure, r.dose) for r in rows]
        return iter(self._keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class StoredEvidence:
    """What a what-if needs of one stored plan."""

    plan_key: str
    patient_id: str | None
    record: dict[str, Any]
    dvhs: Mapping[tuple[str, str], DVH]


def evidence(engine: Engine, protocol: str) -> Iterator[StoredEvidence]:
    """Every plan checked against ``protocol`` ("name version") with a record."""
    p = plans_table.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(p.id, p.plan_key, p.patient_id, records_table.c.record)
            .select_from(plans_table.join(records_table))
            .where(p.protocol == protocol)
            .order_by(p.plan_key)
        ).all()
    for row in rows:
        yield StoredEvidence(
            row.plan_key, row.patient_id, json.loads(row.record), _StoredDVHs(engine, int(row.id))
        )


def protocol_text(engine: Engine, protocol: str) -> str | None:
    """The text of the protocol file plans of ``protocol`` were checked against, where that
    file (by the path a record gives, else the bundled one of its name) is unchanged."""
    import hashlib

    from rtcheck.errors import RtcheckError
    from rtcheck.protocol.definition import find_protocol

    with engine.connect() as connection:
        text = connection.execute(
            sa.select(records_table.c.record)
            .select_from(records_table.join(plans_table))
            .where(plans_table.c.protocol == protocol)
            .limit(1)
        ).scalar()
    if not text:
        return None
    stated = json.loads(text).get("protocol") or {}
    for candidate in (stated.get("path"), stated.get("name")):
        if not candidate:
            continue
        try:
            data = find_protocol(str(candidate)).read_bytes()
        except (RtcheckError, OSError):
            continue
        if hashlib.sha256(data).hexdigest() == stated.get("sha256"):
            return data.decode("utf-8")
    return None
