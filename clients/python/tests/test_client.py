"""``rulebook.Client`` against a real ``rulebook serve`` (target/debug/rulebook, built by
scripts/python-test; ``RULEBOOK_BIN`` names another): the server's answers computed locally,
read-your-writes, changes made elsewhere arriving by the stream, serving while the server is
killed and catching up when it is back on the same port, a forked child, and the exceptions.

Without the binary the tests skip, saying why; under ``CI=true`` they fail."""

from __future__ import annotations

import copy
import os
import random
import select
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import rulebook

from conftest import TIMEOUT, Server, free_port, run_threads


def eventually(what: str, check: Callable[[], bool]) -> None:
    """Waits for ``check()`` to hold (a change travelling the stream), failing after
    ``TIMEOUT`` seconds with ``what``."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT} s: {what}")
        time.sleep(0.01)


def contexts(count: int) -> list[dict[str, Any]]:
    """Contexts for the seeded entry points, from a fixed seed: the fields their conditions and
    actions read, present or not, of the right type or not."""
    rng = random.Random(14)
    made = []
    for _ in range(count):
        context: dict[str, Any] = {}
        if rng.random() < 0.8:
            context["country"] = rng.choice(["GB", "FR", "DE", "gb", "", 44])
        if rng.random() < 0.7:
            context["net_amount"] = rng.choice([0, 99.5, 120, -3, "12", None])
        if rng.random() < 0.6:
            cart: dict[str, Any] = {"marketplace": rng.choice([True, False, "true", 1])}
            if rng.random() < 0.5:
                cart["seller"] = rng.choice(["Acme", "", None])
            context["cart"] = cart
        if rng.random() < 0.5:
            context["user"] = {"first_name": rng.choice(["Ada", "", None, 7])}
        made.append(context)
    return made


ENTRY_POINTS = ["checkout_terms", "vat_calculation", "home_page_mount", "no_rules_here"]


def test_local_evaluation_equals_the_servers_answer(server: Server, client: rulebook.Client):
    assert client.status()["rules"] > 0, "the seeded example rules are loaded"
    compared = 0
    for entry_point in ENTRY_POINTS:
        for context in [{}, *contexts(25)]:
            local = client.evaluate(entry_point, context)
            remote = server.http("POST", f"/v1/evaluate/{entry_point}", {"context": context})
            for key in ("entry_point", "matched", "actions", "errors"):
                assert local[key] == remote[key], (entry_point, context, key)
            assert local.get("stopped_by") == remote.get("stopped_by")
            assert local["seq"] == remote["seq"]
            # The same key order as the server's JSON, at every level.
            assert list(local) == [key for key in remote if key != "decision_id"]
            for key in ("matched", "actions", "errors"):
                assert [list(item) for item in local[key]] == [list(item) for item in remote[key]]
            compared += 1
    assert compared == 4 * 26
    # The seeded rules do match something: the comparison is not of empty answers.
    gb = client.evaluate("vat_calculation", {"country": "GB", "net_amount": 100})
    assert [m["id"] for m in gb["matched"]] == ["vat_gb_standard"]
    assert {a["field"]: a["value"] for a in gb["actions"]} == {"vat_rate": 0.2, "vat_amount": 20}


def test_local_score_equals_the_servers_answer(server: Server, client: rulebook.Client):
    rng = random.Random(7)
    for _ in range(15):
        input = {
            "instrument_type": rng.choice(["equity", "crypto", "option", "bond"]),
            "value": rng.choice([1_000, 60_000, 150_000]),
            "holding_days": rng.choice([1, 10, 45]),
            "ticker": rng.choice(["ACME", "INIT", "GLOBEX"]),
        }
        local = client.score("pad_trade", input)
        remote = server.http("POST", "/v1/score/pad_trade", {"input": input})
        for key in ("scorecard", "factors", "overall", "escalated", "route", "errors"):
            assert local[key] == remote[key], (input, key)


def test_evaluate_at_a_time(server: Server, client: rulebook.Client):
    from datetime import UTC, datetime

    at = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert client.evaluate("checkout_terms", {}, at=at)["at"] == "2026-03-03T10:00:00Z"
    assert client.evaluate("checkout_terms", {}, at="2026-03-03T10:00:00Z")["at"] == (
        "2026-03-03T10:00:00Z"
    )
    # Written as the server writes it, whatever the fraction of a second (and in one second).
    for fraction in ["", ".5", ".25", ".123456", ".1234567", ".000000001", ".999999999"]:
        for at in [f"2026-03-03T10:00:00{fraction}Z", f"2026-03-03T12:00:01{fraction}+02:00"]:
            local = client.evaluate("checkout_terms", {}, at=at)["at"]
            remote = server.http("POST", "/v1/evaluate/checkout_terms", {"context": {}, "at": at})
            assert local == remote["at"], at
    with pytest.raises(ValueError, match="aware"):
        client.evaluate("checkout_terms", {}, at=datetime(2026, 3, 3))
    with pytest.raises(ValueError, match="RFC 3339"):
        client.evaluate("checkout_terms", {}, at="yesterday")


def test_a_write_through_the_client_is_seen_by_its_next_read(client: rulebook.Client):
    assert client.get_value("cache_ttl_seconds", "seconds") == 60

    written = client.rules.update_params("cache_ttl_seconds", {"seconds": 90})
    assert written["params"]["seconds"] == 90
    assert client.get_value("cache_ttl_seconds", "seconds") == 90  # no wait in the test
    assert client.status()["seq"] >= written["seq"]

    client.rules.disable("checkout_terms_banner")
    assert client.is_enabled("checkout_terms_banner") is False
    client.rules.enable("checkout_terms_banner")
    assert client.is_enabled("checkout_terms_banner") is True

    created = client.rules.create(
        {
            "id": "promo_banner",
            "entry_point": "checkout_terms",
            "priority": 1,
            "reason": "spring campaign",
            "actions": [{"type": "display_message", "message": "Spring sale"}],
        }
    )
    assert created["id"] == "promo_banner" and created["version"] == 1
    matched = [m["id"] for m in client.evaluate("checkout_terms", {})["matched"]]
    assert matched[0] == "promo_banner"
    assert client.rules.get("promo_banner")["enabled"] is True
    assert "promo_banner" in [rule["id"] for rule in client.rules.list()]

    seq = client.rules.delete("promo_banner")
    assert isinstance(seq, int) and seq > created["seq"]
    matched = [m["id"] for m in client.evaluate("checkout_terms", {})["matched"]]
    assert "promo_banner" not in matched


def test_a_write_over_http_reaches_the_replica(server: Server, client: rulebook.Client):
    answer = server.http("PATCH", "/v1/rules/cache_ttl_seconds/params", {"params": {"seconds": 5}})
    eventually(
        "the replica reflects a write made over HTTP",
        lambda: client.get_value("cache_ttl_seconds", "seconds") == 5,
    )
    assert client.status()["seq"] >= answer["seq"]
    assert client.status()["last_change_at"] is not None
    # wait_for, for a seq learnt elsewhere:
    answer = server.http("POST", "/v1/rules/cache_ttl_seconds/disable")
    assert client.wait_for(answer["seq"], timeout=TIMEOUT) >= answer["seq"]
    assert client.is_enabled("cache_ttl_seconds") is False


def test_the_server_killed_the_client_answers_and_catches_up_when_it_is_back(
    server: Server, client: rulebook.Client
):
    context = {"country": "GB", "net_amount": 50}
    before = client.evaluate("vat_calculation", context)
    eventually("the change stream connects", lambda: client.status()["connected"])
    assert client.status()["last_error"] is None

    server.kill()
    eventually("status() reports the lost server", lambda: not client.status()["connected"])
    eventually("status() names the failure", lambda: client.status()["last_error"] is not None)
    after = client.evaluate("vat_calculation", context)
    assert after["matched"] == before["matched"] and after["actions"] == before["actions"]
    assert client.get_value("cache_ttl_seconds", "seconds") == 60
    assert client.is_enabled("cache_ttl_seconds") is True
    with pytest.raises(rulebook.Unreachable):
        client.rules.get("cache_ttl_seconds")

    # A change made while the server is away (plain SQL; the triggers log it) ...
    with sqlite3.connect(server.db) as db:
        db.execute("UPDATE rules SET enabled = 0 WHERE id = 'cache_ttl_seconds'")
    assert client.is_enabled("cache_ttl_seconds") is True

    # ... arrives once the server is back on the same port.
    back = Server(server.db, server.port)
    try:
        eventually(
            "the replica catches up", lambda: client.is_enabled("cache_ttl_seconds") is False
        )
        eventually("status() reports the reconnection", lambda: client.status()["connected"])
        assert client.status()["last_error"] is None
    finally:
        back.kill()


def test_a_forked_child_evaluates(server: Server, client: rulebook.Client):
    expected = client.evaluate("vat_calculation", {"country": "GB", "net_amount": 10})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        outcome = "ok"
        try:
            answer = client.evaluate("vat_calculation", {"country": "GB", "net_amount": 10})
            assert answer["actions"] == expected["actions"], answer
            # Its replica is live: its own write is read back, through its own change stream.
            client.rules.update_params("cache_ttl_seconds", {"seconds": 7})
            assert client.get_value("cache_ttl_seconds", "seconds") == 7
        except BaseException as error:
            outcome = f"{type(error).__name__}: {error}"
        finally:
            os.write(write, outcome.encode())
            os._exit(0)
    os.close(write)
    # A child stuck on the parent's dead runtime would never write: wait for it with a deadline.
    ready, _, _ = select.select([read], [], [], TIMEOUT)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        pytest.fail(f"the forked child did not answer within {TIMEOUT} s")
    with os.fdopen(read) as pipe:
        outcome = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert outcome == "ok"
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's replica still follows the stream: the child's write reaches it.
    eventually(
        "the parent sees the child's write",
        lambda: client.get_value("cache_ttl_seconds", "seconds") == 7,
    )


def test_threads_share_one_client(client: rulebook.Client):
    expected = client.evaluate("checkout_terms", {"cart": {"marketplace": True}})

    def evaluate(index: int) -> Any:
        return [
            client.evaluate("checkout_terms", {"cart": {"marketplace": True}})["actions"]
            for _ in range(50)
        ]

    for answers in run_threads(8, evaluate):
        assert answers == [expected["actions"]] * 50


def test_a_waiting_call_lets_other_threads_run(server: Server, client: rulebook.Client):
    """A thread blocked in the client (waiting for a change) has released the GIL: this thread
    makes that change meanwhile, in Python. Were the GIL held, the write could only happen once
    the wait had timed out, and the waiter would fail."""
    head = client.status()["seq"]
    reached: list[Any] = []
    waiter = threading.Thread(target=lambda: reached.append(client.wait_for(head + 1, TIMEOUT)))
    waiter.start()
    eventually(
        "the waiter is in the native call",
        lambda: "wait_for" in repr(sys._current_frames().get(waiter.ident or 0)),
    )
    server.http("POST", "/v1/rules/cache_ttl_seconds/disable")
    waiter.join(TIMEOUT)
    assert reached and reached[0] >= head + 1


def test_errors_are_the_classes_named_after_the_api_codes(server: Server, client: rulebook.Client):
    with pytest.raises(rulebook.NotFound) as unknown:
        client.is_enabled("no_such_rule")
    assert unknown.value.code == "rule_not_found" and unknown.value.status is None

    with pytest.raises(rulebook.NotFound) as unknown:
        client.get_value("cache_ttl_seconds", "no_such_param")
    assert unknown.value.code == "param_not_found"
    assert client.get_value("cache_ttl_seconds", "no_such_param", default=3) == 3

    with pytest.raises(rulebook.NotFound) as unknown:
        client.rules.get("no_such_rule")
    assert (unknown.value.code, unknown.value.status) == ("rule_not_found", 404)
    assert "no_such_rule" in unknown.value.message
    assert isinstance(unknown.value, rulebook.RulebookError)

    with pytest.raises(rulebook.NotFound):
        client.rules.disable("no_such_rule")

    with pytest.raises(rulebook.ValidationFailed) as invalid:
        client.rules.create(
            {
                "id": "bad_rule",
                "entry_point": "landing",
                "priority": "high",
                "colour": "red",
                "reason": "test",
            }
        )
    assert (invalid.value.code, invalid.value.status) == ("validation_failed", 422)
    assert len(invalid.value.errors) >= 2
    paths = {problem["path"] for problem in invalid.value.errors}
    assert {"priority", "colour"} <= paths, invalid.value.errors
    assert all(problem["message"] for problem in invalid.value.errors)

    with pytest.raises(rulebook.Conflict) as taken:
        client.rules.create({"id": "cache_ttl_seconds", "params": {"seconds": 1}, "reason": "test"})
    assert (taken.value.code, taken.value.status) == ("rule_exists", 409)

    anonymous = rulebook.Client(server.url)
    with pytest.raises(rulebook.Unauthorized) as refused:
        anonymous.rules.disable("cache_ttl_seconds")
    assert refused.value.status == 401
    assert anonymous.is_enabled("cache_ttl_seconds") is True

    with pytest.raises(rulebook.BadRequest) as bad:  # locally, as the server refuses it
        client.evaluate("Home Page!", {})
    assert (bad.value.code, bad.value.status) == ("bad_entry_point", None)

    with pytest.raises(TypeError):
        client.evaluate("checkout_terms", {"when": {1, 2}})
    with pytest.raises(TypeError):
        client.evaluate("checkout_terms", ["not", "a", "dict"])  # type: ignore[arg-type]

    with pytest.raises(rulebook.Unreachable) as away:
        rulebook.Client(f"http://127.0.0.1:{free_port()}")
    assert away.value.code == "unreachable" and away.value.status is None


def test_update_sends_the_version_and_is_read_back(client: rulebook.Client):
    rule = client.rules.get("checkout_terms_banner")
    rule["priority"] = 3
    updated = client.rules.update(rule, reason="earlier")
    assert updated["version"] == rule["version"] + 1 and updated["priority"] == 3
    local = {r["id"]: r for r in client.entry_point_rules("checkout_terms")}
    assert local["checkout_terms_banner"]["priority"] == 3  # read your write

    # The version read is stale now: someone else's change is not overwritten.
    with pytest.raises(rulebook.Conflict) as stale:
        client.rules.update(rule, reason="again")
    assert stale.value.code == "version_conflict"
    with pytest.raises(rulebook.Conflict):
        client.rules.update(updated, reason="again", version=rule["version"])
    unversioned = {k: v for k, v in updated.items() if k != "version"}
    with pytest.raises(rulebook.PreconditionRequired) as missing:
        client.rules.update(unversioned, reason="again")
    assert (missing.value.code, missing.value.status) == ("missing_version", 428)
    again = client.rules.update(unversioned, reason="again", version=updated["version"])
    assert again["version"] == updated["version"] + 1


def test_import_checks_everything_then_writes_at_once(client: rulebook.Client):
    rules = [
        {"id": f"import_{i}", "entry_point": "imported", "priority": i, "params": {"n": i}}
        for i in range(3)
    ]
    dry = client.rules.import_(rules, reason="trial", dry_run=True)
    assert (dry["dry_run"], dry["created"]) == (True, 3)
    assert client.entry_point_rules("imported") == []

    done = client.rules.import_(rules, reason="for real")
    assert (done["dry_run"], done["created"], done["total"]) == (False, 3, 3)
    assert [r["id"] for r in client.entry_point_rules("imported")] == [r["id"] for r in rules]
    assert client.get_value("import_2", "n") == 2

    bad = [*rules, {"id": "import_bad", "entry_point": "Home Page!"}]
    with pytest.raises(rulebook.ValidationFailed) as invalid:
        client.rules.import_(bad, reason="bad")
    assert invalid.value.errors[0]["path"].startswith("rules[3]")
    assert client.rules.import_(rules, reason="same")["unchanged"] == 3


def test_explain_says_how_every_rule_was_decided(client: rulebook.Client):
    answer = client.evaluate("vat_calculation", {"country": "FR", "net_amount": 100}, explain=True)
    outcomes = {e["id"]: e["outcome"] for e in answer["explain"]}
    assert outcomes["vat_gb_standard"] == "condition_false"
    assert len(answer["explain"]) >= len(client.entry_point_rules("vat_calculation")) > 1
    assert "explain" not in client.evaluate("vat_calculation", {"country": "FR"})


NOTIFY = {
    "id": "notify_team",
    "entry_point": "notify",
    "priority": 5,
    "reason": "answers test",
    "params": {"team": "risk"},
    "actions": [
        {
            "type": "notify",
            "channel": {"cat": ["#", {"var": "params.team"}, "-", {"var": "country"}]},
            "targets": ["ops", {"var": "country"}],
            "meta": {"level": 1, "tags": ["a"]},
            "plain": "fixed",
        },
        {"type": "log", "line": "notified"},
    ],
}


def test_answers_follow_rule_changes_and_are_the_callers_own(client: rulebook.Client):
    """Each answer is built from dicts the client keeps per matched rule and per action: a
    changed rule must never be answered from the old ones, and a caller mutating an answer
    must not change the next."""
    client.rules.create(NOTIFY)
    at = "2026-03-03T10:00:00Z"
    first = client.evaluate("notify", {"country": "FR"}, at=at)
    assert first["matched"] == [{"id": "notify_team", "version": 1, "priority": 5}]
    assert first["actions"] == [
        {
            "rule_id": "notify_team",
            "type": "notify",
            "channel": "#risk-FR",
            "targets": ["ops", "FR"],
            "meta": {"level": 1, "tags": ["a"]},
            "plain": "fixed",
        },
        {"rule_id": "notify_team", "type": "log", "line": "notified"},
    ]
    kept = copy.deepcopy(first)

    # Mutate everything the answer holds, nested lists and dicts included.
    first["matched"][0]["id"] = "changed"
    first["matched"].append({"id": "extra"})
    action = first["actions"][0]
    action["channel"] = "#changed"
    action["plain"] = "changed"
    action["targets"].append("changed")
    action["meta"]["tags"].append("changed")
    action["meta"]["level"] = 2
    action["added"] = True
    first["actions"][1].clear()
    again = client.evaluate("notify", {"country": "FR"}, at=at)
    assert again == kept
    assert [list(a) for a in again["actions"]] == [list(a) for a in kept["actions"]]
    assert client.evaluate("notify", {"country": "DE"})["actions"][0]["channel"] == "#risk-DE"

    # A new version with other actions, fields and priority: the answer shows only the new ones.
    rule = client.rules.get("notify_team")
    rule["priority"] = 7
    rule["actions"] = [
        {"type": "alert", "plain": "other", "channel": {"cat": [{"var": "params.team"}, "!"]}}
    ]
    updated = client.rules.update(rule, reason="other action")
    answer = client.evaluate("notify", {"country": "FR"})
    assert answer["matched"] == [
        {"id": "notify_team", "version": updated["version"], "priority": 7}
    ]
    assert answer["actions"] == [
        {"rule_id": "notify_team", "type": "alert", "plain": "other", "channel": "risk!"}
    ]
    assert list(answer["actions"][0]) == ["rule_id", "type", "plain", "channel"]

    # A param change reaches the computed values; a renamed rule answers with its new id.
    client.rules.update_params("notify_team", {"team": "ops"})
    assert client.evaluate("notify", {"country": "FR"})["actions"][0]["channel"] == "ops!"
    renamed = {**NOTIFY, "id": "notify_desk"}
    client.rules.delete("notify_team")
    client.rules.create(renamed)
    answer = client.evaluate("notify", {"country": "GB"})
    assert [m["id"] for m in answer["matched"]] == ["notify_desk"]
    assert [a["rule_id"] for a in answer["actions"]] == ["notify_desk", "notify_desk"]
    assert answer["actions"][0]["channel"] == "#risk-GB"
