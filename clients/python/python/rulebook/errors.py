"""The exceptions of ``rulebook.Client``, named after the HTTP API's error codes.

Every one is a ``RulebookError`` with the API's fields::

    try:
        client.rules.create({"id": "promo", "entry_point": "Home Page!"})
    except rulebook.ValidationFailed as error:
        error.code     # "validation_failed": stable, for programs
        error.message  # what to fix, for people
        error.status   # 422 (None when the server did not answer: Unreachable, ReplicaError)
        error.errors   # [{"path": "entry_point", "message": "..."}, ...]: every field problem

Which class an answer raises: its code first (``validation_failed``, ``evaluation_failed``,
``not_yet_current``), then its HTTP status (400, 401, 403, 404, 409, 428), else
``RulebookError`` itself.

A call the client answers locally fails as the server would fail it: the same class, ``code``,
``message`` and ``errors`` (``client.evaluate("Home Page!", {})`` raises ``BadRequest``,
``bad_entry_point``, as ``POST /v1/evaluate/Home Page!`` answers), with ``status`` None, since
the server was not asked.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "EvaluationFailed",
    "Forbidden",
    "NotFound",
    "NotYetCurrent",
    "PreconditionRequired",
    "ReplicaError",
    "RulebookError",
    "Unauthorized",
    "Unreachable",
    "ValidationFailed",
]


class RulebookError(Exception):
    """A call failed. ``code`` (str), ``message`` (str), ``status`` (int, or None when the
    server did not answer) and ``errors`` (a list of ``{"path": str, "message": str}``, the field
    problems of a 422; empty otherwise)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: int | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.errors = list(errors or [])

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class BadRequest(RulebookError):
    """400: the request was malformed (``bad_entry_point``, ``invalid_body``, ...)."""


class Unauthorized(RulebookError):
    """401: the token is missing or not valid (``missing_token``, ``bad_token``, ...)."""


class Forbidden(RulebookError):
    """403: the token's role does not allow the call (writes need ``write``)."""


class NotFound(RulebookError):
    """404, or a local read of something that does not exist: ``rule_not_found``,
    ``param_not_found``, ..."""


class Conflict(RulebookError):
    """409: ``rule_exists``, or ``version_conflict`` (someone else changed the rule)."""


class PreconditionRequired(RulebookError):
    """428 ``missing_version``: an update did not name the version it replaces."""


class ValidationFailed(RulebookError):
    """422 ``validation_failed``: the rule (or an import, or a score's overrides) is not valid;
    ``errors`` lists every problem."""


class EvaluationFailed(RulebookError):
    """422 ``evaluation_failed``: a rule failed at run time under ``on_error: fail``, or a
    score's overrides name a rule outside the scorecard."""


class NotYetCurrent(RulebookError):
    """503 ``not_yet_current``: the server had not applied the position asked for in time."""


class Unreachable(RulebookError):
    """The server could not be reached, or its answer could not be read (code
    ``unreachable``, no status)."""


class ReplicaError(RulebookError):
    """The local replica could not answer (code ``replica``, no status): it did not reflect the
    client's own write within its wait (see ``Client.status()`` for why), or it could not start
    its runtime. (What the server would refuse, the replica refuses with the server's class.)"""


_BY_CODE: dict[str, type[RulebookError]] = {
    "validation_failed": ValidationFailed,
    "evaluation_failed": EvaluationFailed,
    "not_yet_current": NotYetCurrent,
    "unreachable": Unreachable,
    "replica": ReplicaError,
}

_BY_STATUS: dict[int, type[RulebookError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    428: PreconditionRequired,
}


def _error(
    code: str,
    message: str,
    status: int | None,
    errors: list[dict[str, str]],
    would: int | None = None,
) -> RulebookError:
    """The exception for an error answer (called by the native module). ``would``: for a call
    the replica refused, the status the server answers it with (which picks the class)."""
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status or would or 0, RulebookError)
    return kind(message, code=code, status=status, errors=errors)
