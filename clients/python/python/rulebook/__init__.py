"""Rulebook for Python.

``rulebook.Client``: a tenant's rules in-process (a replica kept current by the server's change
stream), answering ``evaluate``, ``get_value``, ``is_enabled`` and ``score`` as the server
would; writes through ``client.rules``. Its exceptions (``RulebookError`` and the classes named
after the API's error codes) are in ``rulebook.errors`` and here.

``rulebook.django``: a Django app holding one client per process, configured from
``settings.RULEBOOK``, with the ``clear_rules_cache`` command and a startup check.

``rulebook.cache``: the coherent cache (``Cache`` and the ``cached`` decorator), with
after-commit invalidation for Django (``rulebook.cache_django``) and SQLAlchemy
(``rulebook.cache_sqlalchemy``).
"""

from rulebook import cache, errors
from rulebook.client import Client, Rules
from rulebook.errors import (
    BadRequest,
    Conflict,
    EvaluationFailed,
    Forbidden,
    NotFound,
    NotYetCurrent,
    PreconditionRequired,
    ReplicaError,
    RulebookError,
    Unauthorized,
    Unreachable,
    ValidationFailed,
)

__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "EvaluationFailed",
    "Forbidden",
    "NotFound",
    "NotYetCurrent",
    "PreconditionRequired",
    "ReplicaError",
    "RulebookError",
    "Rules",
    "Unauthorized",
    "Unreachable",
    "ValidationFailed",
    "cache",
    "errors",
]
