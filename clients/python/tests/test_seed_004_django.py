"""Seed 004 with Django: cache entries must be dropped by currency and entity only after the
transaction commits. Invalidating inside the transaction lets a concurrent reader cache the old
value again before the commit (reproduced); ``rulebook.cache_django`` invalidates on commit, by
tag from a dependency map, and never on rollback."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import django
import pytest
from django.conf import settings

from conftest import TIMEOUT

settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(tempfile.mkdtemp(prefix="rulebook-django-")) / "hedges.db"),
        }
    },
    INSTALLED_APPS=["hedging"],
    USE_TZ=True,
)
django.setup()

from django.db import connection, connections, transaction  # noqa: E402
from django.db.models import Sum  # noqa: E402

from rulebook.cache import Dependencies, cached  # noqa: E402
from rulebook.cache_django import connect, invalidate_on_commit  # noqa: E402

from hedging.models import HedgeInstruction  # noqa: E402

DEPENDENCIES = Dependencies(
    {"hedge_instructions": ["hedge_positions", "currency:{currency}", "entity:{entity}"]}
)


@pytest.fixture(autouse=True)
def table():
    with connection.schema_editor() as editor:
        editor.create_model(HedgeInstruction)
    HedgeInstruction.objects.create(currency="USD", entity="E1", amount=100)
    HedgeInstruction.objects.create(currency="EUR", entity="E2", amount=7)
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(HedgeInstruction)


def in_another_thread(read):
    """Reads on another thread, so on another database connection: it sees only committed
    rows, as a concurrent request would."""
    result = []

    def run():
        try:
            result.append(read())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    return result[0]


def caches():
    @cached(tags=lambda currency: [f"currency:{currency}"])
    def exposure(currency):
        rows = HedgeInstruction.objects.filter(currency=currency)
        return rows.aggregate(total=Sum("amount"))["total"] or 0

    @cached(tags=lambda entity: [f"entity:{entity}"])
    def capacity(entity):
        return 1_000 - (
            HedgeInstruction.objects.filter(entity=entity).aggregate(t=Sum("amount"))["t"] or 0
        )

    return exposure, capacity


def test_invalidating_before_the_commit_lets_the_old_value_back():
    exposure, _ = caches()
    assert exposure("USD") == 100
    with transaction.atomic():
        HedgeInstruction.objects.create(currency="USD", entity="E1", amount=50)
        exposure.invalidate_tag("currency:USD")  # the naive place: before the commit
        assert in_another_thread(lambda: exposure("USD")) == 100  # a request reloads
    # Committed, but the cache answers the value from before the commit.
    assert exposure("USD") == 100
    assert HedgeInstruction.objects.filter(currency="USD").aggregate(t=Sum("amount"))["t"] == 150


def test_after_commit_invalidation_by_currency_and_entity_and_never_on_rollback():
    exposure, capacity = caches()
    disconnect = connect([exposure, capacity], DEPENDENCIES)
    try:
        assert (exposure("USD"), exposure("EUR"), capacity("E1")) == (100, 7, 900)
        with transaction.atomic():
            HedgeInstruction.objects.create(currency="USD", entity="E1", amount=50)
            assert in_another_thread(lambda: exposure("USD")) == 100
            assert exposure.stats()["invalidations_tag"] == 0  # nothing before the commit
        assert (exposure("USD"), capacity("E1")) == (150, 850)
        eur_loads = exposure.stats()["loads"]
        assert exposure("EUR") == 7 and exposure.stats()["loads"] == eur_loads  # untouched

        tags_before = exposure.stats()["invalidations_tag"]
        with pytest.raises(RuntimeError), transaction.atomic():
            HedgeInstruction.objects.create(currency="USD", entity="E1", amount=999)
            raise RuntimeError("rolled back")
        assert exposure.stats()["invalidations_tag"] == tags_before
        assert exposure("USD") == 150 and exposure.stats()["loads"] == eur_loads

        # A hedge moved from USD to EUR drops both currencies.
        hedge = HedgeInstruction.objects.get(currency="USD", amount=50)
        with transaction.atomic():
            hedge.currency = "EUR"
            hedge.save()
        assert (exposure("USD"), exposure("EUR")) == (100, 57)

        # A write the signals do not see says its tags itself.
        with transaction.atomic():
            HedgeInstruction.objects.filter(currency="EUR").update(amount=1)
            invalidate_on_commit([exposure], ["currency:EUR"])
            assert exposure("EUR") == 57
        assert exposure("EUR") == 2

        hedge.delete()
        assert (exposure("EUR"), capacity("E1")) == (1, 900)
    finally:
        disconnect()
