"""Local answers equal the server's: ``rulebook.Client``'s ``evaluate`` (with ``explain``) on
generated rules and contexts, ``score`` with generated overrides and ``explain``, and the errors
of calls the server refuses (the same class, code, message and field problems). Each case is
asked of the replica and of ``rulebook serve`` over HTTP; the generators use fixed seeds and
bounded counts, so a run is the same every time and takes seconds."""

from __future__ import annotations

import json
import random
import urllib.error
from typing import Any

import pytest

import rulebook

from conftest import Server

AT = "2026-03-03T10:00:00Z"
ROUNDS = 3
RULES_PER_ROUND = 40
ENTRY_POINTS_PER_ROUND = 4
CONTEXTS_PER_ENTRY_POINT = 40

# A rule that runs out of its work budget (1,000,000 steps) on a 300,000-character `text`: each
# `substr` visits every character, and `and` goes on while they are not empty.
BUDGET_EATER = {"and": [{"substr": [{"var": "text"}, 1]} for _ in range(4)]}

FIELDS = ["country", "amount", "user.age", "user.name", "tags", "flag", "missing_field"]


class Generator:
    """Random JSONLogic over the context's fields: every operator family the rules crate knows,
    values of every JSON type, and failures (division by zero, a bad `substr`) on purpose."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def literal(self) -> Any:
        return self.rng.choice([0, 1, 2.5, -3, 100, "FR", "GB", "", "a", True, False, None, []])

    def var(self) -> Any:
        field = self.rng.choice([*FIELDS, "params.rate", "params.limit"])
        if self.rng.random() < 0.2:
            return {"var": [field, self.literal()]}
        return {"var": field}

    def value(self, depth: int) -> Any:
        if depth <= 0 or self.rng.random() < 0.35:
            return self.var() if self.rng.random() < 0.6 else self.literal()
        op = self.rng.choice(
            ["+", "-", "*", "/", "%", "min", "max", "cat", "substr", "if", "merge", "?:"]
        )
        a, b = self.value(depth - 1), self.value(depth - 1)
        if op == "substr":
            return {"substr": [a, self.rng.choice([0, 1, -1, 5])]}
        if op == "if":
            return {"if": [self.condition(depth - 1), a, b]}
        if op == "?:":
            return {"?:": [self.condition(depth - 1), a, b]}
        return {op: [a, b]}

    def condition(self, depth: int) -> Any:
        if depth <= 0 or self.rng.random() < 0.2:
            return self.rng.choice(
                [
                    True,
                    False,
                    {"var": "flag"},
                    {"!!": [{"var": "country"}]},
                    {"missing": ["amount"]},
                ]
            )
        op = self.rng.choice(
            ["==", "!=", "===", "!==", "<", "<=", ">", ">=", "in", "and", "or", "!", "some", "all"]
        )
        if op in ("and", "or"):
            return {op: [self.condition(depth - 1) for _ in range(self.rng.randint(1, 3))]}
        if op == "!":
            return {"!": [self.condition(depth - 1)]}
        if op in ("some", "all"):
            return {op: [{"var": "tags"}, {"==": [{"var": ""}, self.literal()]}]}
        if op == "in":
            haystack = self.rng.choice([["FR", "GB", 1], {"var": "tags"}, "FRANCE"])
            return {"in": [self.value(depth - 1), haystack]}
        if op == "<" and self.rng.random() < 0.3:
            return {"<": [self.value(depth - 1), self.var(), self.value(depth - 1)]}
        return {op: [self.value(depth - 1), self.value(depth - 1)]}

    def rule(self, rule_id: str, entry_point: str) -> dict[str, Any]:
        rng = self.rng
        rule: dict[str, Any] = {
            "id": rule_id,
            "entry_point": entry_point,
            "priority": rng.randint(0, 5),
            "enabled": rng.random() < 0.85,
            "stop_processing": rng.random() < 0.1,
            "condition": self.condition(3),
            "params": {"rate": rng.choice([0, 0.2, 7]), "limit": rng.choice([10, "x"])},
            "actions": [
                {"type": "set_value", "field": f"f{rng.randint(0, 3)}", "value": self.value(3)},
                {"type": "display_message", "message": {"cat": ["rule ", rule_id]}},
            ],
        }
        window = rng.random()
        if window < 0.1:
            rule["active_from"] = "2027-01-01T00:00:00Z"
        elif window < 0.2:
            rule["active_until"] = "2026-03-03T10:00:00Z"  # ends at AT: excluded
        elif window < 0.3:
            rule["active_from"] = "2026-03-03T10:00:00Z"  # starts at AT: included
        return rule

    def context(self) -> dict[str, Any]:
        rng = self.rng
        context: dict[str, Any] = {}
        if rng.random() < 0.15:
            context["text"] = "a" * 300_000  # runs BUDGET_EATER out of its work budget
        for field in FIELDS[:-1]:
            if rng.random() < 0.75:
                value = rng.choice(
                    [0, 1, 2.5, -3, 100, 1e300, "FR", "GB", "", "10", True, False, None, []]
                )
                if field == "tags":
                    value = rng.choice([["FR", 1], [], ["a", "b", None], "FR", None])
                if "." in field:
                    head, tail = field.split(".")
                    context.setdefault(head, {})[tail] = value
                else:
                    context[field] = value
        return context


def http_error(server: Server, method: str, path: str, body: Any) -> dict[str, Any]:
    """The server's error answer to a call it refuses: ``{"status", "error": {...}}``."""
    try:
        server.http(method, path, body)
    except urllib.error.HTTPError as answer:
        return {"status": answer.code, **json.loads(answer.read())}
    pytest.fail(f"the server accepted {method} {path} {body}")


def test_local_evaluation_and_explain_equal_the_server_on_generated_rules(
    server: Server, client: rulebook.Client
):
    compared = matched = explained_false = failed = 0
    for round in range(ROUNDS):
        generate = Generator(random.Random(1000 + round))
        entry_points = [f"gen{round}_{k}" for k in range(ENTRY_POINTS_PER_ROUND)]
        rules = [
            generate.rule(f"gen{round}_rule_{i:02}", generate.rng.choice(entry_points))
            for i in range(RULES_PER_ROUND)
        ]
        rules.append(
            {
                "id": f"gen{round}_budget",
                "entry_point": entry_points[0],
                "priority": 0,
                "condition": BUDGET_EATER,
                "actions": [{"type": "display_message", "message": "never"}],
            }
        )
        imported = client.rules.import_(rules, reason="differential test")
        assert imported["created"] == RULES_PER_ROUND + 1, imported
        for entry_point in entry_points:
            for _ in range(CONTEXTS_PER_ENTRY_POINT):
                context = generate.context()
                explain = generate.rng.random() < 0.5
                local = client.evaluate(entry_point, context, at=AT, explain=explain)
                remote = server.http(
                    "POST",
                    f"/v1/evaluate/{entry_point}",
                    {"context": context, "at": AT, "explain": explain},
                )
                remote.pop("decision_id", None)
                assert local == remote, (entry_point, context)
                # The same key order at every level, as the server writes its JSON.
                assert json.dumps(local) == json.dumps(remote), (entry_point, context)
                compared += 1
                matched += len(local["matched"])
                failed += len(local["errors"])
                explained_false += sum(
                    e["outcome"] == "condition_false" for e in local.get("explain", [])
                )
    assert compared == ROUNDS * ENTRY_POINTS_PER_ROUND * CONTEXTS_PER_ENTRY_POINT
    # The generated cases are not all alike: rules match, conditions fail, rules fail.
    assert matched > 50 and explained_false > 50 and failed > 5, (matched, explained_false, failed)


def test_local_score_with_overrides_and_explain_equals_the_server(
    server: Server, client: rulebook.Client
):
    rng = random.Random(21)
    compared = refused = 0
    for _ in range(60):
        input = {
            "instrument_type": rng.choice(["equity", "crypto", "option", "bond", 7]),
            "value": rng.choice([1_000, 60_000, 150_000, "big"]),
            "holding_days": rng.choice([1, 10, 45]),
            "firm_last_traded_days_ago": rng.choice([3, 40, None]),
        }
        overrides: dict[str, dict[str, Any]] = {}
        if rng.random() < 0.7:
            overrides["RF-005"] = {"lowThreshold": rng.choice([10_000, 70_000, "cheap"])}
        if rng.random() < 0.4:
            overrides["RF-002"] = {"lookbackDays": rng.choice([1, 60, 99_999])}
        if rng.random() < 0.4:
            overrides["RF-001"] = {"highRiskTypes": rng.choice([["equity"], "crypto"])}
        if rng.random() < 0.1:
            overrides["NOT-A-FACTOR"] = {"x": 1}
        explain = rng.random() < 0.5
        body = {"input": input, "overrides": overrides, "at": AT, "explain": explain}
        try:
            local = client.score("pad_trade", input, overrides=overrides, at=AT, explain=explain)
        except rulebook.RulebookError as error:
            remote = http_error(server, "POST", "/v1/score/pad_trade", body)
            assert same_error(error, remote), (body, error, remote)
            refused += 1
            continue
        remote = server.http("POST", "/v1/score/pad_trade", body)
        remote.pop("decision_id", None)
        assert local == remote, body
        compared += 1
    assert compared > 20 and refused > 5, (compared, refused)


def same_error(error: rulebook.RulebookError, remote: dict[str, Any]) -> bool:
    """Whether a local error is the server's: its class is the status's, and the code, message
    and field problems are the same."""
    classes = {
        400: rulebook.BadRequest,
        404: rulebook.NotFound,
        422: (rulebook.ValidationFailed, rulebook.EvaluationFailed),
    }
    problems = remote["error"].get("errors", [])
    return (
        isinstance(error, classes[remote["status"]])
        and error.status is None
        and error.code == remote["error"]["code"]
        and error.message == remote["error"]["message"]
        and error.errors == problems
    )


def test_calls_the_server_refuses_fail_alike_locally(server: Server, client: rulebook.Client):
    cases = [
        (
            lambda: client.evaluate("Home Page!", {}),
            ("POST", "/v1/evaluate/Home%20Page!", {"context": {}}),
            rulebook.BadRequest,
        ),
        (
            lambda: client.score("no_such_card", {}),
            ("POST", "/v1/score/no_such_card", {"input": {}}),
            rulebook.NotFound,
        ),
        (
            lambda: client.score("pad_trade", {}, overrides={"RF-005": {"lowThreshold": "x"}}),
            (
                "POST",
                "/v1/score/pad_trade",
                {"input": {}, "overrides": {"RF-005": {"lowThreshold": "x"}}},
            ),
            rulebook.ValidationFailed,
        ),
        (
            lambda: client.score("pad_trade", {}, overrides={"RF-404": {"x": 1}}),
            ("POST", "/v1/score/pad_trade", {"input": {}, "overrides": {"RF-404": {"x": 1}}}),
            rulebook.EvaluationFailed,
        ),
    ]
    for call, (method, path, body), kind in cases:
        with pytest.raises(kind) as raised:
            call()
        remote = http_error(server, method, path, body)
        assert same_error(raised.value, remote), (path, raised.value, remote)
    # A field problem is carried locally as the server lists it.
    with pytest.raises(rulebook.ValidationFailed) as invalid:
        client.score("pad_trade", {}, overrides={"RF-005": {"lowThreshold": "x"}})
    assert invalid.value.errors and invalid.value.errors[0]["path"].startswith("overrides.RF-005")
