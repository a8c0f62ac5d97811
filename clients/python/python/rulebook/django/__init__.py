"""``rulebook.django``: Rulebook in a Django project.

Add the app and say where the server is::

    INSTALLED_APPS = [..., "rulebook.django"]
    RULEBOOK = {"URL": "http://127.0.0.1:8080", "TOKEN": "rb_...", "TENANT": "default"}

Then read the rules where the code used to ask its own rule registry::

    from rulebook.django import get_rules_for_entry_point, get_value, is_enabled

    get_rules_for_entry_point("home page mount")  # the rules in force, as dicts, by priority
    get_value("RF-002", "lookbackDays")            # 30
    is_enabled("checkout_terms_banner")            # True

Every call is answered in-process by one ``rulebook.Client`` per process (``client()``), made on
first use and kept current by the server's change stream, so there is no cache to clear after a
write. The management command ``clear_rules_cache`` (``--entry-point X``, repeatable, or
``--all``) is still there for clearing by hand: it drops the server's cached rulesets and
reloads the process's replica from a fresh snapshot. A system check (``rulebook.E001`` to
``E003``) reports at startup a missing setting, an unreachable server, or a token the server
refuses.

``RULEBOOK`` keys: ``URL`` (required), ``TOKEN`` (``None`` for none; reading may need one,
writing needs a ``write`` token, ``clear_rules_cache`` an ``admin`` one), ``TENANT``
(``"default"``).
"""

from __future__ import annotations

import threading
from typing import Any

from rulebook.client import _MISSING, Client

__all__ = ["client", "get_rules_for_entry_point", "get_value", "is_enabled", "reset"]

_lock = threading.Lock()
_client: Client | None = None


def _settings() -> tuple[str, str | None, str]:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    config = getattr(settings, "RULEBOOK", None)
    if not isinstance(config, dict) or not isinstance(config.get("URL"), str):
        raise ImproperlyConfigured(
            "settings.RULEBOOK must be a dict with the server's `URL`, such as "
            '{"URL": "http://127.0.0.1:8080", "TOKEN": "rb_...", "TENANT": "default"}'
        )
    unknown = set(config) - {"URL", "TOKEN", "TENANT"}
    if unknown:
        raise ImproperlyConfigured(
            f"settings.RULEBOOK has keys Rulebook does not know: {sorted(unknown)}; "
            "it reads `URL`, `TOKEN` and `TENANT`"
        )
    return config["URL"], config.get("TOKEN"), config.get("TENANT", "default")


def client() -> Client:
    """The process's ``rulebook.Client``, made from ``settings.RULEBOOK`` on first use (which
    loads the tenant's rules) and shared by every thread; a forked worker gets its own replica
    on its first call.

    Raises ``ImproperlyConfigured`` for a missing or malformed ``RULEBOOK``, and what
    ``rulebook.Client`` raises (``Unreachable``, ``Unauthorized``, ...) while the client cannot
    be made; the next call tries again.
    """
    made = _client
    if made is not None:
        return made
    return _make()


def _make() -> Client:
    global _client
    # Held while the first client is made, so that threads starting at once make one.
    with _lock:
        if _client is None:
            url, token, tenant = _settings()
            _client = Client(url, token=token, tenant=tenant)
        return _client


def reset() -> None:
    """Forgets the process's client: the next call makes a new one from the settings (done
    when ``RULEBOOK`` changes, as under ``override_settings``)."""
    global _client
    with _lock:
        _client = None


def get_rules_for_entry_point(entry_point: str) -> list[dict[str, Any]]:
    """The rules of ``entry_point`` in force now (enabled and inside their window), in the order
    they are evaluated (priority, then id), each a dict in the API's shape (``id``, ``name``,
    ``priority``, ``condition``, ``actions``, ``params``, ``version``, ...).

    The name is normalised as the server normalises it, which is how Django rule registries
    commonly keyed their caches (``rules:<entry_point>``): trimmed, lower-cased, spaces to
    underscores (``"Home Page Mount"`` is ``home_page_mount``).

    Raises ``rulebook.BadRequest`` (``bad_entry_point``) for a name with a character outside
    letters, digits, ``_``, ``.``, ``-`` and spaces.
    """
    return client().entry_point_rules(entry_point)


def get_value(rule_id: str, field: str, default: Any = _MISSING) -> Any:
    """The current value of param ``field`` of rule ``rule_id`` (any JSON value), or
    ``default`` when there is none, if given.

    Raises ``rulebook.NotFound`` (``param_not_found``) when it does not exist and no
    ``default`` is given.
    """
    return client().get_value(rule_id, field, default)


def is_enabled(rule_id: str) -> bool:
    """Whether rule ``rule_id`` is enabled.

    Raises ``rulebook.NotFound`` (``rule_not_found``) when the rule does not exist.
    """
    return client().is_enabled(rule_id)
