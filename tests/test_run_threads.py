"""tcnet.run's BLAS thread count: one thread during the optimization by default, the caller's own
setting where they ask for it (threads=None, or a BLAS thread variable in the environment), and
the setting before the call restored afterwards."""
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from tcnet import ConfigError
from tcnet.run import run
from tcnet.threads import BLAS_THREAD_VARIABLES

SPEC = {"dynamics": {"name": "point", "seed": 0, "n": 3}, "loss": [{"name": "quadratic"}],
        "optimizer": {"name": "adam", "steps": 3}}


def blas_threads():
    """The thread counts of the loaded BLAS libraries (numpy's and scipy's OpenBLAS here)."""
    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert counts, "no BLAS library found by threadpoolctl"
    return counts


class Seen:
    """A recorder that notes the BLAS thread counts while the optimization runs."""

    def __init__(self):
        self.counts = []

    def start(self, spec, dynamics):
        pass

    def step(self, step):
        self.counts.append(blas_threads())

    def finish(self, result, final):
        pass


def counts_during(point_plugins, **kwargs):
    seen = Seen()
    run(SPEC, recorders=[seen], progress=False, plugins=point_plugins, **kwargs)
    return seen.counts


@pytest.fixture
def no_thread_variables(monkeypatch):
    for name in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("threads", ["auto", 2])
def test_threads_during_the_run_and_restored_after(point_plugins, no_thread_variables, threads):
    with threadpool_limits(3, user_api="blas"):
        before = blas_threads()
        counts = counts_during(point_plugins, threads=threads)
        assert blas_threads() == before == [3] * len(before)
    expected = 1 if threads == "auto" else 2
    assert counts and all(c == [expected] * len(before) for c in counts)


def test_threads_none_keeps_the_callers_setting(point_plugins, no_thread_variables):
    with threadpool_limits(3, user_api="blas"):
        assert all(c == [3] * len(c) for c in counts_during(point_plugins, threads=None))


@pytest.mark.parametrize("variable", BLAS_THREAD_VARIABLES)
def test_a_thread_variable_in_the_environment_keeps_the_callers_setting(point_plugins, no_thread_variables,
                                                                         monkeypatch, variable):
    monkeypatch.setenv(variable, "3")
    with threadpool_limits(3, user_api="blas"):
        assert all(c == [3] * len(c) for c in counts_during(point_plugins))


def test_threads_restored_when_the_run_fails(point_plugins, no_thread_variables):
    class Failing(Seen):
        def step(self, step):
            raise KeyboardInterrupt

    with threadpool_limits(3, user_api="blas"):
        with pytest.raises(KeyboardInterrupt):
            run(SPEC, recorders=[Failing()], progress=False, plugins=point_plugins)
        assert blas_threads() == [3] * len(blas_threads())


@pytest.mark.parametrize("threads", [0, -1, 1.5, "two", True])
def test_bad_threads_is_one_line(point_plugins, threads):
    with pytest.raises(ConfigError, match="run: threads must be 'auto', None or a positive integer"):
        run(SPEC, progress=False, plugins=point_plugins, threads=threads)
