"""nbval over the notebooks: print each notebook's run time at the end (the course promises minutes)."""

from collections import defaultdict
from pathlib import Path

_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    if report.nodeid.split("::")[0].endswith(".ipynb"):
        _SECONDS[Path(report.nodeid.split("::")[0]).name] += report.duration


def pytest_terminal_summary(terminalreporter):
    if _SECONDS:
        terminalreporter.section("notebook run times (nbval, this machine)")
        for name, seconds in sorted(_SECONDS.items()):
            terminalreporter.write_line(f"{name:40s} {seconds:7.1f} s")
        terminalreporter.write_line(f"{'all notebooks':40s} {sum(_SECONDS.values()):7.1f} s")
