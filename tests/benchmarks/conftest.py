"""Prints the speed ratios of the benchmarks at the end of the session (pytest-benchmark's own table
gives seconds; the ratios are what we track: cost relative to a baseline measured in the same
session, e.g. one bare numpy.linalg.eig of the same matrix for the preparatory backends)."""
import pytest

from _speed_table import NOTES, RATIOS, RUNS, ratio_table, run_table


def pytest_collection_modifyitems(config, items):
    """The ratios need timings. With pytest-benchmark disabled (the project's default addopts) a
    benchmark test is skipped with a hint instead of failing on missing statistics."""
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        skip = pytest.mark.skip(reason="speed benchmark: run with --benchmark-enable (make bench)")
        for item in items:
            if "benchmark" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not RATIOS and not NOTES and not RUNS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("tcnet speed: ratios to a baseline measured in the same session")
    if RATIOS:
        write("preparatory objective, value+gradient / numpy.linalg.eig of the same J, per-round ratios: median (min)")
        for line in ratio_table(RATIOS):
            write(line)
    if RUNS:
        write("end-to-end N = 500 reproduction (seed 2, legacy init, beta 0.01; final loss published with TensorFlow: "
              "0.64046; run time without plugin discovery)")
        for line in run_table(RUNS):
            write(line)
    for line in NOTES:
        write(line)
