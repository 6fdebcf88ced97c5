"""CLI tests read rich tables from captured output: give the console a fixed, wide width."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quantum_trading.cli._console import console


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    previous = console.width
    console.width = 200
    yield
    console.width = previous
