"""Shared helpers. The package is imported, never skipped: a build or import failure fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import rulebook.cache  # noqa: F401  (fails collection loudly if the build is broken)

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
