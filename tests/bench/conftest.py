from typing import Any

from tests.bench import report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    text = report.table()
    if text:
        terminalreporter.write_sep("=", "make bench")
        terminalreporter.write_line(text)
        terminalreporter.write_line(f"raw results: {report.RESULTS}/*.json")
