"""The other model APIs streamtape knows only by their paths and key variables.

Faults shape calls to OpenAI (Chat Completions, Responses, Completions), Gemini
(``:generateContent``, ``:streamGenerateContent``), Bedrock (Converse, InvokeModel) and Ollama
(``/api/chat``, ``/api/generate``) by default, under any host or path prefix (proxies, Azure
deployments, gateways), and a replay-only tape gives the OpenAI SDK its placeholder key. Their
error bodies, keep-alives and stream grammars are not modelled yet, so this entry claims no request:
those calls get the fallback provider's formats, as they always have. Giving one of them its own
formats is a new module here that claims its paths (and drops them from this pattern).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .base import Provider

__all__ = ["OTHER_MODEL_APIS", "OtherModelApis"]


class OtherModelApis(Provider):
    name: ClassVar[str] = "generic"
    requests: ClassVar[str] = (
        r"^POST \S*?(?:/chat/completions|/responses|/completions|:(?:stream)?[gG]enerateContent"
        r"|/converse(?:-stream)?|/invoke(?:-with-response-stream)?|/api/(?:chat|generate))(?:[?#]|$)"
    )
    #: what the OpenAI SDK (and OpenAI-compatible clients) read the key from
    key_variables: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)

    def claims(self, method: str, url: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
        return False  # no formats of its own: the fallback answers these requests


OTHER_MODEL_APIS = OtherModelApis()
