"""Seed 002: a home-made ``@cached`` checked, computed, then stored with no lock across the
gap, so four threads loaded 53 rule files four times. Reproduced with that decorator, then
fixed with ``rulebook.cache.cached``: four threads, and a hundred, read the 53 files once."""

from __future__ import annotations

import json
import threading
from functools import wraps
from pathlib import Path

import pytest

from rulebook.cache import cached

from conftest import TIMEOUT, run_threads, wait_until

FILES = 53


class CacheManager:
    """The seed's backend: every get and set is locked, the gap between them is not."""

    def __init__(self):
        self._lock = threading.Lock()
        self._data = {}

    def get(self, key):
        with self._lock:
            return self._data.get(key)

    def set(self, key, value):
        with self._lock:
            self._data[key] = value


def naive_cached(func):
    """The seed's decorator: check, compute, store."""
    manager = CacheManager()

    @wraps(func)
    def wrapper(*args):
        key = (func.__name__, args)
        result = manager.get(key)
        if result is not None:
            return result
        result = func(*args)
        manager.set(key, result)
        return result

    return wrapper


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    for number in range(FILES):
        (tmp_path / f"regel_{number:02}.json").write_text(json.dumps({"id": f"R{number}"}))
    return tmp_path


class Reads:
    def __init__(self):
        self.lock = threading.Lock()
        self.files = 0

    def load_all(self, folder: Path) -> list[dict]:
        rules = []
        for path in sorted(folder.glob("*.json")):
            with self.lock:
                self.files += 1
            rules.append(json.loads(path.read_text()))
        return rules


@pytest.mark.parametrize("threads", [4, 100])
def test_naive_decorator_loads_the_files_once_per_thread(rules_dir, threads):
    reads = Reads()
    inside = threading.Barrier(threads)

    @naive_cached
    def load_all_rules(folder):
        # Passes only once every thread is inside the function at the same time.
        inside.wait(TIMEOUT)
        return reads.load_all(folder)

    run_threads(threads, lambda _: load_all_rules(rules_dir))
    assert reads.files == FILES * threads


@pytest.mark.parametrize("threads", [4, 100])
def test_rulebook_cached_loads_the_files_once(rules_dir, threads):
    reads = Reads()

    @cached(maxsize=10)
    def load_all_rules(folder):
        # Every other thread has missed and is waiting for this load before it reads.
        wait_until(lambda: load_all_rules.stats()["coalesced_waiters"] == threads - 1)
        return reads.load_all(folder)

    results = run_threads(threads, lambda _: load_all_rules(rules_dir))
    assert reads.files == FILES
    assert len(results[0]) == FILES
    assert all(result is results[0] for result in results)
    assert load_all_rules.stats()["loads"] == 1
