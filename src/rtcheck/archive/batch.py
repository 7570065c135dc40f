"""Checking a whole archive: index it, check every plan in parallel, store, resume.

The driver (this process) indexes the archive, skips plans already stored with the same input
and protocol hashes, sends one task per plan to a local process pool or to a Dask cluster, and
writes each outcome to the database as it arrives, one transaction per plan. Workers never
write. A broken plan becomes an error row; the batch goes on.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from rtcheck.archive.index import ArchiveIndex, PlanTask, index_archive
from rtcheck.archive.store import (
    DEFAULT_URL,
    PlanOutcome,
    open_store,
    plan_rows,
    save_outcome,
    stored_hashes,
)
from rtcheck.dicom.slabs import EndCaps
from rtcheck.errors import RtcheckError, StoreError
from rtcheck.numbers import json_number
from rtcheck.outputs import cells
from rtcheck.outputs.filenames import plan_file_name, report_name
from rtcheck.protocol.definition import Protocol, load_protocol
from rtcheck.runtime import keep_freed_memory, one_blas_thread

#: Seconds to wait for a Dask scheduler before giving up.
SCHEDULER_TIMEOUT_S = 10

CSV_COLUMNS = (
    "plan_key",
    "patient_id",
    "study_uid",
    "status",
    "decision",
    "failed_mandatory",
    "lesion_count",
    "protocol",
    "checked_at",
    "error",
    "kind",
)


@dataclass
class BatchSummary:
    """What a batch run did."""

    plans_found: int = 0
    skipped: int = 0
    checked: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    index: ArchiveIndex | None = None


#: Local workers started before the archive is indexed, at most (one per core, and no more
#: than this: a small archive on a large machine would leave the rest idle).
WARM_WORKERS = 4


@lru_cache(maxsize=4)
def _protocol(path: str) -> Protocol:
    return load_protocol(path)


def check_task(
    task: PlanTask,
    protocol_path: str,
    with_report: bool = False,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
) -> PlanOutcome:
    """Check one plan (runs in a worker). Never raises: an error becomes the outcome. With
    ``with_report``, the outcome carries the plan's HTML report."""
    from rtcheck.dicom.plan import load_plan
    from rtcheck.dicom.prior import placed_courses
    from rtcheck.dvh.compact import encode_dvh
    from rtcheck.evaluation.eligibility import evaluate
    from rtcheck.outputs.record import eligibility_record

    keep_freed_memory()  # a worker process's own setting; applying it again costs nothing
    if task.kind == "screen":
        return _screen_task(task, protocol_path, with_report, end_caps)
    record: dict[str, Any] | None = None
    summaries: tuple[dict[str, Any], ...] = ()
    error = None
    report = None
    try:
        plan = load_plan(list(task.files))
        evaluation = evaluate(
            plan,
            _protocol(protocol_path),
            end_caps=end_caps,
            earlier=placed_courses(
                plan, [(e.files, [e.registration] if e.registration else []) for e in task.earlier]
            ),
            unsummed=task.unsummed,
        )
        record = eligibility_record(evaluation)
        if with_report:
            from rtcheck.outputs.html_report import plan_report_html

            report = plan_report_html(evaluation)
        summaries = tuple(
            {
                "structure": name,
                "dose": dose,
                "volume_cc": dvh.volume_cc,
                "dose_coverage": dvh.dose_coverage,
                "mean_gy": json_number(dvh.mean_gy, 6),
                "max_gy": json_number(dvh.max_gy, 6),
                "curve": encode_dvh(dvh),
            }
            for name, dose, dvh in evaluation.dvhs
        )
    except RtcheckError as exc:
        error = str(exc)
    except Exception as exc:  # a bug in rtcheck: stored, so the batch goes on
        error = f"internal error: {type(exc).__name__}: {exc}"
    return _outcome(task, record, summaries, error, report)


def _screen_task(
    task: PlanTask, protocol_path: str, with_report: bool, end_caps: EndCaps
) -> PlanOutcome:
    """Screen one structure set without a dose (runs in a worker). Never raises."""
    from rtcheck.dicom.plan import load_contours
    from rtcheck.outputs.screening import screening_html, screening_record
    from rtcheck.screening.screen import screen

    try:
        result = screen(
            load_contours(list(task.files)), _protocol(protocol_path), end_caps=end_caps
        )
        report = screening_html(result) if with_report else None
        return _outcome(task, screening_record(result), (), None, report)
    except RtcheckError as exc:
        return _outcome(task, error=str(exc))
    except Exception as exc:  # a bug in rtcheck: stored, so the batch goes on
        return _outcome(task, error=f"internal error: {type(exc).__name__}: {exc}")


def _outcome(
    task: PlanTask,
    record: dict[str, Any] | None = None,
    summaries: tuple[dict[str, Any], ...] = (),
    error: str | None = None,
    report: str | None = None,
) -> PlanOutcome:
    """The outcome of a task, with what its check gave."""
    return PlanOutcome(
        key=task.key,
        input_hash=task.input_hash,
        patient_id=task.patient_id,
        study_uid=task.study_uid,
        files=task.files,
        record=record,
        dvh_summaries=summaries,
        error=error,
        report_html=report,
    )


def run_batch(
    archive: str | Path,
    protocol_name: str | None = None,
    *,
    db_url: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[BatchSummary, int], None] | None = None,
    report_dir: str | Path | None = None,
    end_caps: EndCaps = EndCaps.HALF_SLAB,
    screen: bool = False,
) -> BatchSummary:
    """Index ``archive``, check every plan not already stored, store every outcome.

    Parameters
    ----------
    archive
        The folder to index.
    protocol_name
        Bundled protocol name or file (default: the trial's).
    db_url
        SQLAlchemy URL of the results database (default: ``sqlite:///rtcheck.db``).
    workers
        Local worker processes (default: one per core). Ignored with ``scheduler``.
    scheduler
        Address of a Dask distributed scheduler (``tcp://host:8786``) to run the tasks on.
    progress
        Called after each stored outcome with the summary so far and the number of tasks.
    report_dir
        Write each checked plan's HTML report there, named as :func:`report_name` says.
    end_caps
        The end-cap convention of every DVH. A plan stored under another one is checked again.
    screen
        Also screen every structure set without a dose (``rtcheck screen``), stored as screens.
    """
    protocol = load_protocol(protocol_name)
    if not Path(archive).is_dir():
        raise RtcheckError(f"{archive}: no such folder")
    # A few local workers start now and import what a check needs while the archive is
    # indexed (a pool of the size wanted replaces them where that is more, and there are plans
    # enough for it).
    wanted = workers or os.cpu_count() or 1
    warm = min(wanted, os.cpu_count() or 1, WARM_WORKERS)
    pool = None if scheduler else _warm_pool(warm, protocol.path)
    try:
        engine = open_store(db_url or DEFAULT_URL)
        summary = BatchSummary()
        summary.index = index_archive(archive)
        tasks = [*summary.index.tasks, *(summary.index.screens if screen else ())]
        summary.plans_found = len(tasks)
        stored = stored_hashes(engine)
        settings = settings_hash(protocol.sha256, end_caps)
        todo = []
        for task in tasks:
            previous = stored.get(task.key)
            if previous == (task.input_hash, settings, "ok"):
                summary.skipped += 1
            else:
                todo.append(task)
        reports = Path(report_dir) if report_dir is not None else None
        if reports is not None:
            reports.mkdir(parents=True, exist_ok=True)
        with_report = reports is not None
        outcomes = (
            _run_dask(todo, protocol.path, scheduler, with_report, end_caps)
            if scheduler
            else _run_local(todo, protocol.path, pool, wanted, with_report, end_caps)
        )
        label = f"{protocol.name} {protocol.version}"
        # Closed here, whatever happens: its pool is shut down now, in order, not at the
        # interpreter's exit (where its wake-up pipe may already be gone).
        with contextlib.closing(outcomes):
            _store_all(outcomes, engine, label, settings, reports, summary, progress, len(todo))
        return summary
    finally:
        if pool is not None:  # already shut down where the plans were checked: harmless
            pool.pool.shutdown(wait=True, cancel_futures=True)


def _store_all(
    outcomes: Iterator[PlanOutcome],
    engine: Engine,
    label: str,
    settings: str,
    reports: Path | None,
    summary: BatchSummary,
    progress: Callable[[BatchSummary, int], None] | None,
    total: int,
) -> None:
    """Store each outcome as it comes, with its report, and count it in ``summary``."""
    for outcome in outcomes:
        outcome = _stored(engine, outcome, label, settings)
        if reports is not None and outcome.report_html:
            path = reports / report_name(outcome.patient_id, outcome.key)
            path.write_text(outcome.report_html, encoding="utf-8")
        summary.checked += 1
        if outcome.error:
            summary.errors.append((outcome.key, outcome.error))
        elif outcome.record:
            summary.decisions[outcome.record["criterion_19"]["decision"]] += 1
        if progress:
            progress(summary, total)


def _stored(engine: Engine, outcome: PlanOutcome, protocol: str, settings: str) -> PlanOutcome:
    """Store an outcome; one the database refuses is stored as an error with the reason, so
    that a hostile plan cannot stop the batch (nor every rerun at the same plan)."""
    try:
        save_outcome(engine, outcome, protocol, settings)
        return outcome
    except StoreError as exc:
        failed = replace(outcome, record=None, dvh_summaries=(), error=str(exc), report_html=None)
    # Where not even the error can be stored, it is still counted and reported.
    with contextlib.suppress(StoreError):
        save_outcome(engine, failed, protocol, settings)
    return failed


def settings_hash(protocol_sha256: str, end_caps: EndCaps) -> str:
    """What a stored plan was checked with, to tell whether it must be checked again: the
    protocol's SHA-256 under the default end caps (as stored before end caps could be chosen),
    else a SHA-256 of it and the end caps."""
    if end_caps is EndCaps.HALF_SLAB:
        return protocol_sha256
    return hashlib.sha256(f"{protocol_sha256}|end-caps={end_caps.value}".encode()).hexdigest()


def _run_local(
    tasks: list[PlanTask],
    protocol_path: str,
    warm: WarmPool | None,
    workers: int,
    with_report: bool,
    end_caps: EndCaps,
) -> Generator[PlanOutcome, None, None]:
    """Check the tasks on ``workers`` local processes (never more than tasks), yielding
    outcomes as they come. The warm pool serves where it is large enough; the pool used is
    shut down at the end.

    A worker that dies (killed by the system, out of memory) breaks the pool. The tasks that
    were in flight are then checked again one at a time, each in a pool of its own: a task that
    kills its worker again is recorded as an error, the others come out as usual, and a fresh
    pool takes the rest. At most two tasks per worker are in flight, so few are suspects.
    """
    if warm is None or not tasks:
        return
    count = max(1, min(workers, len(tasks)))
    pool = warm.pool
    if count > warm.size:  # more workers asked for than cores, and plans for them
        pool.shutdown(wait=True, cancel_futures=True)
        pool = _pool(count)
    arguments = (protocol_path, with_report, end_caps)
    waiting = deque(tasks)
    running: dict[Future[PlanOutcome], PlanTask] = {}
    try:
        while waiting or running:
            while waiting and len(running) < 2 * count:
                task = waiting.popleft()
                running[pool.submit(check_task, task, *arguments)] = task
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            suspects = []
            for future in done:
                task = running.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    suspects.append(task)
            if suspects:
                suspects += running.values()  # every task still in the dead pool
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                for task in suspects:
                    yield _alone(task, arguments)
                pool = _pool(count)
    finally:
        # Waited for, so that the pool's manager thread has ended before the interpreter
        # does: shut down without waiting, it could still write to its wake-up pipe as Python
        # closes it ("OSError: [Errno 9] Bad file descriptor" at exit).
        pool.shutdown(wait=True, cancel_futures=True)


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, initializer=one_blas_thread)


@dataclass(frozen=True)
class WarmPool:
    """A process pool started before the plans are counted, and its number of processes."""

    pool: ProcessPoolExecutor
    size: int


def _warm_pool(workers: int, protocol_path: str) -> WarmPool:
    """A pool of ``workers`` processes, started at once, each given the imports and the
    protocol of a check to do first (a worker that misses it does them on its first plan)."""
    pool = _pool(workers)
    for _ in range(workers):
        pool.submit(_warm_up, protocol_path)
    return WarmPool(pool, workers)


def _warm_up(protocol_path: str) -> None:
    """What a worker's first check would otherwise pay for before it starts: the check's
    modules imported and the protocol read. Never raises (the check says what is wrong)."""
    with contextlib.suppress(Exception):
        import rtcheck.dicom.plan
        import rtcheck.dicom.prior
        import rtcheck.dvh.compact
        import rtcheck.evaluation.eligibility
        import rtcheck.outputs.record  # noqa: F401

        _protocol(protocol_path)


def _alone(task: PlanTask, arguments: tuple[str, bool, EndCaps]) -> PlanOutcome:
    """Check one task in a pool of its own; an outcome with an error if its worker dies."""
    with _pool(1) as pool:
        try:
            return pool.submit(check_task, task, *arguments).result()
        except BrokenProcessPool:
            return _outcome(
                task, error="worker died while checking it (killed by the system, out of memory?)"
            )


def _run_dask(
    tasks: list[PlanTask],
    protocol_path: str,
    scheduler: str,
    with_report: bool,
    end_caps: EndCaps,
) -> Generator[PlanOutcome, None, None]:
    if not tasks:
        return
    from distributed import Client
    from distributed import as_completed as dask_completed

    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:
        raise RtcheckError(
            f"cannot reach the Dask scheduler at {scheduler} within {SCHEDULER_TIMEOUT_S} s "
            f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
        ) from None
    with client:
        futures = client.map(
            check_task,
            tasks,
            protocol_path=protocol_path,
            with_report=with_report,
            end_caps=end_caps,
            pure=False,
        )
        try:
            for future in dask_completed(futures):  # type: ignore[no-untyped-call]
                yield future.result()
        except BaseException:
            client.cancel(futures)  # type: ignore[no-untyped-call]
            raise


def results_csv(engine: Engine) -> str:
    """Stored plans as CSV, one row per plan."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in plan_rows(engine):
        writer.writerow(cells.mapping({k: row.get(k) for k in CSV_COLUMNS}))
    return out.getvalue()


def results_json(engine: Engine) -> str:
    """Stored plans as a JSON array, one object per plan."""
    return json.dumps(list(plan_rows(engine)), indent=2)


def write_records(engine: Engine, folder: str | Path, keys: Iterable[str] | None = None) -> int:
    """Write each stored plan's eligibility record to ``folder``, named by sanitised identifiers
    (``<PatientID>_<plan key>.json``; a screen's record ``….screening.json``). Returns the
    number written."""
    from rtcheck.archive.store import plan_record

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    wanted = set(keys) if keys is not None else None
    written = 0
    for row in plan_rows(engine):
        if wanted is not None and row["plan_key"] not in wanted:
            continue
        record = plan_record(engine, row["plan_key"])
        if record is None:
            continue
        suffix = ".screening.json" if row["kind"] == "screen" else ".json"
        name = plan_file_name(row["patient_id"], row["plan_key"], suffix)
        (target / name).write_text(json.dumps(record, indent=2), encoding="utf-8")
        written += 1
    return written
