"""Unit-test hooks: how many generated cases the property tests ran, in the normal output."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

# Filled by tests/unit/test_properties.py: "<property>:<outcome>" -> number of cases.
PROPERTY_CASES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not PROPERTY_CASES:
        return
    total = sum(PROPERTY_CASES.values())
    terminalreporter.write_sep("-", f"tfsops property tests: {total} generated cases")
    by_property: dict[str, list[str]] = {}
    for key, count in sorted(PROPERTY_CASES.items()):
        prop, _, outcome = key.partition(":")
        by_property.setdefault(prop, []).append(f"{outcome} {count}")
    for prop, outcomes in by_property.items():
        terminalreporter.write_line(f"  {prop}: {', '.join(outcomes)}")
