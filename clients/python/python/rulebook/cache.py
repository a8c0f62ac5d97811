"""The coherent cache: one load per key, invalidations that are never undone, tags.

``Cache`` wraps Rulebook's Rust cache (``rulebook-cache``) and keeps its contract:

- **One load per key.** Threads (and asyncio tasks, with ``aget_or_load``) that miss on the
  same key at once run one loader between them; the others wait and get its value, or its
  exception. A waiting thread releases the GIL, so the loader can run.
- **Errors are shared, not cached.** Every caller that waited for a failed load gets the same
  exception; the next call loads again.
- **No waiter is stranded.** A loader that raises an ``Exception`` ends the wait of every
  caller with it. A loader interrupted by ``KeyboardInterrupt`` or ``SystemExit``, or an
  asyncio task cancelled while it runs the loader, raises in its own thread or task only and
  hands the load to one of the callers waiting for it, which runs its own loader.
- **No resurrection.** Once ``invalidate(key)``, ``invalidate_tag(tag)`` or
  ``invalidate_all()`` has returned, no read that starts afterwards returns a value whose load
  began before it: a load that was in flight still answers the callers already waiting for it,
  but its value is not cached.
- **Bounded.** At most ``maxsize`` entries, with an optional time to live (``ttl``) and time to
  idle (``tti``), in seconds.

``cached`` is the decorator form, keyed like ``functools.lru_cache``::

    @cached(maxsize=100, tags=lambda tenant: [f"tenant:{tenant}"])
    def client_config(tenant: str) -> ClientConfig:
        return ClientConfig.load(tenant)

    client_config("acme")                 # loads once, however many threads ask at once
    client_config.invalidate("acme")      # or .invalidate_tag("tenant:acme"), .invalidate_all()

Keys are hashable values; ``True``, ``1`` and ``1.0`` are one key, as in a ``dict``. Values are
cached as they are, not copied: treat them as immutable. A loader must not load its own key
(it would wait for itself). In ``async`` code use ``aget_or_load`` (or decorate an
``async def``): the blocking ``get_or_load`` would block the event loop while it waits.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

from rulebook import _native

__all__ = ["Cache", "Dependencies", "cached"]

T = TypeVar("T")

Tags = Iterable[str] | Callable[[Any], Iterable[str]]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _drive(op: Any, loader: Callable[[], Awaitable[T]]) -> T:
    """Runs a native load op to its end from an asyncio task (see ``_native.LoadOp``)."""
    try:
        state = op.poll()
        while state != _native.DONE:
            if state == _native.RUN:
                try:
                    value = await loader()
                except Exception as error:
                    op.set_error(error)
                else:
                    op.set_result(value)
                state = op.poll()
                continue
            # Waiting for another caller's load: poll again with a waker, then sleep on it.
            loop = asyncio.get_running_loop()
            woken = loop.create_future()
            state = op.poll(functools.partial(loop.call_soon_threadsafe, _wake, woken))
            if state == _native.WAIT:
                await woken
                state = op.poll()
        return op.result()
    finally:
        # Abandons the load if this task is cancelled while it runs the loader (or waits): a
        # task waiting for it takes over.
        op.close()


class Cache:
    """A coherent, bounded cache of Python values.

    ``maxsize``: the most entries (at least 1; default 10,000). ``ttl``: seconds after which an
    entry expires whatever happens (default: never). ``tti``: seconds without a read after which
    an entry expires (default: never). Invalidation, not expiry, is what keeps entries current;
    expiry is a backstop.

    Raises ``ValueError`` for a ``maxsize`` below 1 or a non-positive ``ttl`` or ``tti``.
    """

    __slots__ = ("_native",)

    def __init__(
        self, maxsize: int = 10_000, ttl: float | None = None, tti: float | None = None
    ) -> None:
        self._native = _native.Cache(maxsize, ttl, tti)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The cached value for ``key``, or ``default``. Raises ``TypeError`` for an unhashable
        key."""
        return self._native.get(key, default)

    def get_or_load(self, key: Hashable, loader: Callable[[], T], tags: Tags | None = None) -> T:
        """The cached value for ``key``, or ``loader()``'s value, then cached with ``tags``.

        ``tags``: strings such as ``"currency:USD"`` that ``invalidate_tag`` drops the entry by,
        or a callable taking the loaded value and returning them. Concurrent callers that miss
        on ``key`` run one loader; the others wait (GIL released) for its value or exception.

        Raises the loader's exception (not cached), ``TypeError`` for an unhashable key or tags
        that are not strings.
        """
        return self._native.get_or_load(key, loader, tags)

    async def aget_or_load(
        self, key: Hashable, loader: Callable[[], Awaitable[T]], tags: Tags | None = None
    ) -> T:
        """``get_or_load`` for asyncio: ``loader`` is a coroutine function, awaited once however
        many tasks (or threads) miss on ``key`` at once; the others await its result without
        blocking the event loop. If the task running the loader is cancelled, a waiting task
        takes over with its own loader.

        Raises the loader's exception (not cached), ``TypeError`` as ``get_or_load``.
        """
        return await _drive(self._native.load(key, tags), loader)

    def invalidate(self, key: Hashable) -> None:
        """Drops ``key``. Once this returns, no read that starts afterwards returns a value
        whose load began before the call."""
        self._native.invalidate(key)

    def invalidate_tag(self, tag: str) -> None:
        """Drops every entry tagged ``tag``, with the same guarantee as ``invalidate``."""
        self._native.invalidate_tag(tag)

    def invalidate_all(self) -> None:
        """Drops every entry, with the same guarantee as ``invalidate``."""
        self._native.invalidate_all()

    def stats(self) -> dict[str, int]:
        """Counters since the cache was built: ``hits``, ``misses``, ``loads``,
        ``load_errors``, ``coalesced_waiters``, ``invalidations_key``, ``invalidations_tag``,
        ``invalidations_all``, ``invalidated_entries``, ``discarded_loads`` (loads not cached
        because an invalidation came while they ran), ``evictions_size``,
        ``evictions_expired``, ``evictions_idle``."""
        return self._native.stats()

    def __len__(self) -> int:
        """The number of entries, counting expired ones not yet removed."""
        return len(self._native)


def cached(
    maxsize: int = 10_000,
    ttl: float | None = None,
    tti: float | None = None,
    tags: Callable[..., Iterable[str]] | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Caches a function (plain or ``async def``) in a ``Cache``, keyed by its arguments as
    ``functools.lru_cache`` keys them (``f(1)`` and ``f(x=1)`` are separate entries).

    ``tags``: a callable taking the function's arguments and returning the entry's tags.
    The wrapped function gains ``invalidate(*args, **kwargs)``, ``invalidate_tag(tag)``,
    ``invalidate_all()``, ``stats()`` and ``cache`` (the ``Cache``). Methods are cached per
    instance (``self`` is part of the key); invalidate one through the class:
    ``Repository.describe.invalidate(repository, "acme")``.

    Raises ``ValueError`` as ``Cache``; calls raise ``TypeError`` for unhashable arguments.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        cache = Cache(maxsize, ttl, tti)
        native = cache._native

        wrapper: Any
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                entry_tags = None if tags is None else lambda _value: tags(*args, **kwargs)
                op = native.load_call(args, kwargs, entry_tags)
                return await _drive(op, lambda: func(*args, **kwargs))

            def invalidate(*args: Any, **kwargs: Any) -> None:
                native.invalidate_call(args, kwargs)

            wrapper.invalidate = invalidate
        else:
            wrapper = functools.update_wrapper(_native.CachedFunction(native, func, tags), func)

        wrapper.invalidate_tag = cache.invalidate_tag
        wrapper.invalidate_all = cache.invalidate_all
        wrapper.stats = cache.stats
        wrapper.cache = cache
        return wrapper

    return decorate


class Dependencies:
    """Which cache tags a write to a table touches, declared in one place as data.

    ``tables`` maps a table name to tag templates, formatted with the written row's columns::

        DEPENDENCIES = Dependencies({
            "hedge_instructions": ["hedge_positions", "currency:{currency}", "entity:{entity_id}"],
            "gl_entries": ["real_time_pnl", "entity:{entity_id}"],
        })
        DEPENDENCIES.tags("hedge_instructions", {"currency": "USD", "entity_id": "E1"})
        # {"hedge_positions", "currency:USD", "entity:E1"}

    The after-commit helpers (``rulebook.cache_django``, ``rulebook.cache_sqlalchemy``) read it
    to invalidate by tag once a transaction commits, and never on rollback.
    """

    __slots__ = ("_tables",)

    def __init__(self, tables: Mapping[str, Iterable[str]]) -> None:
        self._tables = {table: tuple(templates) for table, templates in tables.items()}

    def covers(self, table: str) -> bool:
        """Whether writes to ``table`` touch any tag."""
        return table in self._tables

    def tags(self, table: str, row: Mapping[str, Any]) -> set[str]:
        """The tags a write of ``row`` (column name to value) to ``table`` touches; none for a
        table the map does not name. Raises ``KeyError`` naming a column a template needs and
        the row lacks."""
        try:
            return {template.format_map(row) for template in self._tables.get(table, ())}
        except KeyError as missing:
            raise KeyError(
                f"a tag template of table `{table}` names column {missing}, which the row lacks"
            ) from None
