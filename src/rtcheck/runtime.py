"""Process-wide settings under which rtcheck's array work runs faster.

They are applied by the command line and by batch workers, never on import: a program that
imports rtcheck as a library keeps its own settings.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Freed memory kept for reuse before it is returned to the system (bytes).
TRIM_THRESHOLD_BYTES = 512 * 1024 * 1024
#: Largest block served from the heap rather than by its own mapping (glibc's maximum).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Let glibc's allocator keep freed memory for reuse instead of returning it at once.

    A DVH makes many short-lived arrays of a few hundred kilobytes to a few megabytes. By
    default glibc gives such memory back to the system as soon as it is freed, and the next
    array faults every page in again: on the phantom that is about 15,000 page faults and a
    tenth of the DVH time. Returns whether the setting was applied (only on glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trimmed = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    return bool(trimmed and mapped)


#: The variables BLAS libraries read, when they load, for their number of threads.
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
    "BLIS_NUM_THREADS",
)


def one_blas_thread() -> None:
    """Run BLAS (numpy's matrix products) on one thread, unless the user has said otherwise.

    rtcheck's matrix products are small (a DVH pools a few dozen slab pieces over some
    thousand pixels at a time), and OpenBLAS's second thread mostly spins: `rtcheck dvh` on the
    clinical-size phantom takes the same wall time with one thread (1.07 against 1.05 s) but
    35 % less processor time (1.06 against 1.64 s), and on a busy machine it is faster (0.95
    against 1.46 s while CI ran). In a batch, one BLAS pool per worker fought the others (12
    plans in 16.7 s with them, 7.5 s without, on 2 workers). Before
    numpy is imported the setting is an environment variable (a variable the user set is
    kept); after, threadpoolctl sets it in the loaded library.
    """
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
