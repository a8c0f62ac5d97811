"""Shared helpers, and ``rulebook serve`` for the client tests (target/debug/rulebook, built by
scripts/python-test; ``RULEBOOK_BIN`` names another): without the binary those tests skip,
saying why, and under ``CI=true`` they fail. The package is imported, never skipped: a build or
import failure fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rulebook
import rulebook.cache

TIMEOUT = 30.0


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Waits for an event that has no hook of its own (a count inside the native cache),
    checking it every millisecond; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(0.001)


def run_threads(count: int, target: Callable[[int], object]) -> list[object]:
    """Runs ``target(i)`` on ``count`` threads released together; returns their results in
    order, re-raising the first exception."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait(TIMEOUT)
            results[index] = target(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


TOKEN = "python-client-test-admin-token"
ROOT = Path(__file__).resolve().parents[3]


def binary() -> Path:
    named = os.environ.get("RULEBOOK_BIN")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = Path(named) if named else target / "debug" / "rulebook"
    if not path.is_file():
        why = f"the server binary {path} is missing: run `cargo build -p rulebook`"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``rulebook serve`` on ``port`` with the SQLite database ``db``, until ``kill``."""

    def __init__(self, db: Path, port: int) -> None:
        self.db = db
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            RULEBOOK_LOG="warn",
            RULEBOOK_ADMIN_TOKEN=TOKEN,
            RULEBOOK_POLL_INTERVAL="50ms",
            RULEBOOK_CHANGES_HEARTBEAT="100ms",
        )
        self.process = subprocess.Popen(
            [binary(), "serve", "--listen", f"127.0.0.1:{port}", "--database-url", str(db)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the server's one line once it listens
        if not line.startswith("rulebook serving http://"):
            self.kill()
            pytest.fail(f"the server did not start: {line!r}")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(TIMEOUT)

    def http(self, method: str, path: str, body: Any = None) -> Any:
        """The server's JSON answer; an error answer raises ``urllib.error.HTTPError``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return json.loads(answer.read() or b"null")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "rules.db", free_port())
    yield started
    started.kill()


@pytest.fixture
def client(server: Server) -> rulebook.Client:
    return rulebook.Client(server.url, token=TOKEN)
