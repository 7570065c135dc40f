"""The results database: one row per plan, per evaluated limit, per DVH summary, per error.

SQLAlchemy Core, so the same code writes SQLite (the default, ``rtcheck.db``) and PostgreSQL
(``postgresql+psycopg://...``). The schema is created and migrated by :func:`open_store`; its
version is kept in ``rtcheck_schema``. Each plan's rows are written in one transaction by the
driver alone, so a crash loses at most the plans in flight and never leaves half a plan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rtcheck.errors import StoreError
from rtcheck.evaluation.results import Grade

if TYPE_CHECKING:
    from rtcheck.outputs.html_summary import FailingLimit
    from rtcheck.outputs.trial_export import SourcedRecord

SCHEMA_VERSION = 4
#: Tries at creating or migrating the schema, for batches that start at the same moment.
SCHEMA_ATTEMPTS = 5
DEFAULT_URL = "sqlite:///rtcheck.db"

metadata = sa.MetaData()

schema_table = sa.Table(
    "rtcheck_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

plans_table = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_key", sa.Text, nullable=False, unique=True),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("protocol_hash", sa.String(64), nullable=False),
    sa.Column("protocol", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ok | error
    sa.Column("decision", sa.String(32)),
    sa.Column("patient_id", sa.Text),
    sa.Column("study_uid", sa.Text),
    sa.Column("lesion_count", sa.Integer),
    sa.Column("failed_mandatory", sa.Text),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("checked_at", sa.String(32), nullable=False),
    sa.Column("protocol_version", sa.Text),
    #: ``check`` (a plan's eligibility record) or ``screen`` (a structure set screened before
    #: any plan: a screening record, never shown as a plan check).
    sa.Column("kind", sa.String(16), nullable=False, server_default="check"),
    # Indexes for the dashboard's filters and sorts over many plans.
    sa.Index("ix_plans_decision_checked_at", "decision", "checked_at"),
    sa.Index("ix_plans_checked_at", "checked_at"),
    sa.Index("ix_plans_patient_id", "patient_id"),
)

#: Each plan's eligibility record (JSON), apart from its row: a record is tens of kB, and a
#: plans row that held it made every scan of the plans (a text search, a count) read it.
records_table = sa.Table(
    "records",
    metadata,
    sa.Column(
        "plan_id", sa.Integer, sa.ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("record", sa.Text, nullable=False),
)

#: Every check of every plan, never deleted: a plan's history (the plans table keeps the last).
checks_table = sa.Table(
    "checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_key", sa.Text, nullable=False, index=True),
    sa.Column("checked_at", sa.String(32), nullable=False),
    sa.Column("protocol", sa.Text, nullable=False),
    sa.Column("protocol_version", sa.Text),
    sa.Column("protocol_hash", sa.String(64), nullable=False),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decision", sa.String(32)),
)

limits_table = sa.Table(
    "limits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.id", ondelete="CASCADE"), index=True),
    sa.Column("structure", sa.Text, nullable=False),
    sa.Column("roi", sa.Text),
    sa.Column("lesion", sa.Text),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("limit", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("margin", sa.Float),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
)

dvh_table = sa.Table(
    "dvh_summaries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.id", ondelete="CASCADE"), index=True),
    sa.Column("structure", sa.Text, nullable=False),
    sa.Column("dose", sa.Text, nullable=False),
    sa.Column("volume_cc", sa.Float),
    sa.Column("dose_coverage", sa.Float),
    sa.Column("mean_gy", sa.Float),
    sa.Column("max_gy", sa.Float),
    #: The DVH itself, compactly (:mod:`rtcheck.dvh.compact`), for the dashboard's what-if.
    sa.Column("curve", sa.LargeBinary),
)

errors_table = sa.Table(
    "errors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.id", ondelete="CASCADE"), index=True),
    sa.Column("message", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class PlanOutcome:
    """What a worker returns for one plan: a record, or an error message."""

    key: str
    input_hash: str
    patient_id: str
    study_uid: str
    files: tuple[str, ...]
    record: Mapping[str, Any] | None
    dvh_summaries: tuple[Mapping[str, Any], ...]
    error: str | None
    report_html: str | None = None


def open_store(url: str = DEFAULT_URL) -> Engine:
    """Connect, create the schema if the database is new, migrate it if it is older.

    Raises
    ------
    StoreError
        If the database cannot be reached or was written by a newer rtcheck.
    """
    try:
        engine = sa.create_engine(url)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        # Two batches started at once on a new database race to create it: the loser's CREATE
        # fails once the winner has committed, and its next try finds the schema there.
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                _create_or_migrate(engine)
                break
            except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
                if attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the results database: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return engine


def _create_or_migrate(engine: Engine) -> None:
    with engine.begin() as connection:
        metadata.create_all(connection)
        versions = connection.execute(sa.select(schema_table.c.version)).scalars().all()
        if not versions:
            connection.execute(schema_table.insert().values(version=SCHEMA_VERSION))
            return
        version = max(versions)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database has schema version {version}; this rtcheck knows up to "
                f"{SCHEMA_VERSION}"
            )
        if version < 2:
            _text_columns(connection)
        if version < 3:
            _history(connection)
        if version < 4:
            _screens(connection)
        if version < SCHEMA_VERSION or len(versions) > 1:
            connection.execute(schema_table.delete())
            connection.execute(schema_table.insert().values(version=SCHEMA_VERSION))


def _text_columns(connection: sa.Connection) -> None:
    """Version 1 → 2: text that comes from DICOM files (UIDs, IDs, ROI names) in unbounded
    columns; PostgreSQL enforced the old lengths, SQLite never did."""
    if connection.dialect.name != "postgresql":
        return
    for table in (plans_table, limits_table, dvh_table):
        for column in table.columns:
            if isinstance(column.type, sa.Text):
                connection.execute(
                    sa.text(f'ALTER TABLE {table.name} ALTER COLUMN "{column.name}" TYPE TEXT')
                )


def _history(connection: sa.Connection) -> None:
    """Version 2 → 3: records in their own table (the plans' column emptied), the protocol's
    version beside its name, the dashboard's indexes, the DVH curves (none for plans checked
    before), and the checks table, started with each stored plan's last check."""
    columns = {c["name"] for c in sa.inspect(connection).get_columns("plans")}
    if "protocol_version" not in columns:
        connection.execute(sa.text("ALTER TABLE plans ADD COLUMN protocol_version TEXT"))
    if "record" in columns:
        connection.execute(
            sa.text(
                "INSERT INTO records (plan_id, record) SELECT id, record FROM plans "
                "WHERE record IS NOT NULL AND id NOT IN (SELECT plan_id FROM records)"
            )
        )
        connection.execute(sa.text("UPDATE plans SET record = NULL"))
    curves = {c["name"] for c in sa.inspect(connection).get_columns("dvh_summaries")}
    if "curve" not in curves:
        blob = sa.LargeBinary().compile(dialect=connection.dialect)
        connection.execute(sa.text(f"ALTER TABLE dvh_summaries ADD COLUMN curve {blob}"))
    for index in plans_table.indexes:
        index.create(connection, checkfirst=True)
    rows = connection.execute(sa.select(records_table)).all()
    for plan_id, text in rows:
        version = (json.loads(text).get("protocol") or {}).get("version")
        connection.execute(
            plans_table.update().where(plans_table.c.id == plan_id).values(protocol_version=version)
        )
    if connection.execute(sa.select(sa.func.count()).select_from(checks_table)).scalar() == 0:
        connection.execute(
            checks_table.insert().from_select(
                [
                    "plan_key",
                    "checked_at",
                    "protocol",
                    "protocol_version",
                    "protocol_hash",
                    "input_hash",
                    "status",
                    "decision",
                ],
                sa.select(
                    plans_table.c.plan_key,
                    plans_table.c.checked_at,
                    plans_table.c.protocol,
                    plans_table.c.protocol_version,
                    plans_table.c.protocol_hash,
                    plans_table.c.input_hash,
                    plans_table.c.status,
                    plans_table.c.decision,
                ),
            )
        )


def _screens(connection: sa.Connection) -> None:
    """Version 3 → 4: the kind of each row (every earlier one a check) and decisions as long as
    a screen's (``excluded_by_geometry``; PostgreSQL enforced 16 characters, SQLite never
    did)."""
    columns = {c["name"] for c in sa.inspect(connection).get_columns("plans")}
    if "kind" not in columns:
        connection.execute(
            sa.text("ALTER TABLE plans ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'check'")
        )
    if connection.dialect.name == "postgresql":
        for table in ("plans", "checks"):
            connection.execute(
                sa.text(f"ALTER TABLE {table} ALTER COLUMN decision TYPE VARCHAR(32)")
            )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # The default rollback journal (not WAL) keeps the whole database in its one file, so that a
    # copied rtcheck.db is complete.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def stored_hashes(engine: Engine) -> dict[str, tuple[str, str, str]]:
    """plan key → (input hash, protocol hash, status) of every stored plan."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                plans_table.c.plan_key,
                plans_table.c.input_hash,
                plans_table.c.protocol_hash,
                plans_table.c.status,
            )
        )
        return {r.plan_key: (r.input_hash, r.protocol_hash, r.status) for r in rows}


def storable(value: Any) -> Any:
    """A value as the database can hold it: text without NUL characters (PostgreSQL refuses
    them; DICOM text may hold them), lists and dicts cleaned throughout."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    return value


def save_outcome(engine: Engine, outcome: PlanOutcome, protocol: str, protocol_hash: str) -> None:
    """Store one plan's outcome in one transaction, replacing any earlier row of the plan.

    Raises
    ------
    StoreError
        If the database refuses it (the caller records the plan as an error and goes on).
    """
    try:
        _save(engine, outcome, protocol, protocol_hash)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"cannot store plan {outcome.key!r}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def _save(engine: Engine, outcome: PlanOutcome, protocol: str, protocol_hash: str) -> None:
    record = storable(outcome.record)
    outcome = replace(
        outcome,
        key=storable(outcome.key),
        patient_id=storable(outcome.patient_id),
        study_uid=storable(outcome.study_uid),
        error=storable(outcome.error),
        dvh_summaries=tuple(storable(dict(row)) for row in outcome.dvh_summaries),
    )
    decision = record["criterion_19"]["decision"] if record else None
    screening = bool(record) and record.get("record_type") == "screening"
    limit_rows = (
        [_screened_row(lim) for lim in record["limits"]]
        if screening
        else (record["limits"] if record else [])
    )
    failed = [
        f"{lim['structure']} {lim['metric']}" + (f" [{lim['lesion']}]" if lim.get("lesion") else "")
        for lim in limit_rows
        if lim["result"] in (Grade.FAIL, Grade.MAJOR_DEVIATION, "cannot_be_met")
        and lim["priority"] == "mandatory"
    ]
    checked_at = datetime.now(UTC).isoformat(timespec="seconds")
    protocol_version = ((record or {}).get("protocol") or {}).get("version")
    with engine.begin() as connection:
        connection.execute(plans_table.delete().where(plans_table.c.plan_key == outcome.key))
        connection.execute(
            checks_table.insert().values(
                plan_key=outcome.key,
                checked_at=checked_at,
                protocol=protocol,
                protocol_version=protocol_version,
                protocol_hash=protocol_hash,
                input_hash=outcome.input_hash,
                status="error" if outcome.error else "ok",
                decision=decision,
            )
        )
        inserted = connection.execute(
            plans_table.insert().values(
                plan_key=outcome.key,
                input_hash=outcome.input_hash,
                protocol_hash=protocol_hash,
                protocol=protocol,
                protocol_version=protocol_version,
                status="error" if outcome.error else "ok",
                decision=decision,
                patient_id=outcome.patient_id,
                study_uid=outcome.study_uid,
                lesion_count=_lesion_count(record),
                failed_mandatory="; ".join(failed),
                files=json.dumps(storable(list(outcome.files))),
                checked_at=checked_at,
                kind="screen" if screening else "check",
            )
        ).inserted_primary_key
        assert inserted is not None
        plan_id = inserted[0]
        if record:
            stored = records_table.insert().values(plan_id=plan_id, record=json.dumps(record))
            connection.execute(stored)
            rows = [
                {
                    "plan_id": plan_id,
                    "structure": lim["structure"],
                    "roi": ", ".join(lim["roi"]),
                    "lesion": lim["lesion"],
                    "metric": lim["metric"],
                    # "" where no limit could be stated for the plan (the reason says why).
                    "limit": lim["limit"] or "",
                    "value": lim["value"],
                    "margin": lim["margin"],
                    "result": lim["result"],
                    "priority": lim["priority"],
                    "reason": lim["reason"],
                }
                for lim in limit_rows
            ]
            if rows:
                connection.execute(limits_table.insert(), rows)
        if outcome.dvh_summaries:
            connection.execute(
                dvh_table.insert(), [{"plan_id": plan_id, **row} for row in outcome.dvh_summaries]
            )
        if outcome.error:
            connection.execute(errors_table.insert().values(plan_id=plan_id, message=outcome.error))


def _screened_row(limit: Mapping[str, Any]) -> dict[str, Any]:
    """A screening record's limit as the limits table holds a check's: its verdict as the
    result, its bound as the value, its course as the lesion."""
    return {
        "structure": limit["structure"],
        "roi": limit["roi"],
        "lesion": limit["course"],
        "metric": limit["metric"],
        "limit": limit["limit"],
        "value": limit["bound"],
        "margin": None,
        "result": limit["verdict"],
        "priority": limit["priority"],
        "reason": limit["evidence"] or limit["reason"],
    }


def _lesion_count(record: Mapping[str, Any] | None) -> int | None:
    if not record:
        return None
    if record.get("record_type") == "screening":
        return sum(1 for c in record["courses"] if c["name"] != "primary")
    return int(record["lesion_count"])


def plan_rows(engine: Engine, with_files: bool = False) -> Iterator[dict[str, Any]]:
    """Every stored plan, one dict per row, ordered by key; with ``files`` (the plan's file
    paths as a JSON array) when asked."""
    extra = [plans_table.c.files] if with_files else []
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                *extra,
                plans_table.c.plan_key,
                plans_table.c.patient_id,
                plans_table.c.study_uid,
                plans_table.c.status,
                plans_table.c.decision,
                plans_table.c.failed_mandatory,
                plans_table.c.lesion_count,
                plans_table.c.protocol,
                plans_table.c.checked_at,
                plans_table.c.kind,
                errors_table.c.message.label("error"),
            )
            .select_from(plans_table.outerjoin(errors_table))
            .order_by(plans_table.c.plan_key)
        )
        for row in rows:
            yield dict(row._mapping)


def plan_record(engine: Engine, key: str) -> dict[str, Any] | None:
    """The eligibility record stored for a plan, or None."""
    with engine.connect() as connection:
        text = connection.execute(
            sa.select(records_table.c.record)
            .select_from(records_table.join(plans_table))
            .where(plans_table.c.plan_key == key)
        ).scalar()
    return json.loads(text) if text else None


def failing_limits(engine: Engine, count: int = 15) -> list[FailingLimit]:
    """The ``count`` limits that fail (or deviate) in the most stored plans, most first."""
    from rtcheck.evaluation.results import BROKEN
    from rtcheck.outputs.html_summary import FailingLimit

    c = limits_table.c
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(
                c.structure,
                c.metric,
                c.priority,
                sa.func.count(sa.distinct(c.plan_id)).label("plans"),
            )
            .where(c.result.in_(BROKEN))
            .group_by(c.structure, c.metric, c.priority)
            .order_by(sa.desc("plans"))
            .limit(count)
        ).all()
    return [
        FailingLimit(str(f.structure), str(f.metric), str(f.priority), int(f.plans)) for f in found
    ]


def stored_records(engine: Engine) -> Iterator[SourcedRecord]:
    """The eligibility record of every stored plan (plans whose check failed have none, and
    screens are no eligibility records: both are left out), named by its plan key."""
    from rtcheck.outputs.trial_export import SourcedRecord

    for row in plan_rows(engine):
        if row["kind"] != "check":
            continue
        record = plan_record(engine, row["plan_key"])
        if record is not None:
            yield SourcedRecord(f"plan {row['plan_key']}", record)
