"""Seed 004 with SQLAlchemy: the same failure and fix as the Django test, with an
``after_commit`` hook (``rulebook.cache_sqlalchemy``) on a real SQLite database."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import String, create_engine, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from rulebook.cache import Dependencies, cached
from rulebook.cache_sqlalchemy import attach, invalidate_after_commit

from conftest import TIMEOUT

DEPENDENCIES = Dependencies(
    {"hedge_instructions": ["hedge_positions", "currency:{currency}", "entity:{entity_id}"]}
)


class Base(DeclarativeBase):
    pass


class HedgeInstruction(Base):
    __tablename__ = "hedge_instructions"
    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    entity_id: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int]


@pytest.fixture
def sessions(tmp_path) -> sessionmaker[Session]:
    engine = create_engine(f"sqlite:///{tmp_path / 'hedges.db'}")
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    with factory.begin() as session:
        session.add_all(
            [
                HedgeInstruction(currency="USD", entity_id="E1", amount=100),
                HedgeInstruction(currency="EUR", entity_id="E2", amount=7),
            ]
        )
    yield factory
    engine.dispose()


def caches(sessions):
    def total(column, value):
        with sessions() as session:
            query = select(func.coalesce(func.sum(HedgeInstruction.amount), 0))
            return session.scalar(query.where(column == value))

    @cached(tags=lambda currency: [f"currency:{currency}"])
    def exposure(currency):
        return total(HedgeInstruction.currency, currency)

    @cached(tags=lambda entity: [f"entity:{entity}"])
    def capacity(entity):
        return 1_000 - total(HedgeInstruction.entity_id, entity)

    return exposure, capacity


def in_another_thread(read):
    result = []
    thread = threading.Thread(target=lambda: result.append(read()))
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    return result[0]


def test_invalidating_before_the_commit_lets_the_old_value_back(sessions):
    exposure, _ = caches(sessions)
    assert exposure("USD") == 100
    with sessions() as session:
        session.add(HedgeInstruction(currency="USD", entity_id="E1", amount=50))
        session.flush()
        exposure.invalidate_tag("currency:USD")  # the naive place: before the commit
        assert in_another_thread(lambda: exposure("USD")) == 100
        session.commit()
    assert exposure("USD") == 100  # stale: the committed total is 150


def test_after_commit_invalidation_by_currency_and_entity_and_never_on_rollback(sessions):
    exposure, capacity = caches(sessions)
    detach = attach(sessions, [exposure, capacity], DEPENDENCIES)
    try:
        assert (exposure("USD"), exposure("EUR"), capacity("E1")) == (100, 7, 900)
        with sessions() as session:
            hedge = HedgeInstruction(currency="USD", entity_id="E1", amount=50)
            session.add(hedge)
            session.flush()
            assert in_another_thread(lambda: exposure("USD")) == 100
            assert exposure.stats()["invalidations_tag"] == 0  # nothing before the commit
            session.commit()
            hedge_id = hedge.id
        assert (exposure("USD"), capacity("E1")) == (150, 850)
        loads = exposure.stats()["loads"]
        assert exposure("EUR") == 7 and exposure.stats()["loads"] == loads  # untouched

        tags_before = exposure.stats()["invalidations_tag"]
        with sessions() as session:
            session.add(HedgeInstruction(currency="USD", entity_id="E1", amount=999))
            session.flush()
            session.rollback()
        assert exposure.stats()["invalidations_tag"] == tags_before
        assert exposure("USD") == 150 and exposure.stats()["loads"] == loads

        # A hedge moved from USD to EUR drops both currencies.
        with sessions() as session:
            session.get(HedgeInstruction, hedge_id).currency = "EUR"
            session.commit()
        assert (exposure("USD"), exposure("EUR")) == (100, 57)

        # A statement the unit of work does not see says its tags itself.
        with sessions() as session:
            session.execute(
                update(HedgeInstruction).where(HedgeInstruction.currency == "EUR").values(amount=1)
            )
            invalidate_after_commit(session, ["currency:EUR"])
            session.commit()
        assert exposure("EUR") == 2

        with sessions() as session:
            session.delete(session.get(HedgeInstruction, hedge_id))
            session.commit()
        assert (exposure("EUR"), capacity("E1")) == (1, 900)
    finally:
        detach()
