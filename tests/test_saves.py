"""Saves that survive ``kill -9``, parallel workers and each other: a cassette is always whole (the old
content or the new, byte for byte), what a killed save leaves is removed by the next save of that
cassette, lock files never pile up in the temp directory, and the cross-process lock never lets two
holders in, nor lets a killed holder block anyone."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamtape import Cassette
from streamtape import cassette as cassette_module
from streamtape._filelock import cassette_lock
from streamtape.errors import CassetteError
from tests.support import builders

ROOT = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(os.name == "nt", reason="kill -9 and flock are POSIX")


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp directory of the test's own, for lock files: what is left there is this test's."""
    private = tmp_path / "tmpdir"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", None)
    yield private
    tempfile.tempdir = None


def _big(tag: str, interactions: int = 4, events: int = 4000) -> Cassette:
    """A cassette of a few MB: long SSE bodies with packed chunk timings (the costly part to write)."""
    items = []
    for n in range(interactions):
        body = b"".join(b'event: content_block_delta\ndata: {"i": %d, "t": "%s %s"}\n\n' % (k, tag.encode(), b"x" * 40)
                        for k in range(events))  # fmt: skip
        step = len(body) // 1500
        timing = tuple((k * 0.001, step) for k in range(1499)) + ((1.5, len(body) - 1499 * step),)
        items.append(builders.interaction(f"https://api.test/v1/{tag}/{n}", body=body, timing=timing))
    return Cassette(items)


# A process that, for each line it reads, forks a saver and waits for it: the saver saves cassette A, then
# B, then A... forever, each under the cassette lock as a tape's save is, until it is killed. Forking from
# one prepared process makes a kill cost milliseconds, so a test can afford many.
SAVERS = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamtape._filelock import cassette_lock
from tests.test_saves import _big
import tempfile
tempfile.gettempdir()  # the stdlib finds the temp dir by writing a probe file there: here once, not in each killed child
path = Path(sys.argv[1])
versions = [_big("A"), _big("B")]
for n, line in enumerate(sys.stdin):
    pid = os.fork()
    if pid == 0:
        while True:
            with cassette_lock(path):
                versions[n % 2].save(path)
            n += 1
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


@posix_only
def test_kill_9_during_saves_never_tears_the_cassette(tmp_path: Path, temp_dir: Path) -> None:
    """/tmp/saves/kill_test.py does this 100 times with a 6 MB cassette; here 60 kills at random moments
    of a ~2 MB one's saves. (A hidden run found 49 temporary files, 179 MB, after 50 kills once.)"""
    path = tmp_path / "big.yaml"
    whole = {_big("A").dumps().encode(), _big("B").dumps().encode()}
    rng = random.Random(20261207)
    forks = subprocess.Popen([sys.executable, "-c", SAVERS, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert forks.stdin is not None and forks.stdout is not None
    try:
        for kill in range(60):
            forks.stdin.write("go\n")
            forks.stdin.flush()
            pid = int(forks.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.15))
            os.kill(pid, signal.SIGKILL)
            assert forks.stdout.readline() == "reaped\n"
            if path.exists():  # the old content or the new, never a mix
                size = path.stat().st_size
                assert path.read_bytes() in whole, f"kill {kill} left a torn cassette of {size} bytes"
            leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            # each save removes what the killed ones before it left; one killed before it got that far
            # (a busy machine) leaves its own beside them, so a few may wait for the next save, never more
            assert len(leftovers) <= 3, f"kill {kill}: {len(leftovers)} temporary files accumulate"
    finally:
        forks.stdin.close()
        forks.wait(timeout=60)
        forks.stdout.close()
    with cassette_lock(path):
        _big("A").save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml", "tmpdir"]
    assert list(temp_dir.iterdir()) == []  # no lock file either
    assert Cassette.load(path).interactions[0].request.url == "https://api.test/v1/A/0"


@posix_only
def test_an_empty_temporary_file_of_a_killed_save_goes_too(tmp_path: Path) -> None:
    """A save killed between creating its temporary file and writing it leaves an empty one, which used to
    stay for a minute (a save may be between creating and locking its file: it now checks afterwards)."""
    path = builders.save(tmp_path / "c.yaml", "http://api.test/x")
    (tmp_path / ".c.yaml.abcd1234.tmp").touch()
    Cassette.load(path).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@posix_only
def test_a_save_whose_new_file_is_removed_before_it_locks_it_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the rule above opens: another save's clean-up finds this save's file empty and unlocked,
    between its creation and its lock, and removes it. The save must notice and write a new one."""
    path = builders.save(tmp_path / "c.yaml", "http://api.test/old")
    real_lock = cassette_module._filelock.lock
    created: list[int] = []

    def cleaned_up_first(fd: int) -> None:
        created.append(fd)
        if len(created) == 1:
            assert cassette_module._remove_stale_temps(path) == 1  # what another save would do now
        real_lock(fd)

    monkeypatch.setattr(cassette_module._filelock, "lock", cleaned_up_first)
    builders.cassette("http://api.test/new").save(path)
    assert len(created) == 2
    assert Cassette.load(path).interactions[0].request.url == "http://api.test/new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@posix_only
def test_concurrent_saves_all_land_whole(tmp_path: Path) -> None:
    """Threads saving one cassette at once, without the cassette lock (plain ``Cassette.save``): each
    one's clean-up meets the others' live temporary files, and none fails or tears the file."""
    path = tmp_path / "c.yaml"
    versions = [builders.cassette(f"http://api.test/{n}") for n in range(4)]
    whole = {version.dumps().encode() for version in versions}
    errors: list[BaseException] = []

    def save(version: Cassette) -> None:
        try:
            for _ in range(25):
                version.save(path)
                assert path.read_bytes() in whole
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(version,)) for version in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# --- the lock ----------------------------------------------------------------------------------------------


def _lock_file(path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"streamtape-{digest}.lock"


# P processes, each M times: under the lock, an O_EXCL marker (two holders at once: the second cannot
# create it) and a counter (a lost update: the count comes out short).
COUNT_UNDER_LOCK = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamtape._filelock import cassette_lock
work, times = Path(sys.argv[1]), int(sys.argv[2])
for _ in range(times):
    with cassette_lock(work / "c.yaml"):
        try:
            marker = os.open(work / "held", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            sys.exit("two holders at once")
        count = work / "count"
        count.write_text(str(int(count.read_text()) + 1))
        os.close(marker)
        os.unlink(work / "held")
"""


@posix_only
def test_the_lock_lets_one_holder_in_across_processes(tmp_path: Path, temp_dir: Path) -> None:
    """Holders remove the lock file as they let go, while others wait on it or are about to open it: the
    waiters must start over with the new file, never hold the old one beside a new holder."""
    (tmp_path / "count").write_text("0")
    children = [subprocess.Popen([sys.executable, "-c", COUNT_UNDER_LOCK, str(tmp_path), "150"]) for _ in range(4)]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0, 0]
    assert (tmp_path / "count").read_text() == "600"
    assert list(temp_dir.iterdir()) == []


HOLD_FOREVER = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamtape._filelock import cassette_lock
with cassette_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@posix_only
def test_a_killed_holder_blocks_no_one_and_its_lock_file_goes(tmp_path: Path, temp_dir: Path) -> None:
    path = tmp_path / "c.yaml"
    child = subprocess.Popen([sys.executable, "-c", HOLD_FOREVER, str(path)], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"held\n"
    assert _lock_file(path).exists()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert _lock_file(path).exists()  # what the killed holder left...
    done = threading.Event()

    def take() -> None:
        with cassette_lock(path):
            done.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    assert done.wait(10)  # ...does not block
    thread.join()
    assert list(temp_dir.iterdir()) == []  # and the next holder removed it


def test_the_lock_is_reentrant_in_a_thread_and_excludes_other_threads(tmp_path: Path, temp_dir: Path) -> None:
    """A tape's save holds the lock while ``Cassette.save`` may take it again; another thread waits.
    (Threads, with timeouts: a lock that is not reentrant deadlocks, and must fail, not hang.)"""
    path = tmp_path / "c.yaml"
    nested, still_held, let_go, other_entered = (threading.Event() for _ in range(4))

    def holder() -> None:
        with cassette_lock(path):
            with cassette_lock(path):
                nested.set()
            still_held.set()  # the inner exit let nothing go
            let_go.wait(20)

    def other() -> None:
        with cassette_lock(path):
            other_entered.set()

    first = threading.Thread(target=holder, daemon=True)
    first.start()
    assert nested.wait(10), "cassette_lock deadlocked when taken again in the same thread"
    assert still_held.wait(10) and _lock_file(path).exists()
    second = threading.Thread(target=other, daemon=True)
    second.start()
    assert not other_entered.wait(0.2)
    let_go.set()
    assert other_entered.wait(10)
    first.join(10)
    second.join(10)
    assert list(temp_dir.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="O_NOFOLLOW")
def test_a_lock_name_someone_else_took_fails_in_one_sentence(tmp_path: Path, temp_dir: Path) -> None:
    """A symbolic link planted at the lock's name is never followed (it could truncate or lock any file)."""
    path = tmp_path / "c.yaml"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    _lock_file(path).symlink_to(victim)
    with pytest.raises(CassetteError) as caught:
        with cassette_lock(path):
            pass
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot save: its lock file {_lock_file(path)} cannot be opened (")
    assert "remove that file, or point TMPDIR at a directory of your own" in message
    assert victim.read_text() == "untouched"


# --- pytest-xdist: many tests recording into one shared cassette ---------------------------------------------


def test_forty_tests_on_four_workers_record_into_one_cassette(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pytest -n 4``, 40 tests, one shared cassette, ``new_episodes``: every interaction is in it once,
    nothing else is left beside it, and no lock file is left in the temp directory."""
    pytest.importorskip("xdist")
    from tests.support.echo_server import echo_server

    private = tmp_path / "tmpdir"
    private.mkdir()
    with echo_server() as server:
        pytester.makepyfile(test_shared=textwrap.dedent(f"""
            import httpx2, pytest

            @pytest.mark.parametrize("n", range(40))
            @pytest.mark.tape("shared.yaml", record_mode="new_episodes")
            def test_one(n):
                assert httpx2.get({server.base_url!r} + f"/t/{{n}}").text == "ok"
        """))
        monkeypatch.setenv("TMPDIR", str(private))  # the workers' lock files go there
        result = pytester.runpytest_subprocess("-n", "4", "-p", "no:cacheprovider", "-p", "no:benchmark")
        result.assert_outcomes(passed=40)
        assert len(server.seen) == 40
    shared = pytester.path / "shared.yaml"
    numbers = sorted(int(item.request.url.rsplit("/", 1)[1]) for item in Cassette.load(shared))
    assert numbers == list(range(40))
    assert not [p.name for p in pytester.path.iterdir() if p.name.startswith(".shared.yaml.")]
    assert not [p.name for p in private.iterdir() if p.name.startswith("streamtape-")]
