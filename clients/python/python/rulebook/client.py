"""``rulebook.Client``: a tenant's rules in-process, answering as the server would.

The client holds a replica of one tenant's rules (``rulebook-client``'s ``Replica``): it loads
the server's snapshot, follows its change stream, and answers ``evaluate``, ``get_value``,
``is_enabled`` and ``score`` locally, with the server's semantics (the same Rust rules engine,
compiled the same way) and with the GIL released. Writes (``client.rules``) go to the server;
the client's next local read waits until the replica reflects them (read your writes). While the
server is away the client keeps answering from its last state, and ``status()`` says since when.

One client is meant to live as long as the process and be shared by its threads. It survives
``fork`` (gunicorn, Celery): in a child, the first call starts a new replica, from a fresh
snapshot.

Errors are the classes of ``rulebook.errors`` (also importable from ``rulebook``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rulebook import _native
from rulebook.errors import NotFound

__all__ = ["Client", "Rules"]

_MISSING: Any = object()


class Client:
    """A client of the Rulebook server at ``url`` for ``tenant``, sending ``token`` (``Bearer``;
    writes need one with the ``write`` role, and reads one when the server asks for it).

    Loads the tenant's rules before it returns.

    Raises ``Unreachable`` when the server cannot be reached, ``Unauthorized`` or ``Forbidden``
    for a bad token, ``BadRequest`` (``unknown_tenant``) for a tenant the server does not have.
    """

    def __init__(self, url: str, token: str | None = None, tenant: str = "default") -> None:
        self._native = _native.Client(url, token, tenant)
        self.url = url
        self.tenant = tenant
        self.rules = Rules(self._native)

    def __repr__(self) -> str:
        return f"rulebook.Client({self.url!r}, tenant={self.tenant!r})"

    def evaluate(
        self,
        entry_point: str,
        context: dict[str, Any],
        at: datetime | str | None = None,
        explain: bool = False,
    ) -> dict[str, Any]:
        """Evaluates ``entry_point`` against ``context`` (a dict of JSON values) locally, at time
        ``at`` (an aware ``datetime`` or an RFC 3339 string; now if ``None``), and returns the
        server's answer shape::

            {"seq": 12, "entry_point": "checkout_terms", "at": "2026-03-03T10:00:00Z",
             "matched": [{"id": "checkout_terms_banner", "version": 3, "priority": 10}],
             "actions": [{"rule_id": "checkout_terms_banner", "type": "display_message", ...}],
             "errors": []}          # plus "stopped_by" when a rule stopped the evaluation

        ``seq``: every change through it is reflected. A rule that fails at run time is listed in
        ``errors`` (``{"rule_id", "version", "code", "message"}``) and counts as not matched, as
        the server answers by default. There is no ``decision_id``: a local evaluation is not
        logged as a decision. An entry point with no rules answers with nothing matched.

        ``explain=True`` adds ``explain``, every rule of the entry point in evaluation order with
        how it was decided, as the server's ``"explain": true`` answers (the same code)::

            "explain": [{"id": "big_order", "version": 3, "priority": 10, "outcome": "matched"},
                        {"id": "fr_only", "version": 1, "priority": 20,
                         "outcome": "condition_false", "operator": "==",
                         "operands": ["GB", "FR"]}, ...]

        ``outcome`` is one of ``matched``, ``condition_false`` (``operator``, ``operands``),
        ``disabled``, ``outside_window`` (``active_from``, ``active_until``),
        ``condition_error`` / ``action_error`` (``code``, ``reason``), ``not_reached``
        (``stopped_by``).

        Raises ``TypeError``/``ValueError`` for a context that is not JSON (or not a dict) or a
        naive ``at``; ``BadRequest`` (``bad_entry_point``) for an entry point that is not valid;
        ``RulebookError`` (``stored_rules_unusable``) for stored rules that cannot be compiled;
        ``ReplicaError`` when the replica does not reflect this client's own write in time.
        """
        # The native call checks that `context` is a dict; `at` is most often left out.
        if at is not None:
            at = _rfc3339(at)
        return self._native.evaluate(entry_point, context, at, explain)

    def entry_point_rules(self, entry_point: str) -> list[dict[str, Any]]:
        """The rules of ``entry_point`` in force now (enabled and inside their schedule window),
        in evaluation order (priority, then id), read locally, each a dict as ``rules.get``
        answers it (without ``seq``). ``entry_point`` is normalised as the server normalises it:
        ``"Home Page Mount"`` names ``home_page_mount``. An entry point with no rules gives
        ``[]``.

        Raises ``BadRequest`` (``bad_entry_point``) for a name with a character outside
        letters, digits, ``_``, ``.``, ``-`` and spaces.
        """
        return self._native.entry_point_rules(entry_point)["rules"]

    def get_value(self, rule_id: str, field: str, default: Any = _MISSING) -> Any:
        """The current value of param ``field`` of rule ``rule_id`` (any JSON value), read
        locally. Returns ``default`` when the rule or the param does not exist, if given.

        Raises ``NotFound`` (``param_not_found``, no status) when it does not exist and no
        ``default`` is given.
        """
        found, value = self._native.get_value(rule_id, field)
        if found:
            return value
        if default is not _MISSING:
            return default
        raise NotFound(
            f"rule `{rule_id}` has no param `{field}` in tenant `{self.tenant}`",
            code="param_not_found",
        )

    def is_enabled(self, rule_id: str) -> bool:
        """Whether rule ``rule_id`` is enabled, read locally.

        Raises ``NotFound`` (``rule_not_found``, no status) when the rule does not exist.
        """
        enabled = self._native.is_enabled(rule_id)
        if enabled is None:
            raise NotFound(
                f"rule `{rule_id}` does not exist in tenant `{self.tenant}`",
                code="rule_not_found",
            )
        return enabled

    def score(
        self,
        name: str,
        input: dict[str, Any],
        overrides: dict[str, dict[str, Any]] | None = None,
        at: datetime | str | None = None,
        explain: bool = False,
    ) -> dict[str, Any]:
        """Scores ``input`` (a dict of JSON values) with scorecard ``name`` locally, at time
        ``at`` (as for ``evaluate``), and returns the server's answer shape::

            {"seq": 12, "scorecard": "pad_trade", "overall": "MEDIUM", "escalated": False,
             "route": "line_manager", "errors": [],
             "factors": [{"factor": "instrument_type", "rule_id": "RF-001", "version": 1,
                          "level": "LOW"}, ...]}

        ``overrides``: params to use instead of the stored ones for this call only, by rule id
        then param name (``{"RF-002": {"lookbackDays": 30}}``), each checked against the rule's
        param schema. ``explain=True`` adds ``explain``: every factor with how its rule was
        decided (``{"factor", "rule_id", "version", "outcome", ...}``, outcomes as for
        ``evaluate``).

        Raises ``NotFound`` (``scorecard_not_found``) when the scorecard has no factors;
        ``ValidationFailed`` (``errors`` at ``overrides.<rule>.<param>``) for overrides a param
        schema refuses; ``EvaluationFailed`` for overrides naming a rule outside the scorecard;
        ``ValueError``/``TypeError`` for input or overrides that are not JSON of that shape.
        """
        return self._native.score(name, input, overrides, _rfc3339(at), explain)

    def clear_cache(
        self, entry_points: list[str] | None = None, all: bool = False
    ) -> dict[str, Any]:
        """Clears by hand: drops the server's cached rulesets of ``entry_points`` (or, with
        ``all=True``, every cache entry of the tenant), then replaces this client's replica with
        one loaded from a fresh snapshot. Rulebook keeps both current by itself; this is for an
        operator who wants to be sure. Needs an ``admin`` token.

        Returns the server's answer, entry points normalised:
        ``{"entry_points": ["home_page_mount"], "tags": [], "all": False}``.

        Raises ``BadRequest`` (``nothing_to_invalidate``, ``bad_entry_point``),
        ``Unauthorized``/``Forbidden`` for a token that is not an admin's, ``Unreachable``.
        """
        body = {"entry_points": list(entry_points or []), "all": all}
        answer = self._native.invalidate_cache(body)
        self._native.renew()
        return answer

    def status(self) -> dict[str, Any]:
        """How current the replica is, as a dict:

        - ``seq`` (int): every change through it is reflected;
        - ``connected`` (bool): whether the change stream is connected now;
        - ``last_change_at`` (aware ``datetime`` or None): when the last change arrived;
        - ``last_heard_at`` (aware ``datetime`` or None): when the server last said anything (a
          change or a heartbeat): how stale the answers may be while it is away;
        - ``last_error`` (str or None): the last failure, cleared on reconnection;
        - ``snapshots`` (int): snapshots loaded (1, more after a reset);
        - ``rules`` (int): how many rules the replica holds.
        """
        status = self._native.status()
        for key in ("last_change_at", "last_heard_at"):
            if status[key] is not None:
                status[key] = datetime.fromisoformat(status[key])
        return status

    def wait_for(self, seq: int, timeout: float | None = None) -> int:
        """Waits until the replica reflects ``seq`` (from a write made elsewhere), for at most
        ``timeout`` seconds (10 if ``None``); returns the ``seq`` reached.

        Raises ``ReplicaError`` when the time runs out.
        """
        return self._native.wait_for(seq, timeout)


class Rules:
    """``client.rules``: the tenant's rules on the server. Reads go over HTTP; a write returns
    the server's answer, and the client's next local read reflects it.

    A rule is a dict in the API's shape, such as::

        {"id": "promo_banner", "entry_point": "landing", "priority": 100, "enabled": True,
         "condition": {"==": [{"var": "country"}, "FR"]},
         "actions": [{"type": "display_message", "message": "Spring sale"}],
         "params": {}, "tags": [], "version": 1, ...}

    Every method raises ``NotFound`` for an unknown rule, ``Unauthorized``/``Forbidden`` for a
    missing or weak token, and ``Unreachable`` when the server cannot be reached.
    """

    def __init__(self, native: _native.Client) -> None:
        self._native = native

    def get(self, rule_id: str) -> dict[str, Any]:
        """The rule, with the ``seq`` the answer reflects (``{"seq": 12, "id": ..., ...}``)."""
        return self._native.rule(rule_id)

    def list(self) -> list[dict[str, Any]]:
        """Every rule of the tenant, by priority then id."""
        return self._native.rules()["rules"]

    def create(self, rule: dict[str, Any]) -> dict[str, Any]:
        """Creates ``rule``; returns it as stored, with the write's ``seq``.

        Raises ``ValidationFailed`` (``errors`` lists every problem) for a rule that is not
        valid, ``Conflict`` (``rule_exists``) when the id is taken.
        """
        return self._native.create_rule(rule)

    def update(
        self, rule: dict[str, Any], reason: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """Replaces rule ``rule["id"]`` with ``rule`` (as ``get`` returns it, edited; read-only
        fields such as ``seq`` are ignored), recording ``reason`` in its history, if it is still
        at ``version`` (sent as ``If-Match``; the rule's own ``version`` if ``None``). Returns
        the rule as stored, with its new ``version`` and the write's ``seq``.

        Raises ``Conflict`` (``version_conflict``) when someone else changed the rule since that
        version, ``PreconditionRequired`` (``missing_version``) when no version is named,
        ``ValidationFailed`` for a rule that is not valid, ``NotFound`` for an unknown id.
        """
        if not isinstance(rule, dict) or not isinstance(rule.get("id"), str):
            raise TypeError("`rule` must be a dict with an `id`, as `rules.get(id)` returns it")
        body = dict(rule)
        if reason is not None:
            body["reason"] = reason
        if version is not None:
            body.pop("version", None)
        return self._native.update_rule(rule["id"], body, version)

    def import_(
        self,
        rules: list[dict[str, Any]],
        reason: str | None = None,
        dry_run: bool = False,
        format: str = "rulebook",
    ) -> dict[str, Any]:
        """Creates or updates many rules in one transaction (``POST /v1/rules/import``): every
        rule is checked first and one bad rule writes nothing; rules whose content is unchanged
        are left alone. ``format="django"`` reads ``manage.py dumpdata`` entries. With
        ``dry_run`` nothing is written. Returns the counts::

            {"seq": 40, "dry_run": False, "total": 50, "created": 48, "updated": 1,
             "unchanged": 1}

        Raises ``ValidationFailed`` with every problem of every rule (paths ``rules[i]...``).
        """
        body: dict[str, Any] = {"rules": list(rules), "dry_run": dry_run, "format": format}
        if reason is not None:
            body["reason"] = reason
        return self._native.import_rules(body)

    def update_params(self, rule_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Merges ``params`` into the rule's params; returns the rule, with the write's ``seq``.

        Raises ``ValidationFailed`` for params the rule's schema refuses.
        """
        return self._native.update_params(rule_id, params)

    def enable(self, rule_id: str) -> dict[str, Any]:
        """Enables the rule; returns it, with the write's ``seq``."""
        return self._native.set_enabled(rule_id, True)

    def disable(self, rule_id: str) -> dict[str, Any]:
        """Disables the rule; returns it, with the write's ``seq``."""
        return self._native.set_enabled(rule_id, False)

    def delete(self, rule_id: str) -> int:
        """Deletes the rule; returns the write's ``seq``."""
        return self._native.delete_rule(rule_id)


def _rfc3339(at: datetime | str | None) -> str | None:
    if at is None or isinstance(at, str):
        return at
    if not isinstance(at, datetime):
        raise TypeError(f"`at` must be a datetime or an RFC 3339 string, not {type(at).__name__}")
    if at.tzinfo is None:
        raise ValueError("`at` must be an aware datetime (with tzinfo), such as datetime.now(UTC)")
    return at.isoformat()
