"""The Django app of ``rulebook.django``: its system check, and a fresh client when
``settings.RULEBOOK`` changes."""

from __future__ import annotations

from django.apps import AppConfig


class RulebookConfig(AppConfig):
    name = "rulebook.django"
    label = "rulebook"
    verbose_name = "Rulebook"

    def ready(self) -> None:
        from django.core import checks
        from django.core.signals import setting_changed

        from rulebook.django import reset
        from rulebook.django.checks import check_server

        checks.register(check_server)

        def changed(setting: str, **kwargs: object) -> None:
            if setting == "RULEBOOK":
                reset()

        setting_changed.connect(changed, weak=False, dispatch_uid="rulebook.django.settings")
