"""How many BLAS threads tcnet's work uses, decided in one place.

- A run (`tcnet.run`) optimizes with `auto_threads()` BLAS threads: one, unless the user set a count
  in the environment (`BLAS_THREAD_VARIABLES`), which is then left alone.
- A study's local worker processes start with `WORKER_ENV` (one BLAS thread each, set before numpy
  loads, as dask's nanny does), so parallel runs do not oversubscribe the cores.
- Code that parallelizes itself over Python threads (SIMPL's E-step) takes `environment_threads()`
  threads where the user set a count, else one per core.

Why one BLAS thread by default: an optimization step of these models is one matrix factorization
(eig, Schur) and a few N x N products, then an optimizer's vector arithmetic. Threads gain little on
the first (LAPACK's eigenvalue iterations are serial) and lose on the rest: after a threaded BLAS
call OpenBLAS's workers spin-wait and take CPU from the thread that goes on, and L-BFGS-B's vector
BLAS on tens of thousands of parameters runs threaded at a loss; on a loaded machine the spinning
threads compete with other processes (README, "BLAS threads", has the measurements).
"""
import contextlib
import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_NUM_THREADS")
"""Environment variables by which a user sets the BLAS thread count themselves."""

WORKER_ENV = {name: "1" for name in BLAS_THREAD_VARIABLES}
"""What a study's worker process has in its environment before numpy loads: one BLAS thread."""


def environment_threads() -> int | None:
    """The BLAS thread count the user set in the environment (the first of BLAS_THREAD_VARIABLES
    holding a positive integer), or None."""
    for name in BLAS_THREAD_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def auto_threads() -> int | None:
    """BLAS threads during a run's optimization by default (`tcnet.run`'s threads="auto"): 1, or
    None (the process's own setting, untouched) where the environment sets the count itself."""
    return None if any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES) else 1


@contextlib.contextmanager
def worker_environment():
    """WORKER_ENV in os.environ while worker processes are spawned (they inherit it before numpy
    loads, so each uses one BLAS thread); the spawning process's environment is restored after."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
