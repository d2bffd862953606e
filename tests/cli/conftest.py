"""Fixtures: the real gRPC server over FakeControlPlane, as a process, for `eegpi` to talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.cli_runner import TOKEN, FakeDaemon, start_fake_daemon


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    yield from start_fake_daemon()


@pytest.fixture
def fake_with_token() -> Iterator[FakeDaemon]:
    yield from start_fake_daemon("--token", TOKEN)
