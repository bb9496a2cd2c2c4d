"""The example's tests import chat_app from this folder, and need the anthropic >= 1 SDK (httpx2)."""

import sys
from pathlib import Path

import anthropic
import pytest

sys.path.insert(0, str(Path(__file__).parent))

collect_ignore_glob = [] if int(anthropic.__version__.split(".")[0]) >= 1 else ["*"]


@pytest.fixture
def client() -> anthropic.Anthropic:
    """The app's client, as it would build it (the tape gives it a placeholder key in replay)."""
    return anthropic.Anthropic(max_retries=2)
