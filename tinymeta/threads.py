"""One BLAS thread for small-matrix work, unless the user chose otherwise.

tinymeta's typical matrices (a 40x40 layer, a meta-batch of 25 tasks) are too small for a
second BLAS thread to pay; and when the machine is busy, OpenBLAS's idle threads spin and
fight for the cores: measured up to 7x slower on a loaded 2-core machine (a 30 us matmul
took 15 ms). The command line and the examples call this; library code never does it
behind your back.
"""
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
