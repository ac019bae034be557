from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite-scenarios",
        action="store_true",
        help="rewrite the expected traces of tests/raft_scenarios/*.txt from the current code",
    )
