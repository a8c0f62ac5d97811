"""Rulebook read through OpenFeature: the OpenFeature Python SDK with its OFREP provider against a
real ``rulebook serve`` (started as tests/test_client.py starts it). Rules are boolean flags,
params typed flags (``<rule id>@<param>``); errors reach the SDK as its error codes; a rule
changed over the API is seen by the next evaluation.

Without the server binary the tests skip, saying why; under ``CI=true`` they fail."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from conftest import TOKEN, Server, free_port, wait_until

DOMAIN = "rulebook-ofrep-test"


def ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(server.url + "/health", timeout=5) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "rules.db", free_port())
    wait_until(lambda: ready(started))
    for rule in [
        {"id": "fr_banner", "condition": {"==": [{"var": "country"}, "FR"]}},
        {
            "id": "limits",
            "params": {"days": 30, "rate": 0.25, "label": "gold", "tiers": {"gold": 3}},
        },
    ]:
        started.http("POST", "/v1/rules", rule)
    yield started
    started.kill()


@pytest.fixture
def flags(server: Server) -> Iterator[OpenFeatureClient]:
    provider = OFREPProvider(
        server.url, headers_factory=lambda: {"Authorization": f"Bearer {TOKEN}"}
    )
    api.set_provider(provider, domain=DOMAIN)
    yield api.get_client(DOMAIN)
    api.clear_providers()


FR = EvaluationContext("user-1", {"country": "FR"})
GB = EvaluationContext("user-1", {"country": "GB"})


def test_a_rule_is_a_boolean_flag_with_its_reason_and_variant(flags: OpenFeatureClient):
    assert flags.get_boolean_value("fr_banner", False, FR) is True
    assert flags.get_boolean_value("fr_banner", True, GB) is False

    matched = flags.get_boolean_details("fr_banner", False, FR)
    assert (matched.value, matched.reason, matched.variant) == (
        True,
        Reason.TARGETING_MATCH,
        "matched",
    )
    assert matched.error_code is None
    assert matched.flag_metadata["version"] == 1
    assert isinstance(matched.flag_metadata["seq"], int)

    missed = flags.get_boolean_details("fr_banner", True, GB)
    assert (missed.value, missed.reason, missed.variant) == (
        False,
        Reason.DEFAULT,
        "condition_false",
    )

    # A seeded rule whose condition is `true`: on for everyone, no targeting.
    static = flags.get_boolean_details("cache_ttl_seconds", False)
    assert (static.value, static.reason, static.variant) == (True, Reason.STATIC, "matched")


def test_a_param_is_a_typed_flag(flags: OpenFeatureClient):
    assert flags.get_integer_value("limits@days", 0) == 30
    assert flags.get_float_value("limits@rate", 0.0) == 0.25
    assert flags.get_string_value("limits@label", "none") == "gold"
    assert flags.get_object_value("limits@tiers", {}) == {"gold": 3}
    details = flags.get_integer_details("limits@days", 0)
    assert (details.reason, details.variant) == (Reason.STATIC, "v1")
    # A seeded list param.
    assert flags.get_object_value("RF-001@highRiskTypes", []) == ["crypto", "cfd", "spread_bet"]


def test_an_unknown_flag_is_the_default_with_flag_not_found(flags: OpenFeatureClient):
    for key in ["no_such_rule", "limits@weeks"]:
        details = flags.get_boolean_details(key, True)
        assert details.value is True, key
        assert details.reason == Reason.ERROR
        assert details.error_code == ErrorCode.FLAG_NOT_FOUND, details
    details = flags.get_integer_details("limits@weeks", 7)
    assert details.value == 7
    assert "limits@days" in (details.error_message or ""), details.error_message


def test_a_flag_of_another_type_is_the_default_with_type_mismatch(flags: OpenFeatureClient):
    details = flags.get_string_details("fr_banner", "default", FR)
    assert details.value == "default"
    assert details.error_code == ErrorCode.TYPE_MISMATCH, details


def test_a_context_too_large_for_the_rule_is_invalid_context(
    server: Server, flags: OpenFeatureClient
):
    # 100 scans of a 20,000-element list is over a rule's budget of 1,000,000 operations.
    scans = [{"!": {"in": [-1, {"var": "xs"}]}} for _ in range(100)]
    server.http("POST", "/v1/rules", {"id": "scanner", "condition": {"and": scans}})
    large = EvaluationContext("user-1", {"xs": list(range(20_000))})
    details = flags.get_boolean_details("scanner", False, large)
    assert details.value is False
    assert details.error_code == ErrorCode.INVALID_CONTEXT, details
    assert "out_of_budget" in (details.error_message or "")
    assert flags.get_boolean_value("scanner", False, EvaluationContext("u", {"xs": [1]})) is True


def test_a_rule_changed_over_the_api_is_seen_by_the_next_evaluation(
    server: Server, flags: OpenFeatureClient
):
    assert flags.get_boolean_value("fr_banner", False, FR) is True
    server.http("POST", "/v1/rules/fr_banner/disable", {"reason": "test"})
    disabled = flags.get_boolean_details("fr_banner", True, FR)
    assert (disabled.value, disabled.reason, disabled.variant) == (
        False,
        Reason.DISABLED,
        "disabled",
    )
    assert disabled.flag_metadata["version"] == 2

    assert flags.get_integer_value("limits@days", 0) == 30
    server.http("PATCH", "/v1/rules/limits/params", {"params": {"days": 45}})
    details = flags.get_integer_details("limits@days", 0)
    assert (details.value, details.variant) == (45, "v2")
