"""Shared fixtures for streamtape's own tests (downstream projects get the plugin's fixtures)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import pytest

from tests.support.wire_server import WireServer

pytest_plugins = ["pytester"]

# pytester runs pytest in this process and, after each run, removes the modules first imported during it.
# httpx imports httpcore only at its first request, and caches httpcore's exception classes then: when that
# first request came inside a pytester run, httpcore was imported again afterwards, and httpx no longer
# recognised its errors (a raw httpcore.RemoteProtocolError reached a later test, on whichever xdist worker
# ran a pytester test first). The HTTP cores, and the stacks that wrap them, are imported once, up front.
for _module in ("httpcore", "httpcore2", "h11", "streamtape.stacks.httpcore", "streamtape.stacks.aiohttp",
                "streamtape.stacks.urllib3"):  # fmt: skip
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)


@pytest.fixture
def server() -> Iterator[WireServer]:
    """A real HTTP/1.1 server on 127.0.0.1 speaking the Anthropic wire format; stopped afterwards."""
    with WireServer() as running:
        yield running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: Test modules whose subject does not depend on the anthropic version: those that never drive the
#: anthropic SDK (other providers' SDKs, plain requests and urllib3, the redaction of those roads), and
#: those of files and counting (saves and locks under kill -9 and xdist, linear work). The second CI
#: environment (anthropic 0.x, there to prove the httpx stack through a real SDK) does not run them again.
_NOT_ANTHROPIC = {"test_provider_openai.py", "test_provider_gemini.py", "test_boto3.py", "test_fidelity_urllib3.py",
                  "test_redaction_stacks.py", "test_saves.py", "test_linear_time.py"}  # fmt: skip


def pytest_ignore_collect(collection_path: object, config: pytest.Config) -> bool | None:
    import anthropic

    name = getattr(collection_path, "name", "")
    if name in _NOT_ANTHROPIC and int(anthropic.__version__.split(".")[0]) < 1:
        return True
    return None
