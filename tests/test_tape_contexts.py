"""Tapes per context: two threads or two asyncio tasks with different tapes never see each other's
interactions; nesting still works, innermost first; code that entered no tape uses the one tape of
the process, and refuses to guess when there are several."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

import streamtape
from streamtape import AmbiguousTapeError, Cassette
from streamtape.intercept import active_tape
from tests.support import builders
from tests.support.echo_server import echo_server


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
    assert str(caught[0]).startswith("GET http://api.test/v1/who: this request was made from a thread")


# --- every stack, one shared client, a replaying and a recording tape side by side -----------------------


def _replay_cassette(path: Path, base: str, count: int) -> Path:
    """``GET {base}/a/{i}`` answered ``replayed a {i}``: the same host the recording thread reaches."""
    items = [builders.interaction(f"{base}/a/{i}", method="GET", request_body=b"", headers=(("content-type", "text/plain"),),
                                  body=f"replayed a {i}".encode()) for i in range(count)]  # fmt: skip
    return Cassette(items).save(path)


def _shared_client(kind: str, base: str) -> Callable[[str], str]:
    """One client both threads use (its pooled connections too), built before either tape."""
    if kind == "requests":
        requests = pytest.importorskip("requests")
        session = requests.Session()
        return lambda url: str(session.get(url, timeout=10).text)
    if kind == "urllib3":
        urllib3 = pytest.importorskip("urllib3")
        pool = urllib3.PoolManager(maxsize=1)  # one connection, taken in turns by both threads
        return lambda url: str(pool.request("GET", url, timeout=10).data.decode())
    if kind == "boto3":
        boto3 = pytest.importorskip("boto3")
        import botocore.config

        config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1})
        s3 = boto3.client("s3", endpoint_url=base, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test", config=config)  # fmt: skip

        def get(url: str) -> str:
            bucket, key = url[len(base) + 1:].split("/", 1)
            return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())

        return get
    client = httpx2.Client()
    return lambda url: client.get(url).text


@pytest.mark.parametrize("kind", ["httpx2", "requests", "urllib3", "boto3"])
def test_a_shared_client_serves_each_thread_its_own_tape(tmp_path: Path, kind: str) -> None:
    """Thread A replays, thread B records, through one client and one host, turn about: A gets its
    recorded bodies, B the server's, B's cassette holds exactly B's requests, A's file is untouched,
    and after both the client talks to the network again (no replayed socket left in its pool)."""
    if kind in ("urllib3", "requests", "boto3"):
        urllib3 = pytest.importorskip("urllib3")
        if int(urllib3.__version__.split(".")[0]) < 2:
            pytest.skip("the urllib3 adapter needs urllib3 2.x")
    count = 12
    with echo_server() as server:
        server.plan["chunks"] = [b"from the server"]
        get = _shared_client(kind, server.base_url)
        assert get(f"{server.base_url}/warm/0") == "from the server"  # a pooled real connection, before
        replayed = _replay_cassette(tmp_path / "a.yaml", server.base_url, count)
        before = replayed.read_bytes()
        turns = [threading.Semaphore(1), threading.Semaphore(0)]
        results: dict[str, list[str]] = {"a": [], "b": []}
        errors: list[BaseException] = []

        def run(name: str, mine: int, path: Path, mode: str) -> None:
            try:
                with streamtape.use_cassette(path, record_mode=mode):
                    for i in range(count):
                        assert turns[mine].acquire(timeout=20)
                        try:
                            results[name].append(get(f"{server.base_url}/{name}/{i}"))
                        finally:
                            turns[1 - mine].release()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                turns[1 - mine].release()

        threads = [threading.Thread(target=run, args=("a", 0, replayed, "none")),
                   threading.Thread(target=run, args=("b", 1, tmp_path / "b.yaml", "new_episodes"))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert results == {"a": [f"replayed a {i}" for i in range(count)], "b": ["from the server"] * count}
        assert replayed.read_bytes() == before
        urls = [item.request.url.split("?")[0] for item in Cassette.load(tmp_path / "b.yaml")]
        assert urls == [f"{server.base_url}/b/{i}" for i in range(count)]
        assert get(f"{server.base_url}/c/0") == "from the server"
        assert sum(line.startswith("GET /b/") for line, _ in server.seen) == count
        assert not any(line.startswith("GET /a/") for line, _ in server.seen)


def test_a_shared_aiohttp_session_serves_each_task_its_own_tape(tmp_path: Path) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    count = 12
    with echo_server() as server:
        server.plan["chunks"] = [b"from the server"]
        replayed = _replay_cassette(tmp_path / "a.yaml", server.base_url, count)
        before = replayed.read_bytes()

        async def main() -> dict[str, list[str]]:
            results: dict[str, list[str]] = {"a": [], "b": []}
            async with aiohttp.ClientSession() as session:  # built before either tape

                async def get(url: str) -> str:
                    async with session.get(url) as response:
                        return str(await response.text())

                assert await get(f"{server.base_url}/warm/0") == "from the server"
                entered = [asyncio.Event(), asyncio.Event()]

                async def one(name: str, mine: int, path: Path, mode: str) -> None:
                    async with streamtape.use_cassette(path, record_mode=mode):
                        entered[mine].set()
                        await entered[1 - mine].wait()
                        for i in range(count):
                            results[name].append(await get(f"{server.base_url}/{name}/{i}"))
                            await asyncio.sleep(0)

                await asyncio.gather(one("a", 0, replayed, "none"), one("b", 1, tmp_path / "b.yaml", "new_episodes"))
                assert await get(f"{server.base_url}/c/0") == "from the server"
            return results

        assert asyncio.run(main()) == {"a": [f"replayed a {i}" for i in range(count)], "b": ["from the server"] * count}
        assert replayed.read_bytes() == before
        urls = [item.request.url for item in Cassette.load(tmp_path / "b.yaml")]
        assert urls == [f"{server.base_url}/b/{i}" for i in range(count)]


# --- where the context is carried, and where it is not ---------------------------------------------------


def _where() -> str:
    try:
        tape = active_tape()
    except AmbiguousTapeError:
        return "ambiguous"
    return tape.path.name if tape is not None else "none"


def test_what_inherits_the_tape_and_what_falls_back(two: tuple[Path, Path]) -> None:
    """As docs/replaying.md says: code started where Python copies the context inherits the innermost
    tape; plain threads, executors and ``run_in_executor`` do not, started before the tape or after."""
    import anyio.to_thread

    early = concurrent.futures.ThreadPoolExecutor(1)
    early.submit(_where).result()  # its worker thread exists before any tape

    async def main() -> dict[str, str]:
        seen: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        async with streamtape.use_cassette(two[0]), streamtape.use_cassette(two[1]):
            seen["asyncio.to_thread"] = await asyncio.to_thread(_where)
            seen["anyio.to_thread"] = await anyio.to_thread.run_sync(_where)
            seen["create_task"] = await asyncio.create_task(asyncio.to_thread(_where))

            async def note(name: str) -> None:
                seen[name] = _where()

            async with anyio.create_task_group() as group:
                group.start_soon(note, "anyio task group")
            async with asyncio.TaskGroup() as task_group:
                task_group.create_task(note("asyncio.TaskGroup"))
            seen["submit(copy_context().run)"] = early.submit(contextvars.copy_context().run, _where).result()
            seen["run_in_executor"] = await loop.run_in_executor(None, _where)
            seen["early pool"] = early.submit(_where).result()
            thread = threading.Thread(target=lambda: seen.__setitem__("Thread", _where()))
            thread.start()
            thread.join()
        async with streamtape.use_cassette(two[0]):
            seen["early pool, one tape"] = early.submit(_where).result()
            seen["run_in_executor, one tape"] = await loop.run_in_executor(None, _where)
        return seen

    try:
        seen = asyncio.run(main())
    finally:
        early.shutdown()
    inherits = ["asyncio.to_thread", "anyio.to_thread", "create_task", "anyio task group", "asyncio.TaskGroup",
                "submit(copy_context().run)"]  # fmt: skip
    assert {name: seen[name] for name in inherits} == dict.fromkeys(inherits, "b.yaml")
    assert {name: seen[name] for name in ("run_in_executor", "early pool", "Thread")} == dict.fromkeys(
        ("run_in_executor", "early pool", "Thread"), "ambiguous")
    assert seen["early pool, one tape"] == seen["run_in_executor, one tape"] == "a.yaml"


# --- retry back-off: charged to the sleeping context's tape, virtual only where that tape replays ---------


def test_back_off_is_virtual_only_in_the_replaying_thread(two: tuple[Path, Path], tmp_path: Path) -> None:
    tenacity_nap = pytest.importorskip("tenacity.nap")
    barrier = threading.Barrier(2, timeout=20)
    seen: dict[str, tuple[float, float]] = {}
    errors: list[BaseException] = []

    def run(name: str, path: Path, mode: str, seconds: float) -> None:
        try:
            with streamtape.use_cassette(path, record_mode=mode, speed=0) as tape:
                barrier.wait()
                started = time.monotonic()
                tenacity_nap.sleep(seconds)
                seen[name] = (time.monotonic() - started, tape._backoff)  # noqa: SLF001
                barrier.wait()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=("replay", two[0], "none", 30.0)),
               threading.Thread(target=run, args=("record", tmp_path / "rec.yaml", "new_episodes", 0.05))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert seen["replay"][0] < 5 and seen["replay"][1] == 30.0  # virtual, and charged to its own tape
    assert seen["record"][0] >= 0.05 and seen["record"][1] == 0.0  # real: the real API is on the other end


def test_back_off_is_virtual_only_in_the_replaying_task(two: tuple[Path, Path], tmp_path: Path) -> None:
    tenacity = pytest.importorskip("tenacity")

    async def one(path: Path, mode: str, seconds: float, mine: asyncio.Event, other: asyncio.Event) -> tuple[float, float]:
        async with streamtape.use_cassette(path, record_mode=mode, speed=0) as tape:
            mine.set()
            await other.wait()
            started = time.monotonic()
            attempts = 0
            retrying = tenacity.AsyncRetrying(wait=tenacity.wait_fixed(seconds), stop=tenacity.stop_after_attempt(2))
            with pytest.raises(tenacity.RetryError):
                async for attempt in retrying:
                    with attempt:
                        attempts += 1
                        raise ValueError(attempts)
            return time.monotonic() - started, tape._backoff  # noqa: SLF001

    async def main() -> list[tuple[float, float]]:
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(one(two[0], "none", 30.0, a, b), one(tmp_path / "rec.yaml", "new_episodes", 0.05, b, a))

    (replay_took, replay_charged), (record_took, record_charged) = asyncio.run(main())
    assert replay_took < 5 and replay_charged == 30.0
    assert record_took >= 0.05 and record_charged == 0.0


# --- the network guard, per context ----------------------------------------------------------------------


def _connect(port: int) -> str:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except BaseException as exc:  # noqa: BLE001 - the outcome is the point
        return f"{type(exc).__name__}: {exc}"
    return "connected"


def _in_a_thread(fn: Callable[[], str]) -> str:
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_thread_without_a_tape_is_guarded_by_the_one_tape(two: tuple[Path, Path]) -> None:
    """A thread the test started (or one started before the tape) is held to the test's tape: blocked,
    unless that tape allows the host."""
    with echo_server() as server:
        port = server.server_address[1]
        with streamtape.use_cassette(two[0]):
            assert _in_a_thread(lambda: _connect(port)).startswith("NetworkBlockedError")
        with streamtape.use_cassette(two[0], allow_hosts=["127.0.0.1"]):
            assert _in_a_thread(lambda: _connect(port)) == "connected"
        assert _connect(port) == "connected"  # no tape: no guard


@pytest.mark.parametrize("allowed", [(True, True), (True, False)])
def test_with_several_tapes_a_thread_without_one_passes_only_what_all_allow(
    two: tuple[Path, Path], allowed: tuple[bool, bool]
) -> None:
    with echo_server() as server:
        port = server.server_address[1]
        ready = [threading.Event(), threading.Event()]
        done = threading.Event()

        def hold(n: int) -> None:
            with streamtape.use_cassette(two[n], allow_hosts=["127.0.0.1"] if allowed[n] else None):
                ready[n].set()
                done.wait(20)

        holders = [threading.Thread(target=hold, args=(n,)) for n in (0, 1)]
        for holder in holders:
            holder.start()
        try:
            assert all(event.wait(20) for event in ready)
            outcome = _in_a_thread(lambda: _connect(port))
        finally:
            done.set()
            for holder in holders:
                holder.join()
    if all(allowed):
        assert outcome == "connected"
    else:
        assert outcome.startswith(f"AmbiguousTapeError: a connection to 127.0.0.1:{port}: ")
        assert "a.yaml" in outcome and "b.yaml" in outcome


def _emulated_socketpair(family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> tuple[socket.socket, socket.socket]:  # noqa: A002
    """What Python's ``socket.socketpair`` is where the platform has none (Windows): a loopback listener
    and a connection to it."""
    with socket.socket(socket.AF_INET, type, proto) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.socket(socket.AF_INET, type, proto)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def test_a_socketpair_made_over_loopback_is_not_the_network(two: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows every asyncio event loop makes its self-pipe that way: a tape must not block it."""
    monkeypatch.setattr(socket, "socketpair", _emulated_socketpair)
    with streamtape.use_cassette(two[0]):
        first, second = socket.socketpair()
        first.close()
        second.close()
        assert asyncio.run(asyncio.sleep(0, "ran")) == "ran"
        with echo_server() as server:  # a real connection to loopback is still blocked
            assert _connect(server.server_address[1]).startswith("NetworkBlockedError")
    assert socket.socketpair is _emulated_socketpair
