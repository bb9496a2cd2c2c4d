"""The example's tests import names_app from this folder, and need the anthropic >= 1 SDK (httpx2)."""

import sys
from pathlib import Path

import anthropic

sys.path.insert(0, str(Path(__file__).parent))

collect_ignore_glob = [] if int(anthropic.__version__.split(".")[0]) >= 1 else ["*"]
