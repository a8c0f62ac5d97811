"""The contract of rulebook.cache.Cache, one test per line (threads; see test_async.py)."""

from __future__ import annotations

import gc
import inspect
import signal
import threading
import weakref
from dataclasses import dataclass

import pytest

from rulebook.cache import Cache, cached

from conftest import TIMEOUT, run_threads, wait_until


def test_concurrent_misses_on_one_key_run_the_loader_once():
    cache = Cache()
    calls = []

    def load():
        calls.append(1)
        # Every other thread has joined this load before it ends.
        wait_until(lambda: cache.stats()["coalesced_waiters"] == 19)
        return object()

    values = run_threads(20, lambda _: cache.get_or_load("k", load))
    assert len(calls) == 1
    assert all(value is values[0] for value in values)
    assert cache.stats()["loads"] == 1


def test_an_error_is_shared_by_the_waiters_and_not_cached():
    cache = Cache()
    calls = []

    def fail():
        calls.append(1)
        wait_until(lambda: cache.stats()["coalesced_waiters"] == 7)
        raise LookupError("store down")

    def read(_):
        with pytest.raises(LookupError, match="store down") as raised:
            cache.get_or_load("k", fail)
        return raised.value

    errors = run_threads(8, read)
    assert len(calls) == 1
    assert all(error is errors[0] for error in errors)
    assert cache.get("k") is None
    assert cache.get_or_load("k", lambda: "back") == "back"
    assert cache.stats()["load_errors"] == 1


def test_an_invalidation_during_a_load_keeps_its_value_out():
    cache = Cache()
    started, release = threading.Event(), threading.Event()

    def slow_old_value():
        started.set()
        assert release.wait(TIMEOUT)
        return "old"

    result = []
    loader = threading.Thread(target=lambda: result.append(cache.get_or_load("k", slow_old_value)))
    loader.start()
    assert started.wait(TIMEOUT)
    cache.invalidate("k")
    release.set()
    loader.join(TIMEOUT)
    # The caller that started before the invalidation still gets its value...
    assert result == ["old"]
    # ...but a read that starts after it never does.
    assert cache.get("k") is None
    assert cache.get_or_load("k", lambda: "new") == "new"
    assert cache.stats()["discarded_loads"] == 1


@pytest.mark.parametrize("invalidate", ["tag", "all"])
def test_a_tag_or_full_invalidation_during_a_load_keeps_its_value_out(invalidate):
    cache = Cache()
    started, release = threading.Event(), threading.Event()

    def slow_old_value():
        started.set()
        assert release.wait(TIMEOUT)
        return "old"

    loader = threading.Thread(
        target=lambda: cache.get_or_load("k", slow_old_value, tags=["currency:USD"])
    )
    loader.start()
    assert started.wait(TIMEOUT)
    if invalidate == "tag":
        cache.invalidate_tag("currency:USD")
    else:
        cache.invalidate_all()
    release.set()
    loader.join(TIMEOUT)
    assert cache.get("k") is None


def test_tags_drop_exactly_their_entries():
    cache = Cache()
    cache.get_or_load("usd", lambda: 1, tags=["currency:USD", "entity:E1"])
    cache.get_or_load("eur", lambda: 2, tags=["currency:EUR", "entity:E1"])
    cache.get_or_load("gbp", lambda: 3, tags=lambda value: [f"value:{value}"])
    cache.invalidate_tag("currency:USD")
    assert (cache.get("usd"), cache.get("eur"), cache.get("gbp")) == (None, 2, 3)
    cache.invalidate_tag("entity:E1")
    assert cache.get("eur") is None
    cache.invalidate_tag("value:3")
    assert cache.get("gbp") is None


def test_tags_must_be_strings():
    cache = Cache()
    with pytest.raises(TypeError, match="iterable of strings"):
        cache.get_or_load("k", lambda: 1, tags="currency:USD")
    with pytest.raises(TypeError):
        cache.get_or_load("k", lambda: 1, tags=[1])
    assert cache.get("k") is None


def test_keys_compare_like_dict_keys():
    cache = Cache()
    cache.get_or_load(1, lambda: "one")
    assert cache.get(1.0) == "one" and cache.get(True) == "one"
    cache.get_or_load(("a", 2, None, b"x", 2.5, 10**30), lambda: "tuple")
    assert cache.get(("a", 2.0, None, b"x", 2.5, 10**30)) == "tuple"
    assert cache.get(("a", 2, None, b"x", 2.5, 10**30 + 1)) is None
    assert cache.get("1") is None
    cache.get_or_load("lone \udc80 surrogate", lambda: "odd")
    assert cache.get("lone \udc80 surrogate") == "odd"
    with pytest.raises(TypeError):
        cache.get(["unhashable"])


@dataclass(frozen=True)
class Tenant:
    name: str


class Handle:
    """A key type with value equality that weak references can watch."""

    def __init__(self, number):
        self.number = number

    def __eq__(self, other):
        return isinstance(other, Handle) and other.number == self.number

    def __hash__(self):
        return hash(self.number)


def test_any_hashable_value_is_a_key_by_equality():
    cache = Cache()
    cache.get_or_load(Tenant("acme"), lambda: "config")
    assert cache.get(Tenant("acme")) == "config"
    assert cache.get((Tenant("acme"), 1)) is None
    cache.invalidate(Tenant("acme"))
    assert cache.get(Tenant("acme")) is None


def test_object_keys_are_not_kept_once_their_entries_are_gone():
    cache = Cache(maxsize=10)
    watchers = []
    for number in range(5_000):
        key = Handle(number)
        watchers.append(weakref.ref(key))
        cache.get_or_load(key, lambda: "value")
    gc.collect()
    alive = sum(watcher() is not None for watcher in watchers)
    # The cache's entries (about 10) and the representatives swept at most 1,024 keys ago.
    assert alive <= 1_100, alive
    assert cache.get(Handle(4_999)) == "value"


def test_the_size_is_bounded():
    cache = Cache(maxsize=100)
    for key in range(1_000):
        cache.get_or_load(key, lambda: "v")
    assert len(cache) <= 100
    assert cache.stats()["evictions_size"] >= 900


def test_entries_expire_after_their_time_to_live():
    cache = Cache(ttl=0.05)
    cache.get_or_load("k", lambda: "v")
    wait_until(lambda: cache.get("k") is None)
    assert cache.get_or_load("k", lambda: "w") == "w"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="maxsize"):
        Cache(maxsize=0)
    with pytest.raises(ValueError, match="ttl"):
        Cache(ttl=-1)


def test_a_loader_may_load_other_keys():
    cache = Cache()
    assert cache.get_or_load("outer", lambda: cache.get_or_load("inner", lambda: 1) + 1) == 2


def test_cached_keys_like_lru_cache_and_exposes_invalidation():
    calls = []

    @cached(maxsize=10, tags=lambda tenant, region="eu": [f"tenant:{tenant}"])
    def config(tenant, region="eu"):
        calls.append((tenant, region))
        return {"tenant": tenant, "region": region}

    assert config("acme") is config("acme")
    assert config("acme", region="us") is not config("acme")
    assert config("acme", "eu") is config("acme", "eu")
    assert len(calls) == 3
    config.invalidate("acme")
    config("acme")
    assert len(calls) == 4
    config.invalidate_tag("tenant:acme")
    config("acme", region="us")
    assert len(calls) == 5
    config.invalidate_all()
    config("acme", "eu")
    assert len(calls) == 6
    assert config.stats()["loads"] == 6
    assert config.__name__ == "config"


def test_cached_keeps_positional_keyword_and_tuple_arguments_apart():
    calls = []

    @cached()
    def echo(*args, **kwargs):
        calls.append(1)
        return (args, kwargs)

    shapes = [((1, 2), {}), ((1,), {"b": 2}), (((1, 2),), {}), ((1,), {}), (((1,),), {})]
    shapes += [(("a",), {}), ((), {"a": 1}), (((), (("a", 1),)), {}), ((None,), {})]
    for args, kwargs in shapes * 2:
        assert echo(*args, **kwargs) == (args, kwargs)
    assert len(calls) == len(shapes)
    echo.invalidate(1, b=2)
    assert echo(1, b=2) == ((1,), {"b": 2}) and len(calls) == len(shapes) + 1


def test_cached_methods_are_cached_per_instance():
    class Repository:
        def __init__(self, name):
            self.name = name

        @cached(maxsize=10)
        def describe(self, tenant):
            return f"{self.name}/{tenant}"

    first, second = Repository("a"), Repository("b")
    assert first.describe("acme") == "a/acme"
    assert second.describe("acme") == "b/acme"
    assert first.describe("acme") is first.describe("acme")
    assert Repository.describe.stats()["loads"] == 2
    Repository.describe.invalidate(first, "acme")
    first.describe("acme")
    assert Repository.describe.stats()["loads"] == 3
    assert Repository.describe.__name__ == "describe"
    assert inspect.signature(Repository.describe) == inspect.signature(
        Repository.describe.__wrapped__
    )


def test_ctrl_c_interrupts_a_waiting_main_thread_and_leaves_the_load_to_its_leader():
    assert threading.current_thread() is threading.main_thread()
    cache = Cache()
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        assert release.wait(TIMEOUT)
        return "loaded"

    leader = threading.Thread(target=lambda: cache.get_or_load("k", slow))
    leader.start()
    assert started.wait(TIMEOUT)

    def interrupt():
        wait_until(lambda: cache.stats()["coalesced_waiters"] == 1)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_load("k", lambda: "not this")
    interrupter.join(TIMEOUT)
    release.set()
    leader.join(TIMEOUT)
    assert cache.get("k") == "loaded"


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_loader_interrupts_its_thread_only_and_a_waiter_takes_over(interruption):
    cache = Cache()
    got = []

    def interrupted():
        wait_until(lambda: cache.stats()["coalesced_waiters"] == 1)
        raise interruption()

    def wait_then_load():
        got.append(cache.get_or_load("k", lambda: "loaded by the waiter"))

    waiter = threading.Thread(
        target=lambda: (wait_until(lambda: cache.stats()["loads"] == 1), wait_then_load())
    )
    waiter.start()
    with pytest.raises(interruption):
        cache.get_or_load("k", interrupted)
    waiter.join(TIMEOUT)
    assert got == ["loaded by the waiter"]
    assert cache.get("k") == "loaded by the waiter"
    assert cache.stats()["load_errors"] == 0
