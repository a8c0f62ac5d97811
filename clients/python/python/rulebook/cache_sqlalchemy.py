"""Invalidate ``rulebook.cache`` entries when a SQLAlchemy session commits, never on rollback.

Declare which tags each table's writes touch, then attach to a ``Session`` class, a
``sessionmaker`` or one session::

    from rulebook.cache import Dependencies, cached
    from rulebook.cache_sqlalchemy import attach

    @cached(tags=lambda currency: [f"currency:{currency}"])
    def exposure(currency): ...

    DEPENDENCIES = Dependencies({"hedge_instructions": ["currency:{currency}",
                                                        "entity:{entity_id}"]})
    attach(SessionLocal, [exposure], DEPENDENCIES)

Each flush collects the tags of the rows it inserts, updates (old and new values, so a hedge
moved from USD to EUR drops both) and deletes; the session's ``after_commit`` invalidates them
and ``after_rollback`` forgets them. So no reader can cache the old value again after the
invalidation, and a rollback drops nothing. Statements that bypass the unit of work
(``session.execute(update(...))``) add their tags with ``invalidate_after_commit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

__all__ = ["attach", "invalidate_after_commit"]

from rulebook.cache import Dependencies

_PENDING = "rulebook.cache.pending"


def invalidate_after_commit(session: Session, tags: Iterable[str]) -> None:
    """Adds ``tags`` to what ``session``'s next commit invalidates (in the caches ``attach``
    named for it); a rollback forgets them."""
    session.info.setdefault(_PENDING, set()).update(tags)


def _rows(instance: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The instance's table, and its row before and after the flush."""
    state = inspect(instance)
    mapper = state.mapper
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attribute in mapper.column_attrs:
        history = state.attrs[attribute.key].history
        name = attribute.columns[0].name
        current = history.added[0] if history.added else (history.unchanged or [None])[0]
        after[name] = current
        before[name] = history.deleted[0] if history.deleted else current
    return mapper.local_table.name, before, after


def attach(
    target: Session | type[Session] | Any, caches: Iterable[Any], dependencies: Dependencies
) -> Callable[[], None]:
    """Listens on ``target`` (a session, a ``Session`` subclass or a ``sessionmaker``) so that
    committed writes to the tables ``dependencies`` names invalidate their tags in ``caches``.
    Returns a function that removes the listeners."""
    caches = tuple(caches)

    def after_flush(session: Session, _context: Any) -> None:
        tags: set[str] = set()
        for instance in (*session.new, *session.dirty, *session.deleted):
            table, before, after = _rows(instance)
            if dependencies.covers(table):
                tags |= dependencies.tags(table, before) | dependencies.tags(table, after)
        if tags:
            invalidate_after_commit(session, tags)

    def after_commit(session: Session) -> None:
        for tag in session.info.pop(_PENDING, ()):
            for cache in caches:
                cache.invalidate_tag(tag)

    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    listeners: list[tuple[str, Callable[..., Any]]] = [
        ("after_flush", after_flush),
        ("after_commit", after_commit),
        ("after_rollback", after_rollback),
    ]
    for name, listener in listeners:
        event.listen(target, name, listener)

    def detach() -> None:
        for name, listener in listeners:
            event.remove(target, name, listener)

    return detach
