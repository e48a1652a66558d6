"""Prints the speed ratios of the backend benchmarks as one table at the end of the session
(pytest-benchmark's own table gives seconds; the ratios are what the issue asks for: cost relative
to one bare numpy.linalg.eig of the same matrix, measured in the same session)."""
from _speed_table import NOTES, RATIOS


def pytest_terminal_summary(terminalreporter):
    if not RATIOS and not NOTES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("tcnet speed: value+gradient / numpy.linalg.eig (same matrix, same session)")
    if RATIOS:
        write(f"{'path':<28}{'N':>6}{'ratio(min)':>12}{'ratio(median)':>15}")
        for what, N, r_min, r_med in RATIOS:
            write(f"{what:<28}{N:>6}{r_min:>12.2f}{r_med:>15.2f}")
    for line in NOTES:
        write(line)
