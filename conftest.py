"""Shared fixtures for streamtape's own tests (downstream projects get the plugin's fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.wire_server import WireServer

pytest_plugins = ["pytester"]


@pytest.fixture
def server() -> Iterator[WireServer]:
    """A real HTTP/1.1 server on 127.0.0.1 speaking the Anthropic wire format; stopped afterwards."""
    with WireServer() as running:
        yield running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
