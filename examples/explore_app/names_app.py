"""A small app that asks Claude for names, streamed: the example ``pytest --tape-explore`` finds a bug in.

``suggest_names`` is how such code is often first written. It handles the errors the SDK raises, and
so it passes every test of a clean recording and of the faults one thinks of (a dropped connection,
a 429, an overload inside the stream). But a stream can also end *cleanly* before the model finished:
a proxy or load balancer that closes the response early, a gateway timeout that ends the chunked body
politely. The SDK raises nothing then, and the app hands a partial answer on as if it were complete.

``suggest_names_checked`` is the fix: an answer is complete only when the stream's ``message_stop``
arrived (after its ``message_start``), and a malformed event is a broken answer too.
"""

from __future__ import annotations

from dataclasses import dataclass

import anthropic

MODEL = "claude-sonnet-4-5"


@dataclass
class Suggestions:
    names: list[str]
    #: the model finished its answer: the names are all of them
    complete: bool
    #: what the user is told when they are not
    note: str = ""


def _names(text: str) -> list[str]:
    return [line.lstrip("- ").strip() for line in text.splitlines() if line.strip()]


def _ask(client: anthropic.Anthropic, animal: str):  # type: ignore[no-untyped-def]
    return client.messages.stream(model=MODEL, max_tokens=1024,
                                  messages=[{"role": "user", "content": f"Suggest names for a {animal}"}])  # fmt: skip


def suggest_names(client: anthropic.Anthropic, animal: str) -> Suggestions:
    """The first version: every error the SDK raises is handled, and the rest is trusted."""
    text = []
    try:
        with _ask(client, animal) as stream:
            for piece in stream.text_stream:
                text.append(piece)
    except anthropic.APIError as error:  # a cut, a timeout, an HTTP error, an error event in the stream
        return Suggestions(_names("".join(text)), complete=False, note=f"The answer broke off ({error}).")
    return Suggestions(_names("".join(text)), complete=True)  # the bug: a stream that ended early is trusted


def suggest_names_checked(client: anthropic.Anthropic, animal: str) -> Suggestions:
    """The fix: complete only when the stream says it is (its start and its message_stop arrived)."""
    text, seen = [], set()
    try:
        with _ask(client, animal) as stream:
            for event in stream:
                seen.add(event.type)
                if event.type == "text":
                    text.append(event.text)
    except (anthropic.APIError, ValueError) as error:  # ValueError: an event that is not JSON
        return Suggestions(_names("".join(text)), complete=False, note=f"The answer broke off ({error}).")
    if not {"message_start", "message_stop"} <= seen:
        return Suggestions(_names("".join(text)), complete=False, note="The answer ended before it was finished.")
    return Suggestions(_names("".join(text)), complete=True)
