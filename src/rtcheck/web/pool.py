"""The dashboard's checks run in worker processes, so that the server keeps answering while
a plan is checked: at most ``workers`` checks at once and ``queue`` more waiting; beyond that a
check is refused at once (503, try again) instead of piling up."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from rtcheck.errors import PoolBusyError, WorkerLostError

T = TypeVar("T")


class CheckPool:
    """A pool of ``workers`` processes with room for ``queue`` waiting checks.

    The processes are started on first use, by spawning (a server's threads make forking
    unsafe), and kept until :meth:`shutdown`.
    """

    def __init__(self, workers: int = 1, queue: int = 4) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("a pool needs a worker and a queue of 0 or more")
        self.workers, self.queue = workers, queue
        self._executor: ProcessPoolExecutor | None = None
        self._pending = 0

    @property
    def pending(self) -> int:
        """Checks running or waiting."""
        return self._pending

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker process; its result or its exception.

        Raises
        ------
        PoolBusyError
            The pool is full: nothing was started.
        WorkerLostError
            The worker died; the pool is started afresh for the next check.
        """
        if self._pending >= self.workers + self.queue:
            raise PoolBusyError(
                f"{self._pending} checks are running or waiting; try again in a moment"
            )
        self._pending += 1
        try:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            future = self._executor.submit(function, *args)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self.shutdown()
            raise WorkerLostError(
                "the worker checking the plan died (killed by the system, out of memory?)"
            ) from None
        finally:
            self._pending -= 1

    def shutdown(self) -> None:
        """Stop the worker processes (waiting for them), if any were started."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
