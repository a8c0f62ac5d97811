"""The startup check of ``rulebook.django``: the settings are there, the server answers, and it
accepts the token. It makes the process's client, so a check that passes leaves it ready.

A server whose reads are open does not look at a token on reads, so the token is checked with
an authenticated call that changes nothing: an empty dry-run import. A token the server does not
know fails it (401); a valid token without the ``write`` role is refused for its role (403
``forbidden_role``), which is fine for a process that only reads."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

import rulebook
from rulebook import django as rulebook_django


def check_server(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``rulebook.E001`` for a missing or malformed ``settings.RULEBOOK``, ``rulebook.E002``
    when the server cannot be reached, ``rulebook.E003`` when it refuses the token or the
    tenant, ``rulebook.E004`` for any other error answer."""
    try:
        client = rulebook_django.client()
        if rulebook_django._settings()[1] is not None:
            _check_token(client)
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="rulebook.E001")]
    except rulebook.Unreachable as error:
        return [
            checks.Error(
                f"the Rulebook server cannot be reached: {error.message}",
                hint="start it (`rulebook serve`) or fix settings.RULEBOOK['URL']",
                id="rulebook.E002",
            )
        ]
    except (rulebook.Unauthorized, rulebook.Forbidden, rulebook.BadRequest) as error:
        return [
            checks.Error(
                f"the Rulebook server refuses this client: {error}",
                hint="fix settings.RULEBOOK['TOKEN'] (or 'TENANT'): the server names the problem",
                id="rulebook.E003",
            )
        ]
    except rulebook.RulebookError as error:
        return [checks.Error(f"the Rulebook client cannot start: {error}", id="rulebook.E004")]
    return []


def _check_token(client: rulebook.Client) -> None:
    """Raises what the server says of the client's token, if it refuses it."""
    try:
        client.rules.import_([], reason="rulebook.django startup check", dry_run=True)
    except rulebook.Forbidden as error:
        if error.code != "forbidden_role":
            raise
