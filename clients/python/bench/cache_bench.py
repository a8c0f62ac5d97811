"""Hit and miss cost of rulebook.cache against functools.lru_cache and cachetools.TTLCache
behind a lock, measured in one run (this machine is noisy: compare the ratios, not the
nanoseconds across runs), plus how many times each runs a loader under a stampede.

Run from the repository root after scripts/python-test has built the package:

    .venv/bin/python clients/python/bench/cache_bench.py
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import timeit
from collections.abc import Callable

import cachetools

from rulebook.cache import Cache, cached

CALLS = 200_000
REPEATS = 7
KEYS = 1_000
STAMPEDE_THREADS = 32


def best_ns(call: Callable[[], object], setup: Callable[[], object] = lambda: None) -> float:
    """The best of REPEATS runs of CALLS calls, in nanoseconds per call."""
    best = float("inf")
    for _ in range(REPEATS):
        setup()
        elapsed = timeit.timeit(call, number=1)
        best = min(best, elapsed)
    return best * 1e9 / CALLS


def decorated() -> dict[str, Callable[[int], int]]:
    def square(x: int) -> int:
        return x * x

    lock = threading.Lock()
    return {
        "rulebook.cache.cached": cached(maxsize=KEYS)(square),
        "functools.lru_cache": functools.lru_cache(maxsize=KEYS)(square),
        "cachetools.TTLCache + Lock": cachetools.cached(
            cachetools.TTLCache(maxsize=KEYS, ttl=300), lock=lock
        )(square),
    }


def hit_cost(function: Callable[[int], int]) -> float:
    for key in range(KEYS):
        function(key)
    keys = [key % KEYS for key in range(CALLS)]

    def run() -> None:
        for key in keys:
            function(key)

    return best_ns(run)


def miss_cost(make: Callable[[], Callable[[int], int]]) -> float:
    """Every call misses: a fresh key each time, into a full cache (so each miss evicts)."""
    state: dict[str, Callable[[int], int]] = {}
    counter = iter(range(10**12))

    def setup() -> None:
        function = make()
        for _ in range(KEYS):
            function(next(counter))
        state["function"] = function

    def run() -> None:
        function = state["function"]
        for _ in range(CALLS):
            function(next(counter))

    return best_ns(run, setup)


def stampede_loads(make: Callable[[Callable[[int], int]], Callable[[int], int]]) -> int:
    """How many times the loader runs when STAMPEDE_THREADS threads miss one key at once."""
    runs = []
    inside = threading.Event()

    def slow(x: int) -> int:
        runs.append(x)
        inside.wait(0.05)  # a 50 ms load: long enough for every thread to miss
        return x

    function = make(slow)
    start = threading.Barrier(STAMPEDE_THREADS)

    def worker() -> None:
        start.wait()
        function(7)

    threads = [threading.Thread(target=worker) for _ in range(STAMPEDE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(runs)


def async_hit_cost() -> float:
    """A hit on a decorated ``async def``, awaited from a task."""

    @cached(maxsize=KEYS)
    async def square(x: int) -> int:
        return x * x

    keys = [key % KEYS for key in range(CALLS)]

    async def run() -> float:
        for key in range(KEYS):
            await square(key)
        best = float("inf")
        for _ in range(REPEATS):
            started = time.perf_counter()
            for key in keys:
                await square(key)
            best = min(best, time.perf_counter() - started)
        return best * 1e9 / CALLS

    return asyncio.run(run())


def main() -> None:
    names = list(decorated())
    hits = {name: hit_cost(function) for name, function in decorated().items()}
    misses = {name: miss_cost(lambda name=name: decorated()[name]) for name in names}
    stampede = {
        "rulebook.cache.cached": stampede_loads(lambda f: cached(maxsize=KEYS)(f)),
        "functools.lru_cache": stampede_loads(lambda f: functools.lru_cache(maxsize=KEYS)(f)),
        "cachetools.TTLCache + Lock": stampede_loads(
            lambda f: cachetools.cached(
                cachetools.TTLCache(maxsize=KEYS, ttl=300), lock=threading.Lock()
            )(f)
        ),
    }

    cache = Cache(maxsize=KEYS)
    for key in range(KEYS):
        cache.get_or_load(key, lambda key=key: key)
    keys = [key % KEYS for key in range(CALLS)]

    def direct_get() -> None:
        for key in keys:
            cache.get(key)

    direct = best_ns(direct_get)
    ttl_cache, lock = cachetools.TTLCache(maxsize=KEYS, ttl=300), threading.Lock()
    for key in range(KEYS):
        ttl_cache[key] = key

    def locked_get() -> None:
        for key in keys:
            with lock:
                ttl_cache.get(key)

    locked = best_ns(locked_get)

    reference = "functools.lru_cache"
    print(f"decorated function, {KEYS} keys, best of {REPEATS} x {CALLS:,} calls (ns per call)")
    print(f"{'':28} {'hit':>8} {'miss':>8}   {'hit ratio':>10} {'miss ratio':>10}   stampede")
    for name in names:
        print(
            f"{name:28} {hits[name]:8.0f} {misses[name]:8.0f}   "
            f"{hits[name] / hits[reference]:9.2f}x {misses[name] / misses[reference]:9.2f}x   "
            f"{stampede[name]:3} loads / {STAMPEDE_THREADS} threads"
        )
    print(f"(ratios are to {reference}; lower is faster)")
    print()
    print(f"Cache.get: {direct:.0f} ns; TTLCache.get under a Lock: {locked:.0f} ns")
    print(f"hit on a cached async def, awaited: {async_hit_cost():.0f} ns")


if __name__ == "__main__":
    main()
