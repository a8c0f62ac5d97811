"""Threads (and asyncio tasks on several threads) read, write and invalidate at random; every
read is checked against the history of writes and invalidations. The checker is shown to catch
a cache without the protocol: the check-then-store cache below (what ``lru_cache`` or
``cachetools`` behind a lock amount to), which lets a load that an invalidation raced put its
old value back."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections import defaultdict

import pytest

from rulebook.cache import Cache

from conftest import run_threads

KEYS = 16
GROUPS = 4
THREADS = 8
OPERATIONS = 2_000


class NaiveCache:
    """A locked dict: check, load outside the lock, store. Test-only, never shipped."""

    def __init__(self):
        self._lock = threading.Lock()
        self._data = {}
        self._tagged = defaultdict(set)

    def get(self, key):
        with self._lock:
            return self._data.get(key)

    def get_or_load(self, key, loader, tags=()):
        with self._lock:
            if key in self._data:
                return self._data[key]
        value = loader()
        with self._lock:
            self._data[key] = value
            for tag in tags:
                self._tagged[tag].add(key)
        return value

    def invalidate(self, key):
        with self._lock:
            self._data.pop(key, None)

    def invalidate_tag(self, tag):
        with self._lock:
            for key in self._tagged.pop(tag, ()):
                self._data.pop(key, None)

    def invalidate_all(self):
        with self._lock:
            self._data.clear()
            self._tagged.clear()


class History:
    """The source of truth (a version per key) and, per key, the newest version whose
    invalidation has returned: a read that starts after that must see at least it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.versions = [0] * KEYS
        self.floor = [0] * KEYS
        self.violations: list[str] = []

    def read_source(self, key):
        with self.lock:
            version = self.versions[key]
        time.sleep(0)  # let other threads run while this load is in flight
        return (key, version)

    def check(self, key, floor, value, how):
        if value is None:
            return
        with self.lock:
            newest = self.versions[key]
        if value[0] != key or not floor <= value[1] <= newest:
            self.violations.append(
                f"{how} of key {key} gave {value}; invalidated through {floor}, newest {newest}"
            )


def stress(cache, seed: int) -> History:
    history = History()

    def worker(index):
        rng = random.Random(seed * 1_000 + index)
        for _ in range(OPERATIONS):
            key = rng.randrange(KEYS)
            tag = f"group:{key % GROUPS}"
            roll = rng.random()
            if roll < 0.15:
                with history.lock:
                    history.versions[key] += 1
                    written = history.versions[key]
                kind = rng.random()
                if kind < 0.6:
                    cache.invalidate(key)
                elif kind < 0.95:
                    cache.invalidate_tag(tag)
                else:
                    cache.invalidate_all()
                with history.lock:
                    history.floor[key] = max(history.floor[key], written)
            else:
                with history.lock:
                    floor = history.floor[key]
                if roll < 0.3:
                    history.check(key, floor, cache.get(key), "get")
                else:
                    value = cache.get_or_load(key, lambda k=key: history.read_source(k), [tag])
                    history.check(key, floor, value, "get_or_load")
            if len(history.violations) > 0 and not isinstance(cache, Cache):
                return

    run_threads(THREADS, worker)
    return history


def stress_async(cache: Cache, seed: int) -> History:
    """The same history and checks, with asyncio loads: each thread runs an event loop of
    TASKS tasks, so loads coalesce across tasks and across threads."""
    history = History()

    async def source(key):
        with history.lock:
            version = history.versions[key]
        await asyncio.sleep(0)  # let other tasks run while this load is in flight
        return (key, version)

    async def task(rng):
        for _ in range(OPERATIONS // TASKS):
            key = rng.randrange(KEYS)
            if rng.random() < 0.15:
                with history.lock:
                    history.versions[key] += 1
                    written = history.versions[key]
                if rng.random() < 0.5:
                    cache.invalidate(key)
                else:
                    cache.invalidate_tag(f"group:{key % GROUPS}")
                with history.lock:
                    history.floor[key] = max(history.floor[key], written)
            else:
                with history.lock:
                    floor = history.floor[key]
                tags = [f"group:{key % GROUPS}"]
                value = await cache.aget_or_load(key, lambda k=key: source(k), tags)
                history.check(key, floor, value, "aget_or_load")

    async def loop(index):
        await asyncio.gather(
            *(task(random.Random(seed * 1_000 + index * TASKS + t)) for t in range(TASKS))
        )

    run_threads(4, lambda index: asyncio.run(loop(index)))
    return history


TASKS = 8


@pytest.fixture(autouse=True)
def many_switches():
    # Switch threads every 10 µs instead of 5 ms, for many more interleavings.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def test_every_read_agrees_with_the_history_of_writes_and_invalidations():
    cache = Cache(maxsize=KEYS // 2)  # small, so evictions interleave too
    history = stress(cache, seed=1)
    assert history.violations == []
    stats = cache.stats()
    assert stats["discarded_loads"] > 0, "no invalidation ever raced a load: the test is blind"
    assert stats["coalesced_waiters"] > 0


def test_the_checker_catches_a_cache_that_lets_raced_loads_back():
    history = stress(NaiveCache(), seed=1)
    assert history.violations, "the checker missed the naive cache's stale reads"


def test_every_async_read_agrees_with_the_history_of_writes_and_invalidations():
    cache = Cache(maxsize=KEYS // 2)
    history = stress_async(cache, seed=2)
    assert history.violations == []
    stats = cache.stats()
    assert stats["discarded_loads"] > 0, "no invalidation ever raced a load: the test is blind"
    assert stats["coalesced_waiters"] > 0
