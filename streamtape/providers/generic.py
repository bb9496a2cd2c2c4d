"""The other model APIs streamtape knows only by their paths: OpenAI's legacy Completions and Ollama.

Anthropic, OpenAI (Chat Completions and Responses), Gemini and Bedrock have modules of their own, with
their error bodies, in-stream errors, grammars and key variables. Faults still shape calls to these
others by default (``/completions``, ``/api/chat``, ``/api/generate``, under any host or path prefix;
the pattern below keeps every path faults shaped before the other providers had modules),
but their error formats are not modelled, so this entry claims no request: those calls get the
fallback provider's formats. Giving one of them its own formats is a new module beside the others
that claims its paths (and drops them from this pattern).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .base import Provider

__all__ = ["OTHER_MODEL_APIS", "OtherModelApis"]


class OtherModelApis(Provider):
    name: ClassVar[str] = "generic"
    #: every model API call faults shaped before providers had modules (the providers that model one now
    #: claim it first), so what a fault applies to by default stays what it was
    requests: ClassVar[str] = (
        r"^POST \S*?(?:/chat/completions|/responses|/completions|:(?:stream)?[gG]enerateContent"
        r"|/converse(?:-stream)?|/invoke(?:-with-response-stream)?|/api/(?:chat|generate))(?:[?#]|$)"
    )

    def claims(self, method: str, url: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
        return False  # no formats of its own: the fallback answers these requests


OTHER_MODEL_APIS = OtherModelApis()
