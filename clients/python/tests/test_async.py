"""The contract for asyncio: one load per key across tasks, shared errors, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rulebook.cache import Cache, cached

from conftest import TIMEOUT


async def until(condition) -> None:
    """Yields to the event loop until ``condition()`` holds (within TIMEOUT seconds)."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0)


def test_tasks_that_miss_together_await_one_load():
    cache = Cache()
    calls = []

    async def load():
        calls.append(1)
        await until(lambda: cache.stats()["coalesced_waiters"] == 99)
        return object()

    async def main():
        return await asyncio.gather(*(cache.aget_or_load("k", load) for _ in range(100)))

    values = asyncio.run(main())
    assert len(calls) == 1
    assert all(value is values[0] for value in values)


def test_an_async_error_is_shared_and_not_cached():
    cache = Cache()
    calls = []

    async def fail():
        calls.append(1)
        await until(lambda: cache.stats()["coalesced_waiters"] == 9)
        raise LookupError("store down")

    async def main():
        return await asyncio.gather(
            *(cache.aget_or_load("k", fail) for _ in range(10)), return_exceptions=True
        )

    errors = asyncio.run(main())
    assert len(calls) == 1
    assert all(isinstance(error, LookupError) for error in errors)
    assert asyncio.run(cache.aget_or_load("k", _value("back"))) == "back"


def _value(value):
    async def load():
        return value

    return load


def test_a_cancelled_leader_hands_the_load_to_a_waiter():
    cache = Cache()

    async def main():
        started = asyncio.Event()
        forever = asyncio.Event()

        async def stuck():
            started.set()
            await forever.wait()

        leader = asyncio.create_task(cache.aget_or_load("k", stuck))
        await started.wait()
        waiter = asyncio.create_task(cache.aget_or_load("k", _value("from the waiter")))
        await until(lambda: cache.stats()["coalesced_waiters"] == 1)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await asyncio.wait_for(waiter, TIMEOUT)

    assert asyncio.run(main()) == "from the waiter"
    assert cache.get("k") == "from the waiter"


def test_a_thread_waits_for_a_task_that_loads():
    cache = Cache()
    release = threading.Event()
    got = []

    async def slow():
        await asyncio.to_thread(release.wait, TIMEOUT)
        return "loaded by the task"

    async def main():
        task = asyncio.create_task(cache.aget_or_load("k", slow))
        await until(lambda: cache.stats()["loads"] == 1)
        thread = threading.Thread(target=lambda: got.append(cache.get_or_load("k", lambda: "no")))
        thread.start()
        await until(lambda: cache.stats()["coalesced_waiters"] == 1)
        release.set()
        value = await task
        await asyncio.to_thread(thread.join, TIMEOUT)
        return value

    assert asyncio.run(main()) == "loaded by the task"
    assert got == ["loaded by the task"]


def test_cached_wraps_async_functions():
    calls = []

    @cached(tags=lambda currency: [f"currency:{currency}"])
    async def exposure(currency):
        calls.append(currency)
        await asyncio.sleep(0)
        return {"currency": currency}

    async def main():
        first = await asyncio.gather(*(exposure("USD") for _ in range(50)))
        exposure.invalidate_tag("currency:USD")
        return first, await exposure("USD")

    first, after = asyncio.run(main())
    assert all(value is first[0] for value in first)
    assert after is not first[0]
    assert calls == ["USD", "USD"]


def test_a_thread_waiting_for_a_cancelled_task_loads_itself():
    cache = Cache()
    got = []

    async def main():
        started = asyncio.Event()

        async def stuck():
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(cache.aget_or_load("k", stuck))
        await started.wait()
        thread = threading.Thread(
            target=lambda: got.append(cache.get_or_load("k", lambda: "loaded by the thread"))
        )
        thread.start()
        await until(lambda: cache.stats()["coalesced_waiters"] == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(thread.join, TIMEOUT)

    asyncio.run(main())
    assert got == ["loaded by the thread"]
    assert cache.get("k") == "loaded by the thread"
