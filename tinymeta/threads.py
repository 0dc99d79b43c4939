"""One BLAS thread for small-matrix work, unless the user chose otherwise.

tinymeta's typical matrices (a 40x40 layer, a meta-batch of 25 tasks) are too small for a
second BLAS thread to pay; and when the machine is busy, OpenBLAS's idle threads spin and
fight for the cores: measured up to 7x slower on a loaded 2-core machine (a 30 us matmul
took 15 ms). The command line and the examples call ``limit_blas_threads`` for the whole process.
Library code only does it inside its own training loops (``train.fit``, ``meta.fit``), and
only on small machines: ``small_machine_blas()`` there limits BLAS to one thread for the
duration of the loop when the machine has at most 4 cores and the user set no thread
count; everything outside the loop keeps NumPy's setting.
"""
import contextlib
import os

_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_limit = None


def limit_blas_threads(n=1):
    """Limit NumPy's BLAS to ``n`` threads for the rest of the process, unless one of
    OPENBLAS/OMP/MKL_NUM_THREADS is set. Returns True when a limit was applied."""
    global _limit
    if _limit is not None or any(k in os.environ for k in _ENV):
        return False
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    _limit = threadpool_limits(limits=n, user_api="blas")
    return True


SMALL_MACHINE_CORES = 4


@contextlib.contextmanager
def small_machine_blas():
    """One BLAS thread inside the block on a machine of at most ``SMALL_MACHINE_CORES``
    cores, unless OPENBLAS/OMP/MKL_NUM_THREADS is set or a process-wide limit is on.

    Measured on a 2-core machine with the other core busy: a 784-256-256-10 training step
    took 84 ms with OpenBLAS's default threads and 1.8 ms with one (its idle threads spin and
    fight for the cores); on an idle machine two threads are 1.6x faster on that large step,
    and no faster on meta-learning's small matrices."""
    if _limit is not None or any(k in os.environ for k in _ENV) or (os.cpu_count() or 1) > SMALL_MACHINE_CORES:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
