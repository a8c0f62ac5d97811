"""``manage.py clear_rules_cache``: clearing Rulebook's caches by hand.

    python manage.py clear_rules_cache --entry-point home_page_mount [--entry-point ...]
    python manage.py clear_rules_cache --all     # also what no option does

Drops the server's cached rulesets of those entry points (or every cache entry of the tenant),
then reloads this process's replica from a fresh snapshot. Rulebook keeps both current after
every write on its own; this is for an operator who wants to be sure. Needs an ``admin`` token
in ``settings.RULEBOOK``. Other processes' replicas follow the server's change stream as usual.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import rulebook
from rulebook import django as rulebook_django


class Command(BaseCommand):
    help = "Clear Rulebook's cached rules for some entry points (--entry-point) or all (--all)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--entry-point",
            action="append",
            dest="entry_points",
            default=[],
            help="An entry point whose rules to clear (repeat for several); "
            "normalised as the server does: `Home Page Mount` is home_page_mount",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            dest="clear_all",
            help="Clear every cached entry of the tenant (the default without --entry-point)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        entry_points: list[str] = options["entry_points"]
        clear_all = options["clear_all"] or not entry_points
        try:
            answer = rulebook_django.client().clear_cache(
                entry_points=[] if clear_all else entry_points, all=clear_all
            )
        except rulebook.RulebookError as error:
            raise CommandError(f"Rulebook refused to clear its cache: {error}") from error
        if clear_all:
            self.stdout.write(self.style.SUCCESS("Cache invalidated for all entry points"))
        for entry_point in answer.get("entry_points", []):
            self.stdout.write(
                self.style.SUCCESS(f"Cache invalidated for entry point: {entry_point}")
            )
