"""Prints the speed ratios of the benchmarks at the end of the session (pytest-benchmark's own table
gives seconds; the ratios are what we track: cost relative to a baseline measured in the same
session, e.g. one bare numpy.linalg.eig of the same matrix for the preparatory backends)."""
import pytest

from _speed_table import NOTES, RATIOS


def pytest_collection_modifyitems(config, items):
    """The ratios need timings. With pytest-benchmark disabled (the project's default addopts) a
    benchmark test is skipped with a hint instead of failing on missing statistics."""
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        skip = pytest.mark.skip(reason="speed benchmark: run with --benchmark-enable (make bench)")
        for item in items:
            if "benchmark" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not RATIOS and not NOTES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("tcnet speed: ratios to a baseline measured in the same session")
    if RATIOS:
        write("preparatory losses, value+gradient / numpy.linalg.eig of the same J:")
        write(f"{'path':<28}{'N':>6}{'ratio(min)':>12}{'ratio(median)':>15}")
        for what, N, r_min, r_med in RATIOS:
            write(f"{what:<28}{N:>6}{r_min:>12.2f}{r_med:>15.2f}")
    for line in NOTES:
        write(line)
