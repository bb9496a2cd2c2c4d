"""The ``streamtape`` command: glue between click, rich and the library.

``main`` is the click group (``_app``: the group, one-sentence errors, what commands share); each
command lives in its own module and registers itself on ``main`` when imported below:

- ``demo``: ``streamtape demo`` and the demo it runs
- ``inspect``: ``streamtape inspect`` (the report itself is ``streamtape.report``)
- ``lint``: ``streamtape lint`` (the checks are ``streamtape.lint``)
- ``import_``: ``streamtape import`` (the conversion is ``streamtape.importer``)
- ``serve``: ``streamtape serve`` (the server is ``streamtape.server``)
- ``play``: ``streamtape play``, and the live rendering of one streamed call it shares with ``record``
- ``record``: ``streamtape record``
- ``synth``: ``streamtape synth`` (the builder is ``streamtape.synth``)
- ``drift``: ``streamtape drift`` (the re-sending and the structural diff are ``streamtape.drift``)

Importing this package stays cheap: the library, the SDK and the HTTP stacks a command needs are
imported inside that command, when it runs.
"""

from __future__ import annotations

from . import demo, drift, import_, inspect, lint, play, record, serve, synth  # noqa: F401 - each registers its command
from ._app import EPILOG_EXIT, main

__all__ = ["EPILOG_EXIT", "main"]
