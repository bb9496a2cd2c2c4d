"""Tapes per context: two threads or two asyncio tasks with different tapes never see each other's
interactions; nesting still works, innermost first; code that entered no tape uses the one tape of
the process, and refuses to guess when there are several."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path

import httpx2
import pytest

import streamtape
from streamtape import AmbiguousTapeError
from streamtape.intercept import active_tape
from tests.support import builders


def _cassette(path: Path, text: str) -> Path:
    """A tape that answers ``GET /v1/who`` with ``text``: which tape answered is in the reply."""
    return builders.save(path, "http://api.test/v1/who", method="GET", request_body=b"", body=text.encode(),
                         headers=(), at=0.0)  # fmt: skip


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    return _cassette(tmp_path / "a.yaml", "from a"), _cassette(tmp_path / "b.yaml", "from b")


def _get() -> str:
    with httpx2.Client() as client:
        return client.get("http://api.test/v1/who").text


def test_two_threads_two_tapes(two: tuple[Path, Path]) -> None:
    barrier = threading.Barrier(2, timeout=10)
    results: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def run(name: str, path: Path) -> None:
        try:
            with streamtape.use_cassette(path):
                barrier.wait()  # both tapes are entered before either thread sends
                results[name].append(_get())
                barrier.wait()  # and stay entered until both have been answered
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, p)) for n, p in zip("ab", two, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == {"a": ["from a"], "b": ["from b"]}


def test_two_tasks_two_tapes(two: tuple[Path, Path]) -> None:
    async def one(path: Path, entered: asyncio.Event, other: asyncio.Event) -> str:
        async with streamtape.use_cassette(path):
            entered.set()
            await other.wait()
            async with httpx2.AsyncClient() as client:
                return (await client.get("http://api.test/v1/who")).text

    async def main() -> list[str]:
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(one(two[0], a, b), one(two[1], b, a))

    assert asyncio.run(main()) == ["from a", "from b"]


def test_nested_tapes_innermost_first(two: tuple[Path, Path]) -> None:
    with streamtape.use_cassette(two[0]) as outer:
        assert _get() == "from a"
        with streamtape.use_cassette(two[1]) as inner:
            assert active_tape() is inner and _get() == "from b"
        assert active_tape() is outer
    assert active_tape() is None


def test_a_thread_without_a_tape_uses_the_only_one(two: tuple[Path, Path]) -> None:
    seen: list[str] = []
    with streamtape.use_cassette(two[0]):
        thread = threading.Thread(target=lambda: seen.append(_get()))
        thread.start()
        thread.join()
    assert seen == ["from a"]


def test_a_task_inherits_the_tape_of_the_code_that_started_it(two: tuple[Path, Path]) -> None:
    async def main() -> str:
        async with streamtape.use_cassette(two[0]), streamtape.use_cassette(two[1]):
            return await asyncio.create_task(asyncio.to_thread(_get))

    assert asyncio.run(main()) == "from b"


def test_with_several_tapes_a_thread_without_one_is_refused(two: tuple[Path, Path]) -> None:
    """Routing it to either tape could let a test pass on another test's recording."""
    ready, done = threading.Event(), threading.Event()

    def other() -> None:
        with streamtape.use_cassette(two[1]):
            ready.set()
            done.wait(10)

    holder = threading.Thread(target=other)
    holder.start()
    caught: list[BaseException] = []
    try:
        assert ready.wait(10)
        with streamtape.use_cassette(two[0]):
            def orphan() -> None:
                try:
                    _get()
                except BaseException as exc:  # noqa: BLE001 - checked below
                    caught.append(exc)

            thread = threading.Thread(target=orphan)
            thread.start()
            thread.join()
            # the documented way out: carry the context into the thread
            context = contextvars.copy_context()
            carried: list[str] = []
            thread = threading.Thread(target=lambda: carried.append(context.run(_get)))
            thread.start()
            thread.join()
            assert carried == ["from a"]
    finally:
        done.set()
        holder.join()
    assert len(caught) == 1 and isinstance(caught[0], AmbiguousTapeError)
    assert "a.yaml" in str(caught[0]) and "b.yaml" in str(caught[0]) and "tape.transport()" in str(caught[0])
