"""Faults only AWS event streams have: each refuses, in one sentence, a stream of another kind.

- ``exception_frame`` (Bedrock): an in-stream exception frame (``:message-type: exception``) with
  ``:exception-type`` ``type`` (default ``throttlingException``; the others ConverseStream and
  InvokeModelWithResponseStream declare: ``modelStreamErrorException``, ``internalServerException``,
  ``serviceUnavailableException``, ``validationException``, ``modelTimeoutException``) after frame
  ``after``, then the clean end the service makes (``then="cut"``: a FIN instead). Modelled from
  botocore's service model: no recording of one exists. ``error_event`` on a Bedrock stream puts
  the same frame on the wire.
- ``bad_crc``: frame ``event`` arrives with its message CRC (``which="prelude"``: its prelude CRC)
  damaged, every other byte as recorded: what a corrupting proxy or a bad NIC does. ``corrupt``, by
  contrast, damages a payload and keeps the frame valid.

What an exception frame holds comes from the request's provider (``streamtape.providers.bedrock``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ..errors import ConfigError
from ..framing.eventstream import EVENTSTREAM, OVERHEAD
from ..providers.bedrock import EXCEPTIONS, BedrockProvider, exception_frame
from ..wire import Cut, End
from ._plan import Piece, Plan
from .base import Context
from .catalogue import _EventFault, _Positioned

__all__ = ["BadCrc", "ExceptionFrame"]


def _check_stream(fault: str, plan: Plan, what: str) -> None:
    if plan.framer is not EVENTSTREAM:
        kind = plan.respond.headers if plan.respond is not None else ()
        content_type = next((v for k, v in kind if k.lower() == "content-type"), "none")
        raise ConfigError(f"{fault} is a fault of {what}, but the recorded response is not one (its content type is "
                          f"{content_type}); use it on a converse-stream or invoke-with-response-stream recording")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ExceptionFrame(_Positioned):
    """Bedrock: an exception frame of ``type`` (with ``message``, default the one modelled for it)
    after frame ``after`` (default 0: instead of the whole stream), then a clean end (``then="cut"``:
    a FIN right after it)."""

    name: ClassVar[str] = "exception_frame"
    providers: ClassVar[tuple[str, ...]] = ("bedrock",)
    type: str = "throttlingException"
    message: str | None = None
    then: str = "end"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type not in EXCEPTIONS:
            stream = self.type[:1].lower() + self.type[1:]
            if stream in EXCEPTIONS:  # the HTTP error's name (ThrottlingException): the stream's is lower camel case
                raise ConfigError(f"exception_frame: type={self.type!r} is the HTTP error's name; in a stream it is "
                                  f"type={stream}")  # fmt: skip
            raise ConfigError(f"exception_frame: type={self.type!r} is not an exception a Bedrock stream declares; "
                              f"valid: {', '.join(EXCEPTIONS)}")  # fmt: skip
        if self.then not in ("end", "cut"):
            raise ConfigError(f"exception_frame: then={self.then!r}; valid: end (the service ends the stream "
                              "cleanly), cut (it closes the connection: a FIN)")  # fmt: skip

    def __call__(self, plan: Plan, context: Context) -> Plan:
        if not isinstance(context.provider, BedrockProvider):
            raise ConfigError(f"{self.spec()} is a fault of Bedrock streams, but this request is answered in the "
                              f"{context.provider.name} provider's formats; use error_event for its in-stream "
                              "errors, or exception_frame on a Bedrock recording")  # fmt: skip
        _check_stream(self.spec(), plan, "Bedrock event streams")
        at = plan.keep(self._cut_index(plan) if self.positioned else 0)
        plan.pieces.append(Piece(exception_frame(self.type, self.message), at))
        if self.then == "cut":
            plan.tail = [Cut("fin", None, at)]
            return plan
        plan.announce_length()
        plan.tail = [End(at)]
        return plan


@dataclass(frozen=True, kw_only=True)
class BadCrc(_EventFault):
    """Frame ``event`` arrives with a damaged CRC: its message CRC, or (``which="prelude"``) its
    prelude CRC; every other byte as recorded."""

    name: ClassVar[str] = "bad_crc"
    providers: ClassVar[tuple[str, ...]] = ("bedrock",)
    which: str = "message"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.which not in ("message", "prelude"):
            raise ConfigError(f"bad_crc: which={self.which!r}; valid: message (the CRC at the frame's end), prelude "
                              "(the CRC of its two lengths)")  # fmt: skip

    def __call__(self, plan: Plan, context: Context) -> Plan:
        _check_stream(self.spec(), plan, "AWS event streams (application/vnd.amazon.eventstream)")
        index, piece = self._joined(plan)
        data = bytearray(piece.data)
        if len(data) < OVERHEAD:
            raise ConfigError(f"{self.spec()}: frame {self.event} is not a whole frame")
        start = 8 if self.which == "prelude" else len(data) - 4
        data[start : start + 4] = bytes(byte ^ 0xFF for byte in data[start : start + 4])
        plan.pieces[index] = replace(piece, data=bytes(data))
        return plan

