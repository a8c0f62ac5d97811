"""Seed 003: per-tenant configs cached in plain dicts (racy, unbounded) and a heavy singleton
two concurrent requests could build twice; the seed's fix reached for ``functools.lru_cache``,
which still runs the function once per concurrent miss. Reproduced, then fixed with
``rulebook.cache.cached``: the singleton is built once under 50 threads and the tenants stay
under the bound."""

from __future__ import annotations

import threading
from functools import lru_cache

from rulebook.cache import cached

from conftest import TIMEOUT, run_threads, wait_until

THREADS = 50


class Counted:
    """A heavy object (a client config, an index) that counts its constructions."""

    built = 0
    lock = threading.Lock()

    def __init__(self, tenant):
        with Counted.lock:
            Counted.built += 1
        self.tenant = tenant


def builds(make) -> int:
    Counted.built = 0
    make()
    return Counted.built


def test_plain_dict_builds_a_tenant_once_per_thread_and_grows_without_bound():
    configs = {}
    gate = {"inside": threading.Barrier(THREADS)}

    def get_client_config(tenant):
        if tenant not in configs:
            if gate["inside"]:
                gate["inside"].wait(TIMEOUT)  # every thread has seen the miss
            configs[tenant] = Counted(tenant)
        return configs[tenant]

    assert builds(lambda: run_threads(THREADS, lambda _: get_client_config("acme"))) == THREADS
    gate["inside"] = None
    for number in range(1_000):
        get_client_config(f"tenant-{number}")
    assert len(configs) == 1_001


def test_lru_cache_runs_the_function_once_per_concurrent_miss():
    inside = threading.Barrier(THREADS)

    @lru_cache(maxsize=100)
    def get_faiss_service():
        inside.wait(TIMEOUT)
        return Counted("singleton")

    assert builds(lambda: run_threads(THREADS, lambda _: get_faiss_service())) == THREADS


def test_rulebook_cached_builds_the_singleton_once_under_50_threads():
    @cached(maxsize=1)
    def get_faiss_service():
        wait_until(lambda: get_faiss_service.stats()["coalesced_waiters"] == THREADS - 1)
        return Counted("singleton")

    services = []
    assert builds(lambda: services.extend(run_threads(THREADS, lambda _: get_faiss_service()))) == 1
    assert all(service is services[0] for service in services)


def test_rulebook_cached_keeps_tenants_under_the_bound():
    @cached(maxsize=100)
    def get_client_config(tenant):
        return Counted(tenant)

    def hammer(index):
        for number in range(200):
            config = get_client_config(f"tenant-{(index * 37 + number) % 1_000}")
            assert config.tenant == f"tenant-{(index * 37 + number) % 1_000}"

    run_threads(8, hammer)
    assert len(get_client_config.cache) <= 100
    assert get_client_config.stats()["evictions_size"] > 0
