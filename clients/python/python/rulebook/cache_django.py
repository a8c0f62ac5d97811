"""Invalidate ``rulebook.cache`` entries when a Django transaction commits, never on rollback.

Declare which tags each table's writes touch, then connect the model signals once (for
example in an ``AppConfig.ready``)::

    from rulebook.cache import Dependencies, cached
    from rulebook.cache_django import connect

    @cached(tags=lambda currency: [f"currency:{currency}"])
    def exposure(currency): ...

    DEPENDENCIES = Dependencies({"hedging_hedgeinstruction": ["currency:{currency}",
                                                              "entity:{entity_id}"]})
    connect([exposure], DEPENDENCIES)

Every save or delete of a model whose table the map names schedules, with
``transaction.on_commit``, the invalidation of the tags of the row as it was before the write and
as it is after (so a hedge moved from USD to EUR drops both). Outside a transaction the
invalidation runs at once; inside one it runs only if and when the outermost transaction
commits, so no reader can cache the old value again after the invalidation, and a rollback drops
nothing. Writes that bypass the ORM's signals (``QuerySet.update``, raw SQL) call
``invalidate_on_commit`` with their tags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save

from rulebook.cache import Dependencies

__all__ = ["connect", "invalidate_on_commit"]


def invalidate_on_commit(caches: Iterable[Any], tags: Iterable[str], using: str | None = None):
    """Invalidates ``tags`` in every one of ``caches`` (``Cache`` objects or ``cached``
    functions) once the current transaction on database ``using`` commits; at once when none is
    open; never if it rolls back."""
    caches, tags = tuple(caches), tuple(tags)

    def invalidate() -> None:
        for cache in caches:
            for tag in tags:
                cache.invalidate_tag(tag)

    if tags:
        transaction.on_commit(invalidate, using=using)


def _row(instance: Model) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def connect(caches: Iterable[Any], dependencies: Dependencies) -> Callable[[], None]:
    """Connects Django's model signals so that writes to the tables ``dependencies`` names
    invalidate their tags in ``caches`` after commit. Returns a function that disconnects them.

    A save of an existing row reads that row once first (one query), for the tags of its old
    values.
    """
    caches = tuple(caches)

    def before_save(sender: type[Model], instance: Model, using: str, raw: bool, **_: Any) -> None:
        table = sender._meta.db_table
        if raw or not dependencies.covers(table) or instance.pk is None:
            return
        old = sender._base_manager.using(using).filter(pk=instance.pk).values().first()
        if old is not None:
            invalidate_on_commit(caches, dependencies.tags(table, old), using)

    def after_write(sender: type[Model], instance: Model, using: str, **_: Any) -> None:
        table = sender._meta.db_table
        if dependencies.covers(table):
            invalidate_on_commit(caches, dependencies.tags(table, _row(instance)), using)

    uid = f"rulebook.cache_django:{id(dependencies)}:{id(caches)}"
    pre_save.connect(before_save, dispatch_uid=uid, weak=False)
    post_save.connect(after_write, dispatch_uid=uid, weak=False)
    post_delete.connect(after_write, dispatch_uid=uid, weak=False)

    def disconnect() -> None:
        pre_save.disconnect(dispatch_uid=uid)
        post_save.disconnect(dispatch_uid=uid)
        post_delete.disconnect(dispatch_uid=uid)

    return disconnect
