"""Fixtures of the hardware tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hw_helpers import SourceRunner


@pytest.fixture
def runner() -> Iterator[SourceRunner]:
    r = SourceRunner()
    try:
        yield r
    finally:
        r.close()
